"""The stage graph: every model a chapter starts from, trained on first use and cached.

Introduced in chapter 2. A *stage* is a model the course produces: ``base`` (the profile's base
model), ``sft`` (chapter 2), and later ``reward``, ``ppo``, ``dpo``, ... Each method declares its
stages next to its code, in its own ``stages.py`` (``posttrain_utils/dpo/stages.py`` declares
``dpo`` and ``dpo-sweep``); `all_stages` collects them, so a new chapter adds a stage without
touching this module. `path("sft", profile)` returns the stage's folder, training it (and, first,
any stage upstream of it) when it is not in the cache; `runtime.checkpoints.get` loads it.

In the ``gpu`` profile one more stage comes first: ``world-base`` (`tinyworld.world_base`),
SmolLM2 after a short continued pretraining on the tiny world's corpus. A profile asks for it by
having a ``world_base`` budget; there, every stage trained from ``base`` is trained from
``world-base`` instead (`resolve_upstream`), and `base_model_source` names it as the profile's
base model.

A stage's *fingerprint* covers the source of the module that trains it and of every package
module that module imports, transitively (`runtime.sources`; the graph's own machinery,
`MACHINERY`, aside), the profile's budget for it, the
trainer arguments (seed and precision included), the data files it reads and the fingerprints of
its upstream stages. A cached stage with another fingerprint is stale and is retrained. The cache
lives in ``$POSTTRAIN_CACHE`` (default ``.cache/checkpoints``), one folder per profile and seed;
a file lock makes parallel notebooks wait for one another instead of training twice.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import sources
from .paths import DATA_DIR, PACKAGE_DIR, cache_root
from .profiles import Profile, resolve

FINGERPRINT_FILE = "fingerprint.txt"
# the graph's own machinery decides *whether* a stage trains, never *what* it trains: a stage's
# fingerprint does not follow it (a ``stages.py`` imports `Stage` from here)
MACHINERY = ("posttrain_utils.runtime.graph", "posttrain_utils.runtime.sources",
             "posttrain_utils.runtime.checkpoints")
WORLD_BASE = "world-base"  # the stage, and (with "_") its budget: `Profile.budget("world_base")`


@dataclass(frozen=True)
class Stage:
    """One node of the stage graph.

    Args:
        name: the stage's name, also its folder in the cache.
        module: the module that trains it (its source and what it imports are fingerprinted).
        chapter: the chapter that introduces it (stages are listed in chapter order).
        upstream: the stages it is trained from, in the order `train` receives their folders
            (``"base"`` means `base_stage`: ``world-base`` in the ``gpu`` profile).
        data_files: the shipped datasets it reads (names in ``data/``, without ``.jsonl``).
        budget: the profile budget it uses (`Profile.budget`), a tuple of them when it reads
            several (``ppo-hack`` lays ``ppo_hack`` over ``ppo``), ``None`` for no training.
        train: the function in `module` called as ``train(profile, output_dir, *upstream_dirs)``,
            returning ``(model, tokenizer)``.
        loader: the function in `runtime.models` that `checkpoints.get` loads the folder with,
            called as ``loader(folder, profile)`` (``"load_reward_model"`` for the reward model).
    """

    name: str
    module: str | None
    chapter: int = 0
    upstream: tuple[str, ...] = ()
    data_files: tuple[str, ...] = ()
    budget: str | tuple[str, ...] | None = None
    train: str = "train"
    loader: str = "load_model"


BASE = Stage("base", module=None)


@lru_cache(maxsize=None)
def all_stages() -> dict[str, Stage]:
    """Every stage, by name: ``base`` and the `STAGES` of each ``posttrain_utils/<method>/stages.py``,
    in chapter order (then declaration order)."""
    found = [BASE]
    for info in sorted(pkgutil.iter_modules([str(PACKAGE_DIR)]), key=lambda i: i.name):
        if info.ispkg and (PACKAGE_DIR / info.name / "stages.py").is_file():
            module = importlib.import_module(f"posttrain_utils.{info.name}.stages")
            found += list(module.STAGES)
    names = [s.name for s in found]
    if len(set(names)) < len(names):
        raise ValueError(f"two stages share a name: {sorted(n for n in names if names.count(n) > 1)}")
    found.sort(key=lambda s: (s.module is not None, s.chapter))  # stable: declaration order
    return {s.name: s for s in found}


def __getattr__(name: str):
    if name == "STAGES":  # `graph.STAGES`: collected on first use (the stages modules import us)
        return all_stages()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_stage(name: str) -> Stage:
    """The `Stage` called `name`; a `KeyError` lists the stages otherwise."""
    stages = all_stages()
    if name not in stages:
        raise KeyError(f"unknown stage {name!r}; stages: {sorted(stages)}")
    return stages[name]


def cache_dir(profile: Profile | None = None) -> Path:
    """The cache folder of a profile and seed, e.g. ``.cache/checkpoints/cpu-seed0``
    (``cpu-seed0-placebo`` for the placebo run's untrained stages)."""
    profile = resolve(profile)
    placebo = "-placebo" if profile.placebo else ""
    return cache_root() / f"{profile.name}-seed{profile.seed}{placebo}"


def run_dir(name: str, profile: Profile | None = None) -> Path:
    """A scratch folder for a trainer's `output_dir`, under the cache (never next to a notebook)."""
    return cache_dir(profile) / "runs" / name


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
    stage = get_stage(name)
    if name == WORLD_BASE and base_stage(profile) == "base":
        raise KeyError(f"profile {profile.name!r} has no {WORLD_BASE} stage: its base model has read the "
                       "tiny world already (no 'world_base' budget)")
    h = hashlib.sha256(name.encode())
    if stage.module is None:  # the base model: its weights (local) or its Hub id
        weights = Path(profile.model_name_or_path) / "model.safetensors"
        h.update(weights.read_bytes() if weights.exists() else profile.model_name_or_path.encode())
        return h.hexdigest()[:16]
    h.update(sources.digest([stage.module], skip=MACHINERY).encode())
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
    stage = get_stage(name)
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




def is_cached(name: str, profile: Profile | None = None) -> bool:
    """Whether stage `name` is in the cache with its current fingerprint (no training happens)."""
    profile = resolve(profile)
    if get_stage(name).module is None:
        return True
    return _fingerprint_of(cache_dir(profile) / name) == fingerprint(name, profile)


def base_model_source(profile: Profile | None = None) -> str:
    """The folder (or Hub id) of the profile's base model, the one the chapters start from.

    The profile's `model_name_or_path`, unless the profile continues pretraining on the tiny world
    (it has a ``world_base`` budget, as ``gpu`` does): then the cached ``world-base`` stage, trained
    first if it is missing (`base_stage`).
    """
    profile = resolve(profile)
    return str(path(base_stage(profile), profile))
