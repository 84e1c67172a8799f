"""Reward modelling: the Bradley-Terry loss, the course's `RewardConfig` recipe, the ``reward`` stage.

Introduced in chapter 4 ("Reward modelling"), which writes the Bradley-Terry loss in a notebook cell
and checks it against `bradley_terry_loss` here and against TRL's `RewardTrainer`. The shape is
TRL's Config + Trainer, like every method module of the course (`sft`, `lora`, ...):

* `bradley_terry_loss`: the objective, from scratch;
* `preference_dataset` / `preference_records`: the pairs the reward model (RM) learns from: only
  the ``tone`` and ``length`` pairs (`ASPECTS`). The RM never sees a ``correctness`` pair, so it
  cannot tell a right answer from a wrong one: chapter 5's reward-hacking lab rests on that;
* `reward_config(profile, output_dir, **overrides)`: the recipe as a TRL `RewardConfig`;
* `train(profile, output_dir, sft)`: train the ``reward`` stage from the ``sft`` stage;
* `score`, `pair_accuracy`, `calibration_bins`: read a reward model the way the trainer does.

Run it: ``checkpoints.get("reward", profile)`` returns ``(model, tokenizer)``, trained if missing.
"""

from __future__ import annotations

from pathlib import Path

DATA_FILES = ("preference_train",)  # what the reward stage reads (its fingerprint covers it)
HELDOUT_FILE = "preference_heldout"
ASPECTS = ("tone", "length")  # the only pairs the course's RM is trained on: never "correctness"
ALL_ASPECTS = ("tone", "length", "correctness", "harmlessness")  # what data/preference_*.jsonl contain


def bradley_terry_loss(chosen_rewards, rejected_rewards, margin=None):
    """The Bradley-Terry loss: mean of ``-log sigmoid(r_chosen - r_rejected - margin)`` over pairs.

    Computed with `logsigmoid`, so a large negative gap gives a large finite loss (about ``-gap``)
    instead of ``-log(0) = inf``. Equals the loss of TRL's `RewardTrainer.compute_loss`.

    Args:
        chosen_rewards: `(batch,)` rewards of the chosen replies.
        rejected_rewards: `(batch,)` rewards of the rejected replies, same shape.
        margin: optional `(batch,)` tensor (or a number) by which the chosen reward should exceed
            the rejected one (Llama 2's margin loss); ``None`` for the plain loss.

    Returns:
        A scalar tensor.
    """
    import torch
    import torch.nn.functional as F

    chosen, rejected = torch.as_tensor(chosen_rewards), torch.as_tensor(rejected_rewards)
    if chosen.shape != rejected.shape:
        raise ValueError(f"chosen rewards {tuple(chosen.shape)} and rejected rewards "
                         f"{tuple(rejected.shape)} differ in shape")
    if chosen.numel() == 0:
        raise ValueError("no pairs: the reward tensors are empty")
    gap = chosen - rejected
    if margin is not None:
        margin = torch.as_tensor(margin, dtype=gap.dtype, device=gap.device)
        if margin.dim() > 0 and margin.shape != gap.shape:
            raise ValueError(f"margin {tuple(margin.shape)} does not match the rewards {tuple(gap.shape)}")
        gap = gap - margin
    return -F.logsigmoid(gap).mean()


def preference_records(name: str = "preference_train", aspects=ASPECTS) -> list[dict]:
    """The records of a shipped preference file whose ``aspect`` is in `aspects` (all fields kept).

    Args:
        name: ``"preference_train"`` or ``"preference_heldout"``.
        aspects: the aspects to keep, a subset of `ALL_ASPECTS`.

    Returns:
        A list of ``{"prompt", "chosen", "rejected", "aspect"}`` dicts, in file order.
    """
    from ..data.loading import FILE_FORMATS, load_records

    if isinstance(aspects, str):
        raise TypeError(f"aspects must be a collection of names, e.g. ({aspects!r},), not a string")
    unknown = set(aspects) - set(ALL_ASPECTS)
    if unknown or not aspects:
        raise ValueError(f"aspects {sorted(unknown) or 'empty'}: choose from {ALL_ASPECTS}")
    if FILE_FORMATS.get(name) != "preference":
        raise ValueError(f"{name!r} is not a preference file; use 'preference_train' or 'preference_heldout'")
    return [r for r in load_records(name) if r["aspect"] in aspects]


def preference_dataset(name: str = "preference_train", aspects=ASPECTS):
    """The RM's training pairs as a `datasets.Dataset` in TRL's conversational preference format.

    Args:
        name: the shipped preference file.
        aspects: the aspects to keep (default `ASPECTS`: tone and length, never correctness).

    Returns:
        A `Dataset` with exactly the columns ``prompt``, ``chosen`` and ``rejected``.
    """
    from datasets import Dataset

    return Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")}
                              for r in preference_records(name, aspects)])


def reward_config(profile, output_dir: str | Path, **overrides):
    """The course's reward-model recipe as a TRL `RewardConfig`.

    The profile's step budget, seed and precision, sequences up to ``profile.max_length`` tokens
    (TRL *drops* longer pairs, it does not truncate them), logging every step, and no evaluation
    unless asked for.

    Args:
        profile: the run profile (`runtime.profiles.Profile`).
        output_dir: where the trainer writes (use `runtime.checkpoints.run_dir`).
        **overrides: replace any field, e.g. ``max_steps=50`` or ``center_rewards_coefficient=0.01``.

    Returns:
        A `trl.RewardConfig`.
    """
    from trl import RewardConfig

    kwargs = dict(profile.trainer_kwargs(), **profile.budget("reward"))
    # log every step: the cpu profile's RM trains for a handful of steps, and at the profile's
    # logging_steps=10 its loss, accuracy and margin would only appear in the final summary
    kwargs.update(output_dir=str(output_dir), max_length=profile.max_length, eval_strategy="no",
                  logging_steps=1)
    kwargs.update(overrides)
    return RewardConfig(**kwargs)


def train(profile, output_dir: str | Path, sft: str | Path):
    """Train the ``reward`` stage: the SFT model with a one-output head, on tone and length pairs.

    Args:
        profile: the run profile.
        output_dir: the trainer's scratch folder.
        sft: the folder of the upstream ``sft`` stage.

    Returns:
        `(model, tokenizer)` after training.
    """
    from trl import RewardTrainer

    from ..runtime.models import load_reward_model
    from ..runtime.notebook import quiet
    from ..runtime.profiles import seed_everything

    seed_everything(profile.seed)
    model, tokenizer = load_reward_model(sft, profile)
    trainer = RewardTrainer(model=model, args=reward_config(profile, output_dir),
                            train_dataset=preference_dataset(), processing_class=tokenizer)
    quiet(trainer).train()
    return trainer.model, tokenizer


def _check_conversation(prompt, index: int) -> list[dict]:
    if isinstance(prompt, str) or not all(isinstance(m, dict) and {"role", "content"} <= set(m)
                                          for m in prompt):
        raise TypeError(f"prompt {index} is not a conversation (a list of {{'role', 'content'}} turns): "
                        f"{str(prompt)[:80]!r}")
    return list(prompt)


def score(model, tokenizer, prompts, replies, batch_size: int = 64) -> list[float]:
    """The reward model's reward for each (prompt conversation, reply) pair.

    Each pair is formatted exactly as `RewardTrainer` formats a conversational example: the prompt
    turns plus ``{"role": "assistant", "content": reply}`` through ``tokenizer.apply_chat_template``
    (no generation prompt, no truncation), padded on the right like its collator. So a training
    pair scores here exactly what the trainer's forward pass gives it.

    Args:
        model: a sequence-classification model with one label (`runtime.models.load_reward_model`).
        tokenizer: its tokenizer, with the chat template it was trained with.
        prompts: conversations, e.g. ``[{"role": "user", "content": "What is 2 + 3?"}]``.
        replies: one assistant reply text per prompt.
        batch_size: pairs per forward pass.

    Returns:
        One float per pair.
    """
    import torch

    prompts, replies = list(prompts), list(replies)
    if len(prompts) != len(replies):
        raise ValueError(f"{len(prompts)} prompts but {len(replies)} replies")
    if getattr(model.config, "num_labels", None) != 1:
        raise ValueError("score needs a reward model with exactly one label (models.load_reward_model)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    ids = []
    for i, (prompt, reply) in enumerate(zip(prompts, replies)):
        if not isinstance(reply, str):
            raise TypeError(f"reply {i} is a {type(reply).__name__}, not a string")
        messages = _check_conversation(prompt, i) + [{"role": "assistant", "content": reply}]
        ids.append(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
    device = next(model.parameters()).device
    was_training, rewards = model.training, []
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(ids), batch_size):
                chunk = [torch.tensor(x) for x in ids[start:start + batch_size]]
                input_ids = torch.nn.utils.rnn.pad_sequence(chunk, batch_first=True,
                                                            padding_value=tokenizer.pad_token_id)
                mask = torch.nn.utils.rnn.pad_sequence([torch.ones_like(x) for x in chunk], batch_first=True)
                logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
                rewards += logits[:, 0].float().tolist()
    finally:
        model.train(was_training)
    return rewards


def _reply_text(turns, field: str, index: int) -> str:
    if isinstance(turns, str):
        return turns
    if len(turns) != 1 or turns[0].get("role") != "assistant":
        raise ValueError(f"record {index}: {field} must be one assistant turn, got {str(turns)[:80]!r}")
    return turns[0]["content"]


def pair_accuracy(model, tokenizer, records, batch_size: int = 64) -> tuple[float, list[float]]:
    """How often the reward model ranks the chosen reply above the rejected one.

    Args:
        model, tokenizer: the reward model (see `score`).
        records: preference records with ``prompt``, ``chosen`` and ``rejected`` (one assistant
            turn each), e.g. ``preference_records("preference_heldout")``.
        batch_size: pairs per forward pass.

    Returns:
        `(accuracy, margins)`: the fraction of pairs with ``r_chosen > r_rejected`` (a tie counts as
        wrong) and every pair's margin ``r_chosen - r_rejected``, in record order.
    """
    records = list(records)
    if not records:
        raise ValueError("no records to score")
    prompts = [r["prompt"] for r in records]
    chosen = [_reply_text(r["chosen"], "chosen", i) for i, r in enumerate(records)]
    rejected = [_reply_text(r["rejected"], "rejected", i) for i, r in enumerate(records)]
    rewards = score(model, tokenizer, prompts + prompts, chosen + rejected, batch_size)
    margins = [c - r for c, r in zip(rewards[:len(records)], rewards[len(records):])]
    return sum(m > 0 for m in margins) / len(margins), margins


def calibration_bins(margins, n_bins: int = 10):
    """A reliability diagram of the RM's pairwise probabilities ``P(a beats b) = sigmoid(r_a - r_b)``.

    Every labelled pair is read in both orders: (chosen, rejected) predicts ``sigmoid(margin)`` and
    is right (outcome 1), (rejected, chosen) predicts ``sigmoid(-margin)`` and is wrong (outcome 0).
    The ``2n`` predictions fall into `n_bins` equal-width bins of ``[0, 1]`` (bin ``k`` holds
    ``k/n_bins <= p < (k+1)/n_bins``, the last bin also holds 1). A calibrated RM has, in every
    bin, a mean prediction equal to the fraction of outcomes that are 1.

    Args:
        margins: ``r_chosen - r_rejected`` per labelled pair (e.g. from `pair_accuracy`).
        n_bins: the number of bins.

    Returns:
        `(predicted, observed)`: two float64 NumPy arrays of length `n_bins`: the mean prediction
        and the fraction of outcomes 1 in each bin, NaN for an empty bin.
    """
    import numpy as np

    m = np.asarray(margins, dtype=np.float64).reshape(-1)
    if m.size == 0 or not np.isfinite(m).all():
        raise ValueError("margins must be a non-empty sequence of finite numbers")
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins}")
    p = 1.0 / (1.0 + np.exp(-np.concatenate([m, -m])))
    outcome = np.concatenate([np.ones_like(m), np.zeros_like(m)])
    idx = np.minimum((p * n_bins).astype(int), int(n_bins) - 1)
    counts = np.bincount(idx, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.bincount(idx, weights=p, minlength=n_bins) / counts
        observed = np.bincount(idx, weights=outcome, minlength=n_bins) / counts
    return predicted, observed
