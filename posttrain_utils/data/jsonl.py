"""Reading JSON Lines files strictly, and the error every bad file or record raises.

Introduced in chapter 1 ("Data formats"). `read_jsonl` reads one JSON object per line and
`iter_jsonl` yields each with its line number; any problem raises `DataFormatError`, whose message
names the file, the 1-based line and, where there is one, the field. Never a raw traceback.
`write_jsonl` writes records atomically: the whole file, or on any error nothing at all.

What is accepted is what ``datasets.load_dataset("json", data_files=...)`` accepts as JSON Lines:
UTF-8 text, an optional UTF-8 byte-order mark, ``\\n``, ``\\r\\n`` or ``\\r`` line ends, and blank or
whitespace-only lines anywhere (skipped, but still counted, so line numbers are the editor's).
Refused with a clear message: other encodings (Latin-1, UTF-16, compressed files such as gzip),
NUL bytes, malformed JSON, a value that is not an object, nesting too deep for Python's parser,
integers longer than Python reads (``sys.get_int_max_str_digits()``), a missing file, a folder.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .fields import walk

# Files that are not text at all, recognised by their first bytes (checked on line 1 only).
_MAGIC = {b"\x1f\x8b": "gzip-compressed (decompress it first, e.g. `gunzip FILE`)",
          b"PK\x03\x04": "a zip archive (extract the .jsonl file first)",
          b"\xfd7zXZ\x00": "xz-compressed (decompress it first, e.g. `unxz FILE`)",
          b"\x28\xb5\x2f\xfd": "zstd-compressed (decompress it first, e.g. `unzstd FILE`)",
          b"\xff\xfe": "UTF-16 or UTF-32 text (byte-order mark FF FE); save it as UTF-8",
          b"\xfe\xff": "UTF-16 text (byte-order mark FE FF); save it as UTF-8",
          b"\x00\x00\xfe\xff": "UTF-32 text (byte-order mark 00 00 FE FF); save it as UTF-8"}
_UTF8_BOM = b"\xef\xbb\xbf"


class DataFormatError(ValueError):
    """A file or record that does not match its format. The message names file, line and field.

    Args:
        path: the file (or ``"<records>"`` for records that came from no file).
        line: the 1-based physical line, or None when the problem is the whole file (e.g. missing).
        field: the offending field (e.g. ``messages[1].role``), or None.
        problem: what is wrong, in words.
    """

    def __init__(self, path: str | Path, line: int | None, field: str | None, problem: str):
        field = _printable(field) if field else field  # a key may hold a lone surrogate
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        where = str(path) + (f", line {line}" if line is not None else "")
        where += f", field '{field}'" if field else ""
        super().__init__(_printable(f"{where}: {problem}"))


def _printable(text: str) -> str:
    """`text` with lone surrogates (from a file name or a value) escaped, so that it can be printed."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)`` for every non-blank line of a JSON Lines file, in order.

    Args:
        path: the file to read.

    Raises:
        DataFormatError: for the first bad line (or a missing file, a folder, a binary file).
    """
    path = Path(path)
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise DataFormatError(path, None, None, "no such file") from None
    except IsADirectoryError:
        raise DataFormatError(path, None, None, "is a folder, not a JSON Lines file") from None
    except OSError as e:
        raise DataFormatError(path, None, None, f"cannot be read: {e.strerror or e}") from None
    number = 0
    with f:
        for chunk in f:  # split at b"\n"; a lone b"\r" also ends a line, as in Python's text mode
            chunk = chunk[:-1] if chunk.endswith(b"\n") else chunk
            chunk = chunk[:-1] if chunk.endswith(b"\r") else chunk
            for raw in chunk.split(b"\r") if b"\r" in chunk else (chunk,):
                number += 1
                if number == 1:
                    raw = _first_line(path, raw)
                record = _parse_line(path, number, raw)
                if record is not None:
                    yield number, record


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSON Lines file into a list of records (blank lines skipped; see `iter_jsonl`).

    Args:
        path: the file to read.

    Returns:
        The records in file order. Their line numbers come from `iter_jsonl`.

    Raises:
        DataFormatError: naming the file and the line of the first problem.
    """
    return [record for _, record in iter_jsonl(path)]


def write_jsonl(path: str | Path, records) -> int:
    """Write records as JSON Lines (UTF-8) atomically: a temporary file, then renamed into place.

    Args:
        path: the file to write (its folder is created if needed).
        records: the records (any iterable of JSON-serialisable objects).

    Returns:
        The number of records written.

    Raises:
        DataFormatError: if `path` is a folder or a record cannot be written; no file is left
            then, not even a temporary one, and an existing `path` keeps its old content.
    """
    path = Path(path)
    if path.is_dir():
        raise DataFormatError(path, None, None, "is a folder: give the name of the file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for count, record in enumerate(records, start=1):
                try:
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
                except (TypeError, ValueError, RecursionError) as e:  # e.g. a lone surrogate: not UTF-8
                    raise DataFormatError(path, count, None, f"cannot write as UTF-8 JSON: {e}") from None
        os.replace(tmp, path)  # atomic: readers see the old file or the whole new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def _first_line(path: Path, raw: bytes) -> bytes:
    for magic, what in _MAGIC.items():
        if raw.startswith(magic):
            raise DataFormatError(path, 1, None, f"not UTF-8 JSON Lines: the file is {what}")
    return raw[len(_UTF8_BOM):] if raw.startswith(_UTF8_BOM) else raw


def _parse_line(path: Path, number: int, raw: bytes) -> dict | None:
    """The record on one line, None for a blank line; `DataFormatError` for anything else."""
    def bad(problem: str, field: str | None = None) -> DataFormatError:
        return DataFormatError(path, number, field, problem)

    if b"\0" in raw:
        raise bad(f"NUL byte at column {raw.index(0) + 1}: the file is binary, or UTF-16/UTF-32 without "
                  "a byte-order mark; save it as UTF-8")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise bad(f"not UTF-8: byte 0x{raw[e.start]:02x} at column {e.start + 1} cannot be decoded "
                  "(Latin-1 or Windows-1252 text?); save the file as UTF-8") from None
    if not text.strip(" \t"):
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise bad(f"malformed JSON: {e.msg} at column {e.colno}{_hint(text, e)}") from None
    except RecursionError:
        raise bad("malformed JSON: nested too deeply for Python's JSON parser "
                  f"(about {sys.getrecursionlimit()} levels)") from None
    except ValueError:  # Python's int-string conversion limit
        field, digits = _long_integer(text)
        raise bad(f"an integer with {digits or 'too many'} digits: Python reads at most {_max_digits()} "
                  "(store it as a string)", field) from None
    if not isinstance(record, dict):
        hint = " (a JSON array: JSON Lines holds one object per line)" if isinstance(record, list) else ""
        raise bad(f"expected a JSON object, got {type(record).__name__}{hint}")
    return record


def _hint(text: str, e: json.JSONDecodeError) -> str:
    if e.msg == "Extra data":
        return " (more than one JSON value on one line: JSON Lines holds one object per line)"
    if text.strip() in ("[", "{"):
        return " (a JSON document spread over several lines? JSON Lines holds one whole object per line)"
    return ""


def _max_digits() -> int:
    """Python's limit on the digits of an integer read from text (3.10.7+; 4300 by default)."""
    return getattr(sys, "get_int_max_str_digits", lambda: 4300)()


class _LongInt(str):
    """Marks an integer too long to convert, so that `_long_integer` can find its field."""


def _long_integer(text: str) -> tuple[str | None, int | None]:
    """The field holding the first integer too long for Python, and its number of digits."""
    limit = _max_digits()
    try:
        record = json.loads(text, parse_int=lambda s: _LongInt(s) if len(s.lstrip("-")) > limit else int(s))
        found = ((field, len(v.lstrip("-"))) for field, _, v, _ in walk(record) if isinstance(v, _LongInt))
        return next(found, (None, None))
    except (ValueError, RecursionError):
        return None, None
