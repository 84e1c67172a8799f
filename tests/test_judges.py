"""Chapter 9's pairwise judges: the rule judge's rules, the gold verdict, a reward-model judge (with a
fake scorer: its tie margin and memoisation) and the LLM-as-a-judge on the tiny base model, each
checked for position bias with `winrate.position_flip_rate`."""

import pytest
import torch

from posttrain_utils.evaluation import judges, winrate
from posttrain_utils.runtime import models
from posttrain_utils.reward import bradley_terry as reward
from posttrain_utils.data import load_records
from posttrain_utils.runtime import paths, profiles

Q = "What is 3 plus 4?"
RUDE = "3 plus 4 is 7. Stop asking dumb questions."
SHORT = "3 plus 4 is 7."
LONG = "Good question! 3 plus 4 is 7. I hope that helps."  # 7 words longer than SHORT
PAIRS = [(Q, SHORT, LONG), (Q, RUDE, SHORT), (Q, RUDE, LONG), (Q, SHORT, "It is 7 I think."),
         (Q, SHORT, SHORT), (Q, "Seven.", "The sum of 3 and 4 is 7, I am sure."), (Q, LONG, RUDE)]


# ----- rule_judge ------------------------------------------------------------------------------
def test_rule_judge_rude_reply_loses_even_when_shorter():
    assert judges.is_rude(RUDE) and not judges.is_rude(LONG)
    assert judges.rule_judge(Q, RUDE, LONG) == "b"
    assert judges.rule_judge(Q, LONG, RUDE) == "a"
    assert judges.rule_judge(Q, RUDE, RUDE + " Use a search engine next time.") == "a"  # both rude: length


def test_rule_judge_shorter_wins_only_by_the_margin():
    margin = judges.RULE_LENGTH_MARGIN
    base = "The answer is 7."
    longer = base + " ok" * margin
    barely = base + " ok" * (margin - 1)
    assert judges.rule_judge(Q, base, longer) == "a" and judges.rule_judge(Q, longer, base) == "b"
    assert judges.rule_judge(Q, base, barely) == "tie" and judges.rule_judge(Q, barely, base) == "tie"
    assert judges.rule_judge(Q, SHORT, SHORT) == "tie"
    assert judges.rule_judge("any other question", base, longer) == "a"  # the question is unused


def test_rule_judge_is_symmetric():
    swapped = {"a": "b", "b": "a", "tie": "tie"}
    for q, x, y in PAIRS:
        assert judges.rule_judge(q, y, x) == swapped[judges.rule_judge(q, x, y)]
    assert winrate.position_flip_rate(judges.rule_judge, PAIRS) == 0
    assert judges.verdicts(judges.rule_judge, PAIRS[:3]) == ["a", "b", "b"]


def test_a_first_position_fallback_judge_flips():
    def biased(question, a, b):  # the rule judge, but a tie goes to the first reply
        verdict = judges.rule_judge(question, a, b)
        return "a" if verdict == "tie" else verdict

    ties = sum(judges.rule_judge(*p) == "tie" for p in PAIRS)
    assert ties >= 2
    assert winrate.position_flip_rate(biased, PAIRS) == pytest.approx(ties / len(PAIRS))


# ----- gold_verdict ----------------------------------------------------------------------------
def test_gold_verdict_prefers_the_right_answer():
    record = next(r for r in load_records("eval_test") if r["task"] == "sum")
    question = record["prompt"][-1]["content"]
    wrong_answer = str(int(record["answer"]) + 1)
    right = {"text": f"The answer is {record['answer']}.", "ended": True}
    wrong = {"text": f"The answer is {wrong_answer}.", "ended": True}
    assert judges.gold_verdict(record, right, wrong) == "a", question
    assert judges.gold_verdict(record, wrong, right) == "b"
    assert judges.gold_verdict(record, right, dict(right)) == "tie"
    unfinished = {**right, "ended": False}  # badly formatted: half a point off
    assert judges.gold_verdict(record, right, unfinished) == "a"


def test_gold_verdict_on_a_fact_question():
    record = next(r for r in load_records("eval_test") if r["task"] not in ("sum", "harmful"))
    right = {"text": f"It is {record['answer']}.", "ended": True}
    wrong = {"text": "It is Zzyzx.", "ended": True}
    assert judges.gold_verdict(record, wrong, right) == "b"


# ----- reward_judge ----------------------------------------------------------------------------
@pytest.fixture
def length_scorer(monkeypatch):
    """`reward.score` replaced by the reply's length in characters; records every call."""
    calls = []

    def fake_score(model, tokenizer, prompts, replies, batch_size=64):
        calls.append((model, tokenizer, [list(p) for p in prompts], list(replies)))
        return [float(len(r)) for r in replies]

    monkeypatch.setattr(reward, "score", fake_score)
    return calls


def test_reward_judge_higher_score_wins_and_passes_a_chat_prompt(length_scorer):
    judge = judges.reward_judge("rm", "tok")
    assert judge(Q, LONG, SHORT) == "a" and judge(Q, SHORT, LONG) == "b"
    assert judge(Q, SHORT, SHORT) == "tie"
    model, tokenizer, prompts, replies = length_scorer[0]
    assert (model, tokenizer) == ("rm", "tok")
    assert prompts == [[{"role": "user", "content": Q}]] and replies == [LONG]


def test_reward_judge_tie_margin(length_scorer):
    a, b = "x" * 10, "x" * 13  # scores 10 and 13
    assert judges.reward_judge("rm", "tok", tie_margin=3.0)(Q, a, b) == "tie"
    assert judges.reward_judge("rm", "tok", tie_margin=2.9)(Q, a, b) == "b"
    assert judges.reward_judge("rm", "tok", tie_margin=0.0)(Q, b, a) == "a"


def test_reward_judge_memoises_scores(length_scorer):
    judge = judges.reward_judge("rm", "tok")
    judge(Q, SHORT, LONG)
    assert len(length_scorer) == 2
    judge(Q, LONG, SHORT)  # the swapped pair: both scores known
    judge(Q, SHORT, SHORT)
    assert len(length_scorer) == 2
    judge("Another question?", SHORT, LONG)  # scores are per (question, reply)
    assert len(length_scorer) == 4
    assert judges.reward_judge("rm", "tok")(Q, SHORT, LONG) == "b"  # a new judge, a new memo
    assert len(length_scorer) == 6


def test_reward_judge_never_flips(length_scorer):
    judge = judges.reward_judge("rm", "tok")
    assert winrate.position_flip_rate(judge, PAIRS) == 0
    replies = {r for _, x, y in PAIRS for r in (x, y)}
    assert len(length_scorer) == len(replies)  # each distinct reply scored once


# ----- model_judge -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_base():
    return models.load_model(paths.TINY_BASE_DIR, profiles.CPU, for_training=False)


def test_the_cpu_tokenizer_has_single_a_and_b_tokens(tiny_base):
    _, tok = tiny_base
    assert len(tok.encode("A", add_special_tokens=False)) == 1
    assert len(tok.encode("B", add_special_tokens=False)) == 1


def test_model_judge_says_a_or_b_deterministically_and_by_the_next_token_logits(tiny_base):
    model, tok = tiny_base
    model.train()  # the judge evaluates in eval mode and restores the mode
    judge = judges.model_judge(model, tok)
    first = judges.verdicts(judge, PAIRS)
    assert set(first) <= {"a", "b"}
    assert judges.verdicts(judge, PAIRS) == first
    assert model.training
    rate = winrate.position_flip_rate(judge, PAIRS)
    assert 0 <= rate <= 1
    # by hand: the verdict on the first pair is the larger of the "A" and "B" next-token logits
    q, x, y = PAIRS[0]
    content = judges.JUDGE_TEMPLATE.format(question=q, a=x, b=y)
    text = tok.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                   add_generation_prompt=True)
    model.eval()
    with torch.no_grad():
        logits = model(**tok(text, return_tensors="pt", add_special_tokens=False)).logits[0, -1]
    a_id, b_id = (tok.encode(s, add_special_tokens=False)[0] for s in ("A", "B"))
    assert first[0] == ("a" if logits[a_id] > logits[b_id] else "b")


def test_model_judge_uses_the_template(tiny_base):
    model, tok = tiny_base
    seen = []

    class Spy:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def apply_chat_template(self, messages, **kwargs):
            seen.append(messages[0]["content"])
            return self.inner.apply_chat_template(messages, **kwargs)

        def __call__(self, *args, **kwargs):
            return self.inner(*args, **kwargs)

    judge = judges.model_judge(model, Spy(tok), template="Q={question} A={a} B={b}")
    assert judge("q?", "one", "two") in ("a", "b")
    assert seen == ["Q=q? A=one B=two"]


def test_model_judge_needs_single_token_labels():
    class TwoTokens:
        def encode(self, text, add_special_tokens=False):
            return [1, 2]

    with pytest.raises(ValueError, match="one token"):
        judges.model_judge(None, TwoTokens())
