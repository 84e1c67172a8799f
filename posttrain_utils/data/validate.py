"""Validating your own JSON Lines file, from Python or from a shell: one entry point.

Introduced in chapter 1 ("Data formats"). `validate_file(path, fmt=None)` reads the file strictly
(`jsonl.iter_jsonl`), guesses its format from the first record when `fmt` is not given
(`guess_format`), and checks every record (`formats.validate_record`), one line at a time, so even
a large file needs little memory. The first problem raises `DataFormatError` naming the file, the
line and the field. `data.validate_file` is the same function. From a shell::

    python -m posttrain_utils.data my_data.jsonl [--format messages]

prints a one-line verdict and exits with 0 (valid) or 1 (the error, without a traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NamedTuple

from .formats import FORMATS, validate_record
from .jsonl import DataFormatError, iter_jsonl
from .source_formats import COT_FIELDS


class FileReport(NamedTuple):
    """What `validate_file` found: every record of `path` is a valid `fmt` record."""

    path: str
    fmt: str
    records: int
    guessed: bool  # True when `fmt` was guessed from the first record

    def __str__(self) -> str:
        how = "guessed from the first record's keys" if self.guessed else "as asked"
        return f"{self.path}: OK, {self.records} valid records in format '{self.fmt}' ({how})"


def guess_format(record: dict) -> str:
    """Name the format a record looks like, from its keys (a guess: validate it afterwards)."""
    keys = set(record) if isinstance(record, dict) else set()
    rules = [("tool_calls", lambda: "final_response" in keys or any(
                 isinstance(m, dict) and "tool_calls" in m for m in record.get("messages") or [])),
             ("messages", lambda: "messages" in keys), ("text", lambda: "text" in keys),
             ("instruction", lambda: "instruction" in keys),
             ("multitask", lambda: {"task", "output"} <= keys),
             ("ranking", lambda: "responses" in keys), ("pairwise_choice", lambda: "response_0" in keys),
             ("critique_revision", lambda: "revision" in keys),
             ("cot", lambda: bool(keys & set(COT_FIELDS["reasoning"]))),
             ("preference", lambda: "chosen" in keys),
             ("kto", lambda: "label" in keys), ("prompt_completion", lambda: "completion" in keys),
             ("prompt_only", lambda: "prompt" in keys)]
    for name, test in rules:
        if test():
            return name
    raise ValueError(f"no known format has the keys {sorted(keys)}")


def validate_file(path: str | Path, fmt: str | None = None) -> FileReport:
    """Check that every line of a JSON Lines file is a valid record of one format.

    Args:
        path: the file.
        fmt: its format, one of `formats.FORMATS`; None guesses it from the first record's keys
            (`guess_format`), and an error then says that the format was a guess.

    Returns:
        A `FileReport`: the path, the format, the number of records, and whether it was guessed.

    Raises:
        DataFormatError: for the first problem (unreadable file, bad line, bad field, no records).
        ValueError: if `fmt` is not a known format.
    """
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known formats: {', '.join(FORMATS)}")
    guessed, count = fmt is None, 0
    for line, record in iter_jsonl(path):
        if fmt is None:
            try:
                fmt = guess_format(record)
            except ValueError as e:
                raise DataFormatError(path, line, None, f"cannot guess the format: {e}; name it (fmt=..., "
                                                        f"--format), one of {', '.join(FORMATS)}") from None
        try:
            validate_record(record, fmt, path=str(path), line=line)
        except DataFormatError as e:
            if not guessed:
                raise
            problem = e.problem.removesuffix(f" (format '{fmt}')")  # say that the format was a guess
            raise DataFormatError(e.path, e.line, e.field, f"{problem} (format '{fmt}', guessed from the "
                                                           "first record's keys)") from None
        count += 1
    if count == 0:
        raise DataFormatError(path, None, None, "no records (the file is empty or has only blank lines)")
    return FileReport(str(path), fmt, count, guessed)


def main(argv: list[str] | None = None) -> int:
    """The command line: ``python -m posttrain_utils.data FILE [--format FMT]``.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        0 when the file is valid (the verdict goes to stdout), 1 otherwise (the error to stderr).
    """
    parser = argparse.ArgumentParser(prog="python -m posttrain_utils.data",
                                     description="Check that a JSON Lines file is valid data for one format.")
    parser.add_argument("file", help="the JSON Lines file to check")
    parser.add_argument("--format", choices=FORMATS, default=None, help="its format (default: guessed)")
    args = parser.parse_args(argv)
    try:
        print(validate_file(args.file, args.format))
    except DataFormatError as e:
        print(f"INVALID: {e}", file=sys.stderr)
        return 1
    return 0

