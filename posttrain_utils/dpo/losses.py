"""Direct preference optimisation and its family: the DPO, IPO, SimPO and ORPO objectives, from scratch.

Introduced in chapter 6 ("DPO and its family"), which writes each loss in a notebook cell and checks it
against the functions here and against TRL 1.16: `DPOTrainer` (``loss_type="sigmoid"`` and ``"ipo"``),
and the experimental `trl.experimental.cpo.CPOTrainer` (``loss_type="simpo"``) and
`trl.experimental.orpo.ORPOTrainer`. Every loss reads sequence log-probabilities of the chosen and the
rejected completion of each pair, never logits, so one helper feeds them all:

* `sequence_logps`: a completion's log-probability under a causal LM, summed (DPO) or averaged per
  token (IPO, SimPO, ORPO);
* `dpo_loss`, `ipo_loss`: against a frozen reference model; `simpo_loss`, `orpo_odds_ratio_loss`:
  reference-free;
* `dpo_config(profile, output_dir, **overrides)`: the recipe as a TRL `DPOConfig` (needs a ``"dpo"``
  budget in the profile).

Each loss returns a `PreferenceLoss` ``(loss, chosen_rewards, rejected_rewards)``, except ORPO's
odds-ratio term, which is one part of a larger loss and returns a scalar.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

# log1mexp switches formula at log(1/2): below it log1p(-exp(x)) is accurate, above it log(-expm1(x))
_LOG_HALF = -math.log(2.0)


class PreferenceLoss(NamedTuple):
    """What a preference loss returns; unpacks as ``loss, chosen_rewards, rejected_rewards``.

    Args:
        loss: the scalar loss, the mean over pairs (differentiable).
        chosen_rewards: `(batch,)` implicit rewards of the chosen completions, detached (for logging).
        rejected_rewards: `(batch,)` implicit rewards of the rejected completions, detached.
    """

    loss: "torch.Tensor"  # noqa: F821
    chosen_rewards: "torch.Tensor"  # noqa: F821
    rejected_rewards: "torch.Tensor"  # noqa: F821


def _as_tensors(names, values):
    """The inputs as tensors of one shape, or a `ValueError` naming the first that differs."""
    import torch

    tensors = [torch.as_tensor(v) for v in values]
    tensors = [t if t.is_floating_point() else t.float() for t in tensors]  # integer log-probs
    for name, tensor in zip(names[1:], tensors[1:]):
        if tensor.shape != tensors[0].shape:
            raise ValueError(f"{names[0]} {tuple(tensors[0].shape)} and {name} {tuple(tensor.shape)} "
                             "differ in shape")
    if tensors[0].numel() == 0:
        raise ValueError("no pairs: the log-probability tensors are empty")
    return tensors


def _check_beta(beta, name: str = "beta") -> float:
    beta = float(beta)
    if not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"{name} must be a positive number, got {beta}")
    return beta


def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
             beta: float = 0.1) -> PreferenceLoss:
    """The DPO loss (sigmoid form): mean over pairs of ``-log sigmoid(r_chosen - r_rejected)``.

    The implicit reward of a completion is ``r = beta * (log pi(y|x) - log pi_ref(y|x))``, with log-probs
    *summed* over the completion's tokens. This is the Bradley-Terry loss of chapter 4 on implicit rewards,
    computed with `logsigmoid` (finite for any margin). Equals TRL's `DPOTrainer` with
    ``loss_type="sigmoid"`` (the default), ``f_divergence_type="reverse_kl"`` and no label smoothing.

    Args:
        policy_chosen_logps: `(batch,)` summed log-probs of the chosen completions under the policy.
        policy_rejected_logps: `(batch,)` the same for the rejected completions.
        ref_chosen_logps: `(batch,)` summed log-probs of the chosen completions under the reference model.
        ref_rejected_logps: `(batch,)` the same for the rejected completions.
        beta: the KL-penalty strength (TRL's `DPOConfig.beta`), positive.

    Returns:
        A `PreferenceLoss`: the mean loss and the rewards ``beta * (policy - ref)`` of each side, as TRL
        logs them (``rewards/chosen``, ``rewards/rejected``).
    """
    import torch.nn.functional as F

    pc, pr, rc, rr = _as_tensors(("policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps",
                                  "ref_rejected_logps"),
                                 (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                                  ref_rejected_logps))
    beta = _check_beta(beta)
    chosen_rewards, rejected_rewards = beta * (pc - rc), beta * (pr - rr)
    loss = -F.logsigmoid(chosen_rewards - rejected_rewards).mean()
    return PreferenceLoss(loss, chosen_rewards.detach(), rejected_rewards.detach())


def ipo_loss(policy_chosen_avg_logps, policy_rejected_avg_logps, ref_chosen_avg_logps,
             ref_rejected_avg_logps, beta: float = 0.1) -> PreferenceLoss:
    """The IPO loss: mean over pairs of ``(h - 1 / (2 * beta))**2``, on per-token *average* log-probs.

    ``h = (avg log pi(y_w) - avg log pi_ref(y_w)) - (avg log pi(y_l) - avg log pi_ref(y_l))`` (IPO paper,
    Eq. 17, with ``tau = beta``). A squared loss pulls the log-ratio gap to the target ``1 / (2 * beta)``
    instead of pushing it to infinity as DPO's does. TRL 1.16's `DPOTrainer` (``loss_type="ipo"``) divides
    each *summed* log-ratio by its completion's token count, which is exactly the difference of the
    per-token averages taken here.

    Args:
        policy_chosen_avg_logps: `(batch,)` per-token average log-probs of the chosen completions, policy.
        policy_rejected_avg_logps: `(batch,)` the same for the rejected completions.
        ref_chosen_avg_logps: `(batch,)` per-token average log-probs of the chosen completions, reference.
        ref_rejected_avg_logps: `(batch,)` the same for the rejected completions.
        beta: the regularisation strength (the paper's tau), positive; a smaller beta asks for a larger gap.

    Returns:
        A `PreferenceLoss` with rewards ``beta * (avg policy - avg ref)``. (TRL logs ``rewards/*`` from
        the *summed* log-ratios even for IPO, so its logged rewards differ from these by the lengths.)
    """
    pc, pr, rc, rr = _as_tensors(("policy_chosen_avg_logps", "policy_rejected_avg_logps",
                                  "ref_chosen_avg_logps", "ref_rejected_avg_logps"),
                                 (policy_chosen_avg_logps, policy_rejected_avg_logps, ref_chosen_avg_logps,
                                  ref_rejected_avg_logps))
    beta = _check_beta(beta)
    chosen_ratios, rejected_ratios = pc - rc, pr - rr
    loss = ((chosen_ratios - rejected_ratios - 1 / (2 * beta)) ** 2).mean()
    return PreferenceLoss(loss, beta * chosen_ratios.detach(), beta * rejected_ratios.detach())


def simpo_loss(chosen_avg_logps, rejected_avg_logps, beta: float = 2.0, gamma: float = 0.5) -> PreferenceLoss:
    """The SimPO loss: mean over pairs of ``-log sigmoid(beta * (avg_w - avg_l) - gamma)``; no reference.

    The reward is the length-normalised log-prob ``beta * avg log pi(y|x)``, and the chosen reward must beat
    the rejected one by the margin `gamma`. `gamma` is the margin *in reward units*, as in the SimPO paper
    and as TRL uses ``CPOConfig.simpo_gamma``: TRL subtracts ``simpo_gamma / beta`` from the log-prob gap
    and then multiplies by beta, which is the same number. Equals TRL's experimental `CPOTrainer` with
    ``loss_type="simpo"``, ``cpo_alpha=0`` (no NLL term), ``alpha=0`` and no label smoothing.

    Args:
        chosen_avg_logps: `(batch,)` per-token average log-probs of the chosen completions (policy).
        rejected_avg_logps: `(batch,)` the same for the rejected completions.
        beta: the reward scale, positive (the SimPO paper uses 2 to 10; TRL's default is 0.1).
        gamma: the target reward margin (TRL's ``simpo_gamma``, default 0.5), a finite number.

    Returns:
        A `PreferenceLoss` with rewards ``beta * avg log-prob``, as TRL's CPOTrainer logs them.
    """
    import torch.nn.functional as F

    chosen, rejected = _as_tensors(("chosen_avg_logps", "rejected_avg_logps"),
                                   (chosen_avg_logps, rejected_avg_logps))
    beta, gamma = _check_beta(beta), float(gamma)
    if not math.isfinite(gamma):
        raise ValueError(f"gamma must be a finite number, got {gamma}")
    chosen_rewards, rejected_rewards = beta * chosen, beta * rejected
    loss = -F.logsigmoid(chosen_rewards - rejected_rewards - gamma).mean()
    return PreferenceLoss(loss, chosen_rewards.detach(), rejected_rewards.detach())


def _log1mexp(x):
    """``log(1 - exp(x))`` for ``x <= 0``, accurate at both ends (the form TRL's ORPO uses)."""
    import torch

    return torch.where(x < _LOG_HALF, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo_odds_ratio_loss(chosen_avg_logps, rejected_avg_logps):
    """ORPO's odds-ratio term: mean over pairs of ``-log sigmoid(log odds(y_w) - log odds(y_l))``.

    With ``p = exp(avg log-prob)`` the per-token geometric-mean probability of a completion,
    ``odds(y) = p / (1 - p)``, so ``log odds = avg - log(1 - exp(avg))``; ``log(1 - exp(.))`` is computed
    stably (``log1p(-exp)`` far from 0, ``log(-expm1)`` near it), as TRL does. The term is positive; the
    full ORPO loss is ``nll + lam * term`` with `lam` TRL's `ORPOConfig.beta` (the paper's lambda), where
    TRL's ``nll`` is the mean cross-entropy of the chosen sequences over *all* their tokens, prompt
    included. TRL logs ``log_odds_ratio``, which is ``-term``.

    Args:
        chosen_avg_logps: `(batch,)` per-token average log-probs of the chosen completions, each < 0.
        rejected_avg_logps: `(batch,)` the same for the rejected completions.

    Returns:
        A scalar tensor (computed in float32 at least, as TRL does).
    """
    import torch
    import torch.nn.functional as F

    chosen, rejected = _as_tensors(("chosen_avg_logps", "rejected_avg_logps"),
                                   (chosen_avg_logps, rejected_avg_logps))
    dtype = torch.promote_types(torch.promote_types(chosen.dtype, rejected.dtype), torch.float32)
    chosen, rejected = chosen.to(dtype), rejected.to(dtype)
    if (chosen > 0).any() or (rejected > 0).any():
        raise ValueError("average log-probabilities must be <= 0 (a probability is at most 1)")
    log_odds = (chosen - rejected) - (_log1mexp(chosen) - _log1mexp(rejected))
    return -F.logsigmoid(log_odds).mean()


def sequence_logps(model, input_ids, attention_mask, completion_mask, average: bool = False):
    """Each sequence's completion log-probability under a causal LM: summed, or averaged per token.

    Token ``t`` is scored by the logits at position ``t - 1``, so the first token of a row is never
    scored. Computed from the full logits (``log_softmax`` in float32), the textbook way; TRL's trainers
    compute the same numbers in chunks. Gradients flow: wrap the call in ``torch.no_grad()`` for a
    reference model.

    Args:
        model: a causal LM (e.g. from `runtime.models.load_model`) returning ``.logits``.
        input_ids: `(batch, seq)` token ids, e.g. a `DPOTrainer` batch's ``input_ids``.
        attention_mask: `(batch, seq)` 1 for real tokens, 0 for padding.
        completion_mask: `(batch, seq)` 1 for the tokens to score (the completion), 0 elsewhere. Passing
            the attention mask scores every token after the first.
        average: divide each sum by the row's number of scored tokens (IPO, SimPO, ORPO).

    Returns:
        A `(batch,)` float32 tensor.
    """
    import torch

    if input_ids.dim() != 2 or input_ids.shape != attention_mask.shape \
            or input_ids.shape != completion_mask.shape:
        raise ValueError(f"input_ids {tuple(input_ids.shape)}, attention_mask {tuple(attention_mask.shape)} "
                         f"and completion_mask {tuple(completion_mask.shape)} must be one (batch, seq) shape")
    mask = completion_mask[:, 1:].to(torch.float32)
    counts = mask.sum(-1)
    if (counts == 0).any():
        rows = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"rows {rows} have no completion token to score (after the first position)")
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    token_logps = logps.gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    sums = (token_logps * mask).sum(-1)
    return sums / counts if average else sums


def reply_rows(tokenizer, prompts, conversations) -> list[tuple[list[int], int]]:
    """Each conversation's token ids and the length of its prompt (what precedes the reply).

    Args:
        tokenizer: a chat tokenizer.
        prompts: the prompt turns of each conversation (lists of messages).
        conversations: each whole conversation, its prompt followed by the reply to score.
    """
    rows = []
    for prompt, full in zip(prompts, conversations, strict=True):
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(tokenizer.apply_chat_template(full, tokenize=False),
                        add_special_tokens=False)["input_ids"]
        rows.append((ids, len(tokenizer(text, add_special_tokens=False)["input_ids"])))
    return rows


def reply_batches(rows, pad_token_id: int, batch_size: int):
    """`reply_rows`' rows, right-padded in batches: ``(input_ids, attention_mask, completion_mask)``
    tensors, the inputs of `sequence_logps`."""
    import torch

    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.tensor([i + [pad_token_id] * (width - len(i)) for i, _ in chunk])
        att = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in chunk])
        comp = torch.tensor([[int(n <= t < len(i)) for t in range(width)] for i, n in chunk])
        yield ids, att, comp


def dpo_config(profile, output_dir: str | Path, **overrides):
    """The course's DPO recipe as a TRL `DPOConfig`, built like `reward.reward_config`.

    The profile's ``"dpo"`` step budget (e.g. ``max_steps``, ``per_device_train_batch_size``,
    ``learning_rate``, ``beta``), seed and precision, sequences up to ``profile.max_length`` tokens (TRL's
    DPO collator *truncates* prompt + completion to it, keeping the start, and drops only pairs whose
    prompt alone fills it), logging every step and no evaluation unless asked for.

    Args:
        profile: the run profile (`runtime.profiles.Profile`); it must have a ``"dpo"`` budget.
        output_dir: where the trainer writes (use `runtime.checkpoints.run_dir`).
        **overrides: replace any field, e.g. ``beta=0.5`` or ``loss_type="ipo"``.

    Returns:
        A `trl.DPOConfig`.
    """
    from trl import DPOConfig

    kwargs = dict(profile.trainer_kwargs(), **profile.budget("dpo"))
    # log every step, as the reward stage does: a short cpu run would show its margins only at the end
    kwargs.update(output_dir=str(output_dir), max_length=profile.max_length, eval_strategy="no",
                  logging_steps=1)
    kwargs.update(overrides)
    return DPOConfig(**kwargs)
