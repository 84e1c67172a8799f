"""GRPO from scratch: the group-relative advantage, the clipped loss and its length normalisations,
and the course's `GRPOConfig` recipe.

Introduced in chapter 8 ("GRPO and verifiable rewards"). GRPO (Shao et al. 2024) samples a *group*
of completions per prompt and uses each completion's reward relative to its group as the
advantage, so it needs no value model. The reward here is a program: the tiny world's one-digit
sums are checked exactly (`grpo.verifiers.strict_reward`; `lenient_reward` there is the
deliberately flawed verifier of the chapter's reward-hacking lesson). The tasks and held-out sets live in `grpo.tasks`, the cached
stages in `grpo.stages`.

Three ways to turn per-token losses into one number (`token_weights`), as TRL names them:

* ``"grpo"``: each completion's token losses are averaged over its own length ``|o_i|``, then
  the completions are averaged. A token of a long reply weighs less than a token of a short one.
* ``"dr_grpo"`` (Liu et al. 2025, "Understanding R1-Zero-like training"): token losses are summed
  and divided by a constant, (completions x ``max_completion_length``); used with
  ``scale_rewards="none"`` (no division by the group's std).
* ``"dapo"`` (Yu et al. 2025; TRL's default): token losses are averaged over all tokens of the
  batch, so every token weighs the same.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from pathlib import Path


LOSS_TYPES = ("grpo", "dr_grpo", "dapo")
EPSILON = 1e-4  # TRL's: advantages = (r - mean) / (std + 1e-4)


def _grouped(rewards, group_size: int):
    import torch

    rewards = torch.as_tensor(rewards, dtype=torch.float32).flatten()
    try:
        group_size = operator.index(group_size)
    except TypeError:
        raise ValueError(f"group_size must be an int >= 2, got {group_size!r}") from None
    if group_size < 2:
        raise ValueError(f"group_size must be an int >= 2, got {group_size!r}")
    if rewards.numel() == 0 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    return rewards.view(-1, group_size)


def group_advantages(rewards, group_size: int, scale: bool = True, eps: float = EPSILON):
    """GRPO's advantage: each reward minus its group's mean, divided by the group's std when `scale`.

    Args:
        rewards: one reward per completion, the `group_size` completions of a prompt adjacent (as
            `GRPOTrainer` orders them).
        group_size: completions per prompt (`GRPOConfig.num_generations`).
        scale: divide by the group's (unbiased) standard deviation plus `eps` (``scale_rewards=
            "group"``); False is Dr. GRPO's ``scale_rewards="none"``.
        eps: added to the std, TRL's 1e-4.

    Returns:
        A float tensor of advantages, shaped like the flattened `rewards`.
    """
    grouped = _grouped(rewards, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (grouped.std(dim=1, keepdim=True) + eps)
    return centred.flatten()


def zero_spread_fraction(rewards, group_size: int) -> float:
    """The fraction of groups whose completions all got the same reward: their advantages are all
    zero, so they give no gradient (see `group_advantages`)."""
    grouped = _grouped(rewards, group_size)
    return float((grouped.max(dim=1).values == grouped.min(dim=1).values).float().mean())


def token_weights(lengths: Sequence[int], loss_type: str = "dapo", max_completion_length: int | None = None) -> list[float]:
    """The weight each loss gives to *one token* of each completion in a batch.

    Args:
        lengths: the completions' lengths in tokens (all > 0).
        loss_type: ``"grpo"`` (1 / (n |o_i|)), ``"dr_grpo"`` (1 / (n L), L =
            `max_completion_length`) or ``"dapo"`` (1 / sum of all lengths); n completions.
        max_completion_length: L, needed by ``"dr_grpo"``.

    Returns:
        One weight per completion; a completion's gradient is its advantage times this weight,
        summed over its tokens.
    """
    lengths = [int(n) for n in lengths]
    if not lengths or min(lengths) < 1:
        raise ValueError(f"lengths must be positive token counts, got {lengths}")
    n = len(lengths)
    if loss_type == "grpo":
        return [1.0 / (n * length) for length in lengths]
    if loss_type == "dr_grpo":
        if not max_completion_length or max_completion_length < max(lengths):
            raise ValueError("dr_grpo needs max_completion_length >= every length, got "
                             f"{max_completion_length!r}")
        return [1.0 / (n * max_completion_length)] * n
    if loss_type == "dapo":
        return [1.0 / sum(lengths)] * n
    raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {LOSS_TYPES}")


def grpo_loss(logps, old_logps, advantages, mask, loss_type: str = "dapo", epsilon: float = 0.2,
              max_completion_length: int | None = None):
    """GRPO's clipped surrogate loss (β = 0), aggregated as `loss_type` says.

    Per token, ``-min(ratio * A, clip(ratio, 1 - epsilon, 1 + epsilon) * A)`` with ``ratio =
    exp(logps - old_logps)`` and A the completion's advantage; then `token_weights`.

    Args:
        logps: (n, T) log-probabilities of the sampled tokens under the policy being trained.
        old_logps: (n, T) the same under the policy that sampled them (detached).
        advantages: (n,) one advantage per completion (`group_advantages`).
        mask: (n, T) 1 for completion tokens, 0 for padding.
        loss_type: ``"grpo"``, ``"dr_grpo"`` or ``"dapo"``.
        epsilon: the clipping range.
        max_completion_length: the padded length L for ``"dr_grpo"`` (default: T).

    Returns:
        The scalar loss.
    """
    import torch

    mask = mask.to(logps.dtype)
    if logps.shape != old_logps.shape or logps.shape != mask.shape or advantages.shape != logps.shape[:1]:
        raise ValueError(f"shapes differ: logps {tuple(logps.shape)}, old_logps {tuple(old_logps.shape)}, "
                         f"mask {tuple(mask.shape)}, advantages {tuple(advantages.shape)}")
    ratio = torch.exp(logps - old_logps)
    adv = advantages.unsqueeze(1)
    per_token = -torch.min(ratio * adv, torch.clamp(ratio, 1 - epsilon, 1 + epsilon) * adv)
    lengths = mask.sum(dim=1)
    if loss_type == "grpo":
        return ((per_token * mask).sum(1) / lengths.clamp(min=1)).mean()
    if loss_type == "dr_grpo":
        length = max_completion_length or logps.shape[1]
        if length < logps.shape[1]:
            raise ValueError(f"max_completion_length {length} is shorter than the batch's {logps.shape[1]} tokens")
        return (per_token * mask).sum() / (logps.shape[0] * length)
    if loss_type == "dapo":
        return (per_token * mask).sum() / lengths.sum().clamp(min=1)
    raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {LOSS_TYPES}")


def grpo_config(profile, output_dir: str | Path, loss_type: str = "dr_grpo", **overrides):
    """The course's GRPO recipe as a TRL `GRPOConfig`.

    The profile's ``grpo`` budget (steps, prompts per step, completions per prompt, learning
    rate), β 0 (no reference model), temperature 1, the profile's seed and precision, logging
    every step. ``loss_type="dr_grpo"`` also sets ``scale_rewards="none"``, as Dr. GRPO does.

    Args:
        profile: the run profile (`runtime.profiles.Profile`).
        output_dir: where the trainer writes (use `runtime.checkpoints.run_dir`).
        loss_type: ``"grpo"``, ``"dr_grpo"`` or ``"dapo"``.
        **overrides: replace any field, e.g. ``beta=0.04``.
    """
    from trl import GRPOConfig

    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {LOSS_TYPES}")
    budget = profile.budget("grpo")
    prompts, generations = budget.pop("prompts_per_step"), budget.pop("num_generations")
    kwargs = dict(profile.trainer_kwargs(), **budget)
    kwargs.update(output_dir=str(output_dir), per_device_train_batch_size=prompts * generations,
                  num_generations=generations, beta=0.0, temperature=1.0, loss_type=loss_type,
                  scale_rewards="none" if loss_type == "dr_grpo" else "group", logging_steps=1,
                  log_completions=False)
    kwargs.update(overrides)
    return GRPOConfig(**kwargs)
