"""Run profiles: the one place that decides model, device, dtype, threads, data sizes and budgets.

Introduced in chapter 0. Two profiles exist:

* ``cpu`` (default without CUDA, and always in CI): the course's own tiny base model shipped in
  ``posttrain_utils/assets/tiny-base``, one thread per process, budgets of a few minutes per
  notebook on 2 cores, and *no network access at all*.
* ``gpu`` (default with CUDA): ``HuggingFaceTB/SmolLM2-135M`` from the Hub, sized for a free
  16 GB Colab T4 (see `GPU_BASE_MODEL`), after a short continued pretraining on the tiny world's
  corpus: its ``world_base`` budget makes the ``world-base`` stage its base model
  (`posttrain_utils.tinyworld.world_base`, `runtime.checkpoints.base_stage`).

Override the automatic choice with the environment variable ``POSTTRAIN_PROFILE=cpu|gpu``, and
the seed with ``POSTTRAIN_SEED`` (default 0; ``make seeds`` runs a chapter at several seeds).
``POSTTRAIN_PLACEBO=1`` makes the *placebo* of a profile (``make placebo``): every training budget
is zero steps (`Profile.budget`, `Profile.steps`, ``num_train_epochs=0``), so every stage is its
upstream model unchanged and every effect a chapter asserts must fail.
Call `activate()` first thing in a notebook, before importing transformers or TRL. It records the
profile it returns: helpers called without a profile use `current()`, that same profile, and never
re-read the environment.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import sys
import warnings
from dataclasses import dataclass, field

PROFILE_ENV = "POSTTRAIN_PROFILE"
SEED_ENV = "POSTTRAIN_SEED"
PLACEBO_ENV = "POSTTRAIN_PLACEBO"
# the budget keys that count training steps: zero in a placebo profile
STEP_KEYS = ("max_steps", "iterations")
NO_NETWORK_ENV = "POSTTRAIN_NO_NETWORK"
from .paths import TINY_BASE_DIR
# SmolLM2-135M: a Llama-architecture base model like our tiny one, so every chapter's code path is
# the same. At 135 M parameters a full fine-tune with AdamW needs ~2.2 GB, and PPO's four models
# (policy, reference, reward, value) fit a 16 GB T4 with room for activations; a 0.5 B model would
# not leave that room.
GPU_BASE_MODEL = "HuggingFaceTB/SmolLM2-135M"
SEED = 0
_OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                "HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}


@dataclass(frozen=True)
class Profile:
    """Everything that differs between a laptop CPU run and a GPU run.

    Args:
        name: ``"cpu"`` or ``"gpu"``.
        model_name_or_path: a local directory or a Hub id, passed to `runtime.models.load_model`.
        device: ``"cpu"`` or ``"cuda"``.
        dtype: the dtype weights are loaded in (training keeps fp32 master weights).
        num_threads: torch threads per process (``None`` leaves torch's default).
        offline: forbid all network access (Hub, datasets, telemetry).
        max_length: longest tokenized example used in training.
        n_eval: held-out prompts used by evaluation helpers.
        n_samples: samples per prompt for sampled (temperature 1) metrics.
        max_new_tokens: generation budget per reply.
        budgets: per-stage training budgets (step counts, never wall time).
        seed: seeds Python, NumPy, torch, the trainers' data order and sampled metrics.
        placebo: the negative control (``POSTTRAIN_PLACEBO=1``): every step count is zero.
    """

    name: str
    model_name_or_path: str
    device: str
    dtype: str
    num_threads: int | None
    offline: bool
    max_length: int
    n_eval: int
    n_samples: int
    max_new_tokens: int
    budgets: dict = field(default_factory=dict)
    seed: int = SEED
    placebo: bool = False

    def budget(self, chapter: str) -> dict:
        """The budget for `chapter` (e.g. ``"sft"``) as a dict of keyword arguments (its step
        counts zero in a placebo profile)."""
        if chapter not in self.budgets:
            raise KeyError(f"profile {self.name!r} has no budget for {chapter!r}; known: {sorted(self.budgets)}")
        budget = dict(self.budgets[chapter])
        if self.placebo:
            budget.update({k: 0 for k in STEP_KEYS if k in budget})
        return budget

    def steps(self, n: int) -> int:
        """`n` training steps, or 0 in a placebo profile: for a step count a chapter writes itself."""
        return 0 if self.placebo else int(n)

    def trainer_kwargs(self) -> dict:
        """Arguments every TRL config needs in this profile: device, precision, seed, no reports."""
        on_cpu = self.device == "cpu"
        bf16 = (not on_cpu) and _cuda_bf16()
        kwargs = dict(use_cpu=on_cpu, bf16=bf16, fp16=(not on_cpu) and not bf16, activation_checkpointing=False,
                      report_to="none", seed=self.seed, data_seed=self.seed, save_strategy="no",
                      logging_steps=10, dataloader_num_workers=0)
        if self.placebo:  # max_steps 0 alone means "train num_train_epochs epochs" to transformers
            kwargs["num_train_epochs"] = 0
        return kwargs


def _cuda_bf16() -> bool:
    """Native bf16 only (compute capability 8.0+): a T4 emulates bf16 slowly and should use fp16."""
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


CPU = Profile(
    name="cpu", model_name_or_path=str(TINY_BASE_DIR), device="cpu", dtype="float32", num_threads=1,
    offline=True, max_length=128, n_eval=200, n_samples=2, max_new_tokens=80,
    budgets={
        "sft": dict(max_steps=120, per_device_train_batch_size=16, learning_rate=1e-3),
        # LoRA gets twice full SFT's steps: at SFT's 120 steps it fell short of full SFT's facts
        # on some seeds (make seeds CHAPTER=03); 240 steps at 5e-3 held at seeds 0, 1 and 2.
        "peft": dict(max_steps=240, per_device_train_batch_size=16, learning_rate=5e-3),
        "peft_sweep": dict(max_steps=60, per_device_train_batch_size=8, learning_rate=1e-2),
        # 40 x 8 pairs. At 10 x 8 held-out tone+length accuracy was already 1.00, but chapter 5's
        # PPO found a hole (seed 0): insults with a garbled first word ("Su@ a silly question.")
        # scored as polite (3.0 vs 3.8). At 40 x 8 they score about -4 vs +5 at seeds 0, 1, 2;
        # correctness pairs stay near a coin flip (0.43-0.49), as chapter 4 teaches.
        "reward": dict(max_steps=40, per_device_train_batch_size=8, learning_rate=1e-3),
        # chapter 5. With 64 rollouts per iteration the held-out sampled rude rate stalled at 0.03-0.05
        # (from 0.22; a 72-86 % drop, seed 0): rude replies became too rare in a batch to be
        # learned from. 128 rollouts in 4 minibatches: 0.229 -> 0.015 (-94 %) at iteration 20,
        # KL about 1.3, facts kept (seed 0, 756 held-out prompts, the 40-step RM); 10-16 s per iteration.
        "ppo": dict(iterations=20, rollouts_per_iteration=128, num_mini_batches=4, max_new_tokens=48,
                    learning_rate=2e-5, value_learning_rate=1e-4, kl_coef=0.1),
        # chapter 5's reward-hacking lab: the ppo-hack stage, laid over "ppo" with kl_coef 0
        # (ppo_hack.py). 32 rollouts in 1 minibatch was too noisy: at lr 2e-4 seed 2's held-out proxy
        # ended below the beta-0.1 run's (3.54 vs 4.07, KL 40: the policy garbled), at lr 1e-4 x 30
        # iterations seed 0's did (3.16 vs 3.59). 64 in 2 at lr 1e-4: proxy 4.00 / 5.32 / 4.23 vs
        # beta 0.1's 3.59 / 4.56 / 4.07, KL 17.6 / 6.5 / 15.2, facts 0.29 / 0.15 / 0.25 vs SFT
        # 0.34 / 0.37 / 0.34 (seeds 0 / 1 / 2); 8-12 s per iteration.
        "ppo_hack": dict(iterations=20, rollouts_per_iteration=64, num_mini_batches=2, learning_rate=1e-4),
        # chapter 5's library route: TRL's RLOOTrainer with the reward model, beta 0.1
        "rloo": dict(max_steps=16, per_device_train_batch_size=32, num_generations=4, learning_rate=5e-5),
        # chapter 6: every preference method's budget (dpo_family.METHODS); 60 x 8 pairs, as the
        # issue's prototype ran them
        "dpo": dict(max_steps=60, per_device_train_batch_size=8, learning_rate=1e-4, beta=0.1),
        # chapter 6's ORPO, laid over "dpo": it starts from the base model and learns the chat
        # format as well, so it needs SFT's larger step (the prototype ran it at 1e-3)
        "orpo": dict(learning_rate=1e-3),
        # chapter 7's SL-CAI: SFT on the critiqued and revised samples (cai_pipeline.py), the
        # issue's prototype recipe, 60 x 16 at 1e-4
        "sl_cai": dict(max_steps=60, per_device_train_batch_size=16, learning_rate=1e-4),
        # chapter 7's RL-CAI: DPO on the AI critic's pairs, the prototype's 8 at 5e-5. 90 steps, not
        # the prototype's 60: two varied wordings per benign question made the pair file larger
        # (~1 000-1 300 pairs), and at 60 steps RL-CAI refused hardly more harmful requests than
        # SL-CAI at seed 2 (+0 to +2.5 points; +10.5 at 90 steps; measured for chapter 7)
        "rl_cai": dict(max_steps=90, per_device_train_batch_size=8, learning_rate=5e-5),
        # chapter 8's GRPO on one-digit sums (grpo.py): 8 prompts x 8 completions per step, beta 0,
        # as the prototype; see grpo_stages.py for what the steps and step size measured
        "grpo": dict(max_steps=100, prompts_per_step=8, num_generations=8, learning_rate=1e-4,
                     max_completion_length=48),
        # chapter 9's contamination demo (sft-contaminated stage): the SFT model trained on the
        # leaked half of the held-out answers. 150 steps at 1e-3 left leaked EM at 0.32 (clean
        # 0.16, seed 0, a split that shared facts across halves); 300 steps at 1e-3 memorised
        # them: 0.84 vs 0.54.
        "contamination": dict(max_steps=300, per_device_train_batch_size=16, learning_rate=1e-3),
    },
)
GPU = Profile(
    name="gpu", model_name_or_path=GPU_BASE_MODEL, device="cuda", dtype="float32", num_threads=None,
    offline=False, max_length=256, n_eval=200, n_samples=2, max_new_tokens=64,
    budgets={
        # the world-base stage (chapter 0): unmeasured; its sizing is in tinyworld/world_base.py
        "world_base": dict(max_steps=1000, per_device_train_batch_size=16, learning_rate=1e-4, n_docs=60_000),
        "sft": dict(max_steps=300, per_device_train_batch_size=16, learning_rate=5e-5),
        "peft": dict(max_steps=300, per_device_train_batch_size=16, learning_rate=2e-4),
        "peft_sweep": dict(max_steps=150, per_device_train_batch_size=16, learning_rate=2e-4),
        # unmeasured (no GPU run yet): a common full-fine-tune RM setting for a ~100 M model
        "reward": dict(max_steps=100, per_device_train_batch_size=16, learning_rate=1e-5),
        # unmeasured (no GPU run yet). micro_batch_size 8: with whole minibatches of 32 one iteration
        # peaked at 19.3 GB in fp32 (scripts/gpu_dry_run.py, SmolLM2-135M's shape on the CPU), more
        # than a 16 GB T4 holds; the micro-batches change the memory, not the update
        "ppo": dict(iterations=40, rollouts_per_iteration=64, max_new_tokens=64, learning_rate=1e-5,
                    value_learning_rate=1e-5, kl_coef=0.05, micro_batch_size=8),
        "ppo_hack": dict(iterations=40, rollouts_per_iteration=64, num_mini_batches=2, learning_rate=5e-5),
        "rloo": dict(max_steps=40, per_device_train_batch_size=32, num_generations=4, learning_rate=1e-6),
        # unmeasured (no GPU run yet): a common DPO setting for a ~100 M model
        "dpo": dict(max_steps=200, per_device_train_batch_size=16, learning_rate=5e-7, beta=0.1),
        "orpo": dict(learning_rate=8e-6),  # unmeasured (no GPU run yet): the ORPO paper's setting
        # unmeasured (no GPU run yet): chapter 2's gpu SFT step, and chapter 6's gpu DPO step
        "sl_cai": dict(max_steps=150, per_device_train_batch_size=16, learning_rate=5e-5),
        "rl_cai": dict(max_steps=200, per_device_train_batch_size=16, learning_rate=5e-7, beta=0.1),
        # unmeasured (no GPU run yet): the cpu recipe's shape with a small model's usual RL step
        "grpo": dict(max_steps=100, prompts_per_step=8, num_generations=8, learning_rate=1e-6,
                     max_completion_length=64),
        # unmeasured (no GPU run yet): chapter 9's contamination demo at the gpu SFT step
        "contamination": dict(max_steps=300, per_device_train_batch_size=16, learning_rate=5e-5),
    },
)
PROFILES = {"cpu": CPU, "gpu": GPU}


_ACTIVE: Profile | None = None


def get_profile(name: str | None = None) -> Profile:
    """Pick a profile: `name`, else ``$POSTTRAIN_PROFILE``, else ``gpu`` if CUDA is available, else ``cpu``."""
    name = name or os.environ.get(PROFILE_ENV)
    if name is None:
        import torch

        name = "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r} (from {PROFILE_ENV} or argument); expected one of {sorted(PROFILES)}")
    return PROFILES[name]


def go_offline() -> None:
    """Forbid Hub downloads and telemetry, also for libraries imported before this call."""
    os.environ.update(_OFFLINE_ENV)
    if "huggingface_hub" in sys.modules:  # constants are read at import time
        sys.modules["huggingface_hub"].constants.HF_HUB_OFFLINE = True
        sys.modules["huggingface_hub"].constants.HF_HUB_DISABLE_TELEMETRY = True


def current() -> Profile:
    """The profile `activate()` recorded. Helpers called without a profile use this one.

    Raises:
        RuntimeError: if `activate()` has not been called in this process.
    """
    if _ACTIVE is None:
        raise RuntimeError("no active profile: call posttrain_utils.runtime.profiles.activate() first "
                           "(or pass profile= explicitly)")
    return _ACTIVE


def resolve(profile: Profile | None) -> Profile:
    """`profile` if given, else the active one (`current()`)."""
    return profile if profile is not None else current()


def seed_from_env() -> int:
    """``$POSTTRAIN_SEED`` as an int (0 when unset)."""
    raw = os.environ.get(SEED_ENV, str(SEED))
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{SEED_ENV}={raw!r} is not an integer seed") from None


def placebo_from_env() -> bool:
    """Whether ``$POSTTRAIN_PLACEBO`` asks for the placebo run (``1``; unset or ``0``: no)."""
    raw = os.environ.get(PLACEBO_ENV, "0")
    if raw not in ("0", "1"):
        raise ValueError(f"{PLACEBO_ENV}={raw!r}: expected 0 or 1")
    return raw == "1"


def seed_everything(seed: int = SEED) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def activate(name: str | None = None, seed: int | None = None, placebo: bool | None = None) -> Profile:
    """Choose the profile, apply it (offline mode, threads, quiet library logs), seed everything, and
    record it as the active profile (`current()`).

    Call this in a notebook's setup cell before importing transformers or TRL.

    Args:
        name: ``"cpu"`` or ``"gpu"``; default ``$POSTTRAIN_PROFILE``, else by CUDA availability.
        seed: the notebook's seed; default ``$POSTTRAIN_SEED``, else 0.
        placebo: the zero-step negative control; default ``$POSTTRAIN_PLACEBO``, else off.

    Returns:
        The active `Profile`, with its `seed` (and `placebo`) set.
    """
    global _ACTIVE
    profile = dataclasses.replace(get_profile(name), seed=seed_from_env() if seed is None else int(seed),
                                  placebo=placebo_from_env() if placebo is None else bool(placebo))
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", message="IProgress not found")  # no ipywidgets: plain progress bars
    # TRL 1.16's preference trainers call transformers' deprecated `is_gradient_checkpointing`
    # (chapter 6): a FutureWarning for TRL's maintainers, not for the reader
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated",
                            category=FutureWarning)
    # bitsandbytes warns at import without the optional `kernels` package; its torch fallback is fine
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    if profile.offline:
        go_offline()
    if os.environ.get(NO_NETWORK_ENV) == "1":  # set by `make test`/`make book`: any network use is an error
        from . import netguard

        netguard.forbid_network()
    import torch

    if profile.num_threads:
        torch.set_num_threads(profile.num_threads)
    if profile.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("profile 'gpu' needs CUDA; set POSTTRAIN_PROFILE=cpu to run on the CPU")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    if profile.offline:  # the rendered book shows no download/processing bars
        import datasets

        datasets.disable_progress_bars()
    seed_everything(profile.seed)
    _ACTIVE = profile
    return profile
