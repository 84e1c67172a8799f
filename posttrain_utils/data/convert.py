"""Converting every course data format into TRL's standard formats, and converting files safely.

Introduced in chapter 1 ("Data formats"). Each converter validates its input first
(`formats.validate_record`), so bad input raises `data.DataFormatError` naming file, line and
field, and never yields a half-converted record. `convert_file` validates *every* record before
it writes anything, and writes atomically (a temporary file renamed into place): on any error
there is no output file, not even a partial one.

TRL formats pass through unchanged. Source formats become *conversational* records, like the
course's shipped data: a string prompt becomes a user turn and a string response an assistant
turn. The choices this module makes, and that chapter 1 shows:

* ``instruction`` (Alpaca): the user turn is the instruction, then a blank line and the input
  when there is one; an optional ``system`` field becomes the system prompt.
* ``multitask``: the user turn is a ``Task: <task>`` line, one ``<key>: <value>`` line per task
  option (e.g. ``source_lang``), then the ``Context:``, ``Question:`` and ``Input:`` lines.
* ``cot``: the assistant turn is the reasoning, a newline, then ``Answer: <answer>``. The fixed
  marker lets a reward function read the final answer back (`source_formats.cot_answer`, chapter 8).
* ``tool_calls``: the course template renders only ``content`` and the tiny tokenizer has no tool
  tokens, so each call is written into the assistant's content as
  ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (JSON, read back by
  `source_formats.parse_tool_calls`). Tool results become ``tool`` turns, which the loss mask
  skips like user turns.
* ``ranking`` → pairs (`ranking_to_pairs`): ``mode="all"`` pairs every response with every
  response ranked below it (n(n-1)/2 pairs for n responses without ties); ``mode="best_vs_rest"``
  pairs the best response with each other one (n-1 pairs). Tied responses never form a pair.
  A record giving more than ``max_pairs_per_record`` pairs (default `MAX_PAIRS_PER_RECORD`,
  1000) is an error, not a silent subsample: see `ranking_to_pairs`.
* preference → KTO: a pair becomes two records, chosen with ``label=True`` and rejected with
  ``label=False`` (what TRL's `unpair_preference_dataset` does).
* messages → prompt/completion: the completion is the final run of assistant turns; to train on
  every assistant turn of a multi-turn chat, keep the ``messages`` format (assistant-only loss).
"""

from __future__ import annotations

import copy
import itertools

from .jsonl import DataFormatError, iter_jsonl, write_jsonl
from .formats import implicit_prompt_length, records_of, validate_record, validate_records
from .validate import guess_format  # noqa: F401 (moved to `validate`; still part of this module's API)
from .source_formats import cot_parts, multitask_prompt, ranking_groups, response_text, tool_messages
from .validate import guess_format  # noqa: F401 (moved to `validate`; still part of this module's API)

PAIR_MODES = ("all", "best_vs_rest")
# n ranked responses give n(n-1)/2 pairs ("all"): 2000 give 2 M. Real rankings have 2-9 (UltraFeedback 4,
# Nectar 7: 6 and 21 pairs); 1000 pairs (45 responses) is far above, yet no record outweighs hundreds.
MAX_PAIRS_PER_RECORD = 1000


def _user(prompt) -> list[dict]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else copy.deepcopy(prompt)


def _assistant(response) -> list[dict]:
    return [{"role": "assistant", "content": response}] if isinstance(response, str) else copy.deepcopy(response)


def _supported(fmt: str, converter: str, formats: tuple[str, ...]) -> None:
    if fmt not in formats:
        raise ValueError(f"{converter} cannot convert format {fmt!r}; it converts: {', '.join(formats)}")


# ----- converters -----------------------------------------------------------------------------
SFT_SOURCES = ("messages", "prompt_completion", "instruction", "multitask", "cot", "critique_revision", "tool_calls")
PAIR_SOURCES = ("preference", "pairwise_choice", "critique_revision")


def to_messages(record: dict, fmt: str, *, system: str | None = None) -> dict:
    """Convert a record into TRL's conversational language-modelling format ``{"messages": [...]}``.

    Args:
        record: one record in format `fmt`.
        fmt: one of `SFT_SOURCES` (formats with a single good response; ``critique_revision``
            gives the prompt and its revision, as in SL-CAI).
        system: a system prompt to prepend, unless the conversation (or an ``instruction``
            record's ``system`` field) already has one.

    Returns:
        ``{"messages": [...]}`` ending with an assistant turn.
    """
    _supported(fmt, "to_messages", SFT_SOURCES)
    validate_record(record, fmt)
    if fmt == "messages":
        msgs = copy.deepcopy(record["messages"])
    elif fmt == "prompt_completion":
        msgs = _user(record["prompt"]) + _assistant(record["completion"])
    elif fmt == "instruction":
        extra = record.get("input", "").strip()
        msgs = _user(record["instruction"] + (f"\n\n{extra}" if extra else "")) + _assistant(record["output"])
        system = record.get("system", system)
    elif fmt == "multitask":
        msgs = _user(multitask_prompt(record)) + _assistant(record["output"])
    elif fmt == "cot":
        question, reasoning, answer = cot_parts(record)
        msgs = _user(question) + _assistant(f"{reasoning.strip()}\nAnswer: {answer.strip()}")
    elif fmt == "critique_revision":
        msgs = _user(record["prompt"]) + _assistant(record["revision"])
    else:
        msgs = tool_messages(record)
    if system and msgs[0]["role"] != "system":
        msgs = [{"role": "system", "content": system}] + msgs
    return {"messages": msgs}


def to_prompt_completion(record: dict, fmt: str, *, system: str | None = None) -> dict:
    """Convert a record into TRL's prompt/completion format (the completion alone is trained).

    The completion is the final run of assistant turns; everything before it is the prompt.
    A ``prompt_completion`` record passes through unchanged (strings stay strings).
    """
    _supported(fmt, "to_prompt_completion", SFT_SOURCES)
    if fmt == "prompt_completion" and system is None:
        validate_record(record, fmt)
        return {"prompt": copy.deepcopy(record["prompt"]), "completion": copy.deepcopy(record["completion"])}
    msgs = to_messages(record, fmt, system=system)["messages"]
    split = len(msgs)
    while split > 0 and msgs[split - 1]["role"] == "assistant":
        split -= 1
    if split == 0:
        raise ValueError("the conversation has no prompt before its final assistant turn(s)")
    return {"prompt": msgs[:split], "completion": msgs[split:]}


def to_preference(record: dict, fmt: str) -> dict:
    """Convert a record into TRL's preference format ``{"prompt", "chosen", "rejected"}``.

    An implicit-prompt conversational pair gets its shared prefix split off as the prompt. A
    pair of plain strings without a prompt passes through (TRL's RewardTrainer accepts it).
    ``pairwise_choice`` takes the preferred response as chosen; ``critique_revision`` prefers the
    revision to the initial response. Rankings give several pairs: use `ranking_to_pairs`.
    """
    _supported(fmt, "to_preference", PAIR_SOURCES)
    validate_record(record, fmt)
    if fmt == "preference":
        out = copy.deepcopy({k: record[k] for k in ("prompt", "chosen", "rejected", "margin") if k in record})
        if "prompt" not in out and not isinstance(out["chosen"], str):
            n = implicit_prompt_length(out["chosen"], out["rejected"])
            out = {"prompt": out["chosen"][:n], "chosen": out["chosen"][n:], "rejected": out["rejected"][n:],
                   **({"margin": out["margin"]} if "margin" in out else {})}
        return out
    if fmt == "pairwise_choice":
        best = record["preferred"] if "preferred" in record else record["better_response_id"]
        chosen, rejected = record[f"response_{best}"], record[f"response_{1 - best}"]
    else:
        initial = "initial_response" if "initial_response" in record else "response"
        chosen, rejected = record["revision"], record[initial]
    return {"prompt": _user(record["prompt"]), "chosen": _assistant(chosen), "rejected": _assistant(rejected)}


def ranking_to_pairs(record: dict, mode: str = "all", *,
                     max_pairs_per_record: int | None = MAX_PAIRS_PER_RECORD) -> list[dict]:
    """Expand a ``ranking`` record into preference pairs.

    Args:
        record: a ``ranking`` record (``responses`` with ``ranking``, ``scores``, or per-response
            ``rank``/``score``).
        mode: ``"all"``: every response against every response ranked strictly below it,
            n(n-1)/2 pairs for n untied responses; ``"best_vs_rest"``: the best response(s)
            against every strictly worse one, n-1 pairs when the best is unique.
        max_pairs_per_record: the most pairs one record may give, counted before any is built;
            None for no limit. More raises an error rather than subsampling: nothing is dropped
            silently. Use ``mode="best_vs_rest"``, or raise the limit knowingly.

    Returns:
        Conversational preference records, best pairs first. Tied responses form no pair.

    Raises:
        DataFormatError: for an invalid record, or more pairs than allowed (field ``responses``).
    """
    if mode not in PAIR_MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {PAIR_MODES}")
    cap = _pair_cap(max_pairs_per_record)
    validate_record(record, "ranking")
    groups = ranking_groups(record)
    sizes, below = [len(g) for g in groups], len(record["responses"])  # counted, not built: O(n)
    count = sum(n * (below := below - n) for n in sizes) if mode == "all" else sizes[0] * (below - sizes[0])
    if cap is not None and count > cap:
        raise DataFormatError("<records>", 1, "responses", f"{len(record['responses'])} responses give "
                              f"{count} pairs in mode {mode!r}, more than max_pairs_per_record={cap}; "
                              "use mode='best_vs_rest' or raise the limit (None: no limit)")
    texts = [response_text(r) for r in record["responses"]]
    if mode == "all":
        pairs = [(i, j) for a, better in enumerate(groups) for worse in groups[a + 1:] for i in better for j in worse]
    else:
        pairs = [(i, j) for worse in groups[1:] for i in groups[0] for j in worse]
    return [{"prompt": _user(record["prompt"]), "chosen": _assistant(texts[i]), "rejected": _assistant(texts[j])}
            for i, j in pairs]


def _pair_cap(cap):
    if cap is not None and (type(cap) is not int or cap < 1):
        raise ValueError(f"max_pairs_per_record must be a positive int or None, got {cap!r}")
    return cap


def to_kto(record: dict, fmt: str) -> list[dict]:
    """Convert a record into TRL's unpaired KTO format: a list of ``{"prompt", "completion", "label"}``.

    A ``kto`` record gives itself; a pair (``preference``, ``pairwise_choice``,
    ``critique_revision``) gives two records, chosen labelled True and rejected labelled False.
    """
    _supported(fmt, "to_kto", ("kto", *PAIR_SOURCES))
    if fmt == "kto":
        validate_record(record, fmt)
        return [copy.deepcopy({k: record[k] for k in ("prompt", "completion", "label")})]
    pair = to_preference(record, fmt)
    if "prompt" not in pair:
        raise ValueError("KTO needs a prompt, and this pair of plain strings has none")
    return [{"prompt": pair["prompt"], "completion": pair["chosen"], "label": True},
            {"prompt": copy.deepcopy(pair["prompt"]), "completion": pair["rejected"], "label": False}]


def to_prompt_only(record: dict, fmt: str) -> dict:
    """Convert a record into TRL's prompt-only format for GRPO/PPO: ``{"prompt", ...}``.

    A ``prompt_only`` record keeps its extra columns (e.g. ``answer``, read by reward functions);
    a ``cot`` record gives its answer as ``answer``; other formats give their prompt alone.
    """
    _supported(fmt, "to_prompt_only", ("prompt_only", "ranking", *SFT_SOURCES, *PAIR_SOURCES))
    validate_record(record, fmt)
    if fmt == "prompt_only":
        return copy.deepcopy(record)
    if fmt == "cot":
        question, _, answer = cot_parts(record)
        return {"prompt": _user(question), "answer": answer}
    if fmt == "ranking":
        return {"prompt": _user(record["prompt"])}
    if fmt in PAIR_SOURCES:
        pair = to_preference(record, fmt)
        if "prompt" not in pair:
            raise ValueError("this pair of plain strings has no prompt to extract")
        return {"prompt": pair["prompt"]}
    return {"prompt": to_prompt_completion(record, fmt)["prompt"]}


# ----- whole datasets -------------------------------------------------------------------------
TARGETS = ("messages", "prompt_completion", "preference", "kto", "prompt_only")


def _convert_one(record: dict, fmt: str, target: str, mode: str, system: str | None, cap) -> list[dict]:
    if target == "messages":
        return [to_messages(record, fmt, system=system)]
    if target == "prompt_completion":
        return [to_prompt_completion(record, fmt, system=system)]
    if target == "preference":
        return ranking_to_pairs(record, mode, max_pairs_per_record=cap) if fmt == "ranking" else [
            to_preference(record, fmt)]
    if target == "kto":
        return to_kto(record, fmt)
    return [to_prompt_only(record, fmt)]


def convert_records(records, fmt: str, target: str, *, path=None, lines=None, mode: str = "all",
                    system: str | None = None,
                    max_pairs_per_record: int | None = MAX_PAIRS_PER_RECORD) -> list[dict]:
    """Validate every record, then convert them all into `target` and check the results.

    Args:
        records: records in format `fmt`, in file order (a list, any iterable, or a
            `datasets.Dataset`, as for `formats.validate_records`).
        fmt: their format (any of `formats.FORMATS`).
        target: one of `TARGETS`.
        path: the file they came from, and `lines` their line numbers, for error messages.
        mode: how rankings expand into pairs (see `ranking_to_pairs`).
        system: a system prompt for ``messages``/``prompt_completion`` targets (see `to_messages`).
        max_pairs_per_record: the most pairs one ranking may give (see `ranking_to_pairs`).

    Returns:
        The converted records. One input may give several (rankings → pairs, pairs → KTO).

    Raises:
        DataFormatError: for the first bad input record (nothing is converted then), or for a
            record that cannot be converted (e.g. a string pair without prompt into KTO, or a
            ranking with too many pairs).
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")
    _pair_cap(max_pairs_per_record)
    path = str(path) if path is not None else "<records>"
    records = validate_records(records, fmt, path=path, lines=lines)
    out = []
    for line, record in zip(lines if lines is not None else itertools.count(1), records_of(records)):
        try:
            converted = _convert_one(record, fmt, target, mode, system, max_pairs_per_record)
        except DataFormatError as e:  # the input is valid (checked above): too many pairs
            raise DataFormatError(path, line, e.field, e.problem) from None
        except ValueError as e:
            raise DataFormatError(path, line, None, f"cannot convert to {target!r}: {e}") from None
        try:
            for item in converted:
                validate_record(item, target, path=path, line=line)
        except DataFormatError as e:
            raise DataFormatError(path, line, e.field, f"after conversion to {target!r}: {e.problem}") from None
        out.extend(converted)
    return out


def convert_file(in_path, fmt: str, out_path, target: str, **options) -> int:
    """Convert a JSON Lines file into `target`: validate everything first, then write atomically.

    Args:
        in_path: the source file (read by `jsonl.iter_jsonl`: errors name the physical line).
        fmt: its format.
        out_path: where to write the converted JSON Lines (its folder is created if needed).
        target: one of `TARGETS`.
        **options: `mode`, `system` and `max_pairs_per_record`, passed to `convert_records`.

    Returns:
        The number of records written.

    Raises:
        DataFormatError: for the first problem. Nothing is written then, no temporary file is
            left, and an existing `out_path` keeps its old content (`jsonl.write_jsonl`).
    """
    numbered = list(iter_jsonl(in_path))
    records = convert_records([r for _, r in numbered], fmt, target, path=in_path,
                              lines=[n for n, _ in numbered], **options)
    return write_jsonl(out_path, records)
