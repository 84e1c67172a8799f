"""Checkers for the chapter 9 ("Evaluation") exercises. Each prints a verdict and returns a bool.

Introduced in chapter 9. Every checker calls the learner's function on inputs it builds itself
(seeded random win/tie/loss outcomes, reply pairs shown to synthetic judges, answers perturbed in
case, punctuation, articles and spacing) and compares it with the course's own
(`posttrain_utils.winrate`, `posttrain_utils.metrics`), so a constant or a memorised number cannot
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
from statistics import NormalDist

import numpy as np

from .. import metrics, winrate
from ..runtime.notebook import feedback
from ._common import call as _call

N_BOOT = 2000  # eval-ex1: the resamples the learner's bootstrap is asked for
REFERENCE_N_BOOT = 20_000  # eval-ex1: the reference's resamples (its width then barely varies)
# eval-ex1: |learner's width - reference width| may be up to this fraction of the reference width, or
# `WIDTH_ATOL`, or `WIDTH_STEPS` / n: a 2000-resample percentile interval's width varies by about 3 %,
# and at small n each end can land on either side of a step of the grid of possible win rates (1/n
# apart without ties); an interval of the alpha (not alpha/2) quantiles is 16 % narrower at
# alpha = 0.05 and 34 % narrower at alpha = 0.2
WIDTH_TOLERANCE = 0.12
WIDTH_ATOL = 0.01
WIDTH_STEPS = 3.0
FLIP_TOLERANCE = 1e-9  # eval-ex2: |learner's flip rate - winrate.position_flip_rate|
_MIRROR = {"a": "b", "b": "a", "tie": "tie"}  # eval-ex2: a consistent judge's verdict on the swapped pair


# --- eval-ex1: a percentile bootstrap interval of the win rate --------------------------------------

def _outcomes(rng: random.Random, n: int, wins: float, ties: float) -> list[float]:
    """`n` outcomes, shuffled: a share `wins` of 1.0, `ties` of 0.5, the rest 0.0 (rounded)."""
    n_wins, n_ties = round(wins * n), round(ties * n)
    out = [1.0] * n_wins + [0.5] * n_ties + [0.0] * (n - n_wins - n_ties)
    rng.shuffle(out)
    return out


def _bootstrap_cases(seed: int = 9) -> list[list[float]]:
    """Outcome lists of 50 to 400 prompts with random shares of wins and ties (win rates from about
    0.2 to 0.8), one with 70 % ties (where a win/loss formula such as Wilson's is far too wide) and
    one without ties."""
    rng = random.Random(seed)
    cases = []
    for n in (50, 80, 120, 200, 300, 400):
        ties = rng.uniform(0.0, 0.3)
        wins = rng.uniform(0.2, 0.8) - ties / 2
        cases.append(_outcomes(rng, n, max(wins, 0.05), ties))
    cases.append(_outcomes(rng, 100, 0.2, 0.7))
    cases.append(_outcomes(rng, 60, rng.uniform(0.3, 0.7), 0.0))
    return cases


def _interval(theirs) -> tuple[float, float]:
    """`theirs` as ``(low, high)`` floats; raises if it is not a pair of finite real numbers."""
    if isinstance(theirs, (str, bytes, dict)) or len(theirs) != 2:
        raise TypeError("not a pair")
    if any(isinstance(v, bool) or not isinstance(v, (Real, np.number)) for v in theirs):
        raise TypeError("not numbers")
    low, high = (float(v) for v in theirs)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("not finite")
    return low, high


def _width(interval: tuple[float, float]) -> float:
    return interval[1] - interval[0]


def _near(width: float, expected: float, n: int) -> bool:
    """Whether an interval `width` on `n` outcomes is `expected` within the tolerances above."""
    return abs(width - expected) <= max(WIDTH_TOLERANCE * expected, WIDTH_ATOL, WIDTH_STEPS / n)


def _normal_width(outcomes: list[float], alpha: float) -> float:
    """2 z sd / sqrt(n): the width of the normal approximation's interval (sd with ddof 0)."""
    z = NormalDist().inv_cdf(1 - alpha / 2)
    return 2 * z * float(np.std(outcomes)) / math.sqrt(len(outcomes))


def _reference_width(outcomes: list[float], alpha: float) -> float:
    return _width(winrate.bootstrap_ci(outcomes, REFERENCE_N_BOOT, alpha, seed=1))


def _width_hint(widths: list[float], cases: list[list[float]], alpha: float) -> str:
    """Name the likely mistake behind intervals whose widths (one per outcome list of `cases`, at
    `alpha`) are not all the reference's: a mistake is named only when it explains every case."""
    def all_near(expected) -> bool:
        return all(_near(w, expected(o), len(o)) for w, o in zip(widths, cases))

    i = next((i for i, (w, o) in enumerate(zip(widths, cases))
              if not (_near(w, _reference_width(o, alpha), len(o))
                      and _near(w, _normal_width(o, alpha), len(o)))), 0)
    outcomes, width = cases[i], widths[i]
    n, rate, ours = len(outcomes), winrate.win_rate(outcomes), _reference_width(outcomes, alpha)
    where = f"on {n} outcomes (win rate {rate:.3f}, alpha={alpha}) your interval is {width:.4f} wide"
    recipe = ("draw n_boot resamples of len(outcomes) outcomes WITH replacement, take each one's mean, "
              "and return the alpha/2 and 1 - alpha/2 quantiles of those means")
    if all_near(lambda o: _reference_width(o, 1 - alpha)):
        return (f"{where}, about the {alpha:.0%} interval's: alpha is 1 - the confidence level (alpha=0.05 "
                f"asks for a 95% interval, from the 2.5th to the 97.5th percentile)")
    if all_near(lambda o: _reference_width(o, 2 * alpha)):
        return (f"{where}, about the {1 - 2 * alpha:.0%} interval's: the ends are the alpha/2 and "
                f"1 - alpha/2 quantiles (for alpha=0.05, the 2.5th and 97.5th percentiles)")
    if all_near(lambda o: _width(winrate.wilson_ci(sum(o), len(o), alpha))):
        return (f"{where}, about the Wilson interval's, which treats every outcome as a win or a loss "
                f"(too wide when there are ties); the bootstrap's is {ours:.4f}: {recipe}")
    return (f"{where}, a percentile bootstrap's is about {ours:.4f} (the normal approximation "
            f"2 z sd / sqrt(n) gives {_normal_width(outcomes, alpha):.4f}): {recipe}")


def check_bootstrap_ci(fn) -> bool:
    """Exercise eval-ex1 (9.1): a percentile bootstrap confidence interval of a win rate, from scratch.

    Two bootstraps drawn with different generators differ, so the checker tests properties, on seeded
    random outcome lists of 25 to 1000 prompts: outcomes that are all wins, all losses or all ties
    give the degenerate interval at that value; the same seed gives the same interval; the interval
    contains the win rate; its width is `winrate.bootstrap_ci`'s (with `REFERENCE_N_BOOT` resamples)
    and the normal approximation's (2 z sd / sqrt(n)) within `WIDTH_TOLERANCE` (relative),
    `WIDTH_ATOL` or `WIDTH_STEPS` / n (absolute); it is about half as wide when the prompts are four
    times as many (same shares of wins, ties and losses); at alpha 0.2 it is narrower than at 0.05,
    and as wide as the reference's; and four seeds do not all give the same interval.

    Args:
        fn: the learner's ``fn(outcomes, n_boot, alpha, seed)``, called positionally with a list of
            floats (1.0 A wins, 0.0 B wins, 0.5 a tie), ``N_BOOT`` resamples, the alpha of a
            ``1 - alpha`` interval and an integer seed (the signature of `winrate.bootstrap_ci`).
            Returns ``(low, high)``, two numbers in [0, 1] (a tuple, a list or a NumPy array).

    Returns:
        Whether every property held.
    """
    def ask(outcomes, alpha=0.05, seed=0):
        """The learner's interval, or a hint (a str) when it raised or returned something else."""
        where = f"(n={len(outcomes)}, alpha={alpha}, seed={seed})"
        theirs = _call(fn, list(outcomes), N_BOOT, alpha, seed)
        if isinstance(theirs, Exception):
            return f"your function raised {theirs!r} {where}"
        interval = _call(_interval, theirs)
        if isinstance(interval, Exception):
            return f"return (low, high), two numbers, not {theirs!r}"
        low, high = interval
        if low > high:
            return f"return (low, high) with low <= high, got ({low:.4f}, {high:.4f}) {where}"
        if low < -1e-9 or high > 1 + 1e-9:
            return (f"the interval is of a win rate, a fraction: both ends in [0, 1], got ({low:.4f}, "
                    f"{high:.4f}) {where}")
        return interval

    rng = random.Random(99)
    for value, n, name in ((1.0, 30, "wins (A won every prompt)"), (0.0, 25, "losses"), (0.5, 40, "ties")):
        theirs = ask([value] * n, seed=rng.randrange(100))
        if isinstance(theirs, str):
            return feedback("eval-ex1", False, theirs)
        if not all(math.isclose(end, value, abs_tol=1e-9) for end in theirs):
            return feedback("eval-ex1", False, f"on {n} outcomes that are all {name}, every resample's mean "
                            f"is {value}, so the interval is ({value}, {value}); got ({theirs[0]:.4f}, "
                            f"{theirs[1]:.4f})")

    cases = _bootstrap_cases()
    for outcomes in (cases[4], cases[5], _outcomes(random.Random(7), 1000, 0.35, 0.3)):
        first, again = ask(outcomes, seed=3), ask(outcomes, seed=3)
        for theirs in (first, again):
            if isinstance(theirs, str):
                return feedback("eval-ex1", False, theirs)
        if not np.allclose(first, again, rtol=0, atol=1e-12):
            return feedback("eval-ex1", False, f"the same seed gave ({first[0]:.4f}, {first[1]:.4f}) then "
                            f"({again[0]:.4f}, {again[1]:.4f}): draw the resamples from a generator seeded "
                            "with seed, e.g. np.random.default_rng(seed)")

    intervals = []
    for outcomes in cases:
        theirs = ask(outcomes)
        if isinstance(theirs, str):
            return feedback("eval-ex1", False, theirs)
        rate = winrate.win_rate(outcomes)
        if not theirs[0] - 1e-9 <= rate <= theirs[1] + 1e-9:
            return feedback("eval-ex1", False, f"the interval ({theirs[0]:.4f}, {theirs[1]:.4f}) does not "
                            f"contain the win rate {rate:.4f} of the {len(outcomes)} outcomes (the mean, a "
                            "tie counting 0.5): resample the outcomes themselves, average each resample, and "
                            "take quantiles of those means (np.quantile takes fractions, 0.025 and 0.975; "
                            "np.percentile takes percents, 2.5 and 97.5)")
        intervals.append(theirs)
    if all(_width(interval) < 1e-9 for interval in intervals):
        return feedback("eval-ex1", False, "your intervals all have zero width: resample WITH replacement "
                        "(n of n outcomes drawn without replacement are only a shuffle, so every resample "
                        "has the same mean)")

    widths = [_width(interval) for interval in intervals]
    if not all(_near(w, _reference_width(o, 0.05), len(o)) and _near(w, _normal_width(o, 0.05), len(o))
               for w, o in zip(widths, cases)):
        return feedback("eval-ex1", False, _width_hint(widths, cases, 0.05))

    small = cases[-2]  # 100 prompts, 70 % ties
    large = random.Random(4).sample(small * 4, 4 * len(small))
    theirs = ask(large)
    if isinstance(theirs, str):
        return feedback("eval-ex1", False, theirs)
    ratio = _width(theirs) / max(_width(intervals[-2]), 1e-12)
    if not 0.38 <= ratio <= 0.65:
        return feedback("eval-ex1", False, f"with 4 times the prompts (the same shares of wins, ties and "
                        f"losses) the interval should be about half as wide (its width shrinks like "
                        f"1 / sqrt(n)): yours went from {_width(intervals[-2]):.4f} to {_width(theirs):.4f}; "
                        "each resample draws len(outcomes) outcomes")

    outcomes = cases[3]
    theirs = ask(outcomes, alpha=0.2)
    if isinstance(theirs, str):
        return feedback("eval-ex1", False, theirs)
    if _width(theirs) >= _width(intervals[3]):
        return feedback("eval-ex1", False, f"alpha=0.2 asks for an 80% interval, which must be narrower "
                        f"than the 95% one of alpha=0.05; yours are {_width(theirs):.4f} and "
                        f"{_width(intervals[3]):.4f} wide: return the alpha/2 and 1 - alpha/2 quantiles")
    if not _near(_width(theirs), _reference_width(outcomes, 0.2), len(outcomes)):
        return feedback("eval-ex1", False, _width_hint([_width(theirs)], [outcomes], 0.2))

    seeded = [ask(cases[4], seed=seed) for seed in (11, 12, 13, 14)]
    for theirs in seeded:
        if isinstance(theirs, str):
            return feedback("eval-ex1", False, theirs)
    if len({tuple(theirs) for theirs in seeded}) == 1:
        return feedback("eval-ex1", False, "your interval is the same for every seed: a bootstrap is random, "
                        "so draw the resamples from a generator seeded with seed (a formula such as Wilson's "
                        "or the normal approximation is not a bootstrap)")
    return feedback("eval-ex1", True, "")


# --- eval-ex2: how often a judge changes its mind when the replies swap places ----------------------

def flip_pairs(seed: int = 0, n: int = 24) -> list[tuple[str, str, str]]:
    """Pairs to show a pairwise judge in exercise eval-ex2: replies to one-digit sum questions.

    Args:
        seed: picks the sums and the replies.
        n: the number of pairs; every fourth pair's replies have the same length (a right and a wrong
            sum in the same sentence), the others usually differ in length.

    Returns:
        ``(prompt, reply_x, reply_y)`` triples, as `winrate.position_flip_rate` takes them.
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
    """Name the likely mistake behind a flip rate that differs from `winrate.position_flip_rate`."""
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

    Compared with `winrate.position_flip_rate` (tolerance `FLIP_TOLERANCE`) for each judge of
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
