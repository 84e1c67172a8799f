"""Train every stage of the cpu profile at one seed into a cache of its own, then hash its files.

Issue 29 (the package redrawn by method) must leave every trained weight bit for bit as it was.
This script is run once on the commit before the move and once after it, each time into an empty
cache; `--compare` then writes the side-by-side table that ``benchmarks/results/`` keeps.

    python scripts/stage_hashes.py --cache /tmp/before --out before.json
    python scripts/stage_hashes.py --compare before.json after.json --out result.json

Stages train in two single-threaded processes side by side, as ``make execute`` trains them.
Fingerprints differ between the two runs (they hash the modules' source); the files must not.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SHARED = ["sft", "reward"]
GROUPS = [["sl-cai", "ppo", "dpo", "rl-cai", "grpo", "sft-filtered"],
          ["ppo-hack", "dpo-sweep", "cai-ablations", "grpo-variants", "lora", "qlora",
           "sft-contaminated"]]


# Issue 29 moved where chapter 6's five other methods are saved: the ``dpo-family`` stage (which
# trained them a second time) is gone, and the ``dpo`` stage saves every method it trains.
RENAMED = {f"runs/dpo-family/{m}/model/{f}": f"runs/dpo/{m}/model/{f}"
           for m in ("DPO", "IPO", "KTO", "ORPO", "SimPO")
           for f in ("model.safetensors", "tokenizer.json", "tokenizer_config.json",
                     "chat_template.jinja", "config.json", "generation_config.json")}
RENAMED.update({f"dpo-family/{f}": f"runs/dpo/SimPO/model/{f}"
                for f in ("model.safetensors", "config.json", "generation_config.json",
                          "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")})
# RPO, saved now with the others, is the ``dpo`` stage's own model
SAVED_TWICE = {f"runs/dpo/RPO/model/{f}": f"dpo/{f}"
               for f in ("model.safetensors", "config.json", "generation_config.json",
                         "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")}


def hash_tree(folder: Path) -> dict[str, str]:
    """sha256 of every stage folder's files (not its fingerprint) and of every model a stage saved
    in its run folder (``runs/<stage>/<method>/model/``); not the trainers' other scratch files."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        keep = (not rel.startswith(("runs/", "report/"))) or ("/model/" in rel and rel.startswith("runs/"))
        if (path.is_file() and keep and ".tmp" not in rel and "/checkpoint-" not in rel
                and not rel.endswith(("fingerprint.txt", ".lock"))):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def train(cache: Path, seed: int, extra: list[str]) -> dict:
    env = dict(os.environ, POSTTRAIN_CACHE=str(cache), POSTTRAIN_SEED=str(seed),
               POSTTRAIN_PROFILE="cpu", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "posttrain_utils.runtime.checkpoints"]
    start = time.time()
    subprocess.run(cmd + SHARED, env=env, check=True)
    groups = [g + ([s for s in extra if i == 0]) for i, g in enumerate(GROUPS)]
    procs = [subprocess.Popen(cmd + g, env=env) for g in groups]
    if any(p.wait() for p in procs):
        raise SystemExit("a stage failed to train")
    return {"seconds": round(time.time() - start),
            "files": hash_tree(cache / f"cpu-seed{seed}")}


def compare(before: dict, after: dict) -> dict:
    a = {RENAMED.get(k, k): v for k, v in before["files"].items()}
    b = {k: v for k, v in after["files"].items() if not k.startswith("report/")}
    a.update({new: a[old] for new, old in SAVED_TWICE.items() if old in a and new in b})
    rows = {}
    for name in sorted(set(a) | set(b)):
        rows[name] = ("same" if a.get(name) == b.get(name) and name in a
                      else "only before" if name not in b
                      else "only after" if name not in a else "DIFFERENT")
    weights = {k: v for k, v in rows.items() if k.endswith(".safetensors")}
    return {"weights_identical": all(v == "same" for v in weights.values()),
            "all_files_identical": all(v == "same" for v in rows.values()),
            "files": rows, "before": before.get("commit"), "after": after.get("commit"),
            "sha256": {k: a.get(k) or b.get(k) for k in weights}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extra", nargs="*", default=[], help="more stages, first group")
    parser.add_argument("--compare", nargs=2, type=Path)
    parser.add_argument("--rehash", action="store_true", help="hash --cache again, train nothing")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.compare:
        result = compare(*(json.loads(p.read_text()) for p in args.compare))
    else:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip()
        if args.rehash:
            result = {**json.loads(args.out.read_text()),
                      "files": hash_tree(args.cache / f"cpu-seed{args.seed}")}
        else:
            result = {"commit": commit, "seed": args.seed,
                      **train(args.cache, args.seed, args.extra)}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("files", "sha256")}))


if __name__ == "__main__":
    main()
