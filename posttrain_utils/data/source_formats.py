"""The source formats: data as it is found, before conversion into TRL's formats.

Introduced in chapter 1 ("Data formats"). This module holds their validators (reached through
`formats.validate_record(record, fmt)`) and the helpers that render them as chat turns (used by
`convert`, which documents the rendering choices). The format names and shapes:

* ``instruction``: ``{"instruction", "input"?, "output", "system"?}`` (Alpaca).
* ``multitask``: ``{"task", "output"}`` plus at least one of ``context``, ``question``, ``input``;
  other string or number fields (e.g. ``source_lang``) are task options.
* ``pairwise_choice``: ``{"prompt", "response_0", "response_1"}`` plus ``preferred`` or
  ``better_response_id`` (0 or 1).
* ``ranking``: ``{"prompt", "responses"}`` plus one order: ``ranking`` (response ids, best first),
  ``scores`` (higher is better), or a ``rank`` (1 = best) or ``score`` inside each response.
  **Ties** (equal scores) are allowed and produce no pair; a record whose scores are all equal is
  an error, because it would silently contribute nothing.
* ``critique_revision``: ``{"prompt", "initial_response" (or "response"), "critique", "revision"}``.
* ``cot``: question (``question``/``prompt``), reasoning (``reasoning``/``chain_of_thought``/
  ``rationale``) and answer (``answer``/``conclusion``).
* ``tool_calls``: ``{"messages"}`` whose assistant turns carry OpenAI-style ``tool_calls``, each
  answered by one ``tool`` turn; or the flat shape ``{"messages", "tool_calls", "tool_responses",
  "final_response"}``.
"""

from __future__ import annotations

import copy
import itertools
import json
import re

from .fields import FieldError, check_distinct, check_conversation, check_messages_list, check_tool_calls, completion_field, need_field, number_field, pick_field, prompt_field, text_field

MULTITASK_INPUTS = ("context", "question", "input")  # rendered in this order after the task line
TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
COT_FIELDS = {"question": ("question", "prompt"), "reasoning": ("reasoning", "chain_of_thought", "rationale"),
              "answer": ("answer", "conclusion")}


def _check_instruction(r: dict) -> None:
    text_field(r, "instruction")
    if "input" in r and not isinstance(r["input"], str):
        raise FieldError("input", f"expected a string (\"\" for none), got {type(r['input']).__name__}")
    text_field(r, "output")
    text_field(r, "system", optional=True)


def _check_multitask(r: dict) -> None:
    text_field(r, "task")
    text_field(r, "output")
    if not any(k in r for k in MULTITASK_INPUTS):
        raise FieldError("input", f"missing field (one of {', '.join(MULTITASK_INPUTS)} is needed)")
    for k in MULTITASK_INPUTS:
        text_field(r, k, optional=True)


def _check_pairwise_choice(r: dict) -> None:
    prompt = prompt_field(r)
    completion_field(r, "response_0", prompt)
    completion_field(r, "response_1", prompt)
    check_distinct(r, "response_0", "response_1")
    key = pick_field(r, ("preferred", "better_response_id"))
    if type(r[key]) is not int or r[key] not in (0, 1):
        raise FieldError(key, f"expected 0 or 1 (the id of the better response), got {r[key]!r}")


def ranking_groups(record: dict) -> list[list[int]]:
    """Response ids grouped from best to worst; responses with equal scores share a group.

    The order comes from exactly one of: ``ranking`` (ids best first, a permutation of
    ``0..n-1``), ``scores`` (higher is better), or per-response ``rank`` (1 = best, a permutation
    of ``1..n``) or ``score``. Ties are only possible with scores: tied responses form no pair.
    Raises `FieldError` on any malformed order (call it through `validate_record` for a located error).
    """
    responses = record["responses"]
    n = len(responses)
    per_item = {k for r in responses if isinstance(r, dict) for k in ("rank", "score") if k in r}
    sources = [k for k in ("ranking", "scores") if k in record] + sorted(per_item)
    if len(sources) != 1:
        raise FieldError("ranking", "give exactly one of 'ranking', 'scores', or a 'rank'/'score' per response"
                   + (f" (found {', '.join(sources)})" if sources else ""))
    source = sources[0]
    if source in ("rank", "score"):
        missing = [i for i, r in enumerate(responses) if not isinstance(r, dict) or source not in r]
        if missing:
            raise FieldError(f"responses[{missing[0]}].{source}", "missing field (every response needs one)")
        values = [r[source] for r in responses]
    else:
        values = record[source]
        if not isinstance(values, list) or len(values) != n:
            raise FieldError(source, f"expected a list of {n} entries (one per response), got "
                               f"{len(values) if isinstance(values, list) else type(values).__name__}")
    field = (lambda i: f"responses[{i}].{source}") if source in ("rank", "score") else (lambda i: f"{source}[{i}]")
    if source in ("scores", "score"):
        scores = [number_field(v, field(i)) for i, v in enumerate(values)]
        if len(set(scores)) == 1:
            raise FieldError(field(0), "all scores are equal: the record carries no preference")
        order = sorted(range(n), key=scores.__getitem__, reverse=True)  # stable: ids ascending within a tie
        return [list(ids) for _, ids in itertools.groupby(order, key=scores.__getitem__)]
    first = 1 if source == "rank" else 0  # per-response ranks are 1-based, ranking ids 0-based
    seen = set()
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or not first <= v < n + first:
            raise FieldError(field(i), f"expected an integer in {first}..{n - 1 + first}, got {v!r}")
        if v in seen:
            raise FieldError(field(i), f"duplicate {'rank' if first else 'response id'} {v}")
        seen.add(v)
    if source == "rank":
        return [[i] for i in sorted(range(n), key=lambda i: values[i])]
    return [[v] for v in values]


def response_text(response) -> str:
    """The text of one entry of ``responses`` (a string or ``{"text": ...}``)."""
    return response["text"] if isinstance(response, dict) else response


def _check_ranking(r: dict) -> None:
    prompt_field(r)
    if not isinstance(need_field(r, "responses"), list) or len(r["responses"]) < 2:
        raise FieldError("responses", "expected a list of at least 2 responses")
    for i, resp in enumerate(r["responses"]):
        text_field({"text": resp} if not isinstance(resp, dict) else resp, "text", f"responses[{i}]"
              + (".text" if isinstance(resp, dict) else ""))
    first: dict[str, int] = {}  # text -> its first index (a dict: linear, even for thousands of responses)
    for i, t in enumerate(response_text(x) for x in r["responses"]):
        if first.setdefault(t, i) != i:
            raise FieldError(f"responses[{i}]", f"duplicate of responses[{first[t]}]")
    ranking_groups(r)


def _check_critique_revision(r: dict) -> None:
    prompt_field(r)
    initial = pick_field(r, ("initial_response", "response"))
    for key in (initial, "critique", "revision"):
        text_field(r, key)
    check_distinct(r, initial, "revision")
    for key in ("critique_request", "revision_request"):
        text_field(r, key, optional=True)


def _check_cot(r: dict) -> None:
    for names in COT_FIELDS.values():
        text_field(r, pick_field(r, names))


def _check_tool_calls(r: dict) -> None:
    if "final_response" in r:  # flat shape: messages + tool_calls + tool_responses + final_response
        if check_messages_list(need_field(r, "messages"), "messages")[-1]["role"] == "assistant":
            raise FieldError("messages", "the messages before the tool call must not end with an assistant turn")
        check_tool_calls(need_field(r, "tool_calls"), "tool_calls")
        responses = need_field(r, "tool_responses")
        if not isinstance(responses, list) or len(responses) != len(r["tool_calls"]):
            raise FieldError("tool_responses", f"expected a list with one result per tool call ({len(r['tool_calls'])})")
        for i, result in enumerate(responses):
            if result in (None, "", {}, []) or (isinstance(result, str) and not result.strip()):
                raise FieldError(f"tool_responses[{i}]", "empty tool result")
        text_field(r, "final_response")
        return
    msgs = check_conversation(need_field(r, "messages"), "messages", tool_calls=True)
    if not any("tool_calls" in m for m in msgs):
        raise FieldError("messages", "no assistant turn calls a tool (plain chats are format 'messages')")
    for i, m in enumerate(msgs):
        if "tool_calls" in m:
            results = 0
            while i + 1 + results < len(msgs) and msgs[i + 1 + results]["role"] == "tool":
                results += 1
            if results != len(m["tool_calls"]):
                raise FieldError(f"messages[{i}].tool_calls",
                           f"{len(m['tool_calls'])} tool call(s) but {results} tool result(s) follow")


SOURCE_VALIDATORS = {
    "instruction": _check_instruction, "multitask": _check_multitask, "pairwise_choice": _check_pairwise_choice,
    "ranking": _check_ranking, "critique_revision": _check_critique_revision, "cot": _check_cot,
    "tool_calls": _check_tool_calls,
}


# ----- how source formats are rendered as chat turns (used by `convert`) ------------------------
def multitask_prompt(record: dict) -> str:
    """The user turn for a ``multitask`` record (see the module docstring)."""
    skip = {"task", "output", *MULTITASK_INPUTS}
    lines = [f"Task: {record['task']}"]
    lines += [f"{k}: {v}" for k, v in record.items()
              if k not in skip and isinstance(v, (str, int, float)) and not isinstance(v, bool)]
    lines += [f"{k.capitalize()}: {record[k]}" for k in MULTITASK_INPUTS if k in record]
    return "\n".join(lines)


def cot_parts(record: dict) -> tuple[str, str, str]:
    """``(question, reasoning, answer)`` of a ``cot`` record, whichever field names it uses."""
    return tuple(next(record[n] for n in names if n in record) for names in COT_FIELDS.values())


def cot_answer(content: str) -> str | None:
    """The final answer in an assistant turn written by `to_messages(record, "cot")`, or None."""
    match = re.search(r"(?:^|\n)Answer: (.*)\s*$", content)
    return match.group(1).strip() if match else None


def render_tool_calls(calls: list[dict]) -> str:
    """Tool calls (OpenAI style or flat) as ``<tool_call>{json}</tool_call>`` lines."""
    out = []
    for call in calls:
        fn = call.get("function", call)
        args = fn.get("arguments", {})
        args = json.loads(args) if isinstance(args, str) else args
        out.append(f"<tool_call>{json.dumps({'name': fn['name'], 'arguments': args}, ensure_ascii=False)}</tool_call>")
    return "\n".join(out)


def parse_tool_calls(content: str) -> list[dict]:
    """The ``{"name", "arguments"}`` calls written into `content` by `render_tool_calls`."""
    return [json.loads(m) for m in TOOL_CALL.findall(content)]


def tool_messages(record: dict) -> list[dict]:
    """A ``tool_calls`` record (either shape) as plain messages, calls rendered into the content."""
    if "final_response" in record:  # flat shape
        results = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in record["tool_responses"]]
        call = {"role": "assistant", "content": render_tool_calls(record["tool_calls"])}
        return (copy.deepcopy(record["messages"]) + [call] + [{"role": "tool", "content": r} for r in results]
                + [{"role": "assistant", "content": record["final_response"]}])
    out = []
    for m in record["messages"]:
        content = m.get("content") or ""
        if "tool_calls" in m:
            content = "\n".join(filter(None, [content.strip(), render_tool_calls(m["tool_calls"])]))
        out.append({"role": m["role"], "content": content})
    return out
