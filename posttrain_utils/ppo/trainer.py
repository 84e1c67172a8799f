"""The course's PPO trainer: rollouts, rewards, advantages and clipped updates, one iteration at a time.

Introduced in chapter 5 ("RLHF with PPO"), on top of the formulas in `ppo`. One iteration (`step`):

1. draw `rollouts_per_iteration` prompts, left-pad them and sample one response each at the config's
   temperature (no top-k, no top-p), then cut every response after its first EOS (`truncate_at_eos`);
2. score the replies with `reward_fn`, normalise the scores with a mean and std measured once, on
   the first batch (the initial policy), and subtract `missing_eos_penalty` where no EOS came;
3. recompute the log-probs under policy and reference (`response_logprobs`: logits divided by the
   temperature, position ids from the attention mask) and the values; then the per-token rewards,
   GAE advantages (whitened over the batch) and returns;
4. `num_ppo_epochs` passes over `num_mini_batches` shuffled minibatches: clipped policy loss plus
   `vf_coef` times the clipped value loss, gradient norms clipped, one AdamW step per model.
   With `micro_batch_size` set, steps 3 and 4 run that many rollouts per pass and each minibatch's
   gradient is accumulated over its micro-batches (memory only: the same update up to rounding).

Policy and value model stay in eval mode throughout, so dropout is off (gradients flow regardless).

Run it::

    trainer = PPOTrainer(PPOConfig(), policy, ref_policy, value_model, tokenizer, reward_fn, prompts)
    history = trainer.train(iterations=10)  # one dict per iteration, keys in LOG_KEYS
"""

from __future__ import annotations

import math
import time
from collections import defaultdict

import torch
from torch import nn

from .config import PPOConfig
from ..evaluation.rollouts import position_ids_from, response_logprobs, sample_responses
from .losses import clipped_policy_loss, clipped_value_loss, gae, masked_mean, token_rewards, whiten

LOG_KEYS = ("iteration", "reward_raw", "reward_normalised", "no_eos_fraction", "kl", "entropy",
            "response_length", "policy_loss", "clip_fraction", "approx_kl", "value_loss",
            "value_clip_fraction", "seconds")


def entropy_from_logits(logits):
    """Entropy of each position's next-token distribution, `(batch, T, vocab)` -> `(batch, T)`."""
    return torch.logsumexp(logits, -1) - (logits.softmax(-1) * logits).sum(-1)


class ValueHead(nn.Module):
    """The value model: a transformer backbone and a linear head giving one value per position.

    Args:
        backbone: a transformers base model returning `last_hidden_state` (e.g. a `LlamaModel`).
        head: an `nn.Linear` with one output.
    """

    def __init__(self, backbone: nn.Module, head: nn.Linear):
        super().__init__()
        if not isinstance(head, nn.Linear) or head.out_features != 1:
            raise ValueError(f"the value head must be an nn.Linear with one output, got {head}")
        self.backbone, self.head = backbone, head

    @classmethod
    def from_sequence_classifier(cls, model) -> ValueHead:
        """Use (and train) the backbone and score head of a one-label `AutoModelForSequenceClassification`,
        e.g. a copy of the reward model: "the value model is initialised from the RM"."""
        if not isinstance(getattr(model, "score", None), nn.Linear) or model.config.num_labels != 1:
            raise TypeError(f"{type(model).__name__}: expected a one-label classifier with a .score head")
        return cls(model.base_model, model.score)

    @classmethod
    def from_causal_lm(cls, model) -> ValueHead:
        """Use (and train) the backbone of a causal LM, e.g. a copy of the policy, with a new zero head."""
        head = nn.Linear(model.config.hidden_size, 1, bias=False)
        nn.init.zeros_(head.weight)
        return cls(model.base_model, head.to(next(model.parameters()).device))

    def forward(self, input_ids, attention_mask):
        """`(batch, seq)` values: the expected return after reading each position."""
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                            position_ids=position_ids_from(attention_mask), use_cache=False)
        return self.head(out.last_hidden_state).squeeze(-1).float()


class PPOTrainer:
    """PPO for RLHF, shaped like TRL's former `PPOTrainer`.

    Args:
        config: the recipe (`ppo.PPOConfig`).
        policy: the causal LM to train (it is trained in place).
        ref_policy: a frozen copy of the initial policy (made frozen here), for the KL penalty.
        value_model: a `ValueHead`, or a one-label sequence classifier (e.g. a copy of the reward
            model) whose backbone and score head become one (`ValueHead.from_sequence_classifier`).
        tokenizer: the policy's tokenizer, with a pad token that is not the EOS.
        reward_fn: ``reward_fn(prompts, replies) -> list[float]``, one score per reply (replies are
            decoded text without the EOS), e.g. a reward model's scores or a programmatic rule.
        prompts: chat conversations ending with a user turn (or plain strings, used as they are).
        reward_mean, reward_std: fixed normalisation of the scores; by default measured on the first
            batch of rollouts and then kept.
        metrics_fn: optional ``metrics_fn(prompts, replies, ended) -> dict[str, float]``, measured on
            each iteration's rollouts (before the update) and logged with the iteration, e.g. a gold
            score or a rude rate (`reward.overoptimization.rollout_metrics`). It does not affect training.
    """

    def __init__(self, config: PPOConfig, policy, ref_policy, value_model, tokenizer, reward_fn, prompts, *,
                 reward_mean: float | None = None, reward_std: float | None = None, metrics_fn=None):
        if policy is ref_policy:
            raise ValueError("ref_policy must be a separate, frozen copy of the policy (copy.deepcopy)")
        if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
            raise ValueError("the tokenizer needs a pad token other than EOS (models.load_tokenizer has one)")
        if len(prompts) < config.rollouts_per_iteration:
            raise ValueError(f"{len(prompts)} prompts: fewer than rollouts_per_iteration "
                             f"({config.rollouts_per_iteration})")
        if (reward_std is not None and reward_std <= 0) or (reward_mean is None) != (reward_std is None):
            raise ValueError("give both reward_mean and a positive reward_std, or neither")
        self.config, self.policy, self.ref_policy, self.tokenizer = config, policy, ref_policy, tokenizer
        self.reward_fn, self.prompts, self.metrics_fn = reward_fn, list(prompts), metrics_fn
        self.value_model = (value_model if isinstance(value_model, ValueHead)
                            else ValueHead.from_sequence_classifier(value_model))
        self.ref_policy.eval().requires_grad_(False)
        self.policy.eval()  # dropout off; eval mode does not stop gradients
        self.value_model.eval()
        self.policy_optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad],
                                                  lr=config.learning_rate, weight_decay=0.0)
        self.value_optimizer = torch.optim.AdamW(self.value_model.parameters(), lr=config.value_learning_rate,
                                                 weight_decay=0.0)
        self.generator = torch.Generator().manual_seed(config.seed)  # prompts, sampling seeds, minibatches
        self.reward_mean, self.reward_std = reward_mean, reward_std
        self.device = next(policy.parameters()).device
        self.history: list[dict] = []

    @torch.no_grad()
    def rollout(self) -> dict:
        """Sample and score one batch of rollouts: everything one iteration trains on.

        Returns:
            A dict of `(batch, ...)` tensors (``query_responses``, ``attention_mask``, ``mask``, ``logp``,
            ``values``, ``advantages``, ``returns``), ``context_length``, the ``replies`` and ``stats``.
        """
        cfg, tok = self.config, self.tokenizer
        # 1. sample: left-padded prompts, the full distribution at the temperature, cut at the first EOS
        order = torch.randperm(len(self.prompts), generator=self.generator)[:cfg.rollouts_per_iteration]
        prompts = [self.prompts[i] for i in order.tolist()]
        seed = int(torch.randint(2 ** 31 - 1, (1,), generator=self.generator))
        sampled = sample_responses(self.policy, tok, prompts, cfg.max_new_tokens, cfg.temperature, seed)
        query_responses, attention_mask = sampled["query_responses"], sampled["attention_mask"]
        context_length, mask, ended = sampled["context_length"], sampled["mask"], sampled["ended"]
        replies = sampled["replies"]
        parts = {"logp": [], "ref_logp": [], "values": [], "entropy": []}
        for rows in self._micro_batches(len(prompts)):  # all at once unless micro_batch_size is set
            ids, attention = query_responses[rows], attention_mask[rows]
            logp, logits = response_logprobs(self.policy, ids, attention, context_length, cfg.temperature)
            parts["logp"].append(logp)
            parts["entropy"].append(entropy_from_logits(logits))
            del logits
            parts["ref_logp"].append(response_logprobs(self.ref_policy, ids, attention, context_length,
                                                       cfg.temperature)[0])
            parts["values"].append(self.value_model(ids, attention)[:, context_length - 1:-1])
        logp, ref_logp, values, entropy = (torch.cat(parts[key]) for key in parts)

        # 2. score: the reward function on the decoded replies, normalised, minus the missing-EOS penalty
        raw = [float(s) for s in self.reward_fn(prompts, replies)]
        if len(raw) != len(replies) or not all(map(math.isfinite, raw)):
            raise ValueError(f"reward_fn must return {len(replies)} finite scores, got {raw[:8]}...")
        raw = torch.tensor(raw, device=self.device)
        if self.reward_mean is None:  # measured once, under the initial policy, then fixed
            std = raw.std().item()
            self.reward_mean, self.reward_std = raw.mean().item(), std if std > 1e-6 else 1.0
        scores = (raw - self.reward_mean) / self.reward_std - cfg.missing_eos_penalty * (~ended).float()

        # 3. per-token rewards, advantages (whitened) and returns
        rewards, _ = token_rewards(scores, logp, ref_logp, mask, cfg.kl_coef, cfg.kl_estimator)
        advantages, returns = gae(rewards, values, cfg.gamma, cfg.lam, mask)
        kl_k1 = torch.where(mask.bool(), logp - ref_logp, 0)  # logged: k1, summed over each response
        stats = {"reward_raw": raw.mean().item(), "reward_normalised": scores.mean().item(),
                 "no_eos_fraction": (~ended).float().mean().item(), "kl": kl_k1.sum(1).mean().item(),
                 "entropy": masked_mean(entropy, mask).item(),
                 "response_length": mask.sum(1).float().mean().item()}
        if self.metrics_fn is not None:
            extra = self.metrics_fn(prompts, replies, ended.tolist())
            clash = sorted(set(extra) & set(stats))
            if clash:
                raise ValueError(f"metrics_fn returned keys the trainer logs itself: {clash}")
            stats.update({key: float(value) for key, value in extra.items()})
        return {"query_responses": query_responses, "attention_mask": attention_mask, "mask": mask,
                "context_length": context_length, "logp": logp, "values": values,
                "advantages": whiten(advantages, mask), "returns": returns, "replies": replies,
                "stats": stats}

    def _micro_batches(self, n: int) -> list[slice]:
        """Row slices of at most `micro_batch_size` of `n` rows (one slice of all when it is None)."""
        size = self.config.micro_batch_size or n
        return [slice(start, start + size) for start in range(0, n, size)]

    def optimise(self, batch: dict) -> dict:
        """`num_ppo_epochs` passes of shuffled minibatches over one batch; returns the mean losses."""
        cfg, ctx, n = self.config, batch["context_length"], batch["mask"].shape[0]
        size, sums, count = n // cfg.num_mini_batches, defaultdict(float), 0
        for _ in range(cfg.num_ppo_epochs):
            order = torch.randperm(n, generator=self.generator).to(self.device)
            for start in range(0, n, size):
                minibatch = order[start:start + size]
                self.policy_optimizer.zero_grad()
                self.value_optimizer.zero_grad()
                micro = self._micro_batches(len(minibatch))
                tokens = batch["mask"][minibatch].sum()
                for rows in micro:  # one pass over the whole minibatch unless micro_batch_size is set
                    i = minibatch[rows]
                    ids, attention = batch["query_responses"][i], batch["attention_mask"][i]
                    mask = batch["mask"][i]
                    logp, _ = response_logprobs(self.policy, ids, attention, ctx, cfg.temperature)
                    values = self.value_model(ids, attention)[:, ctx - 1:-1]
                    pg_loss, clip_fraction, approx_kl = clipped_policy_loss(
                        logp, batch["logp"][i], batch["advantages"][i], cfg.cliprange, mask)
                    vf_loss, vf_clip_fraction = clipped_value_loss(
                        values, batch["values"][i], batch["returns"][i], cfg.cliprange_value, mask)
                    # token-weighted, so the micro-batches' masked means add up to the minibatch's
                    share = 1.0 if len(micro) == 1 else (mask.sum() / tokens).item()
                    loss = pg_loss + cfg.vf_coef * vf_loss
                    (loss if len(micro) == 1 else loss * share).backward()
                    for key, value in (("policy_loss", pg_loss), ("clip_fraction", clip_fraction),
                                       ("approx_kl", approx_kl), ("value_loss", vf_loss),
                                       ("value_clip_fraction", vf_clip_fraction)):
                        sums[key] += value.item() * share
                nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
                nn.utils.clip_grad_norm_(self.value_model.parameters(), cfg.max_grad_norm)
                self.policy_optimizer.step()
                self.value_optimizer.step()
                count += 1
        return {key: total / count for key, total in sums.items()}

    def step(self) -> dict:
        """One PPO iteration: rollouts, then the updates. Returns (and records) its log entry."""
        start = time.perf_counter()
        batch = self.rollout()
        losses = self.optimise(batch)
        entry = {"iteration": len(self.history) + 1, **batch["stats"], **losses,
                 "seconds": time.perf_counter() - start}
        self.history.append(entry)
        return entry

    def train(self, iterations: int, callback=None) -> list[dict]:
        """Run `iterations` PPO iterations.

        Args:
            iterations: how many (0 in the placebo run: nothing changes).
            callback: called as ``callback(entry)`` after each iteration; it may add keys to the
                entry (e.g. a gold score measured on held-out prompts).

        Returns:
            The log history: one dict per iteration so far, with the keys in `LOG_KEYS`.
        """
        if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 0:
            raise ValueError(f"iterations must be a non-negative int, got {iterations!r}")
        for _ in range(iterations):
            entry = self.step()
            if callback is not None:
                callback(entry)
        return self.history
