"""Checkers for the chapter 7 ("Constitutional AI and RLAIF") exercises. Each prints a verdict and returns a bool.

Every checker calls the learner's function on replies it builds itself from the tiny world's phrases
(refusals with and without a reason, how-tos, garbled how-tos, insults, rambles, answers) and compares
it with the course's own (`posttrain_utils.cai`, `posttrain_utils.cai.pipeline`), so a constant or a
memorised answer cannot pass.
"""

from __future__ import annotations

import random

from .. import cai
from ..cai import pipeline as P
from ..runtime.notebook import feedback
from ..tinyworld import world as W
from .common import call as _call

_PEOPLE = ("rue", "pax", "lina", "oren")


def _records(rng: random.Random) -> list[dict]:
    out = []
    for kind, (templates, _) in W.HARMFUL_REQUESTS.items():
        for t in templates:
            out.append({"prompt": [{"role": "user", "content": t.format(name=rng.choice(_PEOPLE))}],
                        "task": "harmful"})
    countries = W.make_countries()
    for c in rng.sample(countries, 4):
        out.append({"prompt": [{"role": "user", "content": f"Which city is the capital of {c.name}?"}],
                    "task": "capital", "answer": c.capital})
    a, b = rng.randrange(10), rng.randrange(10)
    out.append({"prompt": [{"role": "user", "content": f"What is {a} plus {b}?"}], "task": "sum",
                "answer": str(a + b)})
    return out


def _garble(text: str, rng: random.Random) -> str:
    words = text.split()
    i = rng.randrange(len(words))
    words[i] = words[i][0] + "x" + words[i][2:] if len(words[i]) > 2 else words[i]
    return " ".join(words)


def _replies(record: dict, rng: random.Random) -> list[str]:
    """Replies to `record` that break none, one or several principles."""
    if record["task"] == "harmful":
        kind = cai.harm_kind(record)
        howto = W.HARMFUL_REQUESTS[kind][1].format(name=rng.choice(_PEOPLE))
        return [*W.REFUSALS, howto, _garble(howto, rng), f"{W.REFUSALS[2]} {howto}", f"{W.REFUSALS[0]} {howto}",
                f"{rng.choice(W.RUDE_PHRASES)} {W.REFUSALS[0]}", "Sure, happy to help."]
    question = record["prompt"][-1]["content"]
    if record["task"] == "sum":
        a, b = [t for t in question.replace("?", "").split() if t.isdigit()]
        core = f"{a} plus {b} is {record['answer']}."
    else:
        core = f"The capital of {question.split()[-1].rstrip('?')} is {record['answer']}."
    return [core, f"{rng.choice(W.RUDE_PHRASES)} {core}", f"{core} {' '.join(W.RAMBLE_SENTENCES[:2])}",
            W.REFUSALS[2], "The", f"{rng.choice(W.POLITE_OPENERS)} {core}",
            f"{core} {W.HARMFUL_REQUESTS['hack'][1].format(name=rng.choice(_PEOPLE))}"]


def _cases(seed: int):
    rng = random.Random(seed)
    return [(r, x) for r in _records(rng) for x in _replies(r, rng)]


def check_harmless_checker(fn) -> bool:
    """Exercise cai-ex1: the ``harmless`` principle's checker.

    Args:
        fn: the learner's ``fn(reply_text, record)``, returning None when the reply follows the
            principle and a reason (a non-empty string) when it does not. Called on harmful requests
            and benign questions with refusals, how-tos (also garbled), a refusal followed by a
            how-to, and answers; compared with `cai.CONSTITUTION`'s ``harmless`` check on whether a
            reason is given, not on its words.
    """
    ours_check = next(p.check for p in cai.CONSTITUTION if p.name == "harmless")
    for record, reply in _cases(7):
        theirs = _call(fn, reply, record)
        if isinstance(theirs, Exception):
            return feedback("cai-ex1", False, f"your function raised {theirs!r} on {reply!r}")
        if theirs is not None and not (isinstance(theirs, str) and theirs.strip()):
            return feedback("cai-ex1", False, f"return None or a reason string, got {theirs!r}")
        ours = ours_check(reply, record)
        if (theirs is None) != (ours is None):
            question = record["prompt"][-1]["content"]
            verdict = "follows the principle" if ours is None else f"violates it ({ours})"
            return feedback("cai-ex1", False, f"to {question!r}, the reply {reply!r} {verdict}")
    return feedback("cai-ex1", True, "")


def check_label_pair(fn) -> bool:
    """Exercise cai-ex2: the AI critic's preference between two replies, with its tie rule.

    Args:
        fn: the learner's ``fn(reply_a, reply_b, record)`` returning ``"a"``, ``"b"`` or None (a tie),
            compared with `cai.label_pair` (violations weighted by `Principle.weight`) on pairs of
            replies to fresh records.
    """
    rng = random.Random(11)
    for record in _records(rng):
        replies = _replies(record, rng)
        for a in replies:
            for b in rng.sample(replies, 3):
                theirs, ours = _call(fn, a, b, record), cai.label_pair(a, b, record)
                if isinstance(theirs, Exception):
                    return feedback("cai-ex2", False, f"your function raised {theirs!r}")
                if theirs != ours:
                    return feedback("cai-ex2", False, f"for {a!r} vs {b!r} expected {ours!r}, got {theirs!r}"
                                    " (add up the weights of each reply's violations; equal sums are a tie)")
    return feedback("cai-ex2", True, "")


def brevity_principle(max_words: int = 8) -> cai.Principle:
    """A stricter ``concise`` for exercise cai-ex3: at most `max_words` words."""
    def check(text, record):
        n = len(text.split())
        return f"more than {max_words} words ({n})" if n > max_words else None
    return cai.Principle("brief", f"Answer in at most {max_words} words.", check)


def check_sl_cai_data(fn) -> bool:
    """Exercise cai-ex3: SL-CAI's training rows from scratch, under any constitution.

    Args:
        fn: the learner's ``fn(records, replies, constitution)`` returning SL-CAI's rows
            (``{"messages": prompt + [assistant]}``), as `cai.pipeline.sl_cai_data` builds them:
            a reply that follows every principle as it is, else `cai.revise`'s revision when that
            follows every principle, else nothing. Called with the course's constitution and with
            one extended by `brevity_principle`, on fresh replies.
    """
    cases = _cases(13)
    records, replies = [r for r, _ in cases], [x for _, x in cases]
    for constitution in (cai.CONSTITUTION, (*cai.CONSTITUTION, brevity_principle())):
        theirs = _call(fn, records, replies, constitution)
        if isinstance(theirs, Exception):
            return feedback("cai-ex3", False, f"your function raised {theirs!r}")
        ours = P.sl_cai_data(records, replies, constitution)[0]
        if not isinstance(theirs, list) or theirs != ours:
            got = len(theirs) if isinstance(theirs, list) else type(theirs).__name__
            return feedback("cai-ex3", False, f"with {len(constitution)} principles expected {len(ours)} rows, "
                            f"got {got}; keep clean replies, revise the others, drop what a revision "
                            "cannot fix, and keep the records' order")
    return feedback("cai-ex3", True, "")
