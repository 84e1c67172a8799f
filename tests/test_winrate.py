"""Chapter 9's pairwise comparison: win rates with ties, their Wilson and bootstrap intervals, how many
prompts it takes, and the checks on judges (position flips, agreement, Cohen's kappa, length bias),
all against hand-computed or textbook values.
"""

import math

import numpy as np
import pytest

from posttrain_utils.evaluation import winrate


# ----- win rate -------------------------------------------------------------------------------
def test_win_rate_counts_ties_as_half_a_win():
    assert winrate.win_rate([1, 1, 0.5, 0]) == pytest.approx(0.625)  # (1 + 1 + 0.5 + 0) / 4
    assert winrate.win_rate([0.5, 0.5, 0.5]) == 0.5
    assert winrate.win_rate([1, 0, 0, 0, 0.5]) == pytest.approx(0.3)
    assert winrate.win_rate(np.array([True, False])) == 0.5 and winrate.win_rate((1.0,)) == 1.0


@pytest.mark.parametrize("bad", [[1, 2], [0.3], [1, -1], [0, float("nan")], [0.25, 0.75]])
def test_win_rate_rejects_outcomes_outside_0_half_1(bad):
    with pytest.raises(ValueError, match="expected one of"):
        winrate.win_rate(bad)


def test_win_rate_rejects_empty_and_non_numbers():
    with pytest.raises(ValueError, match="empty"):
        winrate.win_rate([])
    with pytest.raises(TypeError, match=r"outcomes\[1\]"):
        winrate.win_rate([1, "a"])
    with pytest.raises(TypeError, match="sequence of numbers"):
        winrate.win_rate("1010")
    with pytest.raises(TypeError, match="sequence of numbers"):
        winrate.win_rate(1)


# ----- Wilson interval ------------------------------------------------------------------------
def test_wilson_matches_the_textbook_value():
    low, high = winrate.wilson_ci(8, 10)  # 8 of 10 at 95%: (0.490, 0.943)
    assert low == pytest.approx(0.4902, abs=5e-4) and high == pytest.approx(0.9433, abs=5e-4)
    low, high = winrate.wilson_ci(0, 10)  # no wins: (0, z^2 / (n + z^2)) = (0, 0.278)
    assert low == 0 and high == pytest.approx(1.96 ** 2 / (10 + 1.96 ** 2), abs=1e-3)


def test_wilson_is_symmetric_narrows_with_confidence_and_n_and_takes_half_wins():
    low, high = winrate.wilson_ci(3, 10)
    assert (1 - high, 1 - low) == pytest.approx(winrate.wilson_ci(7, 10))
    assert winrate.wilson_ci(10, 10)[1] == 1.0
    w95, w80 = winrate.wilson_ci(6, 10), winrate.wilson_ci(6, 10, alpha=0.2)
    assert w95[0] < w80[0] < 0.6 < w80[1] < w95[1]
    small, large = winrate.wilson_ci(6, 10), winrate.wilson_ci(600, 1000)
    assert large[1] - large[0] < (small[1] - small[0]) / 5
    outcomes = [1] * 6 + [0.5] * 3 + [0]  # 7.5 wins out of 10
    low, high = winrate.wilson_ci(sum(outcomes), len(outcomes))
    assert winrate.wilson_ci(7, 10)[0] < low < 0.75 < high < winrate.wilson_ci(8, 10)[1]


@pytest.mark.parametrize("wins, n, alpha", [(1, 0, 0.05), (11, 10, 0.05), (-1, 10, 0.05), (5, 10, 0),
                                            (5, 10, 1.5), (5, 10.0, 0.05), ("5", 10, 0.05)])
def test_wilson_rejects_bad_input(wins, n, alpha):
    with pytest.raises(ValueError):
        winrate.wilson_ci(wins, n, alpha)


# ----- bootstrap interval ---------------------------------------------------------------------
def test_bootstrap_contains_the_estimate_is_reproducible_and_narrows_with_n():
    outcomes = [1, 1, 1, 0.5, 0, 0, 1, 0.5, 1, 0]
    low, high = winrate.bootstrap_ci(outcomes, seed=0)
    assert low <= winrate.win_rate(outcomes) <= high and low < high
    assert winrate.bootstrap_ci(outcomes, seed=0) == (low, high)
    # on 10 prompts the quantiles fall on a grid of 0.05; with fewer samples the seed shows
    few = [winrate.bootstrap_ci(outcomes, n_boot=50, seed=s) for s in (1, 2)]
    assert few[0] != few[1]
    big = winrate.bootstrap_ci(outcomes * 100, seed=0)
    assert low < big[0] <= 0.6 <= big[1] < high and big[1] - big[0] < (high - low) / 5
    assert winrate.bootstrap_ci([1] * 5) == (1.0, 1.0)


def test_bootstrap_agrees_with_plain_resampling_and_with_wilson():
    rng = np.random.default_rng(0)
    outcomes = rng.choice([0.0, 0.5, 1.0], size=200, p=[0.3, 0.2, 0.5])
    low, high = winrate.bootstrap_ci(outcomes, n_boot=4000, seed=0)
    # the textbook bootstrap: redraw prompts by index
    rates = outcomes[rng.integers(0, len(outcomes), size=(4000, len(outcomes)))].mean(axis=1)
    assert (low, high) == pytest.approx(tuple(np.quantile(rates, [0.025, 0.975])), abs=0.01)
    w_low, w_high = winrate.wilson_ci(outcomes.sum(), len(outcomes))
    assert w_low <= low + 0.01 and high - 0.01 <= w_high  # ties: Wilson is the wider (conservative)


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        winrate.bootstrap_ci([])
    with pytest.raises(ValueError, match="expected one of"):
        winrate.bootstrap_ci([1, 0.7])
    with pytest.raises(ValueError, match="n_boot"):
        winrate.bootstrap_ci([1, 0], n_boot=0)
    with pytest.raises(ValueError, match="alpha"):
        winrate.bootstrap_ci([1, 0], alpha=1)
    with pytest.raises(TypeError, match="seed"):
        winrate.bootstrap_ci([1, 0], seed=None)


# ----- how many prompts -----------------------------------------------------------------------
def test_prompts_needed_by_hand():
    assert winrate.prompts_needed(0.5, 0.05) == 385  # 1.96^2 * 0.25 / 0.05^2 = 384.1
    assert winrate.prompts_needed(0.55, 0.05) == 381  # 1.96^2 * 0.2475 / 0.0025 = 380.3
    assert winrate.prompts_needed(0.5, 0.05, alpha=0.01) == 664  # 2.576^2 * 0.25 / 0.0025 = 663.5
    assert [winrate.prompts_needed(0.5, m) for m in (0.1, 0.05, 0.01)] == [97, 385, 9604]
    assert winrate.prompts_needed(0.9, 0.05) < winrate.prompts_needed(0.5, 0.05)


@pytest.mark.parametrize("p, margin", [(0.6, 0.05), (0.52, 0.02), (0.8, 0.1)])
def test_prompts_needed_is_the_smallest_n_with_a_narrow_enough_interval(p, margin):
    n = winrate.prompts_needed(p, margin)
    half_width = lambda k: 1.959963984540054 * math.sqrt(p * (1 - p) / k)  # noqa: E731
    assert half_width(n) <= margin < half_width(n - 1)


@pytest.mark.parametrize("p, margin, alpha", [(0, 0.05, 0.05), (1, 0.05, 0.05), (0.5, 0, 0.05),
                                              (0.5, 1, 0.05), (0.5, 0.05, 0)])
def test_prompts_needed_rejects_bad_input(p, margin, alpha):
    with pytest.raises(ValueError):
        winrate.prompts_needed(p, margin, alpha)


# ----- judges: position bias ------------------------------------------------------------------
PAIRS = [("What is 3 plus 4?", "7", "It is 7, since 3 plus 4 is 7."),
         ("Capital of Feto?", "The capital of Feto is Lune.", "Lune."),
         ("Say hi.", "Hi!", "Hi!")]


def first_position_judge(prompt, reply_a, reply_b):
    return "a"


def longer_reply_judge(prompt, reply_a, reply_b):
    """Biased towards length, but not towards a position: swapping the replies swaps the verdict."""
    if len(reply_a) == len(reply_b):
        return "tie"
    return "a" if len(reply_a) > len(reply_b) else "b"


def test_a_position_biased_judge_flips_every_time_and_a_fair_one_never():
    assert winrate.position_flip_rate(first_position_judge, PAIRS) == 1.0
    assert winrate.position_flip_rate(lambda *args: "b", PAIRS) == 1.0
    assert winrate.position_flip_rate(longer_reply_judge, PAIRS) == 0.0
    assert winrate.position_flip_rate(lambda *args: "tie", PAIRS) == 0.0  # consistent, if useless


def test_position_flip_rate_judges_both_orders_and_counts_partial_flips():
    calls = []

    def judge(prompt, reply_a, reply_b):
        calls.append((prompt, reply_a, reply_b))
        # fair, except on equal-length replies, where it prefers the first one
        return "a" if len(reply_a) == len(reply_b) else longer_reply_judge(prompt, reply_a, reply_b)

    assert winrate.position_flip_rate(judge, PAIRS) == pytest.approx(1 / 3)
    assert calls[:2] == [PAIRS[0], (PAIRS[0][0], PAIRS[0][2], PAIRS[0][1])] and len(calls) == 6


def test_position_flip_rate_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        winrate.position_flip_rate(longer_reply_judge, [])
    with pytest.raises(ValueError, match="judge returned 'A'"):
        winrate.position_flip_rate(lambda *args: "A", PAIRS)
    with pytest.raises(ValueError, match="triple"):
        winrate.position_flip_rate(longer_reply_judge, [("prompt", "only one reply")])
    with pytest.raises(TypeError, match="callable"):
        winrate.position_flip_rate("a", PAIRS)


# ----- judges: agreement and kappa ------------------------------------------------------------
# The classic 2x2 example: 50 items, both say yes on 20, A yes/B no on 5, A no/B yes on 10, both no on 15.
A_SAYS = ["yes"] * 25 + ["no"] * 25
B_SAYS = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15


def test_agreement_and_kappa_on_the_classic_example():
    assert winrate.agreement(A_SAYS, B_SAYS) == pytest.approx(0.7)  # (20 + 15) / 50
    # chance: 0.5 * 0.6 (both yes) + 0.5 * 0.4 (both no) = 0.5; kappa = (0.7 - 0.5) / (1 - 0.5)
    assert winrate.cohen_kappa(A_SAYS, B_SAYS) == pytest.approx(0.4)
    assert winrate.cohen_kappa(B_SAYS, A_SAYS) == pytest.approx(0.4)


def test_kappa_with_three_labels_by_hand_and_its_extremes():
    labels = ["a", "a", "b", "tie", "a", "b"]
    gold = ["a", "b", "b", "tie", "a", "a"]
    # p_o = 4/6; both raters: a 3/6, b 2/6, tie 1/6 -> p_e = (9 + 4 + 1) / 36; kappa = 10/22
    assert winrate.agreement(labels, gold) == pytest.approx(4 / 6)
    assert winrate.cohen_kappa(labels, gold) == pytest.approx(5 / 11)
    assert winrate.cohen_kappa(gold, gold) == 1.0
    assert winrate.cohen_kappa(["a", "b", "a", "b"], ["b", "a", "b", "a"]) == pytest.approx(-1.0)
    assert math.isnan(winrate.cohen_kappa(["a"] * 4, ["a"] * 4))  # chance explains everything


def test_agreement_and_kappa_reject_bad_input():
    for fn in (winrate.agreement, winrate.cohen_kappa):
        with pytest.raises(ValueError, match="empty"):
            fn([], [])
        with pytest.raises(ValueError, match="3 labels for 2 gold"):
            fn(["a", "b", "a"], ["a", "b"])
        with pytest.raises(TypeError, match="hashable"):
            fn([["a"]], ["a"])
        with pytest.raises(TypeError, match="sequence of labels"):
            fn("ab", "ab")


# ----- judges: length bias --------------------------------------------------------------------
def test_length_bias_by_hand():
    # preferences deviate by +-0.5, length differences [3, 1, -1, 1] by [2, 0, -2, 0]:
    # covariance sum 2, norms 1 and sqrt(8) -> r = 2 / sqrt(8)
    assert winrate.length_bias([1, 1, 0, 0], [3, 1, -1, 1]) == pytest.approx(1 / math.sqrt(2))
    assert winrate.length_bias([1, 0, 1, 0], [5, -5, 2, -2]) > 0.9  # prefers the longer
    assert winrate.length_bias([0, 1, 0, 1], [5, -5, 2, -2]) < -0.9  # prefers the shorter
    assert winrate.length_bias([1, 1, 0, 0], [2, -2, 2, -2]) == pytest.approx(0.0)
    assert math.isnan(winrate.length_bias([1, 1, 1], [1, 2, 3]))  # a constant judge


def test_length_bias_is_pearson():
    rng = np.random.default_rng(0)
    diffs = rng.normal(size=50)
    prefs = (diffs + rng.normal(size=50) > 0).astype(int)
    assert winrate.length_bias(list(prefs), list(diffs)) == pytest.approx(np.corrcoef(prefs, diffs)[0, 1])


def test_length_bias_rejects_bad_input():
    with pytest.raises(ValueError, match="2 preferences for 3"):
        winrate.length_bias([1, 0], [1, 2, 3])
    with pytest.raises(ValueError, match="expected one of"):
        winrate.length_bias([1, 0.5], [1, 2])  # leave ties out
    with pytest.raises(ValueError, match="at least 2"):
        winrate.length_bias([1], [3])
    with pytest.raises(ValueError, match="empty"):
        winrate.length_bias([], [])
    with pytest.raises(ValueError, match="NaN"):
        winrate.length_bias([1, 0], [1, float("inf")])
