"""Perplexity on held-out replies.

Introduced in chapter 9 ("Evaluation"). Text metrics that compare a reply with a reference live
in `metrics`, pairwise ones in `evaluation.winrate`, contamination in `contamination`.

`perplexity` is exp of the mean negative log-likelihood per reply token of held-out chats (the
prompt is context, not scored). It measures how well a model predicts *those* replies, which is
what SFT optimises; preference and RL tuning move a model away from the data on purpose, so after
them perplexity stops tracking quality.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def perplexity(model, tokenizer, chats: Sequence[dict], batch_size: int = 32) -> float:
    """Perplexity of `model` on the assistant replies of `chats`.

    Args:
        model, tokenizer: a causal LM and its chat tokenizer.
        chats: ``{"messages": [user turn, assistant turn]}`` records, e.g. ``sft_heldout``.
        batch_size: chats per forward pass.

    Returns:
        ``exp(total reply NLL / reply tokens)``: 1 is perfect, the vocabulary size is a uniform guess.
    """
    import torch

    from ..dpo.losses import reply_batches, reply_rows, sequence_logps

    for i, chat in enumerate(chats):
        messages = chat.get("messages") if isinstance(chat, dict) else None
        if not messages or messages[-1].get("role") != "assistant":
            raise ValueError(f"chats[{i}] must have 'messages' ending with an assistant turn")
    rows = reply_rows(tokenizer, [c["messages"][:-1] for c in chats], [c["messages"] for c in chats])
    if not rows:
        raise ValueError("chats is empty")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    try:
        for ids, att, comp in reply_batches(rows, tokenizer.pad_token_id, batch_size):
            with torch.no_grad():
                total -= sequence_logps(model, ids.to(device), att.to(device),
                                        comp.to(device)).sum().item()
            tokens += int(comp[:, 1:].sum())
    finally:
        model.train(was_training)
    return math.exp(total / tokens)
