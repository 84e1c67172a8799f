"""Field checks shared by every format validator: the building blocks of `formats`.

Introduced in chapter 1 ("Data formats"). Each check raises `FieldError(field, problem)`;
`formats.validate_record` turns it into a `DataFormatError` that also names the file and line.
Both `formats` (TRL's formats) and `source_formats` (data as it is found) build on these.
`check_json_values` is the one check every format shares: no string holds a lone surrogate, and
no record nests deeper than `MAX_DEPTH` levels.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator

ROLES = ("system", "user", "assistant", "tool")
# Containers nested in one record, at most. `datasets` (Arrow) already refuses 64 levels; deeper
# records would exhaust Python's recursion in `copy.deepcopy` or `==` before ~500 levels.
MAX_DEPTH = 100
_SURROGATE = re.compile("[\ud800-\udfff]")


class FieldError(Exception):
    """a problem in one field, turned into a `DataFormatError` with file and line."""

    def __init__(self, field: str | None, problem: str):
        super().__init__(problem)
        self.field, self.problem = field, problem


def text_field(record: dict, key: str, field: str | None = None, optional: bool = False) -> str | None:
    """A required (or optional) non-empty string field."""
    field = field or key
    if key not in record:
        if optional:
            return None
        raise FieldError(field, "missing field")
    value = record[key]
    if not isinstance(value, str):
        raise FieldError(field, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise FieldError(field, "empty text")
    return value


def need_field(record: dict, key: str):
    """The value of a required field of any type."""
    if key not in record:
        raise FieldError(key, "missing field")
    return record[key]


def pick_field(record: dict, names: tuple[str, ...]) -> str:
    """The one key of `names` present in `record` (aliases such as reasoning/rationale)."""
    present = [n for n in names if n in record]
    if not present:
        raise FieldError(names[0], f"missing field (accepted names: {', '.join(names)})")
    if len(present) > 1:
        raise FieldError(present[1], f"both {present[0]!r} and {present[1]!r} given; use one")
    return present[0]


def check_messages_list(value, field: str, tool_calls: bool = False) -> list[dict]:
    """A non-empty list of well-formed messages (roles, contents, system first only)."""
    if not isinstance(value, list):
        raise FieldError(field, f"expected a list of messages, got {type(value).__name__}")
    if not value:
        raise FieldError(field, "empty list of messages")
    for i, m in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(m, dict):
            raise FieldError(where, f"expected a message object, got {type(m).__name__}")
        if "role" not in m:
            raise FieldError(f"{where}.role", "missing field")
        if m["role"] not in ROLES:
            raise FieldError(f"{where}.role", f"unknown role {m['role']!r}; expected one of {', '.join(ROLES)}")
        if m["role"] == "system" and i > 0:
            raise FieldError(f"{where}.role", "a system message is only allowed as the first message")
        if "tool_calls" in m:
            if not tool_calls:
                raise FieldError(f"{where}.tool_calls", "the chat template renders only 'content'; validate as "
                                                  "'tool_calls' and convert with convert.to_messages first")
            if m["role"] != "assistant":
                raise FieldError(f"{where}.tool_calls", "only assistant turns may call tools")
            check_tool_calls(m["tool_calls"], f"{where}.tool_calls")
            if m.get("content") in (None, ""):
                continue  # a pure tool-call turn has no text
        if "content" not in m:
            raise FieldError(f"{where}.content", "missing field")
        if not isinstance(m["content"], str):
            raise FieldError(f"{where}.content", f"expected a string, got {type(m['content']).__name__}")
        if not m["content"].strip():
            raise FieldError(f"{where}.content", "empty content")
    return value


def check_tool_calls(calls, field: str) -> None:
    """OpenAI-style tool calls: ``{"type": "function", "function": {"name", "arguments"}}`` or flat."""
    if not isinstance(calls, list) or not calls:
        raise FieldError(field, "expected a non-empty list of tool calls")
    for j, call in enumerate(calls):
        fn = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            raise FieldError(f"{field}[{j}]", "expected a tool call object")
        text_field(fn, "name", f"{field}[{j}].name")
        args = fn.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError as e:
                raise FieldError(f"{field}[{j}].arguments", f"arguments are not valid JSON: {e.msg}") from None
        if not isinstance(args, dict):
            raise FieldError(f"{field}[{j}].arguments", "arguments must be a JSON object")


def check_conversation(value, field: str, tool_calls: bool = False) -> list[dict]:
    """A full conversation for SFT: at least one assistant turn, and it ends with one."""
    msgs = check_messages_list(value, field, tool_calls)
    for i, m in enumerate(msgs):
        if m["role"] == "tool" and (i == 0 or msgs[i - 1]["role"] not in ("assistant", "tool")):
            raise FieldError(f"{field}[{i}].role", "a tool result must follow an assistant turn (or another result)")
    if msgs[-1]["role"] != "assistant":
        raise FieldError(f"{field}[{len(msgs) - 1}].role",
                   f"the conversation ends with a {msgs[-1]['role']} turn; it must end with an assistant turn")
    return msgs


def prompt_field(record: dict, key: str = "prompt"):
    """A prompt: a string, or messages that do not end with an assistant turn."""
    if isinstance(need_field(record, key), str):
        return text_field(record, key)
    msgs = check_messages_list(record[key], key)
    if msgs[-1]["role"] == "assistant":
        raise FieldError(f"{key}[{len(msgs) - 1}].role", "the prompt ends with an assistant turn; that turn belongs in "
                                                   "the completion (or chosen/rejected)")
    return msgs


def completion_field(record: dict, key: str, prompt) -> str | list:
    """A completion matching the prompt's type: a string, or assistant (and tool) turns ending with an assistant."""
    value = need_field(record, key)
    if isinstance(prompt, str):
        if not isinstance(value, str):
            raise FieldError(key, f"the prompt is a string, so {key} must be a string too, not {type(value).__name__}")
        return text_field(record, key)
    if isinstance(value, str):
        raise FieldError(key, f"the prompt is conversational, so {key} must be a list of messages, not a string")
    msgs = check_messages_list(value, key)
    for i, m in enumerate(msgs):
        if m["role"] not in ("assistant", "tool") or (i == 0 and m["role"] != "assistant"):
            raise FieldError(f"{key}[{i}].role", f"{key} must consist of assistant turns, found a {m['role']} turn")
    if msgs[-1]["role"] != "assistant":
        raise FieldError(f"{key}[{len(msgs) - 1}].role", f"{key} must end with an assistant turn")
    return msgs


def check_distinct(record: dict, a: str, b: str) -> None:
    if record[a] == record[b]:
        raise FieldError(b, f"identical to {a!r}: the pair carries no preference")


def number_field(value, field: str) -> float:
    try:
        finite = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:  # an int beyond float range
        raise FieldError(field, f"number too large ({value.bit_length()} bits) for a float") from None
    if not finite:
        raise FieldError(field, f"expected a finite number, got {value!r}")
    return value


def walk(value) -> Iterator[tuple[str | None, object, object, int]]:
    """Every value nested in `value`, in document order, without recursion.

    Yields:
        ``(field, key, item, depth)``: the field path (``messages[1].content``), the dict key or
        list index, the value, and its depth (1 for a record's own fields).
    """
    stack = [(None, _items(value))]
    while stack:
        parent, items = stack[-1]
        for key, item in items:
            if isinstance(key, int):
                field = f"{parent or ''}[{key}]"
            else:
                field = str(key) if parent is None else f"{parent}.{key}"
            yield field, key, item, len(stack)
            if isinstance(item, (dict, list, tuple)):
                stack.append((field, _items(item)))
                break
        else:
            stack.pop()


def _items(value):
    if isinstance(value, dict):
        return iter(value.items())
    return enumerate(value) if isinstance(value, (list, tuple)) else iter(())


def check_json_values(record: dict) -> None:
    """Every string (and key) can be written as UTF-8, and nesting stays within `MAX_DEPTH`.

    A JSON escape such as ``"\\ud800"`` decodes to a lone surrogate: Python accepts it, but writing
    it as UTF-8 fails (e.g. in `convert.convert_file`), and `datasets` refuses the file.
    """
    if _values_ok(record):  # the fast path; the walk below only locates a problem, with its field
        return
    top = None
    for field, key, item, depth in walk(record):
        top = field if depth == 1 else top
        if depth > MAX_DEPTH:  # named by its top-level field: the full path would be 100 levels long
            raise FieldError(top, f"nested more than {MAX_DEPTH} levels deep")
        for text, what in ((key, "key"), (item, "string")):
            if isinstance(text, str) and not text.isascii() and (bad := _SURROGATE.search(text)):
                raise FieldError(field, f"lone surrogate \\u{ord(bad.group()):04x} at character {bad.start() + 1} "
                                        f"of the {what}: not valid Unicode, cannot be written as UTF-8 "
                                        "(a \\ud800-\\udfff escape must be one half of a pair)")


def _has_surrogate(text) -> bool:
    return isinstance(text, str) and not text.isascii() and _SURROGATE.search(text) is not None


def _values_ok(value, depth: int = 1) -> bool:
    """`check_json_values` without field paths (5x faster); `depth` is that of `value`'s items."""
    if isinstance(value, dict):
        pairs = value.items()
    elif isinstance(value, (list, tuple)):
        pairs = enumerate(value)
    else:
        return not _has_surrogate(value)
    if depth > MAX_DEPTH:  # stops the recursion long before Python's limit
        return not value
    for key, item in pairs:
        if _has_surrogate(key) or not (_values_ok(item, depth + 1) if isinstance(item, (dict, list, tuple))
                                       else not _has_surrogate(item)):
            return False
    return True
