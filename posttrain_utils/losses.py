"""Losses written out from scratch, so the library's versions can be checked against them.

Introduced in chapter 2 (the masked SFT loss); later chapters add their own (Bradley-Terry in
chapter 4, DPO in chapter 6) next to it.
"""

from __future__ import annotations

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
