"""Chapter 7's exercise checkers, both ways: the reference solutions pass, constants and near-misses fail."""

from __future__ import annotations

from posttrain_utils import cai
from posttrain_utils.cai import pipeline as P
from posttrain_utils.evaluation import judgements as J
from posttrain_utils.exercises import ch07_cai as ex

def harmless(text, record):  # the reference solution of cai-ex1
    if record["task"] != "harmful":
        return None if J.is_harmless(text) else "gives a harmful how-to"
    kind = cai.harm_kind(record)
    if not J.is_harmless(text, kind):
        return "explains how to do harm"
    return None if J.is_refusal(text, kind) else "does not refuse"


def label_pair(a, b, record, constitution=cai.CONSTITUTION):  # cai-ex2
    weight = {p.name: p.weight for p in constitution}
    na, nb = (sum(weight[n] for n, _ in cai.critique(x, record, constitution)) for x in (a, b))
    return None if na == nb else ("a" if na < nb else "b")


def sl_data(records, replies, constitution):  # cai-ex3
    rows = []
    for record, text in zip(records, replies):
        if cai.critique(text, record, constitution):
            text = cai.revise(text, record, constitution)
            if text is None or cai.critique(text, record, constitution):
                continue
        rows.append({"messages": record["prompt"] + [{"role": "assistant", "content": text}]})
    return rows


def test_reference_solutions_pass():
    assert ex.check_harmless_checker(harmless)
    assert ex.check_label_pair(label_pair)
    assert ex.check_sl_cai_data(sl_data)
    assert ex.check_sl_cai_data(lambda r, x, c: P.sl_cai_data(r, x, c)[0])


def test_constants_fail():
    assert not ex.check_harmless_checker(lambda t, r: None)
    assert not ex.check_harmless_checker(lambda t, r: "bad")
    assert not ex.check_label_pair(lambda a, b, r: "a")
    assert not ex.check_label_pair(lambda a, b, r: None)
    assert not ex.check_sl_cai_data(lambda r, x, c: [])


def test_near_misses_fail():
    def refusal_only(text, record):  # a refusal followed by a how-to passes: wrong
        if record["task"] != "harmful":
            return None if J.is_harmless(text) else "how-to"
        return None if J.find_fragments(text, J.REFUSAL_FRAGMENTS) else "no"
    assert not ex.check_harmless_checker(refusal_only)
    assert not ex.check_harmless_checker(  # no refusal needed: "Sure, happy to help." passes
        lambda t, r: None if J.is_harmless(t) else "how-to")
    assert not ex.check_harmless_checker(  # ignores a how-to inside an answer to a benign question
        lambda t, r: None if r["task"] != "harmful" else harmless(t, r))
    assert not ex.check_label_pair(lambda a, b, r: label_pair(b, a, r))  # reversed
    assert not ex.check_label_pair(lambda a, b, r: label_pair(a, b, r) or "a")  # no ties
    equal = [cai.Principle(p.name, p.text, p.check) for p in cai.CONSTITUTION]
    assert not ex.check_label_pair(lambda a, b, r: label_pair(a, b, r, equal))  # counts, not weights

    def keeps_unfixable(records, replies, constitution):
        return [{"messages": r["prompt"] + [{"role": "assistant",
                                              "content": cai.revise(t, r, constitution) or t}]}
                for r, t in zip(records, replies)]
    assert not ex.check_sl_cai_data(keeps_unfixable)
    assert not ex.check_sl_cai_data(lambda r, x, c: sl_data(r, x, cai.CONSTITUTION))  # ignores the new principle


def test_learner_exceptions_become_verdicts():
    def boom(*args):
        raise RuntimeError("oops")
    assert not ex.check_harmless_checker(boom)
    assert not ex.check_label_pair(boom)
    assert not ex.check_sl_cai_data(boom)
