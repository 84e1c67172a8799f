"""Memory arithmetic for data-parallel training: what each GPU holds under DDP, ZeRO and FSDP.

Introduced in the appendix "Scaling up with accelerate" (chapter 11). Training a model of N
parameters with AdamW keeps three kinds of *model state* per parameter: the weights, their
gradients and the optimizer's state. The bytes per parameter depend on the precision recipe
(`PRECISIONS`); the strategy decides which of the three are split across the G processes:

* ``ddp``: nothing is split, every GPU holds everything;
* ``zero1``: the optimizer states are split (DeepSpeed ZeRO stage 1);
* ``zero2``: optimizer states and gradients are split (ZeRO-2);
* ``zero3`` and ``fsdp`` (FSDP full shard): all three are split.

The convention of the ZeRO paper (Rajbhandari et al. 2020) for bf16/fp16 mixed precision with
Adam: 2 bytes of half-precision weights, 2 of gradients and K = 12 of optimizer state (an fp32
master copy and two fp32 moments), 16 bytes per parameter in all. FSDP2 with accelerate's bf16
mixed precision keeps the sharded weights in fp32 and casts them per layer, so its split is
4 + 4 + 8: the same 16 bytes. Activations, the temporarily gathered layer of ZeRO-3/FSDP,
communication buffers and the allocator's overhead are *not* counted.

`state_bytes` measures the same three quantities from a model's and an optimizer's tensors (a
sharded `DTensor` counts its local shard only), and ``python -m posttrain_utils.scaling.memory`` trains
the tiny model for a few AdamW steps, plainly or with FSDP2 (`torch.distributed.fsdp.fully_shard`)
when started by ``torchrun --nproc_per_node G``, and writes what each process holds.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

STRATEGIES = ("ddp", "zero1", "zero2", "zero3", "fsdp")
# bytes per parameter: (weights, gradients, optimizer state) for AdamW
PRECISIONS = {
    "bf16-mixed": (2, 2, 12),  # ZeRO paper: bf16 weights and grads; fp32 master + 2 fp32 moments
    "fp32": (4, 4, 8),  # plain fp32 training (the cpu profile): fp32 weights, grads, 2 moments
}
_SHARDED = {"ddp": (False, False, False), "zero1": (False, False, True), "zero2": (False, True, True),
            "zero3": (True, True, True), "fsdp": (True, True, True)}
GIB = 1024 ** 3


def bytes_per_param(strategy: str, precision: str = "bf16-mixed") -> tuple[int, int, int]:
    """(weights, gradients, optimizer) bytes per parameter, before sharding.

    FSDP under ``bf16-mixed`` keeps fp32 sharded weights and gradients: 4 + 4 + 8.

    Args:
        strategy: one of `STRATEGIES`.
        precision: one of `PRECISIONS`.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {sorted(PRECISIONS)}")
    if strategy == "fsdp" and precision == "bf16-mixed":
        return (4, 4, 8)
    return PRECISIONS[precision]


def per_gpu_bytes(n_params: int, n_gpus: int, strategy: str, precision: str = "bf16-mixed") -> dict:
    """Model-state bytes one GPU holds when `n_gpus` GPUs train `n_params` parameters.

    A split quantity is ``ceil(n_params / n_gpus)`` parameters' worth per GPU (the last shard is
    padded, as FSDP and ZeRO pad flat buffers).

    Args:
        n_params: the model's parameter count (positive).
        n_gpus: data-parallel processes (positive).
        strategy: ``"ddp"``, ``"zero1"``, ``"zero2"``, ``"zero3"`` or ``"fsdp"``.
        precision: ``"bf16-mixed"`` (default) or ``"fp32"``.

    Returns:
        ``{"params", "grads", "optimizer", "total"}`` in bytes.
    """
    for name, value in (("n_params", n_params), ("n_gpus", n_gpus)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    sizes = bytes_per_param(strategy, precision)
    shard = math.ceil(n_params / n_gpus)
    out = {key: size * (shard if split else n_params)
           for key, size, split in zip(("params", "grads", "optimizer"), sizes, _SHARDED[strategy])}
    out["total"] = sum(out.values())
    return out


def table(sizes=(1_000_000_000, 7_000_000_000), gpus=(1, 2, 8), strategies=("ddp", "zero2", "zero3", "fsdp"),
          precision: str = "bf16-mixed"):
    """Per-GPU model-state GiB for each model size, GPU count and strategy, as a DataFrame.

    Args:
        sizes: parameter counts (rows are labelled ``1B``, ``7B``, ...).
        gpus: GPU counts (rows).
        strategies: columns.
        precision: see `PRECISIONS`.
    """
    import pandas as pd

    rows = {}
    for n in sizes:
        label = f"{n / 1e9:g}B" if n >= 1e9 else f"{n / 1e6:g}M"
        for g in gpus:
            rows[(label, g)] = {s: per_gpu_bytes(n, g, s, precision)["total"] / GIB for s in strategies}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.names = ["model", "GPUs"]
    return frame


def _local(tensor):
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def _nbytes(tensor) -> int:
    local = _local(tensor)
    return local.numel() * local.element_size()


def state_bytes(model, optimizer) -> dict:
    """Measured model-state bytes held by this process: weights, gradients, optimizer state.

    Counts each parameter once (tied weights are one tensor), its ``.grad``, and every tensor of
    at least one dimension in the optimizer's state (AdamW's ``exp_avg`` and ``exp_avg_sq``; the
    0-dimensional ``step`` counters are bookkeeping, not per-parameter state). For a sharded
    `DTensor` (FSDP2) only the local shard counts.

    Returns:
        ``{"params", "grads", "optimizer", "total", "n_params"}``; ``n_params`` is the local count.
    """
    import torch

    params = list(model.parameters())
    out = {"params": sum(_nbytes(p) for p in params),
           "grads": sum(_nbytes(p.grad) for p in params if p.grad is not None),
           "optimizer": sum(_nbytes(v) for state in optimizer.state.values() for v in state.values()
                            if torch.is_tensor(v) and v.dim() > 0)}
    out["total"] = out["params"] + out["grads"] + out["optimizer"]
    out["n_params"] = sum(_local(p).numel() for p in params)
    return out


def measure(steps: int = 2, batch: int = 4, length: int = 32, seed: int = 0) -> dict:
    """Train the tiny base model for `steps` AdamW steps on this process's share of a batch of
    random tokens, fully sharded with FSDP2 if a process group of more than one rank is set up
    by the launcher, and measure `state_bytes`.

    Returns:
        ``{"rank", "world_size", "sharded", "losses", **state_bytes}``: `losses` are the global
        batch's mean loss per step (averaged over ranks).
    """
    import os

    import torch
    import torch.distributed as dist
    import transformers
    from transformers import AutoModelForCausalLM

    from ..runtime.paths import TINY_BASE_DIR

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    rank = dist.get_rank() if world > 1 else 0
    if batch % world:
        raise ValueError(f"batch {batch} does not split over {world} processes")
    transformers.logging.disable_progress_bar()
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(TINY_BASE_DIR), dtype=torch.float32)
    if world > 1:
        from torch.distributed.fsdp import fully_shard

        for layer in model.model.layers:
            fully_shard(layer)  # one shard unit per LlamaDecoderLayer, as in fsdp.yaml
        fully_shard(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, model.config.vocab_size, (batch, length), generator=generator)
    mine = tokens[rank * batch // world:(rank + 1) * batch // world]
    losses = []
    for _ in range(steps):
        loss = model(input_ids=mine, labels=mine).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)
        logged = loss.detach().clone()
        if world > 1:
            dist.all_reduce(logged)
            logged /= world
        losses.append(float(logged))
    out = {"rank": rank, "world_size": world, "sharded": world > 1, "losses": losses,
           **state_bytes(model, optimizer)}
    if world > 1:
        dist.destroy_process_group()
    return out


def main(argv=None) -> dict:
    """``[torchrun --nproc_per_node G] python -m posttrain_utils.scaling.memory --output-dir DIR``."""
    p = argparse.ArgumentParser(prog="python -m posttrain_utils.scaling",
                                description="Measure the model-state bytes each process holds after "
                                            "AdamW steps on the tiny model (FSDP2 when launched on "
                                            "several processes); writes OUTPUT_DIR/bytes_rankR.json.")
    p.add_argument("--output-dir", required=True, type=Path, help="folder for bytes_rank<R>.json")
    p.add_argument("--steps", type=int, default=2, help="AdamW steps (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random tokens (default: 0)")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error(f"--steps must be positive, got {args.steps}")
    result = measure(steps=args.steps, seed=args.seed)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / f"bytes_rank{result['rank']}.json").write_text(json.dumps(result, indent=1))
    print(f"rank {result['rank']}/{result['world_size']}: {result['total']} bytes of model state "
          f"({result['n_params']} local parameters), losses {[round(x, 5) for x in result['losses']]}")
    return result


if __name__ == "__main__":
    main()
