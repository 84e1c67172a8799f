"""Checkers for the chapter 9 ("Evaluation") exercises. Each prints a verdict and returns a bool.

Introduced in chapter 9. Every checker calls the learner's function on inputs it builds itself
(seeded random win/tie/loss outcomes, reply pairs shown to synthetic judges, answers perturbed in
case, punctuation, articles and spacing) and compares it with the course's own
(`posttrain_utils.evaluation.winrate`, `posttrain_utils.evaluation.metrics`), so a constant or a memorised number cannot
pass. Two bootstraps drawn from different random generators differ, so exercise eval-ex1 checks the
interval's properties (it contains the win rate, its width is the reference's within
`WIDTH_TOLERANCE`, the same seed repeats it...) rather than its exact ends. `flip_pairs` and
`flip_judges` give exercise eval-ex2's pairs and judges to try, `match_cases` exercise eval-ex3's
bank. A learner's function that raises gives a failed verdict naming the error, never a traceback.
"""

from __future__ import annotations

import math
import random
import string
import zlib
from collections.abc import Callable
from numbers import Real

import numpy as np

from ..evaluation import metrics, winrate
from ..runtime.notebook import feedback
from .ch09_bootstrap import (N_BOOT, REFERENCE_N_BOOT, WIDTH_ATOL, WIDTH_STEPS,  # noqa: F401
                             WIDTH_TOLERANCE, check_bootstrap_ci)
from .common import call as _call

FLIP_TOLERANCE = 1e-9  # eval-ex2: |learner's flip rate - winrate.position_flip_rate|
_MIRROR = {"a": "b", "b": "a", "tie": "tie"}  # eval-ex2: a consistent judge's verdict on the swapped pair


# --- eval-ex2: how often a judge changes its mind when the replies swap places ----------------------

def flip_pairs(seed: int = 0, n: int = 24) -> list[tuple[str, str, str]]:
    """Pairs to show a pairwise judge in exercise eval-ex2: replies to one-digit sum questions.

    Args:
        seed: picks the sums and the replies.
        n: the number of pairs; every fourth pair's replies have the same length (a right and a wrong
            sum in the same sentence), the others usually differ in length.

    Returns:
        ``(prompt, reply_x, reply_y)`` triples, as `evaluation.winrate.position_flip_rate` takes them.
    """
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        a, b = rng.randrange(1, 10), rng.randrange(1, 10)
        s, prompt = a + b, f"What is {a} plus {b}?"
        if i % 4 == 3:
            wrong = rng.choice([t for t in range(10 if s >= 10 else 0, 19 if s >= 10 else 10) if t != s])
            template = rng.choice(["It is {}.", "The answer is {}.", "{} is the sum.", "I get {}."])
            replies = [template.format(s), template.format(wrong)]
            rng.shuffle(replies)
        else:
            replies = rng.sample([f"{s}", f"It is {s}.", f"{a} plus {b} is {s}.", f"The answer is {s}.",
                                  f"I think it is {s}, but do check.", f"{a} + {b} = {s}",
                                  f"It is {s + 1}.", f"The sum of {a} and {b} is {s}, of course.",
                                  f"Hmm, {s - 1}?"], 2)
        pairs.append((prompt, *replies))
    return pairs


def _longer(prompt: str, a: str, b: str) -> str:
    return "a" if len(a) > len(b) else "b" if len(b) > len(a) else "tie"


def _first_when_close(prompt: str, a: str, b: str) -> str:
    return "a" if abs(len(a) - len(b)) < 4 else _longer(prompt, a, b)


def _tie_when_first_longer(prompt: str, a: str, b: str) -> str:
    return "tie" if 0 < len(a) - len(b) < 6 else _longer(prompt, a, b)


def _coin(prompt: str, a: str, b: str) -> str:
    return winrate.VERDICTS[zlib.crc32(f"{prompt}\n{a}\n{b}".encode()) % 3]


def flip_judges() -> dict[str, Callable[[str, str, str], str]]:
    """Synthetic pairwise judges with known habits, for exercise eval-ex2.

    Returns:
        A new ``{description: judge}`` dict; each ``judge(prompt, reply_a, reply_b)`` returns
        ``"a"``, ``"b"`` or ``"tie"``, deterministically.
    """
    return {
        "always prefers the first reply": lambda prompt, a, b: "a",
        "prefers the longer reply, tie on equal lengths": _longer,
        "always says tie": lambda prompt, a, b: "tie",
        "prefers the longer reply, the first one on equal lengths":
            lambda prompt, a, b: "a" if len(a) == len(b) else _longer(prompt, a, b),
        "prefers the longer reply unless the lengths differ by less than 4 characters, then the first":
            _first_when_close,
        "says tie when the first reply is longer by 1 to 5 characters, else prefers the longer":
            _tie_when_first_longer,
        "always prefers the second reply": lambda prompt, a, b: "b",
        "answers like a coin: its verdict is a hash of the prompt and the replies in order": _coin,
    }


def _flip_hint(theirs: float, judge, pairs, description: str) -> str:
    """Name the likely mistake behind a flip rate that differs from `evaluation.winrate.position_flip_rate`."""
    ours = winrate.position_flip_rate(judge, pairs)
    verdicts = [(judge(p, x, y), judge(p, y, x)) for p, x, y in pairs]
    n = len(pairs)
    flips = sum(second != _MIRROR[first] for first, second in verdicts)
    untied = sum("tie" not in v for v in verdicts)
    candidates = [
        ("return the fraction of pairs on which the judge flips, not the number of flips", flips),
        ("return the fraction of pairs on which the judge flips, not the fraction on which it is "
         "consistent", 1 - ours),
        ("return a fraction, not a percentage", 100 * ours),
        ("divide by the number of pairs, not by the number of verdicts (two per pair)", flips / (2 * n)),
        ("'tie' on both orders is consistent, not a flip: a flip is any pair whose second verdict is not "
         "the mirror of the first ('a' <-> 'b', 'tie' <-> 'tie')", sum(f == s for f, s in verdicts) / n),
        ("'tie' on one order and 'a' or 'b' on the other is a flip too: a flip is any pair whose second "
         "verdict is not the mirror of the first ('a' <-> 'b', 'tie' <-> 'tie')",
         sum(f == s != "tie" for f, s in verdicts) / n),
        ("the judge is consistent when its verdict on the swapped pair is the MIRROR of the first ('a' "
         "then 'b'), not the same", sum(f != s for f, s in verdicts) / n),
        ("divide by all the pairs, including those with a tie", flips / untied if untied else math.nan),
    ]
    default = ("a flip is any pair whose second verdict is not the mirror of the first ('a' <-> 'b', "
               "'tie' <-> 'tie')")
    hint = next((h for h, value in candidates if math.isclose(theirs, value, abs_tol=FLIP_TOLERANCE)),
                default)
    return (f"with the judge that {description}, on {n} pairs the flip rate is {ours:.4f}, not "
            f"{theirs:.4f}: {hint}")


def check_position_flip_rate(fn) -> bool:
    """Exercise eval-ex2 (9.2): the position flip rate of a pairwise judge, from scratch.

    Compared with `evaluation.winrate.position_flip_rate` (tolerance `FLIP_TOLERANCE`) for each judge of
    `flip_judges` (always the first reply, always the second, always a tie, the longer reply with four
    ways of handling equal or close lengths, a hash coin) on three sets of `flip_pairs` of 28 to 57
    pairs, none of them the default ``flip_pairs()`` a notebook tries.

    Args:
        fn: the learner's ``fn(judge, pairs)``: `judge` is called as ``judge(prompt, reply_a,
            reply_b)`` and returns ``"a"``, ``"b"`` or ``"tie"``; `pairs` is a list of ``(prompt,
            reply_x, reply_y)``. Returns the fraction of pairs on which the verdict on ``(y, x)`` is
            not the mirror of the verdict on ``(x, y)``, a number in [0, 1].

    Returns:
        Whether every flip rate matched.
    """
    for seed, n in ((91, 28), (92, 41), (93, 57)):
        pairs = flip_pairs(seed, n)
        for description, judge in flip_judges().items():
            ours = winrate.position_flip_rate(judge, pairs)
            theirs = _call(fn, judge, list(pairs))
            if isinstance(theirs, Exception):
                return feedback("eval-ex2", False, f"your function raised {theirs!r} (the judge that "
                                f"{description})")
            valid = _call(lambda: not isinstance(theirs, (bool, np.bool_))
                          and isinstance(theirs, (Real, np.number)) and math.isfinite(float(theirs)))
            if valid is not True:
                return feedback("eval-ex2", False, f"return the flip rate as a number, got {theirs!r}")
            if not math.isclose(float(theirs), ours, abs_tol=FLIP_TOLERANCE):
                return feedback("eval-ex2", False, _flip_hint(float(theirs), judge, pairs, description))
    return feedback("eval-ex2", True, "")


# --- eval-ex3: SQuAD-style normalised match ----------------------------------------------------------

_HAND_CASES = (  # (prediction, reference, why)
    ("Lune", "Lune", "the same string"),
    ("lune", "Lune", "only the case differs"),
    ("LUNE!", "lune", "case and an exclamation mark"),
    ("The Lune.", "lune", "an article and a full stop"),
    ("  lune \t", "Lune", "spaces and a tab around the answer"),
    ("New   Lune", "new lune", "several spaces between the words"),
    ("an owl", "Owl", "the article 'an'"),
    ("a cat", "the cat", "a different article"),
    ("Lune, the city", "lune city", "a comma and an article between the words"),
    ("Feto's", "fetos", "an apostrophe is removed, not replaced by a space"),
    ("1,000", "1000", "a comma inside a number is removed"),
    ("\"Green\"", "green", "quotes around the answer"),
    ("It is Lune.", "Lune", "extra words"),
    ("Lune", "New Lune", "only part of the reference"),
    ("New Lune", "Lune", "more than the reference"),
    ("Lun", "Lune", "a prefix of the reference"),
    ("Lunes", "Lune", "a longer word"),
    ("theory", "ory", "'the' inside a word is not an article"),
    ("Anna", "na", "'an' inside a word is not an article"),
    ("Mirra", "Lune", "a different answer"),
    ("seven", "7", "a number word is not the digit"),
    ("The answer: 7", "7", "a sentence before the answer"),
)
_ANSWERS = ("Lune", "Mirra", "green", "7", "Dornese", "New Lune", "Mount Kavu", "the Velish coast", "42",
            "blue and gold")
_FILLERS = ("It is ", "maybe ", "not ", "I think ")


def _perturb(text: str, rng: random.Random) -> str:
    """`text` with one to three of: its case changed, punctuation added, an article in front, its
    spaces widened (all of which normalisation undoes)."""
    for change in rng.sample(("case", "punctuation", "article", "spaces"), rng.randint(1, 3)):
        if change == "case":
            text = rng.choice((str.upper, str.title, lambda t: "".join(
                ch.upper() if rng.random() < 0.5 else ch for ch in t)))(text)
        elif change == "punctuation":
            mark = rng.choice(string.punctuation.replace("_", ""))
            text = rng.choice((f"{text}{mark}", f"{mark}{text}", f'"{text}"', f"({text})", f"{text}..."))
        elif change == "article":
            text = rng.choice(("the ", "The ", "a ", "A ", "an ", "AN ")) + text
        else:
            text = rng.choice(("  ", " \t", "\n")) + text.replace(" ", rng.choice(("  ", " \t ", "\n"))) + " "
    return text


def match_cases(seed: int = 9) -> list[dict]:
    """The bank exercise eval-ex3 is checked on: predictions and references to compare.

    Hand-written cases (case, punctuation, articles, spacing, apostrophes, and misses: extra words,
    part of the answer, a prefix, "the" inside "theory"), then, for each of a few tiny-world answers,
    copies perturbed in case, punctuation, articles and spacing, and perturbed misses: another
    answer, the answer with a word added in front, the answer cut short.

    Args:
        seed: picks the perturbations.

    Returns:
        Dicts with ``prediction``, ``reference``, ``why`` (what differs) and ``truth``: whether
        `metrics.normalized_match` matches them. The labels are computed, never typed.
    """
    rng = random.Random(seed)
    rows = list(_HAND_CASES)
    for answer in _ANSWERS:
        for _ in range(2):
            rows.append((_perturb(answer, rng), answer, "the answer perturbed"))
        other = rng.choice([a for a in _ANSWERS if a != answer])
        rows.append((_perturb(other, rng), answer, "another answer, perturbed"))
        rows.append((_perturb(rng.choice(_FILLERS) + answer, rng), answer, "a word added, perturbed"))
        cut = answer.rsplit(" ", 1)[0] if " " in answer else answer[:-1] or "0"
        rows.append((_perturb(cut, rng), answer, "the answer cut short, perturbed"))
    return [dict(prediction=p, reference=r, why=why, truth=metrics.normalized_match(p, r))
            for p, r, why in rows]


def check_normalized_match(fn) -> bool:
    """Exercise eval-ex3 (9.3): SQuAD-style normalised match, from scratch.

    Called on every case of `match_cases` and compared with `metrics.normalized_match` (accuracy 1.0
    required): lower-case, remove punctuation (not replaced by a space, so "Feto's" is "fetos"), drop
    the words a, an and the, collapse whitespace, then compare the two strings whole.

    Args:
        fn: the learner's ``fn(prediction, reference)``, two strings; returns True when they match
            after normalisation, else False.

    Returns:
        Whether every case was judged as `metrics.normalized_match` judges it.
    """
    cases = match_cases()
    wrong = []
    for case in cases:
        theirs = _call(fn, case["prediction"], case["reference"])
        if isinstance(theirs, Exception):
            return feedback("eval-ex3", False, f"your function raised {theirs!r} on {case['prediction']!r} "
                            f"and {case['reference']!r}")
        valid = _call(lambda: theirs is not None and not isinstance(theirs, str) and theirs in (True, False))
        if valid is not True:
            return feedback("eval-ex3", False, f"return True or False, got {theirs!r}")
        if bool(theirs) != case["truth"]:
            wrong.append(case)
    if wrong:
        case = wrong[0]
        verdict = "match" if case["truth"] else "do not match"
        return feedback("eval-ex3", False, f"{len(wrong)} of {len(cases)} pairs judged wrongly, e.g. "
                        f"{case['prediction']!r} and {case['reference']!r} ({case['why']}) {verdict}: "
                        f"they normalise to {metrics.normalize_answer(case['prediction'])!r} and "
                        f"{metrics.normalize_answer(case['reference'])!r}")
    return feedback("eval-ex3", True, "")
