"""Chapter 5's method: RLHF with PPO, from scratch.

The learner's names are re-exported here (``from posttrain_utils import ppo``), so a notebook
reads e.g. ``ppo.gae``. Modules:

    losses   the per-token reward, GAE, whitening, the clipped policy and value losses
    config   `PPOConfig` and `ppo_config(profile)`
    trainer  `PPOTrainer`: rollouts, advantages and clipped updates
    stages   the ``ppo`` and ``ppo-hack`` stages
"""

from __future__ import annotations

from .config import PPOConfig, ppo_config
from .losses import (KL_ESTIMATORS, clipped_policy_loss, clipped_value_loss, gae, kl_penalty,
                     masked_mean, token_rewards, whiten)
from .stages import DATA_FILES, hack_profile, train, train_hack
from .trainer import LOG_KEYS, PPOTrainer, ValueHead

__all__ = ["DATA_FILES", "KL_ESTIMATORS", "LOG_KEYS", "PPOConfig", "PPOTrainer", "ValueHead",
           "clipped_policy_loss", "clipped_value_loss", "gae", "hack_profile", "kl_penalty",
           "masked_mean", "ppo_config", "token_rewards", "train", "train_hack", "whiten"]
