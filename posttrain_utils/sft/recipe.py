"""Supervised fine-tuning: the loss, the course's recipe as an `SFTConfig`, and its train function.

Introduced in chapter 2 ("Supervised fine-tuning"), which writes the loss in a notebook cell and
checks it against `sft_loss` here and against TRL's `SFTTrainer`. The shape is TRL's Config +
Trainer, like every method module of the course (`lora`, and later `reward`, `ppo`, `dpo`, ...):

* `sft_loss` / `mask_labels`: the objective, from scratch;
* `sft_config(profile, output_dir, **overrides)`: the recipe as a TRL `SFTConfig`;
* `train(profile, output_dir, base)`: train the ``sft`` stage; `runtime.checkpoints.get("sft")`
  calls it when the stage is not cached, so any chapter can start from the SFT model.

Run it: ``checkpoints.get("sft", profile)`` returns ``(model, tokenizer)``, trained if missing.
"""

from __future__ import annotations

from pathlib import Path

DATA_FILES = ("sft_train", "sft_heldout")  # what the sft stage reads (its fingerprint covers them)

IGNORE_INDEX = -100  # label value that cross-entropy skips (PyTorch's and transformers' convention)


def mask_labels(input_ids, train_mask):
    """Labels for a causal LM: the token ids where `train_mask` is 1, `IGNORE_INDEX` elsewhere.

    Args:
        input_ids: `(batch, seq)` token ids.
        train_mask: `(batch, seq)` 1 for tokens to learn (assistant/completion), 0 otherwise.
    """
    if input_ids.shape != train_mask.shape:
        raise ValueError(f"input_ids {tuple(input_ids.shape)} and train_mask {tuple(train_mask.shape)} differ")
    return input_ids.masked_fill(train_mask == 0, IGNORE_INDEX)


def sft_loss(logits, labels):
    """The SFT objective: mean next-token cross-entropy over the trained (unmasked) tokens only.

    Args:
        logits: `(batch, seq, vocab)` model outputs.
        labels: `(batch, seq)` token ids with `IGNORE_INDEX` on prompt, padding and other masked tokens.

    Returns:
        A scalar tensor: -(1/N) * sum over trained positions t of log p(label_t | tokens < t).
    """
    import torch.nn.functional as F

    if logits.shape[:2] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match labels {tuple(labels.shape)}")
    shift_logits = logits[:, :-1].float()  # position t predicts token t+1
    shift_labels = labels[:, 1:]
    if (shift_labels != IGNORE_INDEX).sum() == 0:
        raise ValueError("no trained tokens in this batch: every label is masked")
    return F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
                           ignore_index=IGNORE_INDEX)


def sft_config(profile, output_dir: str | Path, **overrides):
    """The course's SFT recipe as a TRL `SFTConfig`.

    Assistant-only loss, padding (no packing), the profile's step budget, seed and precision, a
    cosine schedule, and the held-out loss every 20 steps.

    Args:
        profile: the run profile (`runtime.profiles.Profile`).
        output_dir: where the trainer writes (use `runtime.checkpoints.run_dir`).
        **overrides: replace any field, e.g. ``max_steps=600``.
    """
    from trl import SFTConfig

    kwargs = dict(profile.trainer_kwargs(), **profile.budget("sft"))
    kwargs.update(output_dir=str(output_dir), max_length=profile.max_length, assistant_only_loss=True,
                  packing=False, lr_scheduler_type="cosine", warmup_steps=10, weight_decay=0.0,
                  per_device_eval_batch_size=64, eval_strategy="steps", eval_steps=20)
    kwargs.update(overrides)
    return SFTConfig(**kwargs)


def sft_trainer(model, tokenizer, args, train_dataset, eval_dataset=None, peft_config=None):
    """TRL's `SFTTrainer` on the course's data: what `run_sft` and the chapter-11 script run."""
    from trl import SFTTrainer

    return SFTTrainer(model=model, args=args, train_dataset=train_dataset,
                      eval_dataset=eval_dataset, processing_class=tokenizer,
                      peft_config=peft_config)


def run_sft(model, tokenizer, args, train_dataset, eval_dataset=None, peft_config=None):
    """Run `sft_trainer` quietly and return the trained (possibly peft) model."""
    from ..runtime.notebook import quiet

    trainer = sft_trainer(model, tokenizer, args, train_dataset, eval_dataset, peft_config)
    quiet(trainer).train()
    return trainer.model


def train(profile, output_dir: str | Path, base: str | Path):
    """Train the ``sft`` stage: the base model fine-tuned on the unfiltered forum chats.

    Args:
        profile: the run profile.
        output_dir: the trainer's scratch folder.
        base: the folder (or Hub id) of the upstream ``base`` stage.

    Returns:
        `(model, tokenizer)` after training.
    """
    from ..data.loading import load_dataset
    from ..runtime.models import load_model
    from ..runtime.profiles import seed_everything

    seed_everything(profile.seed)
    model, tokenizer = load_model(base, profile)
    model = run_sft(model, tokenizer, sft_config(profile, output_dir),
                    load_dataset(DATA_FILES[0], columns=["messages"]),
                    eval_dataset=load_dataset(DATA_FILES[1], columns=["messages"]))
    return model, tokenizer
