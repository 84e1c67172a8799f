"""Checker for exercise 9.1 ("Evaluation"): a percentile bootstrap interval of a win rate.

Introduced in chapter 9; `exercises.ch09_eval` re-exports it with the chapter's other checkers.
Two bootstraps drawn from different random generators differ, so the checker calls the learner's
function on seeded random win/tie/loss outcomes and checks the interval's properties against
`posttrain_utils.evaluation.winrate.bootstrap_ci` (it contains the win rate, its width is the reference's
within `WIDTH_TOLERANCE`, the same seed repeats it...) rather than its exact ends. A learner's
function that raises gives a failed verdict naming the error, never a traceback.
"""

from __future__ import annotations

import math
import random
from numbers import Real
from statistics import NormalDist

import numpy as np

from ..evaluation import winrate
from ..runtime.notebook import feedback
from .common import call as _call


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
    contains the win rate; its width is `evaluation.winrate.bootstrap_ci`'s (with `REFERENCE_N_BOOT` resamples)
    and the normal approximation's (2 z sd / sqrt(n)) within `WIDTH_TOLERANCE` (relative),
    `WIDTH_ATOL` or `WIDTH_STEPS` / n (absolute); it is about half as wide when the prompts are four
    times as many (same shares of wins, ties and losses); at alpha 0.2 it is narrower than at 0.05,
    and as wide as the reference's; and four seeds do not all give the same interval.

    Args:
        fn: the learner's ``fn(outcomes, n_boot, alpha, seed)``, called positionally with a list of
            floats (1.0 A wins, 0.0 B wins, 0.5 a tie), ``N_BOOT`` resamples, the alpha of a
            ``1 - alpha`` interval and an integer seed (the signature of `evaluation.winrate.bootstrap_ci`).
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
