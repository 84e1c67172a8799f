"""The stage graph: every model a chapter starts from, trained on first use and cached.

Introduced in chapter 2. A *stage* is a model the course produces: ``base`` (the profile's base
model), ``sft`` (chapter 2), and later ``reward``, ``ppo``, ``dpo``, ... Each stage names its
upstream stages and the function that trains it (in its method module, e.g. `posttrain_utils.sft`).
`get("sft", profile)` returns the stage's `(model, tokenizer)`, training it (and, first, any stage
upstream of it) when it is not in the cache, so every notebook also runs alone on a fresh clone.

In the ``gpu`` profile one more stage comes first: ``world-base`` (`posttrain_utils.world_base`),
SmolLM2 after a short continued pretraining on the tiny world's corpus, since a Hub model has never
read the facts the chapters ask about. A profile asks for it by having a ``world_base`` budget;
there, every stage trained from ``base`` is trained from ``world-base`` instead (`resolve_upstream`),
and `models.load_model` loads it as the profile's base model (`base_stage`). The ``cpu`` profile's
tiny base model was pretrained on that corpus already, and has no such budget.

A stage's *fingerprint* covers its method module's source, the profile's budget for it, the
trainer arguments (seed and precision included), the data files it reads and the fingerprints of
its upstream stages. A cached stage with another fingerprint is stale and is retrained, so a
changed SFT recipe also retrains every stage built on the SFT model. The cache lives in
``$POSTTRAIN_CACHE`` (default ``.cache/checkpoints``), one folder per profile and seed; a file lock
makes parallel notebooks wait for one another instead of training twice.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from .paths import DATA_DIR, cache_root
from .profiles import Profile, resolve

FINGERPRINT_FILE = "fingerprint.txt"


@dataclass(frozen=True)
class Stage:
    """One node of the stage graph.

    Args:
        name: the stage's name, also its folder in the cache.
        module: the method module that trains it (its source is part of the fingerprint).
        upstream: the stages it is trained from, in the order `train` receives their folders
            (``"base"`` means `base_stage`: ``world-base`` in the ``gpu`` profile, see `resolve_upstream`).
        data_files: the shipped datasets it reads (names in ``data/``, without ``.jsonl``).
        budget: the profile budget it uses (`Profile.budget`), a tuple of them when it reads several
            (``ppo-hack`` lays ``ppo_hack`` over ``ppo``), ``None`` for no training.
        train: the function in `module` called as ``train(profile, output_dir, *upstream_dirs)``,
            returning ``(model, tokenizer)``.
        loader: the function in `posttrain_utils.models` that `get` loads the stage's folder with,
            called as ``loader(folder, profile)`` (``"load_reward_model"`` for the reward model).
        extra_modules: further modules whose source the fingerprint covers (e.g. a trainer loop
            kept in its own module).
    """

    name: str
    module: str | None
    upstream: tuple[str, ...] = ()
    data_files: tuple[str, ...] = ()
    budget: str | tuple[str, ...] | None = None
    train: str = "train"
    loader: str = "load_model"
    extra_modules: tuple[str, ...] = ()


WORLD_BASE = "world-base"  # the stage, and (with "_") its budget: `Profile.budget("world_base")`

# what chapter 7's stages run (their source is part of each CAI stage's fingerprint)
_CAI_MODULES = ("posttrain_utils.cai", "posttrain_utils.cai_pipeline", "posttrain_utils.cai_prompts",
                "posttrain_utils.judgements", "posttrain_utils.sft")

# what chapter 8's stages run
_GRPO_MODULES = ("posttrain_utils.grpo", "posttrain_utils.grpo_tasks", "posttrain_utils.judgements",
                 "posttrain_utils.tinyworld.world")

STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("base", module=None),
    Stage(WORLD_BASE, module="posttrain_utils.world_base", upstream=("base",), budget="world_base",
          extra_modules=("posttrain_utils.tinyworld.world", "posttrain_utils.tinyworld.build_base")),
    Stage("sft", module="posttrain_utils.sft", upstream=("base",), data_files=("sft_train", "sft_heldout"),
          budget="sft"),
    Stage("sft-filtered", module="posttrain_utils.sft_variants", upstream=("base",),
          train="train_filtered", data_files=("sft_train", "sft_heldout"), budget="sft",
          extra_modules=("posttrain_utils.sft", "posttrain_utils.judgements")),
    Stage("lora", module="posttrain_utils.sft_variants", upstream=("base",), train="train_lora",
          data_files=("sft_train",), budget="peft",
          extra_modules=("posttrain_utils.sft", "posttrain_utils.lora")),
    Stage("qlora", module="posttrain_utils.sft_variants", upstream=("base",), train="train_qlora",
          data_files=("sft_train",), budget="peft",
          extra_modules=("posttrain_utils.sft", "posttrain_utils.lora")),
    Stage("reward", module="posttrain_utils.reward", upstream=("sft",), data_files=("preference_train",),
          budget="reward", loader="load_reward_model"),
    Stage("ppo", module="posttrain_utils.ppo", upstream=("sft", "reward"), data_files=("prompts_train",),
          budget="ppo", extra_modules=("posttrain_utils.ppo_trainer", "posttrain_utils.overoptimization")),
    Stage("ppo-hack", module="posttrain_utils.ppo_hack", upstream=("sft", "reward"), data_files=("prompts_train",),
          budget=("ppo", "ppo_hack"), extra_modules=("posttrain_utils.ppo", "posttrain_utils.ppo_trainer",
                                            "posttrain_utils.overoptimization")),
    Stage("dpo", module="posttrain_utils.dpo_family", upstream=("base", "sft", "reward"),
          data_files=("preference_train", "preference_heldout", "kto_train", "eval_heldout"),
          budget=("dpo", "orpo"),
          extra_modules=("posttrain_utils.dpo", "posttrain_utils.overoptimization")),
    Stage("dpo-sweep", module="posttrain_utils.dpo_sweep", upstream=("sft", "reward"),
          data_files=("preference_train", "preference_heldout", "prompts_train", "eval_heldout"),
          budget="dpo",
          extra_modules=("posttrain_utils.dpo_family", "posttrain_utils.dpo",
                         "posttrain_utils.overoptimization")),
    Stage("sl-cai", module="posttrain_utils.cai_stages", upstream=("sft",), train="train_sl",
          data_files=("prompts_train", "eval_heldout"), budget="sl_cai", extra_modules=_CAI_MODULES),
    Stage("rl-cai", module="posttrain_utils.cai_stages", upstream=("sl-cai",), train="train_rl",
          data_files=("prompts_train", "eval_heldout"), budget=("dpo", "rl_cai"),
          extra_modules=(*_CAI_MODULES, "posttrain_utils.dpo_family", "posttrain_utils.dpo")),
    Stage("cai-ablations", module="posttrain_utils.cai_stages", upstream=("sft", "sl-cai"),
          train="train_ablations", data_files=("prompts_train", "eval_heldout"),
          budget=("sl_cai", "dpo", "rl_cai"),
          extra_modules=(*_CAI_MODULES, "posttrain_utils.dpo_family", "posttrain_utils.dpo")),
    Stage("grpo", module="posttrain_utils.grpo_stages", upstream=("sft",), train="train_grpo",
          data_files=("eval_heldout",), budget="grpo", extra_modules=_GRPO_MODULES),
    Stage("grpo-variants", module="posttrain_utils.grpo_stages", upstream=("sft",), train="train_variants",
          data_files=("eval_heldout",), budget="grpo", extra_modules=_GRPO_MODULES),
    Stage("dpo-family", module="posttrain_utils.dpo_family_models", upstream=("base", "sft"),
          data_files=("preference_train", "kto_train"), budget=("dpo", "orpo"),
          extra_modules=("posttrain_utils.dpo_family", "posttrain_utils.dpo")),
    Stage("sft-contaminated", module="posttrain_utils.contamination", upstream=("sft",),
          data_files=("eval_heldout",), budget="contamination",
          extra_modules=("posttrain_utils.sft",)),
)}


def cache_dir(profile: Profile | None = None) -> Path:
    """The cache folder of a profile and seed, e.g. ``.cache/checkpoints/cpu-seed0``."""
    profile = resolve(profile)
    return cache_root() / f"{profile.name}-seed{profile.seed}"


def run_dir(name: str, profile: Profile | None = None) -> Path:
    """A scratch folder for a trainer's `output_dir`, under the cache (never next to a notebook)."""
    return cache_dir(profile) / "runs" / name


def _stage(name: str) -> Stage:
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; stages: {sorted(STAGES)}")
    return STAGES[name]


def base_stage(profile: Profile | None = None) -> str:
    """The stage a profile's chapters start from: ``"world-base"`` where the profile continues
    pretraining on the tiny world (it has a ``world_base`` budget, as ``gpu`` does), else ``"base"``."""
    return WORLD_BASE if "world_base" in resolve(profile).budgets else "base"


def resolve_upstream(stage: Stage, profile: Profile) -> tuple[str, ...]:
    """The stages `stage` is trained from in `profile`: its `Stage.upstream`, with ``"base"`` read
    as `base_stage` (``world-base`` itself is trained from ``base``)."""
    start = base_stage(profile)
    if stage.name == WORLD_BASE or start == "base":
        return stage.upstream
    return tuple(start if up == "base" else up for up in stage.upstream)


def fingerprint(name: str, profile: Profile | None = None) -> str:
    """A hash of everything stage `name` depends on, its upstream stages' fingerprints included."""
    profile = resolve(profile)
    stage = _stage(name)
    if name == WORLD_BASE and base_stage(profile) == "base":
        raise KeyError(f"profile {profile.name!r} has no {WORLD_BASE} stage: its base model has read the "
                       "tiny world already (no 'world_base' budget)")
    h = hashlib.sha256(name.encode())
    if stage.module is None:  # the base model: its weights (local) or its Hub id
        weights = Path(profile.model_name_or_path) / "model.safetensors"
        h.update(weights.read_bytes() if weights.exists() else profile.model_name_or_path.encode())
        return h.hexdigest()[:16]
    for module in (stage.module, *stage.extra_modules):
        h.update(inspect.getsource(importlib.import_module(module)).encode())
    if isinstance(stage.budget, tuple):  # a recipe laid over another's: every budget it reads
        budget = {b: profile.budget(b) for b in stage.budget}
    else:
        budget = profile.budget(stage.budget) if stage.budget else None
    recipe = {"budget": budget, "max_length": profile.max_length,
              "trainer": profile.trainer_kwargs(), "dtype": profile.dtype}
    h.update(json.dumps(recipe, sort_keys=True, default=str).encode())
    for data_file in stage.data_files:
        h.update((DATA_DIR / f"{data_file}.jsonl").read_bytes())
    for up in resolve_upstream(stage, profile):
        h.update(fingerprint(up, profile).encode())
    return h.hexdigest()[:16]


def _fingerprint_of(folder: Path) -> str | None:
    path = folder / FINGERPRINT_FILE
    return (path.read_text() or None) if path.exists() else None


def save(model, tokenizer, folder: Path, fingerprint_: str) -> Path:
    """Save `model` and `tokenizer` (safetensors) into `folder` atomically, tagged with a fingerprint."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / FINGERPRINT_FILE).write_text(fingerprint_)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def path(name: str, profile: Profile | None = None) -> Path | str:
    """The folder of stage `name` in the cache, trained first (with its upstream stages) if missing.

    The ``base`` stage is the profile's base model itself: a local folder or a Hub id.
    """
    from filelock import FileLock

    profile = resolve(profile)
    stage = _stage(name)
    if stage.module is None:
        return profile.model_name_or_path
    target = cache_dir(profile) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    wanted = fingerprint(name, profile)
    with FileLock(str(target) + ".lock"):
        if _fingerprint_of(target) != wanted:
            upstream = [path(up, profile) for up in resolve_upstream(stage, profile)]
            train = getattr(importlib.import_module(stage.module), stage.train)
            model, tokenizer = train(profile, run_dir(name, profile), *upstream)
            save(model, tokenizer, target, wanted)
    return target


def get(name: str, profile: Profile | None = None):
    """Stage `name` as `(model, tokenizer)`, trained and cached on first use.

    Args:
        name: a stage in `STAGES`, e.g. ``"sft"``.
        profile: the run profile (default: the active one, `profiles.current()`).

    Returns:
        A transformers model on the profile's device (loaded by the stage's `Stage.loader`), and
        its tokenizer.
    """
    from .. import models

    profile = resolve(profile)
    loader = getattr(models, _stage(name).loader)
    return loader(path(name, profile), profile)


def is_cached(name: str, profile: Profile | None = None) -> bool:
    """Whether stage `name` is in the cache with its current fingerprint (no training happens)."""
    profile = resolve(profile)
    if _stage(name).module is None:
        return True
    return _fingerprint_of(cache_dir(profile) / name) == fingerprint(name, profile)


def main(argv=None) -> None:
    """``python -m posttrain_utils.runtime.checkpoints sft reward``: train (or find) stages now.

    `make test` runs it before the notebooks, so that the stages several chapters share are trained
    once, by a process of their own, instead of inside whichever chapter asks first.
    """
    import argparse
    import time

    from . import profiles

    parser = argparse.ArgumentParser(description="Train the named stages (and their upstream stages) "
                                                 "into the cache, unless they are cached already.")
    parser.add_argument("stages", nargs="+", choices=sorted(STAGES), help="stage names, e.g. sft reward")
    args = parser.parse_args(argv)
    profile = profiles.activate()
    for name in args.stages:
        start, cached = time.time(), is_cached(name, profile)
        folder = path(name, profile)
        print(f"{name}: {'cached' if cached else f'trained in {time.time() - start:.0f} s'} ({folder})")


if __name__ == "__main__":
    main()
