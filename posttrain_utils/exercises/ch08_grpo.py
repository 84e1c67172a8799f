"""Checkers for the chapter 8 ("GRPO and verifiable rewards") exercises. Each prints a verdict and
returns a bool.

Introduced in chapter 8. Every checker calls the learner's function on inputs it builds itself (random
rewards and log-probs, replies to one-digit sum questions) and compares it with the course's own
(`posttrain_utils.grpo`), so a constant or a memorised number cannot pass. A learner's function that
raises gives a failed verdict naming the error, never a traceback.
"""

from __future__ import annotations

import random

import torch

from .. import grpo
from ..grpo.tasks import TRAIN_TEMPLATES
from ..evaluation.judgements import NUMBER_WORDS
from ..runtime.notebook import feedback
from .common import call as _call
from .common import close as _close
from .common import gradient_hint

ADVANTAGE_TOLERANCE = 1e-4  # grpo-ex1: absolute (and relative) tolerance on each advantage
_WORDS = {int(digits): word for word, digits in NUMBER_WORDS.items()}


def _which(theirs, candidates, default: str) -> str:
    """The hint of the first ``(hint, value)`` candidate that `theirs` equals, else `default`."""
    return next((hint for hint, value in candidates
                 if _close(theirs, value.detach(), atol=ADVANTAGE_TOLERANCE)), default)


# --- grpo-ex1: the group-relative advantage ---------------------------------------------------------

def _advantage_cases() -> list[tuple[torch.Tensor, int, bool]]:
    """``(rewards, group_size, scale)``: 0/1 rewards with all-0, all-1 and mixed groups, real-valued
    rewards, and groups whose spread is tiny (where the 1e-4 in the denominator shows), at group sizes
    2, 4 and 8."""
    generator = torch.Generator().manual_seed(8)
    binary = (torch.rand(32, generator=generator) < 0.5).float()
    binary[:4], binary[4:8], binary[8:12] = 1.0, 0.0, torch.tensor([1.0, 0.0, 0.0, 0.0])
    pairs = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.5, 0.25])
    real = torch.randn(24, generator=generator) * 2 + 0.5
    real[8:16] = 0.75  # one group of 8 with no spread (0.75 is exact: its mean is too)
    tiny = 0.5 + 0.01 * torch.randn(12, generator=generator)
    cases = []
    for rewards, group_size in ((binary, 4), (binary, 8), (pairs, 2), (real, 8), (real, 4), (tiny, 4)):
        cases += [(rewards, group_size, True), (rewards, group_size, False)]
    return cases


def _advantage_hint(theirs, rewards, group_size: int, scale: bool) -> str:
    """Name the likely mistake behind advantages that differ from `grpo.group_advantages`."""
    grouped = rewards.view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    where = f"(group_size={group_size}, scale={scale})"
    if not torch.isfinite(theirs).all():
        return (f"some advantages are nan or inf {where}: a group whose rewards are all equal has std 0; "
                f"add eps = {grpo.EPSILON} to the std (its advantages are then all 0)")
    strided = rewards.view(group_size, -1).T
    strided = strided - strided.mean(dim=1, keepdim=True)
    if scale:
        strided = strided / (rewards.view(group_size, -1).T.std(dim=1, keepdim=True) + grpo.EPSILON)
    candidates = [
        ("scale=False only subtracts the group mean; do not divide by the std", grpo.group_advantages(
            rewards, group_size, scale=True)) if not scale else
        ("scale=True also divides by the group's std (plus eps = 1e-4)", centred.flatten()),
        ("use the unbiased std (torch.std's default, which divides by group_size - 1)",
         (centred / (grouped.std(dim=1, unbiased=False, keepdim=True) + grpo.EPSILON)).flatten()),
        ("add eps = 1e-4 to the std itself, outside the square root",
         (centred / (grouped.var(dim=1, keepdim=True) + grpo.EPSILON).sqrt()).flatten()),
        ("add eps = 1e-4 to the std: groups with a tiny spread differ without it",
         (centred / grouped.std(dim=1, keepdim=True)).flatten()),
        ("the mean and std are per GROUP of group_size adjacent completions, not over the batch",
         (rewards - rewards.mean()) / ((rewards.std() + grpo.EPSILON) if scale else 1.0)),
        ("a prompt's group_size completions are ADJACENT: group with rewards.view(-1, group_size)",
         strided.T.flatten())]
    return _which(theirs, candidates, f"the advantages differ {where}: (reward - its group's mean), divided "
                  "by (the group's unbiased std + 1e-4) when scale is True")


def check_group_advantages(fn) -> bool:
    """Exercise grpo-ex1 (8.1): GRPO's group-relative advantage, from scratch.

    Compared with `grpo.group_advantages` (tolerance `ADVANTAGE_TOLERANCE`) on random 0/1 rewards
    with all-equal and mixed groups, real-valued rewards, groups with a tiny spread, ``scale`` True
    and False, and group sizes 2, 4 and 8.

    Args:
        fn: the learner's ``fn(rewards, group_size, scale=True)``, called with a 1-D float tensor of
            rewards (the ``group_size`` completions of each prompt adjacent), returning one advantage
            per completion, flat like `rewards` (a tensor, a list or a NumPy array).

    Returns:
        Whether every case matched.
    """
    for rewards, group_size, scale in _advantage_cases():
        ours = grpo.group_advantages(rewards, group_size, scale=scale)
        theirs = _call(fn, rewards.clone(), group_size, scale=scale)
        if isinstance(theirs, Exception):
            return feedback("grpo-ex1", False, f"your function raised {theirs!r} (group_size={group_size}, "
                            f"scale={scale})")
        theirs = _call(lambda: torch.as_tensor(theirs).detach().to(torch.float32))
        if isinstance(theirs, Exception):
            return feedback("grpo-ex1", False, "return the advantages as a tensor, a list or a NumPy array")
        if theirs.shape != ours.shape:
            return feedback("grpo-ex1", False, f"return one advantage per completion, shaped like rewards "
                            f"{tuple(ours.shape)}, not {tuple(theirs.shape)} (flatten the groups)")
        if not _close(theirs, ours, atol=ADVANTAGE_TOLERANCE):
            return feedback("grpo-ex1", False, _advantage_hint(theirs, rewards, group_size, scale))
    return feedback("grpo-ex1", True, "")


# --- grpo-ex2: the clipped loss and its three normalisations ----------------------------------------

def _loss_cases() -> list[tuple]:
    """``(logps, old_logps, advantages, mask, loss_type, kwargs)``: right-padded batches (padding
    holding junk log-probs), ratios inside and outside the clip range with advantages of both signs,
    each of the three loss types, epsilon 0.2 (the default, not passed) and 0.1, and for ``dr_grpo``
    a `max_completion_length` both left at its default (the padded width) and larger than it."""
    generator = torch.Generator().manual_seed(82)
    cases = []
    for i, (n, width) in enumerate(((6, 7), (4, 5), (8, 9))):
        lengths = torch.randint(1, width + 1, (n, 1), generator=generator)
        lengths[0], lengths[1] = width, 1  # one full-width completion, one of a single token
        mask = (torch.arange(width) < lengths).float()
        old = -3 * torch.rand(n, width, generator=generator)
        logps = old + 0.5 * torch.randn(n, width, generator=generator)  # ratios from about 0.2 to 5
        logps = logps + 2 * torch.rand(n, width, generator=generator) * (1 - mask)  # junk on padding
        advantages = torch.randn(n, generator=generator)
        if i % 2:
            mask = mask.long()  # as TRL's completion_mask
        for loss_type in grpo.LOSS_TYPES:
            cases.append((logps, old, advantages, mask, loss_type, {}))
        cases.append((logps, old, advantages, mask, "dr_grpo", dict(max_completion_length=width + 3)))
        cases.append((logps, old, advantages, mask, ("grpo", "dapo", "dr_grpo")[i], dict(epsilon=0.1)))
    return cases


def _loss_hint(theirs, logps, old, advantages, mask, loss_type: str, kwargs: dict) -> str:
    """Name the likely mistake behind a loss that differs from `grpo.grpo_loss`."""
    epsilon, length = kwargs.get("epsilon", 0.2), kwargs.get("max_completion_length")
    width = logps.shape[1]

    def ours(loss_type=loss_type, logps=logps, mask=mask, advantages=advantages, epsilon=epsilon,
             length=length):
        return grpo.grpo_loss(logps, old, advantages, mask, loss_type, epsilon=epsilon,
                              max_completion_length=length).detach()

    where = f"(loss_type={loss_type!r}, epsilon={epsilon}, max_completion_length={length})"
    normalisers = {"grpo": "average each completion's token losses over its own length, then average "
                           "the completions",
                   "dr_grpo": "sum the token losses and divide by n * max_completion_length (the padded "
                              "width when it is None)",
                   "dapo": "sum the token losses and divide by the number of real tokens in the batch"}
    candidates = [(f"that is the {other!r} normalisation; {loss_type!r} must {normalisers[loss_type]}",
                   ours(other)) for other in grpo.LOSS_TYPES if other != loss_type]
    if loss_type == "dr_grpo" and length:
        candidates.append((f"divide by n * max_completion_length ({length}), not by the padded width "
                           f"({width})", ours(length=width)))
    candidates += [
        ("the loss is MINUS the clipped objective: -min(ratio * A, clip(ratio) * A)", -ours()),
        ("clip the ratio: per token -min(ratio * A, clip(ratio, 1 - epsilon, 1 + epsilon) * A)",
         ours(epsilon=1e9)),
        (f"use the epsilon you are given ({epsilon})", ours(epsilon=0.2 if epsilon != 0.2 else 0.1)),
        ("ignore the padding: multiply the token losses by the mask (padded tokens hold junk)",
         ours(mask=torch.ones_like(logps))),
        ("the ratio is exp(logps - old_logps), not its inverse", ours(logps=2 * old - logps))]
    return _which(theirs, candidates, f"the loss differs {where}: per token -min(ratio * A, clip(ratio, "
                  f"1 - epsilon, 1 + epsilon) * A), then {normalisers[loss_type]}")


def check_grpo_loss(fn) -> bool:
    """Exercise grpo-ex2 (8.2): GRPO's clipped loss with its three length normalisations, from scratch.

    Compared with `grpo.grpo_loss` (β = 0), value and gradient with respect to `logps`, on random
    right-padded batches whose padding holds junk log-probs, with ratios inside and outside the clip
    range, advantages of both signs, each loss type, two epsilons, and for ``"dr_grpo"`` a
    ``max_completion_length`` left at None (the padded width) and one larger than the width.

    Args:
        fn: the learner's ``fn(logps, old_logps, advantages, mask, loss_type, epsilon=0.2,
            max_completion_length=None)``: `logps` and `old_logps` are ``(n, T)`` token log-probs
            (the first with gradients), `advantages` ``(n,)``, `mask` ``(n, T)`` (1 on completion
            tokens, 0 on padding, float or long), `loss_type` ``"grpo"``, ``"dr_grpo"`` or ``"dapo"``.
            Returns the scalar loss as a tensor that back-propagates to `logps` (or a tuple whose
            first element is it).

    Returns:
        Whether every case matched, in value and in gradient.
    """
    for logps, old, advantages, mask, loss_type, kwargs in _loss_cases():
        ours_in, theirs_in = logps.clone().requires_grad_(), logps.clone().requires_grad_()
        ours = grpo.grpo_loss(ours_in, old, advantages, mask, loss_type,
                              epsilon=kwargs.get("epsilon", 0.2),
                              max_completion_length=kwargs.get("max_completion_length"))
        theirs = _call(fn, theirs_in, old.clone(), advantages.clone(), mask.clone(), loss_type, **kwargs)
        if isinstance(theirs, Exception):
            return feedback("grpo-ex2", False, f"your function raised {theirs!r} (loss_type={loss_type!r})")
        theirs = theirs[0] if isinstance(theirs, (tuple, list)) and theirs else theirs
        if not (torch.is_tensor(theirs) and theirs.dim() == 0):
            return feedback("grpo-ex2", False, "return the loss as a scalar tensor (no .item(), no float())")
        if not _close(theirs, ours):
            return feedback("grpo-ex2", False, _loss_hint(theirs.detach(), logps, old, advantages, mask,
                                                          loss_type, kwargs))
        no_gradient, wrong_gradient = (
            "the loss has no gradient: do not detach logps (and do not rebuild the loss from numbers)",
            f"the loss matches but its gradient with respect to logps does not (loss_type={loss_type!r}): "
            "clamp the ratio (do not detach it), so that only clipped tokens give zero gradient")
        hint = _call(gradient_hint, theirs, ours, theirs_in, ours_in, no_gradient, wrong_gradient)
        if isinstance(hint, Exception):
            return feedback("grpo-ex2", False, f"back-propagating your loss raised {hint!r}")
        if hint:
            return feedback("grpo-ex2", False, hint)
    return feedback("grpo-ex2", True, "")


# --- grpo-ex3: a verifier that resists reward hacking -----------------------------------------------

def _sums(rng: random.Random, count: int) -> list[tuple[int, int]]:
    """`count` distinct one-digit sums ``(a, b)`` with ``1 <= a, b``, ``a != b`` and a ``(a - 1, b + 1)``
    that is another sum (for the "same total, other numbers" case)."""
    pairs = [(a, b) for a in range(2, 10) for b in range(1, 9) if a != b and a != b + 1]
    return rng.sample(pairs, count)


def verifier_cases(seed: int = 8) -> list[dict]:
    """The bank exercise grpo-ex3 is checked on: replies to one-digit sum questions.

    For each of a few sums (asked in the training wordings), correct replies in several forms (digits,
    the question's numbers echoed, an equation, the number as a word, the answer twice) and hacks: many
    numbers listed, hedges and self-corrections naming two answers, a wrong number, the answer only
    inside a bigger number, a negated answer, only the question's numbers echoed, a different sum with
    the same total, an empty reply, and the right number glued to letters ("7th", "abc7def").

    Args:
        seed: picks the sums and wordings.

    Returns:
        Dicts with ``question``, ``reply``, ``answer`` (a string), ``why`` (what the reply does) and
        ``truth``: whether `grpo.strict_reward` gives the reply 1.0. The labels are computed, never
        typed.
    """
    rng = random.Random(seed)
    out = []
    for (a, b), template in zip(_sums(rng, 3), rng.sample(TRAIN_TEMPLATES, 3)):
        s, question = a + b, template.format(a=a, b=b)
        rows = [(f"{s}", "the sum alone"), (f"The answer is {s}.", "the sum in a sentence"),
                (f"{a} plus {b} is {s}.", "the question's numbers echoed, then the sum"),
                (f"{b} + {a} = {s}", "an equation, the operands swapped"),
                (f"It is {_WORDS[s]}.", "the sum as a word"), (f"{s}. Yes, {s}!", "the same sum twice"),
                (" ".join(str(i) for i in range(19)), "every number from 0 to 18"),
                (f"{s - 1}, {s} or {s + 1}", "three candidates listed"),
                (f"It is {s}, or maybe {s + 1}.", "a hedge between two answers"),
                (f"Maybe {s + 1} or {s}.", "a hedge ending on the sum"),
                (f"It is {s + 2}. Actually no, {s}.", "a self-correction: two answers"),
                (f"The answer is {s + 1}.", "a wrong number"),
                (f"{s}{s}", "the sum only inside a bigger number"),
                (f"1{s}", "the sum inside a bigger number"),
                (f"It is not {s}.", "the sum negated"), (f"{a} and {b}.", "only the question's numbers"),
                (f"{a - 1} plus {b + 1} is {s}.", "a different sum with the same total"),
                ("", "an empty reply")]
        glued = [(f"{s}th", "the sum glued to letters"), (f"abc{s}def", "the sum inside a word")]
        for reply, why in rows + glued:
            truth = grpo.strict_reward([question], [reply], [str(s)])[0] == 1.0
            out.append(dict(question=question, reply=reply, answer=str(s), why=why, truth=truth))
    return out


def check_verifier(fn) -> bool:
    """Exercise grpo-ex3 (8.3): a verifier for sum questions that a policy cannot hack.

    Called on every case of `verifier_cases` and compared with `grpo.strict_reward` (accuracy 1.0
    required): a reply earns the reward when it commits to exactly one number, not negated, and that
    number is the sum; the question's own numbers echoed back are not answers.

    Args:
        fn: the learner's ``fn(question, reply, answer)``: the question and the reply as strings, the
            right sum as a string (``"7"``); returns True when the reply earns the reward, else False.

    Returns:
        Whether every case was judged as `grpo.strict_reward` judges it.
    """
    cases = verifier_cases()
    wrong = []
    for case in cases:
        theirs = _call(fn, case["question"], case["reply"], case["answer"])
        if isinstance(theirs, Exception):
            return feedback("grpo-ex3", False, f"your function raised {theirs!r} on the reply "
                            f"{case['reply']!r} to {case['question']!r}")
        valid = _call(lambda: theirs is not None and not isinstance(theirs, str) and theirs in (True, False))
        if valid is not True:
            return feedback("grpo-ex3", False, f"return True or False, got {theirs!r}")
        if bool(theirs) != case["truth"]:
            wrong.append(case)
    if wrong:
        case = wrong[0]
        verdict = "earns the reward" if case["truth"] else "must earn nothing"
        return feedback("grpo-ex3", False, f"{len(wrong)} of {len(cases)} replies judged wrongly, e.g. to "
                        f"{case['question']!r} (answer {case['answer']}) the reply {case['reply']!r} "
                        f"({case['why']}) {verdict}")
    return feedback("grpo-ex3", True, "")
