"""Benchmark: seconds per PPO iteration, the course's PPO against TRL 1.12's PPOTrainer.

Run it with ``make bench-ppo`` (which also builds ``.venv-bench`` with TRL 1.12). By hand, from the
repository root in the main venv:
``.venv/bin/python benchmarks/bench_ppo.py --trl-python .venv-bench/bin/python``.

It saves one policy and one reward/value model (a one-label sequence classifier from the same
weights) to a temporary folder, tokenises the first ``--prompts`` training prompts, and then runs
the two sides in alternation, each in a fresh single-threaded process: ours here (``--side ours``,
main venv) and TRL's in ``ppo_trl_side.py`` (bench venv). Each run does one warm-up iteration and
``--iterations`` timed ones on the same 64 prompts. The result (medians, ratio ours/TRL, settings,
versions, machine) goes to ``benchmarks/results/ppo_cpu.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUT = HERE / "results" / "ppo_cpu.json"


def _activate():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from posttrain_utils.runtime import profiles

    profile = profiles.activate("cpu", seed=0)  # sets torch to one thread
    import torch

    torch.set_num_threads(1)
    return profile


def prepare(workdir: Path, n_prompts: int) -> dict:
    """Save the policy, the reward/value model, the prompts and the settings both sides read."""
    from posttrain_utils.data import load_records
    from posttrain_utils.runtime.models import load_model, load_reward_model
    from posttrain_utils.ppo import PPOConfig
    from posttrain_utils.runtime import checkpoints

    profile = _activate()
    source = checkpoints.path("sft", profile) if checkpoints.is_cached("sft", profile) else None
    policy, tokenizer = load_model(source, profile)
    reward_model, _ = load_reward_model(source, profile)
    for name, model in (("policy", policy), ("reward", reward_model)):
        model.save_pretrained(workdir / name)
        tokenizer.save_pretrained(workdir / name)
    prompts = [record["prompt"] for record in load_records("prompts_train")][:n_prompts]
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
             for p in prompts]
    input_ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    (workdir / "prompts.json").write_text(json.dumps({"messages": prompts, "input_ids": input_ids}))
    settings = {**asdict(PPOConfig()), "model": "sft stage" if source else "tiny base",
                "prompts": n_prompts, "threads": 1}
    (workdir / "settings.json").write_text(json.dumps(settings, indent=1))
    return settings


def run_ours(workdir: Path, iterations: int) -> dict:
    """Our side: `posttrain_utils.ppo.trainer.PPOTrainer`, as the ``ppo`` stage builds it."""
    import copy

    profile = _activate()
    import torch
    import transformers
    import trl

    from posttrain_utils.runtime.models import load_model, load_reward_model
    from posttrain_utils.ppo import PPOConfig
    from posttrain_utils.ppo.trainer import PPOTrainer
    from posttrain_utils.reward import score

    settings = json.loads((workdir / "settings.json").read_text())
    prompts = json.loads((workdir / "prompts.json").read_text())["messages"]
    policy, tokenizer = load_model(workdir / "policy", profile)
    ref_policy = copy.deepcopy(policy)
    reward_model, _ = load_reward_model(workdir / "reward", profile)
    reward_model.eval().requires_grad_(False)
    value_model = copy.deepcopy(reward_model).requires_grad_(True)

    def reward_fn(prompts, replies):
        return score(reward_model, tokenizer, prompts, replies)

    known = set(asdict(PPOConfig()))
    config = PPOConfig(**{k: v for k, v in settings.items() if k in known})
    trainer = PPOTrainer(config, policy, ref_policy, value_model, tokenizer, reward_fn, prompts)
    history = trainer.train(1 + iterations)
    return {"seconds": [entry["seconds"] for entry in history],
            "eos_fraction": [1 - entry["no_eos_fraction"] for entry in history],
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "trl": trl.__version__}}  # trl: the main venv's, not used by our PPO


def _run_side(cmd: list[str], out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false", "TRL_EXPERIMENTAL_SILENCE": "1"}
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return json.loads(out.read_text())


def _git_head() -> str:
    """The checked-out commit (the working tree may hold uncommitted changes on top of it)."""
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True)
    return out.stdout.strip() or "unknown"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trl-python", default=str(ROOT / ".venv-bench" / "bin" / "python"),
                        help="the bench venv's python, with trl==1.12.0")
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs per side, interleaved")
    parser.add_argument("--prompts", type=int, default=64, help="prompt pool (= one batch)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--side", choices=["ours"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.rounds < 1:
        parser.error("--iterations and --rounds must be at least 1")
    if args.side == "ours":  # a child process: one run of our side
        args.out.write_text(json.dumps(run_ours(args.workdir, args.iterations)))
        return

    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_ppo_") as tmp:
        workdir = Path(tmp)
        settings = prepare(workdir, args.prompts)
        commands = {
            "ours": [sys.executable, str(Path(__file__).resolve()), "--side", "ours"],
            "trl": [args.trl_python, str(HERE / "ppo_trl_side.py")],
        }
        runs = {"ours": [], "trl": []}
        for round_ in range(args.rounds):
            for side, cmd in commands.items():
                out = workdir / f"{side}_{round_}.json"
                start = time.perf_counter()
                print(f"round {round_ + 1}/{args.rounds}: {side} ...", flush=True)
                result = _run_side(cmd + ["--workdir", str(workdir), "--out", str(out),
                                          "--iterations", str(args.iterations)], out)
                print(f"  done in {time.perf_counter() - start:.0f} s: seconds per iteration "
                      f"{[round(s, 2) for s in result['seconds']]}", flush=True)
                runs[side].append(result)

    def timed(side):  # every run's iterations after its warm-up
        return [s for run in runs[side] for s in run["seconds"][1:]]

    def run_median(run):
        return statistics.median(run["seconds"][1:])

    medians = {side: statistics.median(timed(side)) for side in runs}
    report = {
        "benchmark": "seconds per PPO iteration (rollouts + optimisation), median after warm-up",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": _git_head(),
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor()
                    or platform.machine(), "python": platform.python_version(),
                    "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg()},
        "settings": {**settings, "timed_iterations_per_run": args.iterations,
                     "rounds": args.rounds, "warmup_iterations_per_run": 1},
        "ours": {"median_s": medians["ours"], "runs": runs["ours"]},
        "trl_1_12": {"median_s": medians["trl"], "runs": runs["trl"]},
        "ratio_ours_over_trl": medians["ours"] / medians["trl"],
        "ratio_per_round": [run_median(o) / run_median(t)
                            for o, t in zip(runs["ours"], runs["trl"])],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")

    print(f"\n{'side':<22}{'median s/iter':>14}{'per-run medians':>28}")
    for side, label in (("ours", "course PPOTrainer"), ("trl", "TRL 1.12 PPOTrainer")):
        per_run = ", ".join(f"{run_median(r):.2f}" for r in runs[side])
        print(f"{label:<22}{medians[side]:>14.2f}{per_run:>28}")
    print(f"ratio ours/TRL: {report['ratio_ours_over_trl']:.2f} "
          f"(per round: {', '.join(f'{r:.2f}' for r in report['ratio_per_round'])})")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
