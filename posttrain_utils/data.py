"""Reading the course's JSONL datasets, strictly: bad input names its file, line and field.

Introduced in chapter 0; chapter 1 explains the formats and their validators (`formats`).
`load_records("sft_train")` reads ``data/sft_train.jsonl`` and validates every line against the
TRL format the file is in; `load_dataset` returns the same records as a `datasets.Dataset`.
"""

from __future__ import annotations

import json
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

# Which TRL format each shipped file is in (see data/README.md).
FILE_FORMATS = {
    "sft_train": "messages", "sft_heldout": "messages",
    "prompt_completion_train": "prompt_completion",
    "preference_train": "preference", "preference_heldout": "preference",
    "kto_train": "kto",
    "prompts_train": "prompt_only", "eval_heldout": "prompt_only",
}


class DataFormatError(ValueError):
    """A record that does not match its format. The message names file, line and field."""

    def __init__(self, path: str | Path, line: int, field: str | None, problem: str):
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        where = f"{path}, line {line}" + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {problem}")


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSONL file; every line must be a JSON object. Blank lines are errors too."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (datasets live in {DATA_DIR})")
    records = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                raise DataFormatError(path, number, None, "empty line (one JSON object per line expected)")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFormatError(path, number, None, f"malformed JSON: {e.msg} at column {e.colno}") from None
            if not isinstance(record, dict):
                raise DataFormatError(path, number, None, f"expected a JSON object, got {type(record).__name__}")
            records.append(record)
    return records


def load_records(name: str, data_dir: str | Path = DATA_DIR, validate: bool = True) -> list[dict]:
    """Load ``<data_dir>/<name>.jsonl`` and validate it against its format (see `FILE_FORMATS`)."""
    from .formats import validate_records

    if name not in FILE_FORMATS:
        raise KeyError(f"unknown dataset {name!r}; shipped datasets: {sorted(FILE_FORMATS)}")
    path = Path(data_dir) / f"{name}.jsonl"
    records = read_jsonl(path)
    if validate:
        validate_records(records, FILE_FORMATS[name], path=path)
    return records


def load_dataset(name: str, data_dir: str | Path = DATA_DIR, columns: list[str] | None = None):
    """`load_records` as a `datasets.Dataset`, optionally keeping only `columns`."""
    from datasets import Dataset

    records = load_records(name, data_dir)
    if columns:
        records = [{k: r[k] for k in columns} for r in records]
    return Dataset.from_list(records)
