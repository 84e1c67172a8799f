"""Pairwise comparison: win rates, their confidence intervals, and checks on the judges behind them.

Introduced in chapter 9 ("Evaluation"). Comparing model A with model B prompt by prompt gives one
outcome per prompt: 1 (A's reply wins), 0 (B's wins) or 0.5 (a tie, counted as half a win).

* `win_rate`: A's win rate over the prompts;
* `bootstrap_ci` and `wilson_ci`: how far that rate could be from the rate over all prompts one
  could have asked; `prompts_needed`: how many prompts it takes for the interval to be narrow
  enough to tell two models apart;
* `position_flip_rate`, `agreement`, `cohen_kappa` and `length_bias`: is the judge that produced
  the outcomes (a person, a rule or an LLM) consistent, in agreement with gold labels, and free of
  a taste for the first position or for long replies?

Text metrics (ROUGE, BLEU, exact match) live in `metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from numbers import Real
from statistics import NormalDist

import numpy as np

__all__ = ["OUTCOMES", "VERDICTS", "agreement", "bootstrap_ci", "cohen_kappa", "length_bias",
           "position_flip_rate", "prompts_needed", "wilson_ci", "win_rate"]

OUTCOMES = (0.0, 0.5, 1.0)  # B wins, tie, A wins
VERDICTS = ("a", "b", "tie")
_SWAPPED = {"a": "b", "b": "a", "tie": "tie"}  # the verdict a consistent judge gives on the swapped pair


def _numbers(values, name: str, allowed: tuple[float, ...] | None = None) -> np.ndarray:
    """`values` as a float array: a non-empty sequence of real numbers (from `allowed` if given)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}")
    bad = next((i for i, v in enumerate(values) if not isinstance(v, (Real, np.bool_))), None)
    if bad is not None:
        raise TypeError(f"{name}[{bad}] must be a number, got {type(values[bad]).__name__}")
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if allowed is not None:
        outside = ~np.isin(arr, allowed)
        if outside.any():
            i = int(np.argmax(outside))
            raise ValueError(f"{name}[{i}] is {values[i]!r}; expected one of {list(allowed)}")
    elif not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _alpha(alpha) -> float:
    if not isinstance(alpha, Real) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number in (0, 1), e.g. 0.05 for a 95% interval; got {alpha!r}")
    return float(alpha)


def _z(alpha: float) -> float:
    """The two-sided standard normal quantile: 1.96 for alpha = 0.05."""
    return NormalDist().inv_cdf(1 - _alpha(alpha) / 2)


def win_rate(outcomes: Sequence[float]) -> float:
    """A's win rate: the mean outcome, a tie counting as half a win.

    Args:
        outcomes: one per prompt: 1 (A wins), 0 (B wins) or 0.5 (tie).

    Returns:
        The win rate in [0, 1]; e.g. ``[1, 1, 0.5, 0]`` -> 0.625.
    """
    return float(_numbers(outcomes, "outcomes", OUTCOMES).mean())


def bootstrap_ci(outcomes: Sequence[float], n_boot: int = 2000, alpha: float = 0.05,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the win rate.

    Each bootstrap sample redraws len(outcomes) prompts with replacement; as outcomes take only
    three values, this is drawn exactly as multinomial counts of wins, ties and losses.

    Args:
        outcomes: one per prompt: 1 (A wins), 0 (B wins) or 0.5 (tie).
        n_boot: number of bootstrap samples.
        alpha: 1 - the confidence level (0.05: a 95% interval).
        seed: seeds the `numpy.random.Generator`, so the interval is reproducible.

    Returns:
        ``(low, high)``: the alpha/2 and 1 - alpha/2 quantiles of the resampled win rates.
    """
    arr = _numbers(outcomes, "outcomes", OUTCOMES)
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    alpha = _alpha(alpha)
    n = arr.size
    shares = [np.mean(arr == v) for v in OUTCOMES]
    counts = np.random.default_rng(seed).multinomial(n, shares, size=n_boot)
    rates = (counts @ np.array(OUTCOMES)) / n
    low, high = np.quantile(rates, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def wilson_ci(wins: float, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of a win rate (``wins`` out of ``n`` prompts).

    Ties count as half a win, so `wins` may end in .5: ``wilson_ci(sum(outcomes), len(outcomes))``.
    Ties make the outcomes less variable than the win/loss coin the interval assumes, so with ties
    the interval is somewhat wider than it needs to be (conservative).

    Args:
        wins: A's wins (ties as halves), between 0 and `n`.
        n: number of prompts compared.
        alpha: 1 - the confidence level (0.05: a 95% interval).

    Returns:
        ``(low, high)``; e.g. 8 wins out of 10 at 95% -> about (0.490, 0.943).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(wins, bool) or not isinstance(wins, Real) or not 0 <= wins <= n:
        raise ValueError(f"wins must be a number between 0 and n = {n}, got {wins!r}")
    z = _z(alpha)
    p = wins / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if wins == 0 else max(0.0, center - half)  # exact ends: no 2.8e-17 from rounding
    high = 1.0 if wins == n else min(1.0, center + half)
    return low, high


def prompts_needed(p: float, margin: float, alpha: float = 0.05) -> int:
    """Prompts needed for the CI of a win rate near `p` to have half-width at most `margin`.

    Uses the normal approximation, n = z^2 p (1 - p) / margin^2 (``p = 0.5``, ``margin = 0.05`` at
    95%: 385 prompts). To tell a model that wins a fraction `p` from an even match, the interval must
    exclude 0.5: ``prompts_needed(p, abs(p - 0.5))``; a 55% win rate takes 381 prompts.

    Args:
        p: the expected win rate, strictly between 0 and 1.
        margin: the half-width wanted, e.g. 0.05 for plus or minus 5 points.
        alpha: 1 - the confidence level (0.05: a 95% interval).

    Returns:
        The smallest whole number of prompts that achieves it.
    """
    if not isinstance(p, Real) or not 0 < p < 1:
        raise ValueError(f"p must be strictly between 0 and 1 (the normal approximation breaks down "
                         f"at 0 and 1), got {p!r}")
    if not isinstance(margin, Real) or not 0 < margin < 1:
        raise ValueError(f"margin must be a half-width in (0, 1), got {margin!r}")
    n = _z(alpha) ** 2 * p * (1 - p) / margin ** 2
    return max(1, math.ceil(n - 1e-9))  # 1e-9: 384.0000000001 from rounding is still 384


def position_flip_rate(judge: Callable[[str, str, str], str], pairs: Sequence[Sequence[str]]) -> float:
    """How often a pairwise judge changes its mind when the two replies swap places.

    Each pair is judged as ``judge(prompt, x, y)`` and ``judge(prompt, y, x)``. A consistent judge
    answers "a" then "b", "b" then "a", or "tie" twice; any other combination is a flip. A judge that
    always prefers the first position flips on every pair.

    Args:
        judge: ``judge(prompt, reply_a, reply_b)`` -> ``"a"``, ``"b"`` or ``"tie"``.
        pairs: ``(prompt, reply_x, reply_y)`` triples.

    Returns:
        The fraction of pairs on which the judge is inconsistent, in [0, 1].
    """
    if not callable(judge):
        raise TypeError("judge must be callable as judge(prompt, reply_a, reply_b), "
                        f"got {type(judge).__name__}")
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
        raise TypeError(f"pairs must be a sequence of (prompt, reply_x, reply_y), got {type(pairs).__name__}")
    if not pairs:
        raise ValueError("pairs is empty")
    flips = 0
    for i, pair in enumerate(pairs):
        if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 3:
            raise ValueError(f"pairs[{i}] must be a (prompt, reply_x, reply_y) triple, got {pair!r}")
        prompt, x, y = pair
        verdicts = judge(prompt, x, y), judge(prompt, y, x)
        for verdict in verdicts:
            if verdict not in VERDICTS:
                raise ValueError(f"judge returned {verdict!r} on pairs[{i}]; expected one of {VERDICTS}")
        flips += verdicts[1] != _SWAPPED[verdicts[0]]
    return flips / len(pairs)


def _labels(labels, gold) -> tuple[list, list]:
    for name, values in (("labels", labels), ("gold", gold)):
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
            raise TypeError(f"{name} must be a sequence of labels, got {type(values).__name__}")
    labels, gold = list(labels), list(gold)
    if not labels:
        raise ValueError("labels is empty")
    if len(labels) != len(gold):
        raise ValueError(f"got {len(labels)} labels for {len(gold)} gold labels")
    for name, values in (("labels", labels), ("gold", gold)):
        bad = next((i for i, v in enumerate(values) if not isinstance(v, Hashable)), None)
        if bad is not None:
            raise TypeError(f"{name}[{bad}] must be hashable (a string or a number), got {values[bad]!r}")
    return labels, gold


def agreement(labels: Sequence[Hashable], gold: Sequence[Hashable]) -> float:
    """Plain agreement: the fraction of items on which `labels` equal `gold`.

    Args:
        labels: a judge's labels, e.g. ``"a"``, ``"b"``, ``"tie"``.
        gold: the reference labels, one per item.

    Returns:
        The fraction of equal labels, in [0, 1].
    """
    labels, gold = _labels(labels, gold)
    return sum(x == g for x, g in zip(labels, gold)) / len(labels)


def cohen_kappa(labels: Sequence[Hashable], gold: Sequence[Hashable]) -> float:
    """Cohen's kappa: agreement corrected for the agreement two raters reach by chance.

    kappa = (p_o - p_e) / (1 - p_e), where p_o is `agreement` and p_e is the agreement expected if
    each rater drew labels at random with their own label frequencies. 1 is perfect agreement,
    0 is chance level, below 0 is worse than chance.

    Args:
        labels: a judge's labels.
        gold: the reference labels, one per item.

    Returns:
        Kappa, at most 1; NaN when p_e is 1 (both raters use one and the same label throughout,
        so chance explains all agreement and kappa is undefined).
    """
    labels, gold = _labels(labels, gold)
    n = len(labels)
    observed = agreement(labels, gold)
    expected = sum((labels.count(k) / n) * (gold.count(k) / n) for k in set(labels) | set(gold))
    if math.isclose(expected, 1.0):
        return float("nan")
    return (observed - expected) / (1 - expected)


def length_bias(preferences: Sequence[float], length_diffs: Sequence[float]) -> float:
    """Correlation between a judge preferring reply A and A being the longer reply.

    The Pearson correlation of the 0/1 preferences with len(A) - len(B) (the point-biserial
    correlation). Near 0: length does not sway the judge; near 1: it prefers whichever is longer.
    Leave tied pairs out.

    Args:
        preferences: 1 if the judge preferred A, 0 if it preferred B, one per pair.
        length_diffs: len(A) - len(B) per pair, in any unit (words, tokens, characters).

    Returns:
        The correlation in [-1, 1]; NaN if either input is constant (no correlation to measure).
    """
    prefs = _numbers(preferences, "preferences", (0.0, 1.0))
    diffs = _numbers(length_diffs, "length_diffs")
    if prefs.size != diffs.size:
        raise ValueError(f"got {prefs.size} preferences for {diffs.size} length differences")
    if prefs.size < 2:
        raise ValueError("a correlation needs at least 2 pairs")
    dp, dd = prefs - prefs.mean(), diffs - diffs.mean()
    scale = math.sqrt(float(dp @ dp) * float(dd @ dd))
    if scale == 0:
        return float("nan")
    return float(np.clip(dp @ dd / scale, -1.0, 1.0))
