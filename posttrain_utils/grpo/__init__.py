"""Chapter 8's method: GRPO and verifiable rewards.

The learner's names are re-exported here (``from posttrain_utils import grpo``), so a notebook
reads e.g. ``grpo.group_advantages``. Modules:

    verifiers  `strict_reward` and the flawed `lenient_reward`
    loss       group advantages, the loss's length normalisations, `grpo_config`
    tasks      the sums, held-out prompts and `sums_accuracy`
    stages     the ``grpo`` and ``grpo-variants`` stages
"""

from __future__ import annotations

from ..evaluation.judgements import question_text, reply_text
from .loss import (EPSILON, LOSS_TYPES, group_advantages, grpo_config, grpo_loss, token_weights,
                   zero_spread_fraction)
from .verifiers import lenient_reward, numbers_in, strict_reward

__all__ = ["EPSILON", "LOSS_TYPES", "group_advantages", "grpo_config", "grpo_loss",
           "lenient_reward", "numbers_in", "question_text", "reply_text", "strict_reward",
           "token_weights", "zero_spread_fraction"]
