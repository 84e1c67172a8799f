"""Chapter 6's stages: the six methods' configs and data, the judge's parts, online DPO's pairs."""

from __future__ import annotations

import json

import pytest
import torch

from posttrain_utils import data, dpo, reward
from posttrain_utils.dpo import family as dpo_family, sweep as dpo_sweep
from posttrain_utils.runtime import models
from posttrain_utils.runtime import checkpoints, paths, profiles, results, sources

PROFILE = profiles.CPU


def _reply(text, ended=True):
    return {"text": text, "ended": ended}


def test_ramble_rate_counts_replies_over_the_limit():
    short = _reply(" ".join(["word"] * dpo_family.RAMBLE_WORDS))
    long = _reply(" ".join(["word"] * (dpo_family.RAMBLE_WORDS + 1)))
    assert dpo_family.ramble_rate([short, long, long, short]) == 0.5
    with pytest.raises(ValueError, match="no replies"):
        dpo_family.ramble_rate([])


def test_online_pairs_choose_the_higher_score_and_drop_ties():
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(4)]
    a = [_reply("a0"), _reply("same"), _reply("a2"), _reply("a3", ended=False)]
    b = [_reply("b0"), _reply("same"), _reply("b2"), _reply("b3")]
    pairs = dpo_sweep.online_pairs(prompts, a, b, [1.0, 2.0, 0.5, 9.0], [3.0, 1.0, 0.5, -9.0])
    # q1: same text; q2: same score -> dropped. q3: the reply that ended wins despite its score
    assert [p["prompt"][0]["content"] for p in pairs] == ["q0", "q3"]
    assert pairs[0]["chosen"][0]["content"] == "b0" and pairs[0]["rejected"][0]["content"] == "a0"
    assert pairs[1]["chosen"][0]["content"] == "b3"
    with pytest.raises(ValueError, match="differ in length"):
        dpo_sweep.online_pairs(prompts, a, b[:3], [0] * 4, [0] * 4)


def test_training_prompts_leave_out_harmful_requests():
    prompts = dpo_sweep.training_prompts(50)
    harmful = {json.dumps(r["prompt"]) for r in data.load_records("prompts_train") if r["task"] == "harmful"}
    assert len(prompts) == 50 and not {json.dumps(p) for p in prompts} & harmful
    with pytest.raises(ValueError, match="asked for prompts"):
        dpo_sweep.training_prompts(10, offset=10_000)


def test_kto_data_follows_the_seed_and_skips_harmlessness_prompts():
    first, again, other = (dpo_family.kto_dataset(s) for s in (0, 0, 1))
    assert first["completion"] == again["completion"]
    assert first["completion"] != other["completion"]
    assert sorted(map(json.dumps, first["completion"])) == sorted(map(json.dumps, other["completion"]))
    kept = {json.dumps(r["prompt"]) for r in reward.preference_records("preference_train",
                                                                       dpo_family.PAIR_ASPECTS)}
    assert all(json.dumps(p) in kept for p in first["prompt"])
    assert 0 < len(first) < 1000 and set(first["label"]) == {True, False}


def test_pair_dataset_has_no_harmlessness_pairs():
    data = dpo_family.pair_dataset()
    expected = reward.preference_records("preference_train", dpo_family.PAIR_ASPECTS)
    assert len(data) == len(expected) == 888
    assert data.column_names == ["prompt", "chosen", "rejected"]


@pytest.mark.parametrize("method, cls, loss", [
    ("DPO", "DPOConfig", ["sigmoid"]), ("IPO", "DPOConfig", ["ipo"]), ("RPO", "DPOConfig", ["sigmoid", "sft"]),
    ("KTO", "KTOConfig", "kto"), ("SimPO", "CPOConfig", "simpo"), ("ORPO", "ORPOConfig", None)])
def test_each_method_runs_the_shared_budget_with_its_own_loss(tmp_path, method, cls, loss):
    config = dpo_family.method_config(method, PROFILE, tmp_path)
    budget = PROFILE.budget("dpo")
    assert type(config).__name__ == cls
    assert config.max_steps == budget["max_steps"]
    assert config.per_device_train_batch_size == budget["per_device_train_batch_size"]
    assert config.seed == PROFILE.seed and config.logging_steps == 1
    if loss is not None:
        assert config.loss_type == loss
    if method == "SimPO":
        assert config.cpo_alpha == 0.0 and config.beta == 2.0
    expected_lr = PROFILE.budget("orpo" if method == "ORPO" else "dpo")["learning_rate"]
    assert config.learning_rate == expected_lr
    assert dpo_family.method_config(method, PROFILE, tmp_path, beta=0.7).beta == 0.7
    with pytest.raises(KeyError, match="unknown method"):
        dpo_family.method_config("PPO", PROFILE, tmp_path)


def test_pair_logps_equal_sequence_logps_on_each_pair():
    model, tok = models.load_model(paths.TINY_BASE_DIR, PROFILE, for_training=False)
    pairs = reward.preference_records("preference_heldout", ("correctness",))[:3]
    chosen, rejected = dpo_family.pair_logps(model, tok, pairs, batch_size=2)
    expected = []
    for side in ("chosen", "rejected"):
        values = []
        for r in pairs:
            n = len(tok(tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True),
                        add_special_tokens=False)["input_ids"])
            ids = tok(tok.apply_chat_template(r["prompt"] + r[side], tokenize=False),
                      add_special_tokens=False)["input_ids"]
            comp = torch.tensor([[int(t >= n) for t in range(len(ids))]])
            values.append(dpo.sequence_logps(model, torch.tensor([ids]), torch.ones_like(comp), comp).item())
        expected.append(sum(values) / len(values))
    assert chosen == pytest.approx(expected[0], abs=1e-4)
    assert rejected == pytest.approx(expected[1], abs=1e-4)
    assert chosen != pytest.approx(rejected)


def test_results_are_written_atomically_and_missing_ones_are_named(tmp_path):
    path = results.write_results(tmp_path / "run", {"DPO": {"row": {"kl": 1.5}}})
    assert results.read_results(tmp_path / "run") == {"DPO": {"row": {"kl": 1.5}}}
    assert not list(path.parent.glob("*.tmp"))
    with pytest.raises(FileNotFoundError, match="train the stage first"):
        results.read_results(tmp_path / "nowhere")


def test_chapter_6_stages_read_the_dpo_budget_and_their_sources():
    for name in ("dpo", "dpo-sweep"):
        stage = checkpoints.STAGES[name]
        assert "dpo" in stage.budget and "eval_test" in stage.data_files
        assert "posttrain_utils.reward.overoptimization" in sources.closure(stage.module)  # the judge's drift report
    assert checkpoints.STAGES["dpo"].upstream == ("base", "sft", "reward")
    assert "posttrain_utils.dpo.family" in sources.closure(checkpoints.STAGES["dpo-sweep"].module)
