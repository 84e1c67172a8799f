"""Checkers for the chapter 11 ("Scaling up with accelerate") exercises. Each prints a verdict and
returns a bool.

Introduced in chapter 11. The checkers call the learner's function on inputs they build
themselves (parameter and GPU counts drawn at random; a fresh tiny model and AdamW optimizer
after one step) and compare it with `posttrain_utils.scaling`, so a constant cannot pass. A
learner's function that raises gives a failed verdict naming the error, never a traceback.
"""

from __future__ import annotations

import random

from .. import scaling
from ..runtime.notebook import feedback
from .common import call as _call

KEYS = ("params", "grads", "optimizer", "total")
MEMORY_STRATEGIES = ("ddp", "zero1", "zero2", "zero3")


def _memory_cases():
    rng = random.Random(11)
    cases = [(1_000_000_000, 8), (7_000_000_000, 1), (7_000_000_001, 8)]  # the last: a padded shard
    cases += [(rng.randrange(10**6, 10**11), rng.choice([2, 3, 4, 8, 16, 64])) for _ in range(6)]
    return cases


def _memory_hint(theirs: dict, ours: dict, strategy: str, n: int, g: int) -> str:
    where = f"{strategy} with {n:,} parameters on {g} GPUs"
    if theirs.get("total") != sum(theirs.get(k, 0) for k in KEYS[:3]):
        return f"{where}: 'total' should be params + grads + optimizer"
    for key, size in zip(KEYS[:3], scaling.PRECISIONS["bf16-mixed"]):
        if theirs.get(key) == ours[key]:
            continue
        full, split = size * n, size * n / g
        if abs(theirs.get(key, 0) - full) < size and ours[key] != full:
            return f"{where}: {strategy} splits the {key} across the GPUs; you kept all of them on each"
        if abs(theirs.get(key, 0) - split) < size and ours[key] == full:
            return f"{where}: {strategy} does not split the {key}; every GPU holds {size} bytes per parameter"
        return (f"{where}: {key} should be {ours[key]:,} bytes ({size} bytes per parameter: bf16 weights "
                "and gradients take 2, AdamW's fp32 master copy and two moments 12); a split quantity is "
                "ceil(n_params / n_gpus) parameters' worth")
    return f"{where}: expected {ours}, got {theirs}"


def check_memory_formula(fn) -> bool:
    """Exercise scaling-ex1: per-GPU model-state bytes under DDP and the ZeRO stages.

    Args:
        fn: the learner's ``fn(n_params, n_gpus, strategy)`` for bf16 mixed precision with AdamW,
            strategy one of ``"ddp"``, ``"zero1"``, ``"zero2"``, ``"zero3"``, returning a dict with
            ``"params"``, ``"grads"``, ``"optimizer"`` and ``"total"`` in bytes. A split quantity
            counts ``ceil(n_params / n_gpus)`` parameters (exact division is accepted too: the
            two differ by less than one parameter's bytes).
    """
    for n, g in _memory_cases():
        for strategy in MEMORY_STRATEGIES:
            ours = scaling.per_gpu_bytes(n, g, strategy)
            theirs = _call(fn, n, g, strategy)
            if isinstance(theirs, Exception):
                return feedback("scaling-ex1", False, f"your function raised {theirs!r}")
            if not isinstance(theirs, dict) or set(KEYS) - set(theirs):
                return feedback("scaling-ex1", False, f"return a dict with the keys {KEYS}")
            try:
                theirs = {key: float(theirs[key]) for key in KEYS}
            except (TypeError, ValueError):
                return feedback("scaling-ex1", False, "each value must be a number of bytes")
            if any(abs(float(theirs[k]) - ours[k]) >= 16 for k in KEYS[:3]) or \
                    abs(float(theirs["total"]) - sum(float(theirs[k]) for k in KEYS[:3])) > 1e-6:
                return feedback("scaling-ex1", False, _memory_hint(theirs, ours, strategy, n, g))
    return feedback("scaling-ex1", True, "")


def check_state_bytes(fn) -> bool:
    """Exercise scaling-ex2: the model-state bytes a process holds, measured from its tensors.

    Args:
        fn: the learner's ``fn(model, optimizer)`` returning ``{"params", "grads", "optimizer",
            "total"}`` in bytes: every parameter tensor, every gradient that exists, and the
            optimizer's per-parameter state tensors (AdamW's two moments, not its 0-dimensional
            step counters). Called on the tiny base model after one AdamW step,
            once with the embeddings frozen (no gradient, no optimizer state for them).
    """
    import torch
    from transformers import AutoModelForCausalLM

    from ..runtime.paths import TINY_BASE_DIR

    for freeze in (False, True):
        torch.manual_seed(11)
        model = AutoModelForCausalLM.from_pretrained(str(TINY_BASE_DIR), dtype=torch.float32)
        model.get_input_embeddings().weight.requires_grad_(not freeze)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-3)
        ids = torch.randint(0, model.config.vocab_size, (2, 16))
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        ours = scaling.state_bytes(model, optimizer)
        theirs = _call(fn, model, optimizer)
        label = "with the embeddings frozen" if freeze else "with every weight trained"
        if isinstance(theirs, Exception):
            return feedback("scaling-ex2", False, f"your function raised {theirs!r}")
        if not isinstance(theirs, dict) or set(KEYS) - set(theirs):
            return feedback("scaling-ex2", False, f"return a dict with the keys {KEYS}")
        for key in KEYS:
            if theirs[key] != ours[key]:
                hint = {"params": "count numel() * element_size() of every parameter, trained or not",
                        "grads": "count only the gradients that exist (p.grad is None for a frozen one)",
                        "optimizer": "count the per-parameter tensors in optimizer.state (exp_avg and "
                                     "exp_avg_sq), not the 0-dimensional step counters",
                        "total": "total is params + grads + optimizer"}[key]
                return feedback("scaling-ex2", False, f"{label}: {key} is {ours[key]:,} bytes, you got "
                                f"{theirs[key]!r}: {hint}")
    return feedback("scaling-ex2", True, "")
