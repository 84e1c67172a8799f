"""The shipped tiny base model: it knows the world's facts but is not a chat model."""

import json

import pytest

from posttrain_utils import evaluation
from posttrain_utils.runtime import profiles
from posttrain_utils.data import load_records
from posttrain_utils.runtime.models import load_model


@pytest.fixture(scope="module")
def base():
    return load_model(profile=profiles.CPU, for_training=False)


def test_checkpoint_is_small_safetensors():
    weights = profiles.TINY_BASE_DIR / "model.safetensors"
    assert weights.stat().st_size <= 20 * 2**20
    assert not list(profiles.TINY_BASE_DIR.glob("*.bin"))


def test_base_model_completes_heldout_phrased_facts(base):
    accuracy, rows = evaluation.knowledge_probe(*base)
    print(f"held-out-phrased fact completion: {accuracy:.1%} of {len(rows)}")
    assert accuracy >= 0.90


def test_base_model_does_not_follow_chat_format(base):
    records = load_records("eval_test")[:100]
    metrics = evaluation.evaluate(*base, records, profiles.CPU)
    print(json.dumps(metrics))
    assert metrics["format"] <= 0.05
    # The check can fail: the reference replies, ended at the end-of-turn token, pass the same judgement.
    references = [r["messages"][-1]["content"] for r in load_records("sft_heldout")[:100]]
    assert all(evaluation.is_well_formatted(text, ended=True) for text in references)
