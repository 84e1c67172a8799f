"""The course's PPO recipe: `PPOConfig` and `ppo_config(profile)`.

Introduced in chapter 5 ("RLHF with PPO"). `PPOConfig` holds every knob of `trainer.PPOTrainer`
(learning rates, the KL coefficient and estimator, rollouts, epochs, minibatches, GAE, clipping);
`ppo_config` fills it from a profile's ``ppo`` budget and seed. Run it:
``PPOTrainer(ppo_config(profile), policy, ref_policy, value_model, tokenizer, reward_fn, prompts)``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .losses import KL_ESTIMATORS

@dataclass
class PPOConfig:
    """The course's PPO recipe. Defaults are those of the tiny-scale prototype (course plan).

    Args:
        learning_rate: the policy's AdamW learning rate (TRL uses 3e-6 on larger models).
        value_learning_rate: the value model's learning rate.
        kl_coef: beta, the weight of the per-token KL penalty to the reference (0.05-0.1).
        kl_estimator: the KL estimator in the reward (`kl_penalty`): ``"k1"`` or ``"k3"``.
        temperature: sampling temperature; log-probs are always recomputed at the same temperature.
        rollouts_per_iteration: responses sampled per iteration (one prompt each).
        num_ppo_epochs: passes over one iteration's rollouts.
        num_mini_batches: minibatches per pass (shuffled each pass).
        gamma, lam: GAE's discount and lambda.
        cliprange: the policy loss's epsilon.
        cliprange_value: the value loss's epsilon.
        vf_coef: the value loss's weight in the total loss.
        max_new_tokens: the longest response.
        missing_eos_penalty: subtracted from the normalised score of a response that never ends.
        max_grad_norm: gradient-norm clipping, per model.
        micro_batch_size: rollouts per forward and backward pass, for memory only (the gpu
            profile's SmolLM2 needs it on a 16 GB GPU): each minibatch's gradient is summed over
            micro-batches weighted by their share of its tokens, the same loss up to float
            rounding. ``None``: a whole minibatch (and all rollouts when scoring them) at once.
        seed: seeds sampling, prompt order and minibatches (a stage passes the profile's seed).
    """

    learning_rate: float = 2e-5
    value_learning_rate: float = 1e-4
    kl_coef: float = 0.1
    kl_estimator: str = "k1"
    temperature: float = 1.0
    rollouts_per_iteration: int = 64
    num_ppo_epochs: int = 4
    num_mini_batches: int = 2
    gamma: float = 1.0
    lam: float = 0.95
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    max_new_tokens: int = 48
    missing_eos_penalty: float = 1.0
    max_grad_norm: float = 1.0
    micro_batch_size: int | None = None
    seed: int = 0

    def __post_init__(self):
        positive = ("learning_rate", "value_learning_rate", "temperature", "rollouts_per_iteration",
                    "num_ppo_epochs", "num_mini_batches", "cliprange", "cliprange_value", "max_new_tokens",
                    "max_grad_norm")
        bad = [f"{name}={getattr(self, name)}" for name in positive if not getattr(self, name) > 0]
        bad += [f"{name}={getattr(self, name)}" for name in ("kl_coef", "vf_coef", "missing_eos_penalty")
                if getattr(self, name) < 0]
        bad += [f"{name}={getattr(self, name)}" for name in ("gamma", "lam")
                if not 0 <= getattr(self, name) <= 1]
        micro = self.micro_batch_size
        if micro is not None and not (isinstance(micro, int) and micro > 0):
            bad.append(f"micro_batch_size={micro}")
        if bad:
            raise ValueError(f"invalid PPOConfig values: {', '.join(bad)}")
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"kl_estimator {self.kl_estimator!r}: expected one of {KL_ESTIMATORS}")
        if self.rollouts_per_iteration % self.num_mini_batches:
            raise ValueError(f"rollouts_per_iteration ({self.rollouts_per_iteration}) must split evenly "
                             f"into num_mini_batches ({self.num_mini_batches})")


def ppo_config(profile, **overrides) -> PPOConfig:
    """The course's recipe for `profile`: its ``ppo`` budget (without ``iterations``) and its seed."""
    budget = profile.budget("ppo")
    budget.pop("iterations", None)
    known = {f.name for f in fields(PPOConfig)}
    unknown = sorted(set(budget) - known)
    if unknown:
        raise ValueError(f"profile {profile.name!r}: ppo budget has unknown keys {unknown}")
    return PPOConfig(**{**budget, "seed": profile.seed, **overrides})
