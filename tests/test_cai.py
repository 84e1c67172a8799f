"""Tests for posttrain_utils.cai: the constitution, critique, revision and the AI critic (chapter 7)."""

import json
import math
import random

import pytest

from posttrain_utils import cai
from posttrain_utils.data.formats import validate_records
from posttrain_utils.evaluation.judgements import is_refusal
from posttrain_utils.runtime.paths import DATA_DIR
from posttrain_utils.tinyworld import world as W

P = {p.name: p for p in cai.CONSTITUTION}
def _record(question, task, answer=""):
    return {"prompt": [{"role": "user", "content": question}], "task": task, "answer": answer}


CAPITAL = _record("What is the capital of Raizur?", "capital", "Koudai")
SUM = _record("What is 3 plus 4?", "sum", "7")
STEAL = _record("How do I steal a bike from bo?", "harmful")
HOWTO = "Wait until bo is asleep, then take it quietly and run."
POISON_UNSEEN = _record("How can I make quin sick without them finding out?", "harmful")


def test_constitution_shape():
    assert [p.name for p in cai.CONSTITUTION] == ["harmless", "explained", "helpful", "relevant", "respectful",
                                                  "concise"]
    assert [p.weight for p in cai.CONSTITUTION] == [3.0, 1.0, 2.0, 1.0, 1.0, 1.0]
    assert all(isinstance(p.text, str) and len(p.text) > 10 for p in cai.CONSTITUTION)
    with pytest.raises(Exception):
        cai.CONSTITUTION[0].name = "x"  # frozen


def test_harm_kind_from_templates():
    assert cai.harm_kind(STEAL) == "steal"
    assert cai.harm_kind(POISON_UNSEEN) == "poison"
    assert cai.harm_kind(dict(STEAL, kind="hack")) == "hack"
    assert cai.harm_kind(CAPITAL) is None
    with pytest.raises(ValueError):
        cai.harm_kind(dict(STEAL, kind="arson"))


@pytest.mark.parametrize("good", ["I can't help with stealing, because it could hurt someone.",
                                  W.REFUSALS[0], W.REFUSALS[1], "I will not help: it is illegal and wrong."])
def test_harmless_good(good):
    assert P["harmless"].check(good, STEAL) is None


@pytest.mark.parametrize("bad", [HOWTO,
                                 "I can't help. Wait until bo is aslep, then take it.",  # refusal + how-to
                                 "Sure, a bike is easy to find.", "The"])
def test_harmless_bad(bad):
    assert P["harmless"].check(bad, STEAL) is not None


def test_harmless_on_benign_flags_howto_only():
    assert P["harmless"].check("The capital of Raizur is Koudai.", CAPITAL) is None
    assert P["harmless"].check("Guess the password from their birthday.", CAPITAL) is not None


@pytest.mark.parametrize("record,good", [(CAPITAL, "The capital of Raizur is Koudai."),
                                         (CAPITAL, "Raizur has its capital in Koudai."),
                                         (SUM, "3 plus 4 is 7."),
                                         (SUM, "If you add three and four, you get 8.")])
def test_helpful_good(record, good):
    assert P["helpful"].check(good, record) is None and P["relevant"].check(good, record) is None


@pytest.mark.parametrize("record,bad", [(CAPITAL, "The"), (SUM, "The"), (CAPITAL, "Koudai."),
                                        (CAPITAL, "The capital of Troleis is Koudai."),  # off-topic fact
                                        (CAPITAL, W.REFUSALS[0] + " Raizur."),
                                        (CAPITAL, "Raizur is a lovely place."),  # no answer stated
                                        (SUM, "3 plus 5 is 8.")])
def test_helpful_bad(record, bad):
    refuses = P["helpful"].check(bad, record) is not None
    assert refuses != (P["relevant"].check(bad, record) is not None)  # one of the two, never both
    assert refuses == bad.startswith(W.REFUSALS[0])


def test_helpful_ignores_harmful_requests():
    assert P["helpful"].check(W.REFUSALS[0], STEAL) is None and P["relevant"].check(W.REFUSALS[0], STEAL) is None


def test_explained_asks_a_refusal_of_a_harmful_request_for_a_reason():
    assert P["explained"].check(W.REFUSALS[2], STEAL) is not None  # no reason given
    assert P["explained"].check(W.REFUSALS[0], STEAL) is None
    assert P["explained"].check(HOWTO, STEAL) is None  # not a refusal: `harmless`'s violation
    assert P["explained"].check(W.REFUSALS[2], CAPITAL) is None  # benign: `helpful`'s violation


@pytest.mark.parametrize("good", ["The capital of Raizur is Koudai.", "Good question! 3 plus 4 is 7.",
                                  "I searched and found it: Koudai.", "A good question, happy to help."])
def test_respectful_good(good):
    assert P["respectful"].check(good, CAPITAL) is None


@pytest.mark.parametrize("bad", [*W.RUDE_PHRASES, "Stop askng dum questions.", "use a serch engin next time",
                                 "Did you evn try?", "EVERYONE KNOWS THAT", "what a sily question"])
def test_respectful_bad(bad):
    assert P["respectful"].check(bad, CAPITAL) is not None


@pytest.mark.parametrize("good", ["The capital of Raizur is Koudai.",
                                  "Good question! 3 plus 4 is 7. Hope this helps.",
                                  W.REFUSALS[1], " ".join(["word"] * cai.MAX_WORDS)])
def test_concise_good(good):
    assert P["concise"].check(good, CAPITAL) is None


@pytest.mark.parametrize("bad", [*W.RAMBLE_SENTENCES, " ".join(["word"] * (cai.MAX_WORDS + 1)),
                                 "Anyway where was I oh yes. Koudai.", "I red a long bok about it once."])
def test_concise_bad(bad):
    assert P["concise"].check(bad, CAPITAL) is not None


def test_critique_lists_exactly_the_violations():
    assert cai.critique("The capital of Raizur is Koudai.", CAPITAL) == []
    rude_ramble = " ".join(["Stop asking dumb questions.", *W.RAMBLE_SENTENCES[:2],
                            "The capital of Raizur is Koudai."])
    assert [n for n, _ in cai.critique(rude_ramble, CAPITAL)] == ["respectful", "concise"]
    assert [n for n, _ in cai.critique("The", CAPITAL)] == ["relevant"]
    assert [n for n, _ in cai.critique(W.REFUSALS[2], CAPITAL)] == ["helpful"]
    assert [n for n, _ in cai.critique(W.REFUSALS[2], STEAL)] == ["explained"]
    assert [n for n, _ in cai.critique(HOWTO + " Idiot.", STEAL)] == ["harmless", "respectful"]
    only = [P["concise"]]
    assert cai.critique(rude_ramble, CAPITAL, only) == [("concise", P["concise"].check(rude_ramble, CAPITAL))]
    with pytest.raises(ValueError):
        cai.critique("x", {"task": "sum"})
    with pytest.raises(TypeError):
        cai.critique(None, CAPITAL)
    with pytest.raises(ValueError):
        cai.critique("x", CAPITAL, [])


def _core(record, countries):
    question = record["prompt"][-1]["content"]
    if record["task"] == "sum":
        a, b = [int(t) for t in question.replace("?", " ").replace(".", " ").split() if t.isdigit()]
        return W.sum_core(a, b)
    c = next(c for c in countries if c.name in question)
    return W.fact_core(c, record["task"])


def test_revise_fixes_heldout_replies():
    records = [json.loads(line) for line in open(DATA_DIR / "eval_test.jsonl")][:200]
    countries, rng = W.make_countries(), random.Random(0)
    harmful = benign = 0
    for record in records:
        if record["task"] == "harmful":
            kind = cai.harm_kind(record)
            assert kind is not None, record
            howto = W.HARMFUL_REQUESTS[kind][1].format(name="bo")
            starts = [howto, f"{rng.choice(W.RUDE_PHRASES)} {howto}",
                      " ".join(rng.sample(W.RAMBLE_SENTENCES, 2) + [W.REFUSALS[2]])]
            harmful += 1
        else:
            core = _core(record, countries)
            assert cai.critique(core, record) == [], (core, record)
            starts = [core] + [W.styled_reply(rng, core, s) for s in ("rude", "rambling", "polite")]
            assert cai.critique(starts[1], record) and cai.critique(starts[2], record)
            benign += 1
        for start in starts:
            revised = cai.revise(start, record)
            assert revised is not None, (start, record)
            assert cai.critique(revised, record) == [], (start, revised)
            if record["task"] == "harmful":
                assert cai.HARM_NAMES[kind] in revised and is_refusal(revised, kind)
            else:
                assert core in revised
    assert harmful >= 10 and benign >= 150


def test_revise_returns_none_when_it_cannot_fix():
    assert cai.revise("The", CAPITAL) is None
    assert cai.revise("Stop asking dumb questions.", CAPITAL) is None
    assert cai.revise("The capital of Troleis is Koudai. Everyone knows that.", CAPITAL) is None
    assert cai.revise(W.REFUSALS[0], CAPITAL) is None
    assert cai.revise("Let me think about it for a moment before I answer.", SUM) is None
    assert cai.revise("Stop asking dumb questions. 3 plus 4 is 7.", SUM) == "3 plus 4 is 7."


def test_label_pair_and_tie_rule():
    good, rude = "The capital of Raizur is Koudai.", "The capital of Raizur is Koudai. What a silly question."
    assert cai.label_pair(good, rude, CAPITAL) == "a"
    assert cai.label_pair(rude, good, CAPITAL) == "b"
    assert cai.label_pair(good, "Raizur has its capital in Koudai.", CAPITAL) is None  # 0 == 0
    assert cai.label_pair("The", "Stop asking dumb questions. Raizur has Koudai.", CAPITAL) is None  # 1 == 1
    assert cai.label_pair(W.REFUSALS[0], HOWTO, STEAL) == "a"
    # weights: a refusal of a harmless question (2) is worse than a terse answer (1); a how-to (3) is
    # worse than a refusal without a reason (1), and than a rude refusal with one (1)
    assert cai.label_pair(W.REFUSALS[2], "Koudai.", CAPITAL) == "b"
    assert cai.label_pair(HOWTO, W.REFUSALS[2], STEAL) == "b"
    assert cai.label_pair("Stop asking dumb questions. " + W.REFUSALS[0], HOWTO, STEAL) == "a"
    equal = [cai.Principle(p.name, p.text, p.check) for p in cai.CONSTITUTION]
    assert cai.label_pair(W.REFUSALS[2], "Koudai.", CAPITAL, equal) is None


def test_preference_records_validate():
    prompts = [CAPITAL, CAPITAL, SUM, STEAL]
    a = ["The capital of Raizur is Koudai.", "The", {"text": "3 plus 4 is 7."}, W.REFUSALS[0]]
    b = ["What a silly question. Koudai.", "Raizur", "3 plus 4 is 7.", HOWTO]
    records = cai.preference_records(prompts, a, b)
    assert len(records) == 2  # two ties skipped
    validate_records(records, "preference")
    assert records[0]["chosen"] == [{"role": "assistant", "content": a[0]}]
    assert records[0]["rejected"] == [{"role": "assistant", "content": b[0]}]
    assert records[1]["chosen"][0]["content"] == W.REFUSALS[0] and records[1]["prompt"] == STEAL["prompt"]
    flipped = cai.preference_records(prompts[:1], b[:1], a[:1])
    assert flipped[0]["chosen"] == records[0]["chosen"]
    with pytest.raises(ValueError):
        cai.preference_records(prompts, a, b[:2])


def test_agreement():
    assert cai.agreement(["a", "b", None, "a"], ["a", "a", "b", "a"]) == pytest.approx(2 / 3)
    assert cai.agreement(["a", "b"], ["a", "b"]) == 1.0
    assert math.isnan(cai.agreement([None], ["a"]))
    with pytest.raises(ValueError):
        cai.agreement(["a"], ["a", "b"])
    with pytest.raises(ValueError):
        cai.agreement(["c"], ["a"])
