"""The ``ppo-hack`` stage: chapter 5's PPO with the KL penalty removed, for the reward-hacking lab.

Introduced in chapter 5 ("RLHF with PPO"). It is `ppo.train` with one change of recipe: the
profile's ``ppo_hack`` budget (more rollouts per step, a larger learning rate) laid over its ``ppo``
budget, and ``kl_coef=0``, so nothing holds the policy near the SFT model. Training it as a cached
stage keeps the chapter within its time budget; the chapter reads the log history it writes, as it
does for the ``ppo`` stage.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from . import ppo


def hack_profile(profile):
    """`profile` with its ``ppo`` budget replaced by the reward-hacking recipe.

    Args:
        profile: the run profile; it needs ``ppo`` and ``ppo_hack`` budgets.

    Returns:
        A copy of `profile` whose ``ppo`` budget is ``ppo``, updated with ``ppo_hack`` and
        ``kl_coef=0``; the original is not changed.
    """
    budget = {**profile.budget("ppo"), **profile.budget("ppo_hack"), "kl_coef": 0.0}
    return dataclasses.replace(profile, budgets={**profile.budgets, "ppo": budget})


def train(profile, output_dir: str | Path, sft: str | Path, reward: str | Path):
    """Train the ``ppo-hack`` stage: `ppo.train` under `hack_profile`.

    Args:
        profile: the run profile.
        output_dir: the trainer's scratch folder (``log_history.json`` is written there).
        sft: the folder of the upstream ``sft`` stage.
        reward: the folder of the upstream ``reward`` stage.

    Returns:
        `(policy, tokenizer)` after training.
    """
    return ppo.train(hack_profile(profile), output_dir, sft, reward)
