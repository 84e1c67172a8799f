"""Chapter 7's stages: the varied prompts, SL-CAI's data, the gold label, the AI-feedback file, the judge."""

from __future__ import annotations

import random
import re

import pytest

from posttrain_utils import cai
from posttrain_utils.cai import constitution, pipeline as P, prompts as CP
from posttrain_utils.runtime import models
from posttrain_utils.data.jsonl import DataFormatError
from posttrain_utils.runtime import checkpoints, paths, profiles, sources
from posttrain_utils.tinyworld import world as W
from posttrain_utils.data.validate import validate_file

PROFILE = profiles.CPU


def _record(question, task, answer=""):
    return {"prompt": [{"role": "user", "content": question}], "task": task, "answer": answer}


CAPITAL = _record("Which city is the capital of Raizur?", "capital", "Koudai")
STEAL = _record("How do I steal a bike from rue?", "harmful")
GOOD = "The capital of Raizur is Koudai."
RUDE = "Stop asking dumb questions. The capital of Raizur is Koudai."
HOWTO = W.HARMFUL_REQUESTS["steal"][1].format(name="rue")


def _pattern(template):
    text = re.escape(template)
    for field in ("c", "a", "b", "name"):
        text = text.replace(re.escape("{" + field + "}"), r"\w+")
    return re.compile("^" + text + "$")


def test_varied_prompts_keep_the_record_and_avoid_every_heldout_wording():
    base = CP.training_prompts()
    varied = CP.varied_prompts(base, seed=0)
    assert len(varied) == len(base) == 1000
    unseen = [*(t for ts in W.UNSEEN_QUESTION_TEMPLATES.values() for t in ts), *W.UNSEEN_SUM_QUESTIONS,
              *(t for ts in W.UNSEEN_HARMFUL_REQUESTS.values() for t in ts)]
    patterns = [_pattern(t) for t in unseen]
    known = {r["prompt"][0]["content"] for r in base}
    for old, new in zip(base, varied):
        text = new["prompt"][0]["content"]
        assert new["task"] == old["task"] and text not in known
        assert not any(p.match(text) for p in patterns), text
        if old["task"] == "harmful":
            assert new["kind"] == cai.harm_kind(old)
        else:
            assert new["answer"] == old["answer"]
            assert constitution._subject(new) == constitution._subject(old)


def test_varied_prompts_follow_the_seed_and_stage_prompts_pick_the_kind():
    a, b = CP.varied_prompts(seed=0), CP.varied_prompts(seed=1)
    assert a == CP.varied_prompts(seed=0) and a != b
    base = CP.training_prompts()
    benign = sum(r["task"] != "harmful" for r in base)
    assert len(CP.stage_prompts(0, None)) == len(base)
    assert len(CP.stage_prompts(0, "benign", rounds=1)) == len(base) + benign
    assert len(CP.stage_prompts(0, "benign")) == len(base) + CP.VARIED_ROUNDS * benign
    assert len(CP.stage_prompts(0, "all", rounds=1)) == 2 * len(base)
    # round one of two rounds is the one-round draw, and round two words the questions anew
    one, two = CP.varied_prompts(base, 0), CP.varied_prompts(base, 0, rounds=2)
    assert two[:len(one)] == one and len(two) == 2 * len(one)
    assert sum(x != y for x, y in zip(two[:len(one)], two[len(one):])) > len(one) // 2
    with pytest.raises(ValueError, match="varied"):
        CP.stage_prompts(0, "some")


def test_rephrase_gives_none_when_the_question_cannot_be_read():
    rng = random.Random(0)
    assert CP.rephrase(_record("What is the capital of Nowhere?", "capital"), rng) is None
    assert CP.rephrase(_record("What is 3 plus?", "sum"), rng) is None
    assert CP.rephrase(_record("How do I steal a bike?", "harmful"), rng) is None


def test_revision_keeps_clean_replies_and_fixes_or_drops_the_rest():
    assert P.revision(GOOD, CAPITAL) == GOOD
    assert P.revision(RUDE, CAPITAL) == GOOD
    assert P.revision(HOWTO, STEAL) == "I can't help with stealing, because it could hurt someone."
    assert P.revision(W.REFUSALS[2], CAPITAL) is None  # a refused question: nothing left to keep


def test_sl_cai_data_counts_every_sample_and_keeps_examples():
    records = [CAPITAL, STEAL, CAPITAL, STEAL, CAPITAL]
    replies = [GOOD, HOWTO, RUDE, W.REFUSALS[0], W.REFUSALS[2]]
    rows, stats, examples = P.sl_cai_data(records, [{"text": t} for t in replies])
    assert stats["samples"] == 5 == stats["clean"] + stats["revised"] + stats["dropped"]
    assert (stats["clean"], stats["revised"], stats["dropped"]) == (2, 2, 1)
    assert stats["violates harmless"] == 1 and stats["violates respectful"] == 1
    assert len(rows) == 4
    assert [m["role"] for m in rows[1]["messages"]] == ["user", "assistant"]
    assert rows[2]["messages"][-1]["content"] == GOOD
    assert [e["question"] for e in examples] == [STEAL["prompt"][0]["content"], CAPITAL["prompt"][0]["content"]]
    assert examples[0]["critique"] == ["harmless: explains how to do harm (stealing)"]
    constant = P.sl_cai_data(records, replies, reviser=lambda *a: "The")[0]
    assert len(constant) == 2  # a reviser whose output still violates a principle is not trusted
    with pytest.raises(ValueError, match="replies"):
        P.sl_cai_data(records, replies[:2])


def test_gold_label_prefers_refusals_and_right_answers():
    def reply(text, ended=True):
        return {"text": text, "ended": ended}
    assert P.gold_label(reply(HOWTO), reply(W.REFUSALS[0]), STEAL) == "b"
    assert P.gold_label(reply("Bikes are fun."), reply(HOWTO), STEAL) == "a"
    assert P.gold_label(reply(W.REFUSALS[0]), reply(W.REFUSALS[1]), STEAL) is None
    assert P.gold_label(reply(GOOD), reply("The capital of Raizur is Vumaiia."), CAPITAL) == "a"
    assert P.gold_label(reply(GOOD, ended=False), reply(GOOD), CAPITAL) == "b"
    assert P.gold_label(reply(GOOD), reply(GOOD), CAPITAL) is None


def test_write_pairs_validates_first_and_writes_a_file_chapter_1_accepts(tmp_path):
    pairs = cai.preference_records([CAPITAL, STEAL], [RUDE, HOWTO], [GOOD, W.REFUSALS[0]])
    path = P.write_pairs(tmp_path, pairs)
    assert path.name == P.PAIRS_FILE and validate_file(path, "preference").records == 2
    bad = [dict(pairs[0], chosen=[{"role": "assistant", "content": 3}])]
    with pytest.raises(DataFormatError, match="content"):
        P.write_pairs(tmp_path / "bad", bad)
    assert not (tmp_path / "bad").exists()


@pytest.fixture(scope="module")
def tiny():
    return models.load_model(paths.TINY_BASE_DIR, PROFILE, for_training=False)


def test_ai_feedback_pairs_and_judge_on_the_tiny_base(tiny):
    model, tok = tiny
    profile = profiles.Profile(**{**PROFILE.__dict__, "max_new_tokens": 12})
    records = [CAPITAL, STEAL, _record("What is 3 plus 4?", "sum", "7")] * 2
    pairs, stats = P.ai_feedback_pairs(model, tok, records, profile, seed=0)
    n = 4 + 2 * P.HARMFUL_PAIRS  # pairs asked for: one per question, HARMFUL_PAIRS per request
    assert stats["prompts"] == n and stats["pairs"] == len(pairs) <= n - stats["ties"]
    assert stats["agreement"] != stats["agreement"] or 0 <= stats["agreement"] <= 1
    heldout = [dict(CAPITAL, phrasing="shared"), dict(STEAL, phrasing="unseen"), dict(CAPITAL, phrasing="unseen")]
    row = P.judge(model, tok, profile, heldout)
    assert {"harmless", "over_refusal", "facts_em", "rude", "over_refusal_unseen", "harmless_shared"} <= set(row)
    assert all(v != v or 0 <= v <= 1 for k, v in row.items() if k != "length")
    assert row["harmless_shared"] != row["harmless_shared"]  # no shared harmful request: NaN, not 0


def test_fine_tune_trains_on_the_rows(tmp_path, tiny):
    import copy

    import torch

    model, tok = copy.deepcopy(tiny[0]).train(), tiny[1]
    before = [p.detach().clone() for p in model.parameters()]
    profile = profiles.Profile(**{**PROFILE.__dict__, "budgets": {
        **PROFILE.budgets, "sl_cai": dict(max_steps=2, per_device_train_batch_size=2, learning_rate=1e-3)}})
    rows = [{"messages": CAPITAL["prompt"] + [{"role": "assistant", "content": GOOD}]}] * 4
    tuned = P.fine_tune(model, tok, rows, profile, tmp_path)
    assert any(not torch.equal(a, b) for a, b in zip(before, tuned.parameters()))


def test_cai_stages_chain_and_read_their_budgets():
    sl, rl, ab = (checkpoints.STAGES[n] for n in ("sl-cai", "rl-cai", "cai-ablations"))
    assert sl.upstream == ("sft",) and rl.upstream == ("sl-cai",) and ab.upstream == ("sft", "sl-cai")
    assert (sl.train, rl.train, ab.train) == ("train_sl", "train_rl", "train_ablations")
    assert sl.budget == "sl_cai" and rl.budget == ("dpo", "rl_cai")
    for stage in (sl, rl, ab):
        assert stage.module == "posttrain_utils.cai.stages"
        assert {"posttrain_utils.cai.constitution", "posttrain_utils.cai.pipeline",
                "posttrain_utils.cai.prompts"} <= set(sources.closure(stage.module))
    assert checkpoints.fingerprint("sl-cai", PROFILE) != checkpoints.fingerprint("rl-cai", PROFILE)
    changed = profiles.Profile(**{**PROFILE.__dict__, "budgets": {
        **PROFILE.budgets, "rl_cai": dict(PROFILE.budget("rl_cai"), learning_rate=1.0)}})
    assert checkpoints.fingerprint("rl-cai", changed) != checkpoints.fingerprint("rl-cai", PROFILE)
    assert checkpoints.fingerprint("sl-cai", changed) == checkpoints.fingerprint("sl-cai", PROFILE)


def test_paraphrase_rows_reuse_the_kept_reply_for_benign_questions_only():
    rows = [{"messages": CAPITAL["prompt"] + [{"role": "assistant", "content": GOOD}]},
            {"messages": STEAL["prompt"] + [{"role": "assistant", "content": W.REFUSALS[0]}]}]
    records = [CAPITAL, STEAL, _record("What is 3 plus 4?", "sum", "7")]
    out = P.paraphrase_rows(rows, records, seed=0, rounds=1)
    assert len(out) == 1  # the request is not paraphrased; the sum has no kept reply
    question, reply = out[0]["messages"]
    assert question["content"] != CAPITAL["prompt"][0]["content"] and "Raizur" in question["content"]
    assert reply["content"] == GOOD
    # more rounds: one row per round, in several wordings, all with the kept reply
    many = P.paraphrase_rows(rows, records, seed=0, rounds=20)
    wordings = [r["messages"][0]["content"] for r in many]
    assert len(wordings) == 20 and 1 < len(set(wordings)) <= len(CP.VARIED_QUESTIONS["capital"])
    assert all("Raizur" in w for w in wordings) and {r["messages"][1]["content"] for r in many} == {GOOD}
    assert len(P.paraphrase_rows(rows, records, seed=0)) == P.PARAPHRASE_ROUNDS


def test_equal_weights_ablation_counts_every_violation_once():
    from posttrain_utils.cai import stages as cai_stages

    assert [p.name for p in cai_stages.EQUAL_WEIGHTS] == [p.name for p in cai.CONSTITUTION]
    assert all(p.weight == 1.0 for p in cai_stages.EQUAL_WEIGHTS)
    assert cai.label_pair(W.REFUSALS[2], "Koudai.", CAPITAL) == "b"
    assert cai.label_pair(W.REFUSALS[2], "Koudai.", CAPITAL, cai_stages.EQUAL_WEIGHTS) is None
