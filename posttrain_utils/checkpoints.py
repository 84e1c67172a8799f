"""Starting checkpoints for later chapters, trained deterministically on first use and cached.

Introduced in chapter 2. `get_sft_model()` returns the chapter-2 SFT model (trained on the
*unfiltered* forum data, so preference tuning has real rudeness and rambling to fix). If it is not
in the cache yet it is trained here with exactly the chapter's recipe (`sft_config`), so every
notebook also runs alone on a fresh clone. A file lock makes parallel notebooks wait for one
another instead of training twice into the same folder.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from pathlib import Path

from .profiles import Profile, get_profile

CACHE_ENV = "POSTTRAIN_CACHE"
DEFAULT_CACHE = Path(__file__).resolve().parent.parent / ".cache" / "checkpoints"
RECIPE_FILE = "recipe.txt"


def cache_dir(profile: Profile | None = None) -> Path:
    """Where this profile's checkpoints live (``$POSTTRAIN_CACHE`` or ``.cache/checkpoints``)."""
    profile = profile or get_profile()
    return Path(os.environ.get(CACHE_ENV, DEFAULT_CACHE)) / profile.name


def sft_config(profile: Profile, output_dir: str | Path, **overrides):
    """The course's SFT recipe as a TRL `SFTConfig`: assistant-only loss, padding (no packing),
    the profile's step budget, held-out loss every 20 steps. `overrides` replace any field
    (e.g. ``max_steps=600``)."""
    from trl import SFTConfig

    kwargs = dict(profile.trainer_kwargs(), **profile.budget("sft"))
    kwargs.update(output_dir=str(output_dir), max_length=profile.max_length, assistant_only_loss=True,
                  packing=False, lr_scheduler_type="cosine", warmup_steps=10, weight_decay=0.0,
                  per_device_eval_batch_size=64, eval_strategy="steps", eval_steps=20)
    kwargs.update(overrides)
    return SFTConfig(**kwargs)


def sft_recipe(profile: Profile) -> str:
    """A fingerprint of everything the SFT checkpoint depends on: the recipe's code, the profile's
    budget, the training data and the base model's weights. A cached checkpoint with another
    fingerprint is stale and gets retrained."""
    from .data import DATA_DIR

    h = hashlib.sha256(inspect.getsource(sft_config).encode())
    h.update(json.dumps([profile.budget("sft"), profile.max_length, profile.model_name_or_path], sort_keys=True).encode())
    files = [DATA_DIR / "sft_train.jsonl", DATA_DIR / "sft_heldout.jsonl"]
    base = Path(profile.model_name_or_path) / "model.safetensors"
    for f in files + ([base] if base.exists() else []):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def save_checkpoint(model, tokenizer, name: str, profile: Profile | None = None, recipe: str | None = None) -> Path:
    """Save `model` and `tokenizer` (safetensors) as cached checkpoint `name`, atomically.

    Args:
        model: the model to save.
        tokenizer: its tokenizer (saved with its chat template).
        name: the checkpoint's name in the profile's cache (e.g. ``"sft"``).
        profile: whose cache to use (default: the active profile).
        recipe: a fingerprint of how the model was made (e.g. `sft_recipe`). An existing checkpoint
            with the same fingerprint is kept; one with another fingerprint is replaced.

    Returns:
        The checkpoint folder.
    """
    from filelock import FileLock

    target = cache_dir(profile) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.exists() and _recipe_of(target) == recipe:
            return target
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / RECIPE_FILE).write_text(recipe or "")
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return target


def _recipe_of(folder: Path) -> str | None:
    path = folder / RECIPE_FILE
    return (path.read_text() or None) if path.exists() else None


def train_sft_model(profile: Profile, output_dir: str | Path):
    """Train the chapter-2 SFT model (unfiltered data) and return `(model, tokenizer)`."""
    from trl import SFTTrainer

    from .data import load_dataset
    from .models import load_model
    from .profiles import seed_everything

    seed_everything()
    model, tokenizer = load_model(profile=profile)
    trainer = SFTTrainer(model=model, args=sft_config(profile, output_dir),
                         train_dataset=load_dataset("sft_train", columns=["messages"]),
                         eval_dataset=load_dataset("sft_heldout", columns=["messages"]), processing_class=tokenizer)
    trainer.train()
    return trainer.model, tokenizer


def get_sft_model(profile: Profile | None = None):
    """The chapter-2 SFT model as `(model, tokenizer)`, trained and cached on first use."""
    from filelock import FileLock

    from .models import load_model

    profile = profile or get_profile()
    target = cache_dir(profile) / "sft"
    target.parent.mkdir(parents=True, exist_ok=True)
    recipe = sft_recipe(profile)
    with FileLock(str(target) + ".train.lock"):
        if _recipe_of(target) != recipe:
            model, tokenizer = train_sft_model(profile, cache_dir(profile) / "runs" / "sft")
            save_checkpoint(model, tokenizer, "sft", profile, recipe=recipe)
    return load_model(target, profile)
