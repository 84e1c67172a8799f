"""PPO's formulas from scratch: the per-token reward, GAE, whitening and the clipped losses.

Introduced in chapter 5 ("RLHF with PPO"). TRL removed its `PPOTrainer` in 1.13, so this package
is the course's own PPO. It follows Huang et al., "The N implementation details of RLHF with PPO"
(2022) and TRL <= 1.12's PPO. Every tensor here is ``(batch, T)``: one row per rollout, one column
per response token, with a `mask` that is 1 on real tokens (up to and including the first EOS) and
0 on the padding after it.

* `kl_penalty`, `token_rewards`: the reward PPO maximises, ``-beta * KL_t`` at every token plus the
  reward model's score at the last one;
* `gae`, `whiten`: advantages and returns from those rewards and the value model's estimates;
* `clipped_policy_loss`, `clipped_value_loss`: the two PPO objectives, masked means over real tokens.

`config.PPOConfig` is the recipe, `trainer.PPOTrainer` the loop that runs these, and `stages` the
``ppo`` stage. Run it: ``gae(rewards, values, gamma=1.0, lam=0.95, mask=mask)``.
"""


from __future__ import annotations


import torch

KL_ESTIMATORS = ("k1", "k3")


def _mask_like(values, mask):
    """`mask` as a bool tensor shaped like `values` (all True when None)."""
    if mask is None:
        return torch.ones_like(values, dtype=torch.bool)
    if mask.shape != values.shape:
        raise ValueError(f"mask {tuple(mask.shape)} does not match values {tuple(values.shape)}")
    return mask.bool()


def _same_shape(**tensors):
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"shapes differ: {shapes}")


def masked_mean(values, mask=None):
    """The mean of `values` over the positions where `mask` is 1 (over all positions without a mask)."""
    mask = _mask_like(values, mask)
    if not mask.any():
        raise ValueError("the mask selects no position: nothing to average")
    return torch.where(mask, values, 0).sum() / mask.sum()


def whiten(values, mask=None, shift_mean=True):
    """Normalise `values` to mean 0 and standard deviation 1 over the masked positions.

    PPO whitens the advantages of a whole batch of rollouts before its epochs, so the step size does
    not depend on the reward's scale. Padding positions are returned as 0.

    Args:
        values: a tensor, e.g. `(batch, T)` advantages.
        mask: 1 where a value is real (default: everywhere).
        shift_mean: subtract the mean; with False the mean is kept and only the scale changes.

    Returns:
        A tensor shaped like `values`: ``(values - mean) / std`` (unbiased std) on real positions.
    """
    mask = _mask_like(values, mask)
    if mask.sum() < 2:
        raise ValueError("whitening needs at least two real values")
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask) * mask.sum() / (mask.sum() - 1)
    out = (values - mean) * torch.rsqrt(var + 1e-8)
    return torch.where(mask, out if shift_mean else out + mean, 0)


def kl_penalty(logp, ref_logp, kind="k1"):
    """A per-token estimate of KL(policy || reference) from the log-probs of the sampled tokens.

    The tokens were sampled from the policy, so each estimator's expectation is the true KL:

    * ``"k1"``: ``logp - ref_logp``. Unbiased, negative on some tokens. PPO uses it in the per-token
      reward (`token_rewards`) and the trainer logs its sum over a response as "kl", as TRL did.
    * ``"k3"``: ``exp(r) - 1 - r`` with ``r = ref_logp - logp``. Unbiased, never negative and lower in
      variance; GRPO (chapter 8) puts it in its loss.

    Args:
        logp: `(batch, T)` log-probs of the sampled tokens under the policy.
        ref_logp: the same tokens' log-probs under the frozen reference.
        kind: ``"k1"`` or ``"k3"``.

    Returns:
        A `(batch, T)` tensor of per-token KL estimates (padding is not masked here).
    """
    _same_shape(logp=logp, ref_logp=ref_logp)
    if kind == "k1":
        return logp - ref_logp
    if kind == "k3":
        r = ref_logp - logp
        return torch.expm1(r) - r
    raise ValueError(f"unknown KL estimator {kind!r}; expected one of {KL_ESTIMATORS}")


def token_rewards(scores, logp, ref_logp, mask, kl_coef, kind="k1"):
    """The per-token reward of RLHF: ``-kl_coef * KL_t`` on every real token, plus the sequence's
    score (the normalised reward-model score) on its last real token.

    Args:
        scores: `(batch,)` one score per rollout.
        logp, ref_logp: `(batch, T)` log-probs of the response tokens under policy and reference.
        mask: `(batch, T)` 1 on real response tokens (each row at least one), 0 on padding.
        kl_coef: beta, the weight of the KL penalty.
        kind: the KL estimator (`kl_penalty`).

    Returns:
        `(rewards, kl)`: both `(batch, T)`, 0 on padding.
    """
    mask = _mask_like(logp, mask)
    if scores.shape != (logp.shape[0],):
        raise ValueError(f"scores {tuple(scores.shape)} should be one per rollout, ({logp.shape[0]},)")
    last = mask.sum(1) - 1  # the last real token: the EOS, or the last token of a cut-off response
    if (last < 0).any():
        raise ValueError("every rollout needs at least one real response token")
    kl = torch.where(mask, kl_penalty(logp, ref_logp, kind), 0)
    rewards = -kl_coef * kl
    rewards[torch.arange(len(last), device=last.device), last] += scores
    return rewards, kl


def gae(rewards, values, gamma=1.0, lam=0.95, mask=None):
    """Generalised advantage estimation over a batch of responses.

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` and ``A_t = delta_t + gamma * lam * A_{t+1}``, computed
    backwards from the last token. After the last real token the value is 0 (the episode is over),
    and padding carries no reward, so padding changes nothing.

    Args:
        rewards: `(batch, T)` per-token rewards (`token_rewards`).
        values: `(batch, T)` the value model's estimate before each response token.
        gamma: discount (1 in RLHF: a response is short and only its end is scored).
        lam: GAE's lambda: 0 gives the one-step TD error, 1 the Monte-Carlo return minus V.
        mask: 1 on real tokens: ones then zeros in each row (padding after the EOS).

    Returns:
        `(advantages, returns)`, both `(batch, T)` and 0 on padding; ``returns = advantages + values``
        are the value model's regression targets.
    """
    _same_shape(rewards=rewards, values=values)
    if rewards.dim() != 2:
        raise ValueError(f"expected (batch, T) tensors, got shape {tuple(rewards.shape)}")
    if not (0 <= gamma <= 1 and 0 <= lam <= 1):
        raise ValueError(f"gamma ({gamma}) and lam ({lam}) must lie in [0, 1]")
    mask = _mask_like(rewards, mask)
    if (mask[:, 1:] > mask[:, :-1]).any():
        raise ValueError("each mask row must be ones then zeros (right padding after the response)")
    rewards, values = torch.where(mask, rewards, 0), torch.where(mask, values, 0)
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    return advantages, advantages + values


def clipped_policy_loss(logp_new, logp_old, advantages, eps=0.2, mask=None):
    """PPO's clipped surrogate loss, a masked mean over tokens of ``max(-A * ratio, -A * clip(ratio))``.

    ``ratio = exp(logp_new - logp_old)``. Once the ratio has moved past ``1 + eps`` (for A > 0) or
    below ``1 - eps`` (for A < 0), the clipped term is the larger one and is constant: that token
    gives no gradient, so one batch of rollouts cannot push the policy far.

    Args:
        logp_new: `(batch, T)` log-probs of the sampled tokens under the policy being trained.
        logp_old: the same under the policy that sampled them (no gradient).
        advantages: `(batch, T)` advantages (whitened).
        eps: the clip range.
        mask: 1 on real tokens.

    Returns:
        `(loss, clip_fraction, approx_kl)`: the scalar loss; the fraction of tokens whose clipped term
        was chosen (no gradient); ``0.5 * mean((logp_new - logp_old)^2)``, how far the policy moved.
    """
    _same_shape(logp_new=logp_new, logp_old=logp_old, advantages=advantages)
    mask = _mask_like(logp_new, mask)
    log_ratio = logp_new - logp_old
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - eps, 1 + eps)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped > unclipped).float(), mask)
        approx_kl = 0.5 * masked_mean(log_ratio ** 2, mask)
    return loss, clip_fraction, approx_kl


def clipped_value_loss(values_new, values_old, returns, eps=0.2, mask=None):
    """PPO's clipped value loss: ``0.5 * masked mean of max((v - R)^2, (clip(v, v_old +- eps) - R)^2)``.

    Args:
        values_new: `(batch, T)` the value model's current estimates.
        values_old: its estimates when the rollouts were made.
        returns: `(batch, T)` the targets from `gae`.
        eps: how far a value may move from `values_old` before its error stops shrinking the loss.
        mask: 1 on real tokens.

    Returns:
        `(loss, clip_fraction)`: the scalar loss and the fraction of tokens where the clipped error won.
    """
    _same_shape(values_new=values_new, values_old=values_old, returns=returns)
    mask = _mask_like(values_new, mask)
    clipped_values = values_old + torch.clamp(values_new - values_old, -eps, eps)
    unclipped_error = (values_new - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped_error, clipped_error), mask)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped_error > unclipped_error).float(), mask)
    return loss, clip_fraction


