"""The ``dpo-family`` stage: chapter 6's preference methods, each saved, for chapter 9's report card.

Introduced in chapter 9 ("Evaluation"). The ``dpo`` stage (chapter 6) trains DPO, IPO, KTO, ORPO,
SimPO and RPO on one budget, judges them, and keeps only the recommended recipe (RPO). This stage
trains the other five again, with the same function (`dpo_family.run`), data, budget and seed,
and saves each one (safetensors) under ``<run folder>/<method>`` so that the report card can score
every member of the family on the same held-out set. The stage's own folder holds the last one.
"""

from __future__ import annotations

from pathlib import Path

MEMBERS = ("DPO", "IPO", "KTO", "ORPO", "SimPO")


def member_dir(profile, method: str) -> Path:
    """The folder of family member `method` (trained with the stage if missing)."""
    from .runtime import checkpoints

    if method not in MEMBERS:
        raise ValueError(f"unknown family member {method!r}; expected one of {MEMBERS}")
    checkpoints.path("dpo-family", profile)
    return checkpoints.run_dir("dpo-family", profile) / method / "model"


def train(profile, output_dir: str | Path, base: str | Path, sft: str | Path):
    """Train every method of `MEMBERS` (ORPO from `base`, the rest from `sft`), save each under
    ``output_dir/<method>/model``, and return the last one as ``(model, tokenizer)``."""
    from tqdm.auto import tqdm

    from . import dpo_family

    model = tokenizer = None
    for method in tqdm(MEMBERS, desc="dpo family"):
        start = base if dpo_family.METHODS[method][1] == "base" else sft
        folder = Path(output_dir) / method
        model, tokenizer, _ = dpo_family.run(method, profile, folder, start)
        model.save_pretrained(folder / "model", safe_serialization=True)
        tokenizer.save_pretrained(folder / "model")
    return model, tokenizer
