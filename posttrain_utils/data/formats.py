"""Validators for every data format the course uses: TRL's standard formats and the source formats.

Introduced in chapter 1 ("Data formats"). `validate_record(record, fmt)` checks one record and
`validate_records(records, fmt, path=...)` a whole dataset (a list, any iterable, or a
`datasets.Dataset`); both raise `jsonl.DataFormatError` naming the file, the 1-based line and the
offending field (e.g. ``messages[1].role``). Nothing is ever fixed or dropped silently.
`validate_file(path, fmt=None)` (in `posttrain_utils.data.validate`, re-exported here) checks your own
JSON Lines file, guessing its format when not told; from a shell::

    python -m posttrain_utils.data my_data.jsonl [--format messages]

The source formats' validators live in `posttrain_utils.data.source_formats`; converting them into
TRL's formats, in `posttrain_utils.data.convert`.

TRL's standard formats (what the trainers read):

* ``text``: ``{"text": str}``
* ``messages``: ``{"messages": [{"role", "content"}, ...]}`` ending with an assistant turn (SFT)
* ``prompt_completion``: ``{"prompt", "completion"}``, both strings or both conversational
* ``preference``: ``{"prompt"?, "chosen", "rejected"}``, explicit prompt or implicit (shared prefix)
* ``kto``: ``{"prompt", "completion", "label": bool}``
* ``prompt_only``: ``{"prompt", ...extra columns such as "answer"}`` (GRPO, PPO)

Source formats (converted before training; see `convert`): ``instruction`` (Alpaca), ``multitask``,
``pairwise_choice`` (``response_0``/``response_1`` + ``preferred`` or ``better_response_id``),
``ranking`` (``responses`` + ``ranking`` / ``scores`` / per-response ``rank`` or ``score``),
``critique_revision``, ``cot`` (chain of thought) and ``tool_calls``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence

from .fields import FieldError, check_conversation, check_distinct, check_json_values, completion_field, need_field, number_field, prompt_field, text_field
from .jsonl import DataFormatError
from .source_formats import SOURCE_VALIDATORS


# ----- TRL's standard formats -----------------------------------------------------------------
def _check_text(r: dict) -> None:
    text_field(r, "text")


def _check_messages(r: dict) -> None:
    check_conversation(need_field(r, "messages"), "messages")


def _check_prompt_completion(r: dict) -> None:
    completion_field(r, "completion", prompt_field(r))


def _check_preference(r: dict) -> None:
    if "prompt" in r:  # explicit prompt: chosen/rejected are the continuations
        prompt = prompt_field(r)
        completion_field(r, "chosen", prompt)
        completion_field(r, "rejected", prompt)
    else:  # implicit prompt: two full texts or conversations sharing a prefix
        if isinstance(need_field(r, "chosen"), str) != isinstance(need_field(r, "rejected"), str):
            raise FieldError("rejected", "chosen and rejected must both be strings or both be conversations")
        if isinstance(r["chosen"], str):
            text_field(r, "chosen")
            text_field(r, "rejected")
        else:
            _implicit_pair(check_conversation(r["chosen"], "chosen"), check_conversation(r["rejected"], "rejected"))
    check_distinct(r, "chosen", "rejected")
    if "margin" in r:
        number_field(r["margin"], "margin")


def _implicit_pair(chosen: list[dict], rejected: list[dict]) -> None:
    """Two conversations must share a prompt and then differ in assistant turns only."""
    shared = implicit_prompt_length(chosen, rejected)
    if shared == 0:
        raise FieldError("rejected[0]", "chosen and rejected share no prompt turns (the implicit prompt is empty)")
    if chosen[shared - 1]["role"] == "assistant":
        raise FieldError(f"chosen[{shared - 1}].role", "the shared prompt ends with an assistant turn")
    for key, msgs in (("chosen", chosen), ("rejected", rejected)):
        for i in range(shared, len(msgs)):
            if msgs[i]["role"] not in ("assistant", "tool") or (i == shared and msgs[i]["role"] != "assistant"):
                raise FieldError(f"{key}[{i}].role", f"after the shared prompt, {key} must continue with assistant "
                                               f"turns, found a {msgs[i]['role']} turn")


def implicit_prompt_length(chosen: list[dict], rejected: list[dict]) -> int:
    """Number of leading messages shared by `chosen` and `rejected` (the implicit prompt)."""
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    return n


def _check_kto(r: dict) -> None:
    _check_prompt_completion(r)
    if not isinstance(need_field(r, "label"), bool):
        raise FieldError("label", f"expected true or false, got {r['label']!r} ({type(r['label']).__name__})")


def _check_prompt_only(r: dict) -> None:
    prompt_field(r)


TRL_VALIDATORS: dict[str, Callable[[dict], None]] = {
    "text": _check_text, "messages": _check_messages, "prompt_completion": _check_prompt_completion,
    "preference": _check_preference, "kto": _check_kto, "prompt_only": _check_prompt_only,
}
TRL_FORMATS = tuple(TRL_VALIDATORS)
SOURCE_FORMATS = ("instruction", "multitask", "pairwise_choice", "ranking", "critique_revision", "cot", "tool_calls")
FORMATS = TRL_FORMATS + SOURCE_FORMATS


def _validator(fmt: str) -> Callable[[dict], None]:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known formats: {', '.join(FORMATS)}")
    return TRL_VALIDATORS[fmt] if fmt in TRL_VALIDATORS else SOURCE_VALIDATORS[fmt]


def validate_record(record, fmt: str, *, path: str = "<records>", line: int = 1) -> dict:
    """Check one record against a format.

    Args:
        record: the parsed JSON object.
        fmt: a format name, one of `FORMATS` (e.g. ``"messages"`` or ``"ranking"``).
        path: the file the record came from, for the error message.
        line: the record's 1-based line number, for the error message.

    Returns:
        The record itself, unchanged.

    Raises:
        DataFormatError: naming `path`, `line` and the offending field.
        ValueError: if `fmt` is not a known format.
    """
    check = _validator(fmt)
    if not isinstance(record, dict):
        raise DataFormatError(path, line, None, f"expected a JSON object, got {type(record).__name__}")
    try:
        check_json_values(record)  # first: lone surrogates, and nesting too deep for the checks below
        check(record)
    except FieldError as bad:
        raise DataFormatError(path, line, bad.field, f"{bad.problem} (format '{fmt}')") from None
    return record


def validate_records(records: Iterable[dict], fmt: str, path=None, *, lines: Sequence[int] | None = None):
    """Check every record; the first bad one raises `DataFormatError` (file, line, field).

    Args:
        records: the records in file order: a list, a tuple, a generator (any iterable), or a
            `datasets.Dataset`, whose rows are checked with their None values dropped (Arrow
            fills a key missing from some records with None, so None there means "absent").
        fmt: a format name, one of `FORMATS`.
        path: the file they came from (``"<records>"`` when they did not come from a file).
        lines: the physical line number of each record (`jsonl.iter_jsonl` gives them; blank lines
            make them differ from the positions). By default record ``i`` is on line ``i + 1``.

    Returns:
        `records` itself, or a list of its records when it was a one-shot iterator (a generator).

    Raises:
        DataFormatError: for the first bad record, or for no records at all: an empty dataset is
            almost always a mistake.
        ValueError: if `fmt` is not a known format.
    """
    path = str(path) if path is not None else "<records>"
    _validator(fmt)
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
        hint = "; pass one split, e.g. dataset['train']" if isinstance(records, Mapping) else ""
        raise DataFormatError(path, 1, None, f"expected records (a list, an iterable or a datasets.Dataset), "
                                             f"got {type(records).__name__}{hint}")
    seen = [] if iter(records) is records else None  # a generator: keep what it gave
    numbers = iter(lines) if lines is not None else None
    count = 0
    for count, record in enumerate(records_of(records), start=1):
        line = count if numbers is None else next(numbers, None)
        if line is None:
            raise ValueError(f"lines gives {count - 1} line numbers for more records")
        validate_record(record, fmt, path=path, line=line)
        if seen is not None:
            seen.append(record)
    if count == 0:
        raise DataFormatError(path, 1, None, "no records (expected at least one)")
    return seen if seen is not None else records


def records_of(records: Iterable[dict]) -> Iterable[dict]:
    """The records to check: a `datasets.Dataset`'s rows without their None values, else `records`."""
    ds = sys.modules.get("datasets")  # if it is not imported, `records` cannot be a Dataset
    if ds is None or not isinstance(records, (ds.Dataset, ds.IterableDataset)):
        return records
    return (_drop_none(row) for row in records.with_format(None))


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return [_drop_none(v) for v in value] if isinstance(value, list) else value
