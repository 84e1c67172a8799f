"""Checkers for the chapter 4 ("Reward modelling") exercises. Each prints a verdict and returns a bool.

Every checker recomputes the answer from the learner's function on its own random inputs and
compares it with the reference in `posttrain_utils.reward` (`reward.overoptimization` for best-of-n), so a
constant or a hard-coded result cannot pass. Run one in a notebook cell, e.g.
``ch04_reward.check_bt_loss(my_bt_loss)``.
"""

from __future__ import annotations

from ..reward.bradley_terry import bradley_terry_loss, calibration_bins
from ..runtime.notebook import feedback

TOLERANCE = 1e-6
BIN_TOLERANCE = 1e-5  # bin means may be computed in float32
# r_chosen - r_rejected where the naive -log(sigmoid(gap)) gives inf (float32 sigmoid rounds to 0)
LARGE_GAPS = (-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0)


def _batches(seed: int, n: int = 4):
    """`n` random `(chosen, rejected, margin)` float32 batches of different sizes and scales."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        size, scale = 3 + 5 * i, 0.5 * (i + 1)
        out.append(tuple(scale * torch.randn(size, generator=gen) for _ in range(2))
                   + (torch.rand(size, generator=gen) * 2,))
    return out


def _value(result) -> float:
    """The learner's result as a float; raises ValueError for a non-scalar."""
    import torch

    t = torch.as_tensor(result.detach() if hasattr(result, "detach") else result, dtype=torch.float64)
    if t.numel() != 1:
        raise ValueError(f"returned {t.numel()} numbers, expected one scalar (the mean over pairs)")
    return t.item()


def _close(theirs: float, ours: float) -> bool:
    return abs(theirs - ours) <= TOLERANCE * max(1.0, abs(ours))


def _compare(fn, with_margin: bool, seed: int) -> tuple[bool, str]:
    """Run `fn` on random batches and on large gaps; `(passed, hint)`."""
    import torch

    for chosen, rejected, margin in _batches(seed):
        args = (chosen.clone(), rejected.clone()) + ((margin.clone(),) if with_margin else ())
        ours = bradley_terry_loss(chosen, rejected, margin if with_margin else None).item()
        theirs = _value(fn(*args))
        if not _close(theirs, ours):
            return False, (f"on a random batch of {len(chosen)} pairs you return {theirs:.6f}, expected "
                           f"{ours:.6f}: the mean over pairs of -log sigmoid(r_chosen - r_rejected"
                           f"{' - margin' if with_margin else ''})")
    gaps = torch.tensor(LARGE_GAPS)
    chosen, rejected = gaps, torch.zeros_like(gaps)
    args = (chosen.clone(), rejected.clone()) + ((torch.zeros_like(gaps),) if with_margin else ())
    theirs, ours = _value(fn(*args)), bradley_terry_loss(chosen, rejected).item()
    if not _close(theirs, ours):
        return False, (f"with reward gaps {list(LARGE_GAPS)} you return {theirs}, expected {ours:.4f}: "
                       "sigmoid(x) rounds to 0 for large negative x and log(0) = -inf; use logsigmoid")
    return True, ""


def check_bt_loss(fn, seed: int = 0) -> bool:
    """Exercise rm-ex1: the Bradley-Terry loss, from scratch and numerically stable.

    Args:
        fn: the learner's ``fn(chosen_rewards, rejected_rewards) -> scalar tensor``.
        seed: seeds the random batches.
    """
    try:
        passed, hint = _compare(fn, with_margin=False, seed=seed)
    except Exception as err:  # the learner's code: report, do not crash the notebook
        passed, hint = False, f"your function raised {type(err).__name__}: {err}"
    return feedback("rm-ex1", passed, hint)


def check_margin_loss(fn, seed: int = 0) -> bool:
    """Exercise rm-ex4: the Bradley-Terry loss with a per-pair margin (Llama 2's reward model).

    Args:
        fn: the learner's ``fn(chosen_rewards, rejected_rewards, margin) -> scalar tensor``, equal to
            ``bradley_terry_loss(chosen, rejected, margin=margin)``.
        seed: seeds the random batches and margins.
    """
    try:
        passed, hint = _compare(fn, with_margin=True, seed=seed)
    except Exception as err:
        passed, hint = False, f"your function raised {type(err).__name__}: {err}"
    return feedback("rm-ex4", passed, hint)


def check_calibration_bins(fn, margins, n_bins: int = 10) -> bool:
    """Exercise rm-ex2: the reliability diagram of the RM's pairwise probabilities.

    The learner's ``fn(margins, n_bins)`` returns ``(predicted, observed)``, per equal-width bin of
    ``[0, 1]``: the mean prediction and the fraction of outcomes 1, where every labelled pair counts
    twice, as (chosen, rejected) with prediction ``sigmoid(margin)`` and outcome 1, and as (rejected,
    chosen) with prediction ``sigmoid(-margin)`` and outcome 0 (NaN for an empty bin). The checker
    calls `fn` on the learner's `margins` and on its own random margins, and compares with
    `reward.calibration_bins`.

    Args:
        fn: the learner's function.
        margins: ``r_chosen - r_rejected`` per held-out pair, e.g. from `reward.pair_accuracy`.
        n_bins: the number of bins.
    """
    import numpy as np

    gen = np.random.default_rng(0)
    cases = [(list(map(float, margins)), n_bins), (gen.normal(0.5, 2.0, 300).tolist(), 5),
             (gen.normal(2.0, 1.0, 200).tolist(), 10)]
    try:
        for case_margins, bins in cases:
            ours = calibration_bins(case_margins, bins)
            theirs = fn(list(case_margins), bins)
            if len(theirs) != 2:
                raise ValueError("return a pair (predicted, observed)")
            for name, t, o in zip(("predicted", "observed"), theirs, ours):
                t = np.asarray(t.detach().cpu() if hasattr(t, "detach") else t, dtype=np.float64).reshape(-1)
                if t.shape != o.shape or not np.allclose(t, o, atol=BIN_TOLERANCE, rtol=0, equal_nan=True):
                    hint = (f"with {len(case_margins)} margins and {bins} bins your {name} values "
                            f"{np.round(t, 3).tolist()} differ from {np.round(o, 3).tolist()}: count each "
                            "pair in both orders, bin p by floor(p * n_bins) (1.0 in the last bin), NaN "
                            "when empty")
                    return feedback("rm-ex2", False, hint)
    except Exception as err:
        return feedback("rm-ex2", False, f"your function raised {type(err).__name__}: {err}")
    return feedback("rm-ex2", True, "")


def check_best_of_n(fn, seed: int = 0) -> bool:
    """Exercise rm-ex3: the unbiased best-of-n estimate from m scored samples of one prompt.

    The learner's ``fn(proxy, gold, n)`` returns ``(expected proxy, expected gold)`` of the sample
    with the highest proxy score among n drawn without replacement from the m samples, averaged over
    all subsets; it is compared with `reward.overoptimization.best_of_n` on random scores (no ties).

    Args:
        fn: the learner's function.
        seed: seeds the random scores.
    """
    import random

    from ..reward.overoptimization import best_of_n

    rng = random.Random(seed)
    try:
        for m, n in ((5, 1), (7, 2), (7, 3), (10, 4), (10, 10)):
            proxy, gold = [rng.gauss(0, 1) for _ in range(m)], [rng.gauss(0, 1) for _ in range(m)]
            theirs, ours = tuple(map(float, fn(list(proxy), list(gold), n))), best_of_n(proxy, gold, n)
            if len(theirs) != 2 or not all(_close(t, o) for t, o in zip(theirs, ours)):
                return feedback("rm-ex3", False, f"with m={m} samples and n={n} you return "
                                f"{[round(t, 4) for t in theirs]}, expected {[round(o, 4) for o in ours]}: "
                                "weight the i-th lowest proxy sample by C(i-1, n-1) / C(m, n)")
    except Exception as err:
        return feedback("rm-ex3", False, f"your function raised {type(err).__name__}: {err}")
    return feedback("rm-ex3", True, "")
