"""The ``gpu`` profile's stage graph at SmolLM2-135M's real size, one step per stage, on the CPU.

Issue 7 asks for the ``gpu`` profile's time and peak memory per chapter, measured on a GPU. Where
no GPU is lent, this is the nearest measurement that can be made: a *random* model with
SmolLM2-135M's exact shape (30 layers, width 576, 9 query heads sharing 3 key/value heads, a
49 152-token vocabulary, tied embeddings: 134.5 M parameters) and the tests' ChatML tokenizer
(``tests/smol_like.py``) go through every trainer of the ``gpu`` profile's stage graph, with the
``gpu`` profile's batch shapes (batch sizes, ``max_length`` 256, 64 new tokens, rollouts and groups
per step) but one optimizer step per stage (PPO: one iteration of one epoch; world-base: 2 000
documents; chapter 6's judging: 8 held-out prompts), in fp32 on the CPU. Each stage runs in a
process of its own, its upstream stages already cached, and the script records its wall time and
peak resident memory. Stages that repeat a measured trainer at the same batch size and
``max_length`` (`SAME_AS`) are left out: their data generation and judging, of fixed size, would
take hours here.

What it shows: every trainer runs at the real model's size and batch shapes, and how much memory
each needs in fp32. On a GPU the Trainer-based stages run under fp16/bf16 autocast (fp32 weights
and optimizer state, half-precision activations), so they need less; the course's own PPO runs in
fp32 there as here. A GPU adds its CUDA context and the allocator's slack, and the figures here
include about 1 GB of Python and libraries (``rss_before_gb``). What it does not show: GPU time, or
whether the ``gpu`` budgets teach the lessons (the weights are random). Not part of ``make test``
(25 minutes on 2 cores): ``make gpu-dry-run`` writes ``benchmarks/results/gpu_dry_run.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "gpu_dry_run.json"
# SmolLM2-135M's config.json (HuggingFaceTB/SmolLM2-135M)
SMOLLM2_135M = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                    num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192,
                    rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=0,
                    eos_token_id=0)
# the stages run, upstream first (world-base is the gpu profile's base): every trainer and batch
# shape of the gpu profile's stage graph
STAGES = ("world-base", "sft", "sft-filtered", "lora", "qlora", "reward", "ppo", "ppo-hack", "dpo",
          "grpo")
# the stages left out: the same trainers at the same batch shapes as a stage above, around data
# generation or judging of fixed size that would take hours at this size on a CPU
SAME_AS = {"dpo-sweep": "dpo", "sl-cai": "sft", "rl-cai": "dpo",
           "cai-ablations": "sft, dpo", "grpo-variants": "grpo", "sft-contaminated": "sft"}
# chapter 6's judging reads this many held-out prompts (dpo_family.N_HELDOUT, 300) seven times
DRY_HELDOUT = 8


def dry_budgets(budgets: dict) -> dict:
    """The ``gpu`` budgets with their batch shapes kept and one optimizer step each.

    Args:
        budgets: `profiles.GPU.budgets`.
    """
    out = {}
    for name, budget in budgets.items():
        budget = dict(budget)
        if "max_steps" in budget:
            budget["max_steps"] = 1
        if "iterations" in budget:
            budget.update(iterations=1, num_ppo_epochs=1)
        if "n_docs" in budget:
            budget["n_docs"] = 2000
        out[name] = budget
    return out


def build_base(folder: Path) -> int:
    """Save a random SmolLM2-135M-shaped model and the tests' ChatML tokenizer in `folder`.

    Returns:
        The model's parameter count.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    sys.path.insert(0, str(ROOT / "tests"))
    from smol_like import build_smol_like

    build_smol_like(folder)  # the tokenizer; its tiny model is replaced below
    tokenizer = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M))
    if len(tokenizer) > model.config.vocab_size:
        raise ValueError("the stand-in tokenizer is larger than SmolLM2's vocabulary")
    model.save_pretrained(folder, safe_serialization=True)
    return sum(p.numel() for p in model.parameters())


def run_stage(name: str, workdir: Path, threads: int) -> dict:
    """Train stage `name` (its upstream stages cached) in this process; wall seconds and peak RSS."""
    os.environ["POSTTRAIN_CACHE"] = str(workdir / "cache")
    from posttrain_utils.runtime import checkpoints, profiles

    import torch

    torch.set_num_threads(threads)
    profile = dataclasses.replace(
        profiles.GPU, model_name_or_path=str(workdir / "base"), device="cpu", offline=True,
        dtype="float32", num_threads=threads, n_eval=8, seed=0, budgets=dry_budgets(profiles.GPU.budgets))
    profiles.go_offline()
    if os.environ.get(profiles.NO_NETWORK_ENV) == "1":  # as `make test` runs: any network use fails
        from posttrain_utils.runtime import netguard

        netguard.forbid_network()
    profiles.seed_everything(0)
    from posttrain_utils.dpo import family as dpo_family

    dpo_family.N_HELDOUT = DRY_HELDOUT  # judging is not what is measured here
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.time()
    checkpoints.path(name, profile)
    return {"stage": name, "seconds": round(time.time() - start, 1),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "rss_before_gb": round(before / 2**20, 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=str(ROOT / ".cache" / "gpu-dry-run"),
                        help="scratch folder: the random base model and the stages' cache")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", action="append", help="run these stages (upstream ones too)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)  # the child process's one stage
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    if args.stage:
        print(json.dumps(run_stage(args.stage, workdir, args.threads)))
        return 0
    workdir.mkdir(parents=True, exist_ok=True)
    n_params = build_base(workdir / "base")  # the same weights each time (seeded)
    print(f"random SmolLM2-135M-shaped base: {n_params:,} parameters")
    rows = []
    for name in STAGES if not args.only else [s for s in STAGES if s in args.only]:
        child = subprocess.run([sys.executable, __file__, "--stage", name, "--workdir", str(workdir),
                                "--threads", str(args.threads)], capture_output=True, text=True)
        if child.returncode != 0:
            print(child.stdout[-4000:], child.stderr[-8000:], sep="\n", file=sys.stderr)
            print(f"{name}: FAILED", file=sys.stderr)
            return 1
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(f"{name:<18} {rows[-1]['seconds']:>7.1f} s   peak RSS {rows[-1]['peak_rss_gb']:.2f} GB")
    if not args.only:
        RESULT.write_text(json.dumps({
            "about": __doc__.split("\n\n")[1].replace("\n", " "),
            "date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPU cores, no GPU",
            "threads": args.threads, "parameters": n_params, "stages": rows,
            "not_run": {name: f"the trainer and batch shape of {same}" for name, same in SAME_AS.items()},
        }, indent=1) + "\n")
        print(f"-> {RESULT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
