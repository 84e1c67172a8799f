"""Reading the course's JSONL datasets, strictly: bad input names its file, line and field.

Introduced in chapter 0; chapter 1 explains the formats and their validators (`formats`).
`load_records("sft_train")` reads ``data/sft_train.jsonl`` and validates every line against the
TRL format the file is in; `load_dataset` returns the same records as a `datasets.Dataset`.
Any problem (a missing or unreadable file, a bad line, a bad field) raises `DataFormatError`
naming the file, the physical line and the field. For a file of your own, see
`data.validate_file`.
"""

from __future__ import annotations

from pathlib import Path

from .formats import validate_records
from .jsonl import DataFormatError, iter_jsonl, read_jsonl  # noqa: F401 (part of this module's API)
from ..runtime.paths import DATA_DIR

# Which TRL format each shipped file is in (see data/README.md).
FILE_FORMATS = {
    "sft_train": "messages", "sft_heldout": "messages",
    "prompt_completion_train": "prompt_completion",
    "preference_train": "preference", "preference_heldout": "preference",
    "kto_train": "kto",
    "prompts_train": "prompt_only", "eval_dev": "prompt_only", "eval_test": "prompt_only",
}


def load_records(name: str, data_dir: str | Path = DATA_DIR, validate: bool = True) -> list[dict]:
    """Load ``<data_dir>/<name>.jsonl`` and validate it against its format (see `FILE_FORMATS`).

    Args:
        name: a shipped dataset, one of `FILE_FORMATS`.
        data_dir: the folder holding it.
        validate: check every record against its format (the file is always read strictly).

    Returns:
        The records, in file order.

    Raises:
        KeyError: if `name` is not a shipped dataset.
        DataFormatError: naming the file, the line and the field of the first problem.
    """
    if name not in FILE_FORMATS:
        raise KeyError(f"unknown dataset {name!r}; shipped datasets: {sorted(FILE_FORMATS)}")
    path = Path(data_dir) / f"{name}.jsonl"
    numbered = list(iter_jsonl(path))
    records = [record for _, record in numbered]
    if validate:
        validate_records(records, FILE_FORMATS[name], path=path, lines=[line for line, _ in numbered])
    return records


def load_dataset(name: str, data_dir: str | Path = DATA_DIR, columns: list[str] | None = None):
    """`load_records` as a `datasets.Dataset`, optionally keeping only `columns`."""
    from datasets import Dataset

    records = load_records(name, data_dir)
    if columns:
        records = [{k: r[k] for k in columns} for r in records]
    return Dataset.from_list(records)
