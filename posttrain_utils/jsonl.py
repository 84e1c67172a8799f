"""Reading JSONL files strictly, and the error every bad record raises.

Introduced in chapter 1 ("Data formats"). `read_jsonl` reads one JSON object per line; a problem
raises `DataFormatError`, whose message names the file, the 1-based line and the field.
"""

from __future__ import annotations

import json
from pathlib import Path


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
        raise FileNotFoundError(f"{path}: no such file")
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
