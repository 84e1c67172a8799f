"""Checkers for the chapter 5 ("RLHF with PPO") exercises. Each prints a verdict and returns a bool.

Every checker calls the learner's function on fresh random inputs and compares it with the course's
own (`posttrain_utils.ppo`), so a constant or a memorised number cannot pass.
"""

from __future__ import annotations

import torch

from .. import ppo
from ..runtime.notebook import feedback
from .common import call as _call
from .common import close as _close
from .common import gradient_hint

def _prefix_mask(generator, batch: int, steps: int):
    """`(batch, steps)` masks of ones then zeros, every row at least one token long."""
    lengths = torch.randint(1, steps + 1, (batch, 1), generator=generator)
    return (torch.arange(steps) < lengths).float()


def check_kl(fn, kind: str = "k1") -> bool:
    """Exercise ppo-ex1: a per-token KL estimate from the sampled tokens' log-probs.

    Args:
        fn: the learner's ``fn(logp, ref_logp)`` returning a tensor shaped like `logp`.
        kind: the estimator asked for, ``"k1"`` (``logp - ref_logp``) or ``"k3"``.
    """
    generator = torch.Generator().manual_seed(5)
    for _ in range(3):
        logp = -torch.rand(4, 7, generator=generator) * 4
        ref_logp = -torch.rand(4, 7, generator=generator) * 4  # above and below logp: k1 changes sign
        theirs = _call(fn, logp, ref_logp)
        if isinstance(theirs, Exception):
            return feedback("ppo-ex1", False, f"your function raised {theirs!r}")
        if not _close(theirs, ppo.kl_penalty(logp, ref_logp, kind)):
            hint = ("k1 is logp - ref_logp, per token (no sum, no mean)" if kind == "k1" else
                    "k3 is exp(r) - 1 - r with r = ref_logp - logp, per token")
            return feedback("ppo-ex1", False, hint)
    return feedback("ppo-ex1", True, "")


def check_gae(fn) -> bool:
    """Exercise ppo-ex2: generalised advantage estimation over a batch of responses.

    Args:
        fn: the learner's ``fn(rewards, values, gamma, lam, mask=None)`` returning
            ``(advantages, returns)``. It is called without a mask, then with right-padding masks
            (the padding filled with junk, which must change nothing).
    """
    generator = torch.Generator().manual_seed(7)
    for gamma, lam in ((1.0, 0.95), (0.9, 0.5), (1.0, 1.0)):
        rewards, values = torch.randn(5, 6, generator=generator), torch.randn(5, 6, generator=generator)
        for mask in (None, _prefix_mask(generator, 5, 6)):
            if mask is None:
                theirs = _call(fn, rewards, values, gamma, lam)
            else:
                junk = 100 * torch.randn(5, 6, generator=generator) * (1 - mask)
                theirs = _call(fn, rewards + junk, values - junk, gamma, lam, mask=mask)
            if isinstance(theirs, Exception):
                return feedback("ppo-ex2", False, f"your function raised {theirs!r}")
            if not (isinstance(theirs, (tuple, list)) and len(theirs) == 2):
                return feedback("ppo-ex2", False, "return a pair (advantages, returns)")
            advantages, returns = ppo.gae(rewards, values, gamma, lam, mask)
            keep = torch.ones_like(rewards) if mask is None else mask
            theirs = [torch.as_tensor(t).detach().float() for t in theirs]
            if theirs[0].shape != rewards.shape or theirs[1].shape != rewards.shape:
                return feedback("ppo-ex2", False, "advantages and returns are (batch, T), like rewards")
            if not _close(theirs[0] * keep, advantages * keep):
                where = "without a mask" if mask is None else "with a mask (junk after the last real token)"
                return feedback("ppo-ex2", False, f"advantages differ {where} at gamma={gamma}, lam={lam}: "
                                "go backwards, A_t = delta_t + gamma*lam*A_(t+1), bootstrap 0 after the end")
            if not _close(theirs[1] * keep, returns * keep):
                return feedback("ppo-ex2", False, "returns are advantages + values")
    return feedback("ppo-ex2", True, "")


def check_clipped_loss(fn, eps: float = 0.2) -> bool:
    """Chapter 5's in-text check (ppo-clip): the clipped loss ``mean(max(-A * r, -A * clip(r)))``.

    Compares the loss and its gradient with respect to ``logp_new`` on random tokens and on tokens
    built so that the clip binds for a positive advantage (ratio above ``1 + eps``) and for a
    negative one (ratio below ``1 - eps``), next to tokens where it must not bind.

    Args:
        fn: the learner's ``fn(logp_new, logp_old, advantages, eps)`` returning the scalar loss (or a
            tuple whose first element is the loss).
        eps: the clip range.
    """
    generator = torch.Generator().manual_seed(11)
    logp_old = -torch.rand(2, 4, generator=generator) * 3
    ratio = torch.tensor([[1.5, 0.5, 1.5, 0.5], [1.1, 0.9, 1.3, 0.7]])  # rows: binding / mixed
    advantage = torch.tensor([[1.0, -1.0, -1.0, 1.0], [0.5, -0.5, 2.0, -2.0]])
    cases = [(logp_old + ratio.log(), logp_old, advantage)]
    for _ in range(3):
        old = -torch.rand(4, 6, generator=generator) * 3
        new = old + 0.4 * torch.randn(4, 6, generator=generator)
        cases.append((new, old, torch.randn(4, 6, generator=generator)))
    for logp_new, logp_old, advantages in cases:
        ours_in, theirs_in = logp_new.clone().requires_grad_(), logp_new.clone().requires_grad_()
        ours = ppo.clipped_policy_loss(ours_in, logp_old, advantages, eps)[0]
        theirs = _call(fn, theirs_in, logp_old, advantages, eps)
        if isinstance(theirs, Exception):
            return feedback("ppo-clip", False, f"your function raised {theirs!r}")
        theirs = theirs[0] if isinstance(theirs, (tuple, list)) else theirs
        if not (torch.is_tensor(theirs) and theirs.dim() == 0 and _close(theirs, ours)):
            return feedback("ppo-clip", False, "the loss differs: ratio = exp(logp_new - logp_old), take the "
                            "elementwise max of -A*ratio and -A*clip(ratio, 1-eps, 1+eps), then the mean")
        no_gradient, wrong_gradient = ("the loss has no gradient: do not detach logp_new",
                                       "the loss matches but its gradient does not: clipped tokens must "
                                       "give zero gradient (clamp the ratio, do not detach it)")
        if hint := gradient_hint(theirs, ours, theirs_in, ours_in, no_gradient, wrong_gradient):
            return feedback("ppo-clip", False, hint)
    return feedback("ppo-clip", True, "")


def check_token_rewards(fn, kl_coef: float = 0.1) -> bool:
    """Exercise ppo-ex3: RLHF's per-token reward, ``-kl_coef * k1`` everywhere plus the score at the end.

    Called on right-padded batches whose padding holds junk log-probs (they must change nothing),
    with responses of every length from 1 token to the full width.

    Args:
        fn: the learner's ``fn(scores, logp, ref_logp, mask, kl_coef)`` returning a `(batch, T)`
            tensor of rewards (or a tuple whose first element is it), 0 on padding.
        kl_coef: beta.
    """
    generator = torch.Generator().manual_seed(13)
    for batch, steps in ((4, 6), (6, 3), (1, 1)):
        mask = _prefix_mask(generator, batch, steps)
        mask[0] = 1.0  # one full-width response
        logp = -torch.rand(batch, steps, generator=generator) * 3
        ref_logp = -torch.rand(batch, steps, generator=generator) * 3
        junk = 50 * torch.randn(batch, steps, generator=generator) * (1 - mask)
        scores = torch.randn(batch, generator=generator)
        theirs = _call(fn, scores, logp + junk, ref_logp - junk, mask, kl_coef)
        if isinstance(theirs, Exception):
            return feedback("ppo-ex3", False, f"your function raised {theirs!r}")
        theirs = theirs[0] if isinstance(theirs, (tuple, list)) else theirs
        ours, _ = ppo.token_rewards(scores, logp, ref_logp, mask, kl_coef)
        if not (torch.is_tensor(theirs) and theirs.shape == ours.shape):
            return feedback("ppo-ex3", False, f"return a {tuple(ours.shape)} tensor, one reward per token")
        if not _close(theirs * (1 - mask), torch.zeros_like(ours)):
            return feedback("ppo-ex3", False, "padding gets reward 0: multiply by the mask")
        if not _close(theirs, ours):
            return feedback("ppo-ex3", False, "every real token gets -kl_coef * (logp - ref_logp); the "
                            "score goes on the LAST REAL token (mask.sum(1) - 1), not the last column")
    return feedback("ppo-ex3", True, "")
