"""Regenerate the course's tiny base model: corpus -> tokenizer -> pretrained Llama checkpoint.

Introduced in chapter 0. Run `python -m posttrain_utils.tinyworld.build_base` (15 minutes on one CPU
thread) to rebuild `posttrain_utils/assets/tiny-base/` deterministically: every step is seeded, and the
pretraining runs single-process with a fixed number of threads.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from .world import make_corpus

from ..runtime.paths import TINY_BASE_DIR as BASE_DIR
MODEL_SHAPE = dict(hidden_size=192, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                   num_key_value_heads=4, max_position_embeddings=256, tie_word_embeddings=True)


def make_model(tokenizer, seed: int = 0, **shape):
    """A freshly initialised Llama causal LM sized for the tiny world (about 2 M parameters)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         **{**MODEL_SHAPE, **shape})
    return LlamaForCausalLM(config)


def pack_corpus(docs: list[str], tokenizer, block_size: int = 128) -> torch.Tensor:
    """Tokenize documents, join them with the document separator and cut into equal blocks."""
    ids: list[int] = []
    for enc in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        ids.append(tokenizer.bos_token_id)
        ids.extend(enc)
    n_blocks = len(ids) // block_size
    return torch.tensor(ids[: n_blocks * block_size]).view(n_blocks, block_size)


def pretrain(model, blocks: torch.Tensor, steps: int, batch_size: int = 32, lr: float = 2e-3,
             warmup: int = 50, seed: int = 0, val_fraction: float = 0.02, log_every: int = 50,
             progress: bool = True) -> dict:
    """Next-token pretraining with AdamW and a cosine schedule.

    Args:
        model: the causal LM to train in place.
        blocks: `(n, block_size)` token ids from `pack_corpus`.
        steps: number of optimiser steps (budgets are step counts, never wall time).
        batch_size: blocks per step.
        lr: peak learning rate.
        warmup: linear warm-up steps.
        seed: seeds the batch order.
        val_fraction: share of blocks held out to measure validation loss.
        log_every: steps between validation-loss measurements.
        progress: show a tqdm progress bar.

    Returns:
        `{"train_loss": [...], "val_loss": [(step, loss), ...], "seconds": float}`.
    """
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(blocks), generator=gen)
    n_val = max(1, int(len(blocks) * val_fraction))
    val, train = blocks[perm[:n_val]], blocks[perm[n_val:]]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))

    def val_loss() -> float:
        model.eval()
        with torch.no_grad():
            losses = [model(input_ids=b, labels=b).loss.item() for b in val[:256].split(64)]
        model.train()
        return sum(losses) / len(losses)

    history = {"train_loss": [], "val_loss": [(0, val_loss())]}
    start, order, pos = time.time(), torch.randperm(len(train), generator=gen), 0
    model.train()
    for step in tqdm(range(1, steps + 1), disable=not progress, desc="pretraining"):
        if pos + batch_size > len(order):
            order, pos = torch.randperm(len(train), generator=gen), 0
        batch = train[order[pos: pos + batch_size]]
        pos += batch_size
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        history["train_loss"].append(loss.item())
        if step % log_every == 0 or step == steps:
            history["val_loss"].append((step, val_loss()))
    history["seconds"] = time.time() - start
    return history


def build(out_dir: Path = BASE_DIR, steps: int = 800, n_docs: int = 30_000, threads: int = 1) -> dict:
    """Regenerate corpus, tokenizer and checkpoint into `out_dir` (safetensors)."""
    from transformers import GenerationConfig

    from .chat import train_tokenizer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    docs = make_corpus(n_docs)
    tokenizer = train_tokenizer(docs)
    blocks = pack_corpus(docs, tokenizer)
    model = make_model(tokenizer)
    print(f"corpus: {len(docs)} docs, {blocks.numel() / 1e6:.2f} M tokens; vocab {len(tokenizer)}; "
          f"model {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    history = pretrain(model, blocks, steps=steps)
    print(f"val loss {history['val_loss'][0][1]:.2f} -> {history['val_loss'][-1][1]:.2f} "
          f"in {history['seconds'] / 60:.1f} min")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id,
                                               bos_token_id=tokenizer.bos_token_id)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "pretraining_log.json").write_text(json.dumps(
        {"steps": steps, "n_docs": n_docs, "threads": threads, "val_loss": history["val_loss"],
         "minutes": round(history["seconds"] / 60, 2)}, indent=1))
    return history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=BASE_DIR)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    build(args.out, steps=args.steps, threads=args.threads)


if __name__ == "__main__":
    main()
