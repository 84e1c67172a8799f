"""Contamination: is any held-out question in the training data, and what does a leak do?

Introduced in chapter 9 ("Evaluation").

* `overlap`: how many held-out questions occur verbatim as a user turn in each training file (a
  clean eval set gives all zeros; ``tests/test_contamination.py`` runs it on the shipped data);
* `split`: the answered held-out records in two halves by *fact* (a country's attribute, or a
  sum's operands), so that no fact is in both halves whatever its wording;
* `leaked_chats`: chats answering records correctly (``"<answer>."``), what a training set holds
  once held-out items leak into it;
* `train`: the ``sft-contaminated`` stage, the SFT model trained further on the leaked half's
  chats (the profile's ``"contamination"`` budget), so the chapter can compare exact match on the
  leaked and the clean half.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

TRAINING_FILES = ("sft_train", "prompt_completion_train", "preference_train", "kto_train",
                  "prompts_train")
SPLIT_SEED = 1234  # the leaked/clean split is the same at every training seed


def _user_turns(record: dict) -> list[str]:
    turns = []
    for key in ("messages", "prompt"):
        turns += [m["content"] for m in record.get(key) or []
                  if isinstance(m, dict) and m.get("role") == "user"]
    return turns


def overlap(eval_records: Sequence[dict], files: Sequence[str] = TRAINING_FILES
            ) -> dict[str, int]:
    """How many of `eval_records`' questions occur verbatim as a user turn in each of `files`.

    Args:
        eval_records: held-out records (``prompt`` or ``messages``).
        files: names of shipped datasets (``data/<name>.jsonl``).

    Returns:
        ``{file: number of held-out questions found in it}``.
    """
    from ..data.loading import load_records

    heldout = {q for r in eval_records for q in _user_turns(r)}
    return {name: len(heldout & {q for r in load_records(name) for q in _user_turns(r)})
            for name in files}


@lru_cache(maxsize=1)
def _country_names() -> tuple[str, ...]:
    from ..tinyworld.world import make_countries

    return tuple(c.name for c in make_countries())


def fact_key(record: dict) -> tuple:
    """What a record asks, whatever the wording: ``(task, country)`` or ``("sum", a, b)``."""
    question = _user_turns(record)[-1]
    if record["task"] == "sum":
        return ("sum", *sorted(re.findall(r"\d+", question)))
    names = [n for n in _country_names() if re.search(rf"\b{n}\b", question)]
    if len(names) != 1:
        raise ValueError(f"cannot tell which country {question!r} asks about: {names}")
    return (record["task"], names[0])


def split(records: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """The answered `records` as ``(leaked, clean)``: half of the facts each (`SPLIT_SEED`)."""
    answered = [r for r in records if r.get("answer")]
    keys = sorted({fact_key(r) for r in answered})
    random.Random(SPLIT_SEED).shuffle(keys)
    leaked_keys = set(keys[: len(keys) // 2])
    leaked = [r for r in answered if fact_key(r) in leaked_keys]
    return leaked, [r for r in answered if fact_key(r) not in leaked_keys]


def leaked_chats(records: Sequence[dict]) -> list[dict]:
    """One chat per answered record, its reply the right answer: ``"<answer>."``."""
    return [{"messages": [*r["prompt"], {"role": "assistant", "content": f"{r['answer']}."}]}
            for r in records if r.get("answer")]


def train(profile, output_dir: str | Path, sft: str | Path):
    """Train the ``sft-contaminated`` stage: the SFT model trained on `leaked_chats` of the leaked
    half of ``eval_test`` (`split`): the test set chapter 9 grades on, with the profile's ``"contamination"`` budget.

    Returns:
        `(model, tokenizer)` after training.
    """
    from datasets import Dataset
    from trl import SFTTrainer

    from ..data.splits import test_records
    from ..runtime.models import load_model
    from ..runtime.notebook import quiet
    from ..runtime.profiles import seed_everything
    from ..sft.recipe import sft_config

    seed_everything(profile.seed)
    model, tokenizer = load_model(sft, profile)
    leaked, _ = split(test_records())
    args = sft_config(profile, output_dir, eval_strategy="no", **profile.budget("contamination"))
    trainer = quiet(SFTTrainer(model=model, args=args, processing_class=tokenizer,
                               train_dataset=Dataset.from_list(leaked_chats(leaked))))
    trainer.train()
    return trainer.model, tokenizer
