"""The TRL side of ``bench_ppo.py``: one run of TRL 1.12's experimental ``PPOTrainer``.

Runs in the bench venv (``.venv-bench``: trl==1.12.0; TRL removed its PPOTrainer in 1.13), so it
imports nothing from ``posttrain_utils``. It reads the models, prompts and settings that
``bench_ppo.py`` saved in ``--workdir``, trains ``1 + --iterations`` PPO iterations and writes the
seconds of each (timed from TRL's ``on_train_begin`` / ``on_step_end`` callbacks) to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification,  # noqa: E402
                          AutoTokenizer, TrainerCallback)
from trl.experimental.ppo import PPOConfig, PPOTrainer  # noqa: E402


class IterationTimer(TrainerCallback):
    """Records the wall time of every PPO iteration and the EOS count TRL logs for it."""

    def __init__(self):
        self.marks, self.eos_tokens = [], []

    def on_train_begin(self, args, state, control, **kwargs):
        self.marks.append(time.perf_counter())

    def on_step_end(self, args, state, control, **kwargs):
        self.marks.append(time.perf_counter())

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "val/num_eos_tokens" in logs:
            self.eos_tokens.append(logs["val/num_eos_tokens"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--iterations", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    s = json.loads((args.workdir / "settings.json").read_text())
    prompts = json.loads((args.workdir / "prompts.json").read_text())["input_ids"]

    # left padding, as TRL's PPO examples load it (the saved tokenizer does not keep the side)
    tokenizer = AutoTokenizer.from_pretrained(args.workdir / "policy", padding_side="left")
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ValueError("the saved tokenizer lost its pad token")
    policy = AutoModelForCausalLM.from_pretrained(args.workdir / "policy", dtype=torch.float32)
    ref_policy = copy.deepcopy(policy)
    reward_model = AutoModelForSequenceClassification.from_pretrained(
        args.workdir / "reward", num_labels=1, dtype=torch.float32)
    value_model = copy.deepcopy(reward_model)
    reward_model.eval().requires_grad_(False)

    rollouts = s["rollouts_per_iteration"]
    config = PPOConfig(
        output_dir=str(args.workdir / "trl_run"), report_to="none", use_cpu=True,
        save_strategy="no", disable_tqdm=True, seed=s["seed"],
        # one iteration = `rollouts` prompts; minibatches of rollouts / num_mini_batches rollouts,
        # each one forward/backward and one optimizer step (per_device_train_batch_size is the
        # rollout batch: TRL's micro-batch loop then covers a whole minibatch at once)
        per_device_train_batch_size=rollouts, gradient_accumulation_steps=1,
        local_rollout_forward_batch_size=rollouts, num_mini_batches=s["num_mini_batches"],
        total_episodes=rollouts * (1 + args.iterations), num_ppo_epochs=s["num_ppo_epochs"],
        response_length=s["max_new_tokens"], temperature=s["temperature"], stop_token="eos",
        missing_eos_penalty=s["missing_eos_penalty"], learning_rate=s["learning_rate"],
        kl_coef=s["kl_coef"], kl_estimator=s["kl_estimator"], cliprange=s["cliprange"],
        cliprange_value=s["cliprange_value"], vf_coef=s["vf_coef"], gamma=s["gamma"],
        lam=s["lam"], num_sample_generations=0,
    )
    timer = IterationTimer()
    trainer = PPOTrainer(
        args=config, processing_class=tokenizer, model=policy, ref_model=ref_policy,
        reward_model=reward_model, value_model=value_model,
        train_dataset=Dataset.from_dict({"input_ids": prompts}), callbacks=[timer],
    )
    trainer.train()
    seconds = [b - a for a, b in zip(timer.marks, timer.marks[1:])]
    if len(seconds) != 1 + args.iterations:
        raise RuntimeError(f"expected {1 + args.iterations} iterations, timed {len(seconds)}")
    args.out.write_text(json.dumps({
        "seconds": seconds, "eos_fraction": [n / rollouts for n in timer.eos_tokens],
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "trl": trl.__version__},
    }))


if __name__ == "__main__":
    main()
