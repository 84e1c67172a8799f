"""Chapter 4's stage: ``reward``, the Bradley-Terry reward model (`reward.bradley_terry.train`).

Introduced in chapter 4 ("Reward modelling"); loaded as a sequence classifier.
"""

from __future__ import annotations

from ..runtime.graph import Stage

STAGES = (
    Stage("reward", module="posttrain_utils.reward.bradley_terry", chapter=4, upstream=("sft",),
          data_files=("preference_train",), budget="reward", loader="load_reward_model"),
)
