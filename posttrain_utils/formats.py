"""Validators for every data format the course uses: TRL's standard formats and the source formats.

Introduced in chapter 1 ("Data formats"). `validate_record(record, fmt)` checks one record and
`validate_records(records, fmt, path=...)` a whole file; both raise `data.DataFormatError`
naming the file, the 1-based record number and the offending field (e.g. ``messages[1].role``).
Nothing is ever fixed or dropped silently. The source formats' validators live in
`posttrain_utils.source_formats`; converting them into TRL's formats, in `posttrain_utils.convert`.

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

import json
import math
from collections.abc import Callable

from .data import DataFormatError

ROLES = ("system", "user", "assistant", "tool")


class _Bad(Exception):
    """Internal: a problem in one field, turned into a `DataFormatError` with file and line."""

    def __init__(self, field: str | None, problem: str):
        super().__init__(problem)
        self.field, self.problem = field, problem


# ----- building blocks ------------------------------------------------------------------------
def _text(record: dict, key: str, field: str | None = None, optional: bool = False) -> str | None:
    """A required (or optional) non-empty string field."""
    field = field or key
    if key not in record:
        if optional:
            return None
        raise _Bad(field, "missing field")
    value = record[key]
    if not isinstance(value, str):
        raise _Bad(field, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise _Bad(field, "empty text")
    return value


def _need(record: dict, key: str):
    """The value of a required field of any type."""
    if key not in record:
        raise _Bad(key, "missing field")
    return record[key]


def _pick(record: dict, names: tuple[str, ...]) -> str:
    """The one key of `names` present in `record` (aliases such as reasoning/rationale)."""
    present = [n for n in names if n in record]
    if not present:
        raise _Bad(names[0], f"missing field (accepted names: {', '.join(names)})")
    if len(present) > 1:
        raise _Bad(present[1], f"both {present[0]!r} and {present[1]!r} given; use one")
    return present[0]


def _messages(value, field: str, tool_calls: bool = False) -> list[dict]:
    """A non-empty list of well-formed messages (roles, contents, system first only)."""
    if not isinstance(value, list):
        raise _Bad(field, f"expected a list of messages, got {type(value).__name__}")
    if not value:
        raise _Bad(field, "empty list of messages")
    for i, m in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(m, dict):
            raise _Bad(where, f"expected a message object, got {type(m).__name__}")
        if "role" not in m:
            raise _Bad(f"{where}.role", "missing field")
        if m["role"] not in ROLES:
            raise _Bad(f"{where}.role", f"unknown role {m['role']!r}; expected one of {', '.join(ROLES)}")
        if m["role"] == "system" and i > 0:
            raise _Bad(f"{where}.role", "a system message is only allowed as the first message")
        if "tool_calls" in m:
            if not tool_calls:
                raise _Bad(f"{where}.tool_calls", "the chat template renders only 'content'; validate as "
                                                  "'tool_calls' and convert with convert.to_messages first")
            if m["role"] != "assistant":
                raise _Bad(f"{where}.tool_calls", "only assistant turns may call tools")
            _calls(m["tool_calls"], f"{where}.tool_calls")
            if m.get("content") in (None, ""):
                continue  # a pure tool-call turn has no text
        if "content" not in m:
            raise _Bad(f"{where}.content", "missing field")
        if not isinstance(m["content"], str):
            raise _Bad(f"{where}.content", f"expected a string, got {type(m['content']).__name__}")
        if not m["content"].strip():
            raise _Bad(f"{where}.content", "empty content")
    return value


def _calls(calls, field: str) -> None:
    """OpenAI-style tool calls: ``{"type": "function", "function": {"name", "arguments"}}`` or flat."""
    if not isinstance(calls, list) or not calls:
        raise _Bad(field, "expected a non-empty list of tool calls")
    for j, call in enumerate(calls):
        fn = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            raise _Bad(f"{field}[{j}]", "expected a tool call object")
        _text(fn, "name", f"{field}[{j}].name")
        args = fn.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError as e:
                raise _Bad(f"{field}[{j}].arguments", f"arguments are not valid JSON: {e.msg}") from None
        if not isinstance(args, dict):
            raise _Bad(f"{field}[{j}].arguments", "arguments must be a JSON object")


def _conversation(value, field: str, tool_calls: bool = False) -> list[dict]:
    """A full conversation for SFT: at least one assistant turn, and it ends with one."""
    msgs = _messages(value, field, tool_calls)
    for i, m in enumerate(msgs):
        if m["role"] == "tool" and (i == 0 or msgs[i - 1]["role"] not in ("assistant", "tool")):
            raise _Bad(f"{field}[{i}].role", "a tool result must follow an assistant turn (or another result)")
    if msgs[-1]["role"] != "assistant":
        raise _Bad(f"{field}[{len(msgs) - 1}].role",
                   f"the conversation ends with a {msgs[-1]['role']} turn; it must end with an assistant turn")
    return msgs


def _prompt(record: dict, key: str = "prompt"):
    """A prompt: a string, or messages that do not end with an assistant turn."""
    if isinstance(_need(record, key), str):
        return _text(record, key)
    msgs = _messages(record[key], key)
    if msgs[-1]["role"] == "assistant":
        raise _Bad(f"{key}[{len(msgs) - 1}].role", "the prompt ends with an assistant turn; that turn belongs in "
                                                   "the completion (or chosen/rejected)")
    return msgs


def _completion(record: dict, key: str, prompt) -> str | list:
    """A completion matching the prompt's type: a string, or assistant (and tool) turns ending with an assistant."""
    value = _need(record, key)
    if isinstance(prompt, str):
        if not isinstance(value, str):
            raise _Bad(key, f"the prompt is a string, so {key} must be a string too, not {type(value).__name__}")
        return _text(record, key)
    if isinstance(value, str):
        raise _Bad(key, f"the prompt is conversational, so {key} must be a list of messages, not a string")
    msgs = _messages(value, key)
    for i, m in enumerate(msgs):
        if m["role"] not in ("assistant", "tool") or (i == 0 and m["role"] != "assistant"):
            raise _Bad(f"{key}[{i}].role", f"{key} must consist of assistant turns, found a {m['role']} turn")
    if msgs[-1]["role"] != "assistant":
        raise _Bad(f"{key}[{len(msgs) - 1}].role", f"{key} must end with an assistant turn")
    return msgs


def _distinct(record: dict, a: str, b: str) -> None:
    if record[a] == record[b]:
        raise _Bad(b, f"identical to {a!r}: the pair carries no preference")


def _number(value, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Bad(field, f"expected a finite number, got {value!r}")
    return value


# ----- TRL's standard formats -----------------------------------------------------------------
def _check_text(r: dict) -> None:
    _text(r, "text")


def _check_messages(r: dict) -> None:
    _conversation(_need(r, "messages"), "messages")


def _check_prompt_completion(r: dict) -> None:
    _completion(r, "completion", _prompt(r))


def _check_preference(r: dict) -> None:
    if "prompt" in r:  # explicit prompt: chosen/rejected are the continuations
        prompt = _prompt(r)
        _completion(r, "chosen", prompt)
        _completion(r, "rejected", prompt)
    else:  # implicit prompt: two full texts or conversations sharing a prefix
        if isinstance(_need(r, "chosen"), str) != isinstance(_need(r, "rejected"), str):
            raise _Bad("rejected", "chosen and rejected must both be strings or both be conversations")
        if isinstance(r["chosen"], str):
            _text(r, "chosen")
            _text(r, "rejected")
        else:
            _implicit_pair(_conversation(r["chosen"], "chosen"), _conversation(r["rejected"], "rejected"))
    _distinct(r, "chosen", "rejected")
    if "margin" in r:
        _number(r["margin"], "margin")


def _implicit_pair(chosen: list[dict], rejected: list[dict]) -> None:
    """Two conversations must share a prompt and then differ in assistant turns only."""
    shared = implicit_prompt_length(chosen, rejected)
    if shared == 0:
        raise _Bad("rejected[0]", "chosen and rejected share no prompt turns (the implicit prompt is empty)")
    if chosen[shared - 1]["role"] == "assistant":
        raise _Bad(f"chosen[{shared - 1}].role", "the shared prompt ends with an assistant turn")
    for key, msgs in (("chosen", chosen), ("rejected", rejected)):
        for i in range(shared, len(msgs)):
            if msgs[i]["role"] not in ("assistant", "tool") or (i == shared and msgs[i]["role"] != "assistant"):
                raise _Bad(f"{key}[{i}].role", f"after the shared prompt, {key} must continue with assistant "
                                               f"turns, found a {msgs[i]['role']} turn")


def implicit_prompt_length(chosen: list[dict], rejected: list[dict]) -> int:
    """Number of leading messages shared by `chosen` and `rejected` (the implicit prompt)."""
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    return n


def _check_kto(r: dict) -> None:
    _check_prompt_completion(r)
    if not isinstance(_need(r, "label"), bool):
        raise _Bad("label", f"expected true or false, got {r['label']!r} ({type(r['label']).__name__})")


def _check_prompt_only(r: dict) -> None:
    _prompt(r)


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
    if fmt in TRL_VALIDATORS:
        return TRL_VALIDATORS[fmt]
    from .source_formats import SOURCE_VALIDATORS  # imported late: it builds on the blocks above

    return SOURCE_VALIDATORS[fmt]


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
        check(record)
    except _Bad as bad:
        raise DataFormatError(path, line, bad.field, f"{bad.problem} (format '{fmt}')") from None
    return record


def validate_records(records: list, fmt: str, path=None) -> list:
    """Check every record; the first bad one raises `DataFormatError` (file, line, field).

    Args:
        records: parsed records, in file order (record ``i`` is on line ``i + 1``).
        fmt: a format name, one of `FORMATS`.
        path: the file they came from (``"<records>"`` when they did not come from a file).

    Returns:
        `records`, unchanged. An empty list is an error: an empty dataset is almost always a mistake.
    """
    path = str(path) if path is not None else "<records>"
    if not isinstance(records, list) or not records:
        raise DataFormatError(path, 1, None, "no records (expected a non-empty list)")
    for line, record in enumerate(records, start=1):
        validate_record(record, fmt, path=path, line=line)
    return records
