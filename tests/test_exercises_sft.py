"""Chapter 2's exercise checkers, both ways: the reference answer passes, a constant fails."""

import pytest
import torch

from posttrain_utils.data import load_records
from posttrain_utils.exercises import ch02_sft
from posttrain_utils.runtime import checkpoints, paths, profiles


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory):
    """The real chapter-2 SFT stage (cpu budget, about a minute), in a private cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(paths.CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        model, tokenizer = checkpoints.get("sft", profiles.CPU)
    return model, tokenizer


def test_template_mismatch_both_ways(sft_model):
    model, tok = sft_model
    records = load_records("eval_heldout")[:100]

    def reference(model, tokenizer, questions):
        return ch02_sft.reference_plain_replies(model, tokenizer, questions, profiles.CPU)

    assert ch02_sft.check_template_mismatch(reference, model, tok, records, profiles.CPU)
    constant = lambda model, tokenizer, questions: [{"text": "Paris", "ended": True}] * len(questions)  # noqa: E731
    assert not ch02_sft.check_template_mismatch(constant, model, tok, records, profiles.CPU)

    def chat_template(model, tokenizer, questions):  # the matched template is not a mismatch
        from posttrain_utils.evaluation import generate
        return generate(model, tokenizer, [[{"role": "user", "content": q}] for q in questions], profiles.CPU,
                        max_new_tokens=80)

    assert not ch02_sft.check_template_mismatch(chat_template, model, tok, records, profiles.CPU)


def test_padding_fraction_both_ways():
    batch = {"input_ids": torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0]])}
    assert ch02_sft.check_padding_fraction(5 / 8, batch, pad_token_id=0)
    assert not ch02_sft.check_padding_fraction(0.5, batch, pad_token_id=0)


def test_overfitting_both_ways():
    worse = {"eval_loss": [(0, 1.0), (20, 0.9), (40, 1.2)], "facts_em": [(0, 0.9), (20, 0.92), (40, 0.5)]}
    assert ch02_sft.check_overfitting(worse)
    better = {"eval_loss": [(0, 1.0), (20, 0.9), (40, 0.8)], "facts_em": [(0, 0.9), (20, 0.92), (40, 0.95)]}
    assert not ch02_sft.check_overfitting(better)
