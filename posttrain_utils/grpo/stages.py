"""Chapter 8's cached stages: GRPO runs on the tiny world's sums, and what each one measured.

Introduced in chapter 8 ("GRPO and verifiable rewards"). Two stages, both trained from ``sft``
with the same seed and the same `grpo.grpo_config` recipe:

* ``grpo``: Dr. GRPO (``loss_type="dr_grpo"``) with the strict verifier, the chapter's model;
* ``grpo-variants``: the same run with GRPO's ``1/|o|`` length normalisation (``loss_type="grpo"``),
  and Dr. GRPO with the flawed `grpo.lenient_reward` at `LENIENT_LR_FACTOR` times the step size
  (the reward-hacking lab). The stage's model is the ``loss_type="grpo"`` one.

Each writes ``results.json`` to its run folder (`results`): per-step rows (`grpo.tasks.RewardLog`),
held-out accuracy at checkpoints, the trainer's log history, the SFT model's and the trained model's
side-effect metrics (facts, tone, length) and wall time.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..runtime.graph import Stage
from ..runtime.results import read_results, write_results
from .loss import grpo_config
from .verifiers import lenient_reward, strict_reward
from .tasks import EVAL_MAX_NEW_TOKENS, RewardLog, heldout_prompts, sums_accuracy, train_prompts

# The flawed verifier's run takes this multiple of the budget's step size. At 1x the exploit showed
# within the cpu budget's 100 steps at seeds 0 and 1 but not at seed 2 (lenient reward 0.93 vs strict
# 0.80, numbers per reply 2.9 -> 4.3); at 3x seed 2 exploited it too (0.82 vs 0.26, 2.8 -> 7.8).
LENIENT_LR_FACTOR = 3
CHECKPOINTS = 4  # held-out accuracy is measured at step 0 and this many more times


def side_effects(model, tokenizer, profile) -> dict[str, float]:
    """What the sum reward never mentions: held-out facts (greedy), the sampled rude rate and mean
    reply length on the first ``profile.n_eval`` records of ``eval_test``."""
    from ..data.splits import test_records
    from ..evaluation.generation import evaluate

    records = test_records(profile.n_eval)
    greedy = evaluate(model, tokenizer, records, profile)
    sampled = evaluate(model, tokenizer, records, profile, sample=True)
    return {"facts_em": greedy["facts_em"], "rude_sampled": sampled["rude"],
            "length_words": greedy["length"], "format": greedy["format"]}


def run(profile, output_dir: str | Path, sft: str | Path, *, loss_type: str = "dr_grpo",
        reward=strict_reward, name: str = "dr_grpo", heldout: list[dict] | None = None, **overrides):
    """One GRPO run from the SFT model with `GRPOTrainer`, measured as it trains.

    Args:
        profile: the run profile (its ``grpo`` budget).
        output_dir: the trainer's scratch folder.
        sft: the folder of the ``sft`` stage.
        loss_type: passed to `grpo.grpo_config`.
        reward: the reward function optimised (strict accuracy is recorded either way).
        name: the run's name in the results.
        heldout: the questions held-out accuracy is measured on (default: `heldout_prompts`).
        **overrides: `GRPOConfig` fields to change, e.g. ``learning_rate``.

    Returns:
        ``(model, tokenizer, result)``: ``result`` has ``rows`` (per step), ``curve`` (step,
        held-out greedy accuracy), ``log_history``, ``seconds`` and ``loss_type``.
    """
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from ..runtime.models import load_model
    from ..runtime.profiles import seed_everything

    seed_everything(profile.seed)
    model, tokenizer = load_model(sft, profile)
    config = grpo_config(profile, Path(output_dir) / name, loss_type=loss_type, **overrides)
    log = RewardLog(reward, config.num_generations)
    evals, heldout = max(config.max_steps // CHECKPOINTS, 1), heldout or heldout_prompts()
    curve = [(0, sums_accuracy(model, tokenizer, heldout, profile)["accuracy"])]

    class HeldOut(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % evals == 0 or state.global_step == args.max_steps:
                curve.append((state.global_step, sums_accuracy(model, tokenizer, heldout, profile)["accuracy"]))
                seed_everything(profile.seed + state.global_step)  # sampling after it stays reproducible

    trainer = GRPOTrainer(model=model, args=config, processing_class=tokenizer, reward_funcs=[log],
                          train_dataset=Dataset.from_list(train_prompts(profile.seed)), callbacks=[HeldOut()])
    start = time.time()
    trainer.train()
    seconds = time.time() - start
    model.eval()
    return model, tokenizer, {"rows": log.rows, "curve": curve, "log_history": trainer.state.log_history,
                              "seconds": seconds, "loss_type": loss_type, "reward": log.__name__,
                              "learning_rate": config.learning_rate}


def samples(model, tokenizer, profile, n: int = 6) -> list[dict]:
    """Greedy replies to `n` held-out questions (one per sum), with both verifiers' verdicts."""
    from ..evaluation.generation import generate

    records = heldout_prompts()[:: len(heldout_prompts()) // n][:n]
    replies = [x["text"] for x in generate(model, tokenizer, [r["prompt"] for r in records], profile,
                                           max_new_tokens=EVAL_MAX_NEW_TOKENS)]
    prompts, answers = [r["prompt"] for r in records], [r["answer"] for r in records]
    return [{"question": p[-1]["content"], "reply": reply, "strict": s, "lenient": lenient}
            for p, reply, s, lenient in zip(prompts, replies, strict_reward(prompts, replies, answers),
                                            lenient_reward(prompts, replies, answers))]


def results(name: str = "grpo", profile=None) -> dict:
    """A GRPO stage's ``results.json`` (trained first if missing), e.g. ``results("grpo")``."""
    from ..runtime import checkpoints

    checkpoints.path(name, profile)
    return read_results(checkpoints.run_dir(name, profile))


def train_grpo(profile, output_dir: str | Path, sft: str | Path):
    """Train the ``grpo`` stage (Dr. GRPO, strict verifier); ``results.json`` holds ``sft`` (held-out
    accuracy and side effects before), ``dr_grpo`` (the run) and ``after`` (side effects after)."""
    from ..runtime.models import load_model

    before_model, tokenizer = load_model(sft, profile)
    before = {**sums_accuracy(before_model, tokenizer, profile=profile),
              **side_effects(before_model, tokenizer, profile)}
    del before_model
    model, tokenizer, result = run(profile, output_dir, sft)
    after = {**sums_accuracy(model, tokenizer, profile=profile), **side_effects(model, tokenizer, profile)}
    write_results(output_dir, {"sft": before, "dr_grpo": result, "after": after})
    return model, tokenizer


def train_variants(profile, output_dir: str | Path, sft: str | Path):
    """Train the ``grpo-variants`` stage: ``grpo`` (GRPO's length normalisation, strict verifier)
    and ``lenient`` (Dr. GRPO against the flawed verifier, at `LENIENT_LR_FACTOR` times the step
    size) in ``results.json``, each with its final held-out metrics under ``after``."""
    out = {}
    lenient_lr = LENIENT_LR_FACTOR * profile.budget("grpo")["learning_rate"]
    model, tokenizer, out["lenient"] = run(profile, output_dir, sft, reward=lenient_reward, name="lenient",
                                           learning_rate=lenient_lr)
    out["lenient"]["after"] = sums_accuracy(model, tokenizer, profile=profile)
    out["lenient"]["samples"] = samples(model, tokenizer, profile)
    del model
    model, tokenizer, out["grpo"] = run(profile, output_dir, sft, loss_type="grpo", name="grpo")
    out["grpo"]["after"] = sums_accuracy(model, tokenizer, profile=profile)
    write_results(output_dir, out)
    return model, tokenizer


STAGES = (
    Stage("grpo", module=__name__, chapter=8, upstream=("sft",), train="train_grpo",
          data_files=("eval_test",), budget="grpo"),
    Stage("grpo-variants", module=__name__, chapter=8, upstream=("sft",),
          train="train_variants", data_files=("eval_test",), budget="grpo"),
)
