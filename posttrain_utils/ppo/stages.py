"""Chapter 5's stages: ``ppo`` and ``ppo-hack``, the SFT model tuned against the reward model.

Introduced in chapter 5 ("RLHF with PPO"). `train` is the ``ppo`` stage: the policy and its frozen
reference start from the SFT model, the value model from the reward model, and `trainer.PPOTrainer`
runs the profile's ``ppo`` budget (`config.ppo_config`). `train_hack` is the ``ppo-hack`` stage of
the reward-hacking lab: the same function with one change of recipe, `hack_profile` (the
``ppo_hack`` budget laid over ``ppo``, and ``kl_coef=0``, so nothing holds the policy near the SFT
model). Both write their log history to ``log_history.json`` in their run folder, which the chapter
reads. ``checkpoints.get("ppo", profile)`` trains the stage on first use.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import asdict
from pathlib import Path

from ..runtime.graph import Stage
from .config import ppo_config

DATA_FILES = ("prompts_train",)  # what the ppo stage reads


def train(profile, output_dir: str | Path, sft: str | Path, reward: str | Path):
    """Train the ``ppo`` stage: the SFT model optimised against the reward model with PPO.

    The reference is a frozen copy of the SFT model and the value model a copy of the reward model
    (its backbone and score head). The profile's ``ppo`` budget gives ``iterations`` and `PPOConfig`
    fields; the log history is written to ``output_dir/log_history.json``.

    Args:
        profile: the run profile.
        output_dir: the trainer's scratch folder.
        sft: the folder of the upstream ``sft`` stage.
        reward: the folder of the upstream ``reward`` stage.

    Returns:
        `(policy, tokenizer)` after training.
    """
    from ..data.loading import load_records
    from ..runtime.models import load_model, load_reward_model
    from ..reward.overoptimization import rollout_metrics
    from .trainer import PPOTrainer
    from ..reward.bradley_terry import score
    from ..runtime.profiles import seed_everything

    seed_everything(profile.seed)
    iterations = profile.budget("ppo").get("iterations")
    if not isinstance(iterations, int) or iterations < (0 if profile.placebo else 1):
        raise ValueError(f"profile {profile.name!r}: the ppo budget needs a positive int 'iterations'")
    config = ppo_config(profile)
    policy, tokenizer = load_model(sft, profile)
    ref_policy = copy.deepcopy(policy)
    reward_model, reward_tokenizer = load_reward_model(reward, profile)
    reward_model.eval().requires_grad_(False)
    value_model = copy.deepcopy(reward_model).requires_grad_(True)

    def reward_fn(prompts, replies):
        return score(reward_model, reward_tokenizer, prompts, replies)

    records = load_records(DATA_FILES[0])
    trainer = PPOTrainer(config, policy, ref_policy, value_model, tokenizer, reward_fn,
                         [record["prompt"] for record in records], metrics_fn=rollout_metrics(records))
    history = trainer.train(iterations)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    (Path(output_dir) / "log_history.json").write_text(json.dumps({"config": asdict(config),
                                                                    "history": history}, indent=1))
    return trainer.policy, tokenizer


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


def train_hack(profile, output_dir: str | Path, sft: str | Path, reward: str | Path):
    """Train the ``ppo-hack`` stage: `train` under `hack_profile`.

    Args:
        profile: the run profile.
        output_dir: the trainer's scratch folder (``log_history.json`` is written there).
        sft: the folder of the upstream ``sft`` stage.
        reward: the folder of the upstream ``reward`` stage.

    Returns:
        `(policy, tokenizer)` after training.
    """
    return train(hack_profile(profile), output_dir, sft, reward)


STAGES = (
    Stage("ppo", module=__name__, chapter=5, upstream=("sft", "reward"),
          data_files=DATA_FILES, budget="ppo"),
    Stage("ppo-hack", module=__name__, chapter=5, upstream=("sft", "reward"), train="train_hack",
          data_files=DATA_FILES, budget=("ppo", "ppo_hack")),
)
