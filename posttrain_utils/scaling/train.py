"""Training scripts: the chapters' SFT, DPO and GRPO recipes as one command, on one process or many.

Introduced in the appendix "Scaling up with accelerate" (chapter 11). Each subcommand builds the
same config and trainer as its chapter (`sft.sft_config` on the SFT chats, `dpo.family.make_trainer`
on the preference pairs, `grpo.grpo_config` on the sums of `grpo.tasks`), with a few fields
overridden from the command line, and runs unchanged on one process or under a launcher that
starts several (the Trainer reads the launcher's ``RANK``/``WORLD_SIZE`` through accelerate)::

    python -m posttrain_utils.scaling.train sft --profile cpu --max-steps 20 --output-dir runs/sft
    torchrun --nproc_per_node 2 -m posttrain_utils.scaling.train sft --profile cpu --max-steps 20 \\
        --output-dir runs/sft-ddp
    accelerate launch --config_file configs/accelerate/ddp.yaml -m posttrain_utils.scaling.train sft ...

The main process prints a progress bar, then one summary line (method, steps, final loss, wall
seconds, world size) and writes it, with the logged losses, to ``OUTPUT_DIR/summary.json``.
Nothing is saved into the stage cache: these are scratch runs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..runtime import profiles

METHODS = ("sft", "dpo", "grpo")
SUMMARY_FILE = "summary.json"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _common(p: argparse.ArgumentParser, start: str) -> None:
    p.add_argument("--profile", choices=sorted(profiles.PROFILES), default=None,
                   help="run profile (default: $POSTTRAIN_PROFILE, else gpu with CUDA, else cpu)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of model init, data order and sampling (default: $POSTTRAIN_SEED, else 0)")
    p.add_argument("--output-dir", required=True, type=Path,
                   help="the trainer's scratch folder; summary.json is written there")
    p.add_argument("--max-steps", type=_positive_int, default=None,
                   help="optimizer steps (default: the profile's budget for the method)")
    p.add_argument("--per-device-batch-size", type=_positive_int, default=None,
                   help="examples per process per step (GRPO: completions); the global batch is "
                        "this x processes x accumulation steps (default: the profile's budget)")
    p.add_argument("--gradient-accumulation-steps", type=_positive_int, default=1,
                   help="micro-batches summed before each optimizer step (default: 1)")
    p.add_argument("--learning-rate", type=_positive_float, default=None,
                   help="peak learning rate (default: the profile's budget)")
    p.add_argument("--logging-steps", type=_positive_int, default=1,
                   help="log the loss every this many steps (default: 1)")
    p.add_argument("--max-length", type=_positive_int, default=None,
                   help="longest tokenized example (default: the profile's max_length)")
    p.add_argument("--model", default=start,
                   help=f"starting model: 'base' (the profile's base model), a stage name of "
                        f"runtime.checkpoints (trained first if not cached) or a folder "
                        f"(default: {start})")


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m posttrain_utils.scaling.train``."""
    p = argparse.ArgumentParser(
        prog="python -m posttrain_utils.scaling.train",
        description="Train with a chapter's recipe (SFT: chapter 2, DPO family: chapter 6, GRPO: "
                    "chapter 8) on one process, or on several under torchrun or accelerate launch.")
    sub = p.add_subparsers(dest="method", required=True, metavar="{sft,dpo,grpo}",
                           help="the method; 'python -m posttrain_utils.scaling.train METHOD --help' lists its flags")
    sft = sub.add_parser("sft", help="supervised fine-tuning on data/sft_train.jsonl (chapter 2)",
                         description="SFTTrainer with sft.sft_config, on the shipped SFT chats.")
    _common(sft, "base")
    sft.add_argument("--eval-steps", type=int, default=0,
                     help="held-out loss every this many steps; 0 turns evaluation off (default: 0)")
    dpo = sub.add_parser("dpo", help="a DPO-family method on the preference pairs (chapter 6)",
                         description="dpo_family.make_trainer: TRL's trainer for the method, on the "
                                     "tone, length and correctness pairs.")
    _common(dpo, "sft")
    dpo.add_argument("--loss", default="DPO", choices=("DPO", "IPO", "RPO", "KTO", "SimPO", "ORPO"),
                     help="the preference method (default: DPO)")
    dpo.add_argument("--beta", type=_positive_float, default=None,
                     help="the KL strength beta (default: the profile's, or the method's own)")
    grpo = sub.add_parser("grpo", help="GRPO with the strict sum verifier (chapter 8)",
                          description="GRPOTrainer with grpo.grpo_config on the training sums.")
    _common(grpo, "sft")
    grpo.add_argument("--loss-type", default="dr_grpo", choices=("grpo", "dr_grpo", "dapo"),
                      help="how token losses are normalised (default: dr_grpo)")
    grpo.add_argument("--num-generations", type=_positive_int, default=None,
                      help="completions per prompt, at least 2 (default: the profile's)")
    grpo.add_argument("--max-completion-length", type=_positive_int, default=None,
                      help="new tokens per completion (default: the profile's)")
    return p


def overrides(args: argparse.Namespace) -> dict:
    """The config fields the command line changes (flags left unset keep the chapter's recipe).

    Args:
        args: parsed arguments of `parser`.
    """
    out = dict(gradient_accumulation_steps=args.gradient_accumulation_steps,
               logging_steps=args.logging_steps, disable_tqdm=False,
               ddp_find_unused_parameters=False)  # every parameter gets a gradient: skip DDP's search
    for flag, field in (("max_steps", "max_steps"), ("per_device_batch_size", "per_device_train_batch_size"),
                        ("learning_rate", "learning_rate"), ("max_length", "max_length")):
        if getattr(args, flag) is not None:
            out[field] = getattr(args, flag)
    if args.method == "sft":
        if args.eval_steps < 0:
            raise ValueError(f"--eval-steps must be >= 0, got {args.eval_steps}")
        out.update(eval_strategy="steps", eval_steps=args.eval_steps) if args.eval_steps \
            else out.update(eval_strategy="no")
    elif args.method == "dpo" and args.beta is not None:
        out["beta"] = args.beta
    elif args.method == "grpo":
        if args.num_generations is not None:
            if args.num_generations < 2:
                raise ValueError(f"--num-generations must be at least 2, got {args.num_generations}")
            out["num_generations"] = args.num_generations
        if args.max_completion_length is not None:
            out["max_completion_length"] = args.max_completion_length
    return out


def load_start(model: str, profile):
    """`(model, tokenizer)` from ``"base"``, a stage name or a folder (see ``--model``).

    Raises:
        FileNotFoundError: if `model` is neither a stage nor an existing folder.
    """
    from ..runtime.models import load_model
    from ..runtime import checkpoints

    if model == "base":
        return load_model(None, profile)
    if model in checkpoints.STAGES:
        return load_model(checkpoints.path(model, profile), profile)
    if not Path(model).is_dir():
        raise FileNotFoundError(f"--model {model!r} is neither 'base', a stage "
                                f"({', '.join(sorted(checkpoints.STAGES))}) nor a folder")
    return load_model(model, profile)


def build_trainer(args: argparse.Namespace, profile):
    """The trainer a chapter would build for `args.method`, with `overrides(args)` applied."""
    from ..runtime.profiles import seed_everything

    changes = overrides(args)
    model, tokenizer = load_start(args.model, profile)
    seed_everything(profile.seed)
    out = args.output_dir
    if args.method == "sft":
        from ..data.loading import load_dataset
        from ..sft.recipe import DATA_FILES, sft_config, sft_trainer

        eval_data = load_dataset(DATA_FILES[1], columns=["messages"]) if args.eval_steps else None
        return sft_trainer(model, tokenizer, sft_config(profile, out, **changes),
                           load_dataset(DATA_FILES[0], columns=["messages"]), eval_data)
    if args.method == "dpo":
        from ..dpo.family import make_trainer

        return make_trainer(args.loss, profile, out, model, tokenizer, **changes)
    from datasets import Dataset
    from trl import GRPOTrainer

    from ..grpo.loss import grpo_config
    from ..grpo.verifiers import strict_reward
    from ..grpo.tasks import RewardLog, train_prompts

    config = grpo_config(profile, out, loss_type=args.loss_type, **changes)
    return GRPOTrainer(model=model, args=config, processing_class=tokenizer,
                       reward_funcs=[RewardLog(strict_reward, config.num_generations)],
                       train_dataset=Dataset.from_list(train_prompts(profile.seed)))


def summarize(method: str, trainer, seconds: float) -> dict:
    """The run's summary: steps, logged losses, final loss, wall seconds, world size."""
    losses = [(row["step"], row["loss"]) for row in trainer.state.log_history if "loss" in row]
    return {"method": method, "steps": trainer.state.global_step,
            "final_loss": losses[-1][1] if losses else float("nan"), "seconds": seconds,
            "world_size": trainer.args.world_size,
            "global_batch": trainer.args.per_device_train_batch_size * trainer.args.world_size
            * trainer.args.gradient_accumulation_steps,
            "losses": losses, "log_history": trainer.state.log_history}


def run(args: argparse.Namespace) -> dict:
    """Activate the profile, train, and (on the main process) print and write the summary."""
    from ..runtime.notebook import quiet

    profile = profiles.activate(args.profile, args.seed)
    trainer = build_trainer(args, profile)
    began = time.perf_counter()
    quiet(trainer).train()
    summary = summarize(args.method, trainer, time.perf_counter() - began)
    if trainer.is_world_process_zero():
        args.output_dir.mkdir(parents=True, exist_ok=True)
        (args.output_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1, default=float))
        print(f"{summary['method']}: {summary['steps']} steps, final loss {summary['final_loss']:.4f}, "
              f"{summary['seconds']:.1f} s wall, world size {summary['world_size']}", flush=True)
    return summary


def main(argv=None) -> dict:
    """``python -m posttrain_utils.scaling.train sft|dpo|grpo --output-dir DIR [--max-steps N] ...``."""
    cli = parser()
    args = cli.parse_args(argv)
    try:
        overrides(args)  # a bad combination fails before any model is loaded
    except ValueError as err:
        cli.error(str(err))
    return run(args)


if __name__ == "__main__":
    main()
