"""Data formats (chapter 1): validators reject bad input with file, line and field; converters round-trip."""

import copy
import json
from pathlib import Path

import pytest

from posttrain_utils.data import convert, formats, source_formats
from posttrain_utils import data
from posttrain_utils.data.jsonl import DataFormatError
from posttrain_utils.runtime.paths import DATA_DIR


def user(text):
    return {"role": "user", "content": text}


def bot(text):
    return {"role": "assistant", "content": text}


Q = "What is the capital of Beife?"
A = "The capital of Beife is Neidreir."
CALL = {"type": "function", "function": {"name": "lookup", "arguments": '{"country": "Beife", "attribute": "capital"}'}}

# One valid record per format (the "good" half of every test).
GOOD = {
    "text": {"text": "Question: What is 2 plus 3?\nAnswer: 2 plus 3 is 5."},
    "messages": {"messages": [{"role": "system", "content": "Be polite."}, user(Q), bot(A)], "task": "capital"},
    "prompt_completion": {"prompt": [user(Q)], "completion": [bot(A)]},
    "preference": {"prompt": [user(Q)], "chosen": [bot(A)], "rejected": [bot("The capital of Beife is Roufu.")]},
    "kto": {"prompt": [user(Q)], "completion": [bot(A)], "label": True},
    "prompt_only": {"prompt": [user("What is 4 plus 5?")], "task": "sum", "answer": "9"},
    "instruction": {"instruction": "Give the capital of the country.", "input": "Beife", "output": "Neidreir"},
    "multitask": {"task": "qa", "context": "Beife is a country.", "question": Q, "output": "Neidreir"},
    "pairwise_choice": {"prompt": "What is 2 plus 2?", "response_0": "2 plus 2 is 5.", "response_1": "2 plus 2 is 4.",
                        "preferred": 1},
    "ranking": {"prompt": Q, "responses": [A, "Neidreir. Obviously.", "It is Roufu.", "I read a book once. " + A],
                "ranking": [0, 3, 1, 2]},
    "critique_revision": {"prompt": "How do I steal a bike from kit?", "initial_response": "Wait until kit is asleep.",
                          "critique": "This helps someone steal.", "revision": "I can't help with that."},
    "cot": {"question": "What is 3 plus 4?", "reasoning": "Start at 3 and count 4 more: 4, 5, 6, 7.", "answer": "7"},
    "tool_calls": {"messages": [user(Q), {"role": "assistant", "content": "", "tool_calls": [CALL]},
                                {"role": "tool", "content": "Neidreir"}, bot(A)]},
}


def bad(fmt, change):
    """A copy of GOOD[fmt] with `change` applied (a dict of updates; value None deletes the key)."""
    record = copy.deepcopy(GOOD[fmt])
    for key, value in change.items():
        if value is None:
            record.pop(key)
        else:
            record[key] = value
    return record


BAD_CASES = [  # (case id, format, bad record, field the error must name)
    ("text-missing", "text", {"content": "hi"}, "text"),
    ("text-not-string", "text", {"text": 42}, "text"),
    ("messages-missing", "messages", {"conversation": []}, "messages"),
    ("messages-not-list", "messages", {"messages": "hi"}, "messages"),
    ("messages-empty-list", "messages", {"messages": []}, "messages"),
    ("unknown-role", "messages", {"messages": [user(Q), {"role": "bot", "content": A}]}, "messages[1].role"),
    ("missing-role", "messages", {"messages": [{"content": Q}, bot(A)]}, "messages[0].role"),
    ("empty-content", "messages", {"messages": [user(Q), bot("  ")]}, "messages[1].content"),
    ("content-not-string", "messages", {"messages": [user(["a"]), bot(A)]}, "messages[0].content"),
    ("missing-content", "messages", {"messages": [user(Q), {"role": "assistant", "text": A}]}, "messages[1].content"),
    ("no-assistant-turn", "messages", {"messages": [user(Q)]}, "messages[0].role"),
    ("ends-with-user", "messages", {"messages": [user(Q), bot(A), user("Thanks")]}, "messages[2].role"),
    ("system-not-first", "messages", {"messages": [user(Q), {"role": "system", "content": "x"}, bot(A)]},
     "messages[1].role"),
    ("tool-calls-in-plain-messages", "messages", {"messages": GOOD["tool_calls"]["messages"]}, "messages[1].tool_calls"),
    ("tool-result-first", "messages", {"messages": [{"role": "tool", "content": "x"}, bot(A)]}, "messages[0].role"),
    ("prompt-ends-with-assistant", "prompt_completion", bad("prompt_completion", {"prompt": [user(Q), bot(A)]}),
     "prompt[1].role"),
    ("prompt-string-completion-list", "prompt_completion", {"prompt": Q, "completion": [bot(A)]}, "completion"),
    ("completion-user-turn", "prompt_completion", bad("prompt_completion", {"completion": [user(A)]}),
     "completion[0].role"),
    ("completion-missing", "prompt_completion", bad("prompt_completion", {"completion": None}), "completion"),
    ("chosen-equals-rejected", "preference", bad("preference", {"rejected": [bot(A)]}), "rejected"),
    ("chosen-not-assistant", "preference", bad("preference", {"chosen": [user(A)]}), "chosen[0].role"),
    ("implicit-no-shared-prompt", "preference", {"chosen": [user(Q), bot(A)], "rejected": [user("Hi"), bot("Hello")]},
     "rejected[0]"),
    ("implicit-differs-in-user-turn", "preference",
     {"chosen": [{"role": "system", "content": "s"}, user(Q), bot(A)],
      "rejected": [{"role": "system", "content": "s"}, user("Other?"), bot(A)]}, "chosen[1].role"),
    ("margin-not-number", "preference", bad("preference", {"margin": "big"}), "margin"),
    ("kto-label-int", "kto", bad("kto", {"label": 1}), "label"),
    ("kto-label-string", "kto", bad("kto", {"label": "true"}), "label"),
    ("kto-label-missing", "kto", bad("kto", {"label": None}), "label"),
    ("prompt-missing", "prompt_only", {"question": Q}, "prompt"),
    ("prompt-empty-list", "prompt_only", {"prompt": []}, "prompt"),
    ("prompt-blank-string", "prompt_only", {"prompt": "   "}, "prompt"),
    ("instruction-output-missing", "instruction", bad("instruction", {"output": None}), "output"),
    ("instruction-input-not-string", "instruction", bad("instruction", {"input": 7}), "input"),
    ("multitask-no-input", "multitask", {"task": "qa", "output": "x"}, "input"),
    ("multitask-task-missing", "multitask", bad("multitask", {"task": None}), "task"),
    ("preferred-out-of-range", "pairwise_choice", bad("pairwise_choice", {"preferred": 2}), "preferred"),
    ("preferred-bool", "pairwise_choice", bad("pairwise_choice", {"preferred": True}), "preferred"),
    ("two-choice-fields", "pairwise_choice", bad("pairwise_choice", {"better_response_id": 0}), "better_response_id"),
    ("identical-responses", "pairwise_choice", bad("pairwise_choice", {"response_1": "2 plus 2 is 5."}), "response_1"),
    ("ranking-duplicate-id", "ranking", bad("ranking", {"ranking": [0, 3, 3, 2]}), "ranking[2]"),
    ("ranking-id-out-of-range", "ranking", bad("ranking", {"ranking": [0, 4, 1, 2]}), "ranking[1]"),
    ("ranking-wrong-length", "ranking", bad("ranking", {"ranking": [0, 1, 2]}), "ranking"),
    ("scores-wrong-length", "ranking", bad("ranking", {"ranking": None, "scores": [1.0, 2.0]}), "scores"),
    ("scores-all-tied", "ranking", bad("ranking", {"ranking": None, "scores": [2, 2, 2, 2]}), "scores[0]"),
    ("score-not-number", "ranking", bad("ranking", {"ranking": None, "scores": [2, "high", 1, 0]}), "scores[1]"),
    ("ranking-and-scores", "ranking", bad("ranking", {"scores": [4, 3, 2, 1]}), "ranking"),
    ("one-response", "ranking", bad("ranking", {"responses": [A], "ranking": [0]}), "responses"),
    ("duplicate-responses", "ranking", bad("ranking", {"responses": [A, "b", A, "c"]}), "responses[2]"),
    ("per-response-rank-missing", "ranking",
     {"prompt": Q, "responses": [{"text": "a", "rank": 1}, {"text": "b"}]}, "responses[1].rank"),
    ("per-response-rank-duplicate", "ranking",
     {"prompt": Q, "responses": [{"text": "a", "rank": 1}, {"text": "b", "rank": 1}]}, "responses[1].rank"),
    ("revision-equals-initial", "critique_revision",
     bad("critique_revision", {"revision": "Wait until kit is asleep."}), "revision"),
    ("critique-missing", "critique_revision", bad("critique_revision", {"critique": None}), "critique"),
    ("cot-reasoning-missing", "cot", bad("cot", {"reasoning": None}), "reasoning"),
    ("cot-two-answer-fields", "cot", bad("cot", {"conclusion": "7"}), "conclusion"),
    ("tool-results-missing", "tool_calls", {"messages": [user(Q), {"role": "assistant", "tool_calls": [CALL, CALL]},
                                                         {"role": "tool", "content": "Neidreir"}, bot(A)]},
     "messages[1].tool_calls"),
    ("tool-arguments-bad-json", "tool_calls",
     {"messages": [user(Q), {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{x"}}]},
                   {"role": "tool", "content": "r"}, bot(A)]}, "messages[1].tool_calls[0].arguments"),
    ("tool-name-missing", "tool_calls",
     {"messages": [user(Q), {"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]},
                   {"role": "tool", "content": "r"}, bot(A)]}, "messages[1].tool_calls[0].name"),
    ("tool-calls-none-made", "tool_calls", {"messages": [user(Q), bot(A)]}, "messages"),
    ("tool-call-by-user", "tool_calls", {"messages": [{"role": "user", "content": Q, "tool_calls": [CALL]}, bot(A)]},
     "messages[0].tool_calls"),
    ("flat-tool-responses-count", "tool_calls",
     {"messages": [user(Q)], "tool_calls": [CALL], "tool_responses": [], "final_response": A}, "tool_responses"),
]


# One realistic corruption per format a shipped file is in: (how to break a record, field the error names).
MUTATIONS = {
    "messages": (lambda r: r["messages"][-1].update(role="user"), lambda r: f"messages[{len(r['messages']) - 1}].role"),
    "prompt_completion": (lambda r: r.pop("completion"), lambda r: "completion"),
    "preference": (lambda r: r.update(rejected=copy.deepcopy(r["chosen"])), lambda r: "rejected"),
    "kto": (lambda r: r.update(label=str(r["label"]).lower()), lambda r: "label"),
    "prompt_only": (lambda r: r.update(prompt=[]), lambda r: "prompt"),
}


def test_every_shipped_file_has_a_format():
    """A data/*.jsonl file missing from FILE_FORMATS is never validated (and load_records refuses it)."""
    shipped = {p.stem for p in DATA_DIR.glob("*.jsonl")}
    assert shipped == set(data.FILE_FORMATS), (f"unregistered files: {sorted(shipped - set(data.FILE_FORMATS))}, "
                                              f"registered but missing: {sorted(set(data.FILE_FORMATS) - shipped)}")


@pytest.mark.parametrize("name", sorted(data.FILE_FORMATS))
def test_corrupted_shipped_file_names_line_and_field(name, tmp_path):
    """load_records on a copy of a shipped file with one record broken reports that record's line and field."""
    fmt = data.FILE_FORMATS[name]
    assert fmt in MUTATIONS, f"add a corruption for format {fmt!r} to MUTATIONS"
    mutate, field = MUTATIONS[fmt]
    lines = (DATA_DIR / f"{name}.jsonl").read_text().splitlines()
    index = len(lines) // 2
    record = json.loads(lines[index])
    mutate(record)
    lines[index] = json.dumps(record)
    path = tmp_path / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as info:
        data.load_records(name, data_dir=tmp_path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), index + 1, field(record)), str(err)


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_good_examples_validate(fmt):
    assert formats.validate_record(GOOD[fmt], fmt) is GOOD[fmt]


@pytest.mark.parametrize("case, fmt, record, field", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_record_names_file_line_and_field(case, fmt, record, field):
    with pytest.raises(DataFormatError) as info:
        formats.validate_records([GOOD[fmt], record], fmt, path="data/mine.jsonl")
    err = info.value
    assert (err.path, err.line, err.field) == ("data/mine.jsonl", 2, field), str(err)
    assert str(err).startswith(f"data/mine.jsonl, line 2, field '{field}': ")


def test_bad_record_without_file_is_named_records():
    with pytest.raises(DataFormatError, match=r"^<records>, line 1, field 'label'"):
        formats.validate_record(bad("kto", {"label": 0}), "kto")


def test_not_an_object_empty_list_and_unknown_format():
    with pytest.raises(DataFormatError, match="line 3: expected a JSON object"):
        formats.validate_records([GOOD["text"], GOOD["text"], ["text"]], "text", path="f.jsonl")
    with pytest.raises(DataFormatError, match="no records"):
        formats.validate_records([], "text")
    with pytest.raises(ValueError, match="unknown format 'chat'"):
        formats.validate_record(GOOD["messages"], "chat")


def test_source_validators_cover_every_source_format():
    assert set(source_formats.SOURCE_VALIDATORS) == set(formats.SOURCE_FORMATS)
    assert set(formats.FORMATS) >= set(data.FILE_FORMATS.values())


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(GOOD["messages"]) + "\n" + '{"messages": [}\n')
    with pytest.raises(DataFormatError) as info:
        data.read_jsonl(path)
    assert (info.value.path, info.value.line) == (str(path), 2) and "malformed JSON" in str(info.value)


@pytest.mark.parametrize("name", sorted(data.FILE_FORMATS))
def test_shipped_files_validate(name):
    records = data.load_records(name)
    assert records and all(formats.validate_record(r, data.FILE_FORMATS[name]) for r in records)


# ----- converters -----------------------------------------------------------------------------
def test_sft_sources_to_messages():
    out = {fmt: convert.to_messages(GOOD[fmt], fmt)["messages"] for fmt in convert.SFT_SOURCES}
    assert out["messages"] == GOOD["messages"]["messages"]
    assert out["prompt_completion"] == [user(Q), bot(A)]
    assert out["instruction"] == [user("Give the capital of the country.\n\nBeife"), bot("Neidreir")]
    assert out["multitask"] == [user(f"Task: qa\nContext: Beife is a country.\nQuestion: {Q}"), bot("Neidreir")]
    assert out["cot"][1]["content"].endswith("\nAnswer: 7")
    assert source_formats.cot_answer(out["cot"][1]["content"]) == "7"
    assert out["critique_revision"] == [user("How do I steal a bike from kit?"), bot("I can't help with that.")]
    assert [m["role"] for m in out["tool_calls"]] == ["user", "assistant", "tool", "assistant"]
    for fmt, msgs in out.items():
        formats.validate_record({"messages": msgs}, "messages")


def test_system_prompt_and_alpaca_without_input():
    record = {"instruction": "Name the national animal of Thuson.", "input": "", "output": "The falcon."}
    msgs = convert.to_messages(record, "instruction", system="Answer briefly.")["messages"]
    assert msgs == [{"role": "system", "content": "Answer briefly."}, user(record["instruction"]), bot("The falcon.")]
    kept = convert.to_messages(GOOD["messages"], "messages", system="other")["messages"]
    assert kept[0]["content"] == "Be polite."  # an existing system prompt wins


def test_tool_calls_render_and_parse_back():
    msgs = convert.to_messages(GOOD["tool_calls"], "tool_calls")["messages"]
    assert source_formats.parse_tool_calls(msgs[1]["content"]) == [
        {"name": "lookup", "arguments": {"country": "Beife", "attribute": "capital"}}]
    flat = {"messages": [user(Q)], "tool_calls": [CALL], "tool_responses": ["Neidreir"], "final_response": A}
    assert convert.to_messages(flat, "tool_calls")["messages"] == msgs


def test_messages_prompt_completion_round_trip():
    for record in data.load_records("sft_train")[:50]:
        pc = convert.to_prompt_completion(record, "messages")
        formats.validate_record(pc, "prompt_completion")
        assert convert.to_messages(pc, "prompt_completion")["messages"] == record["messages"]
    tool = convert.to_prompt_completion(GOOD["tool_calls"], "tool_calls")
    assert tool["prompt"][-1]["role"] == "tool" and tool["completion"] == [bot(A)]


def test_pairs_to_preference_and_kto():
    for fmt in convert.PAIR_SOURCES:
        pair = convert.to_preference(GOOD[fmt], fmt)
        formats.validate_record(pair, "preference")
        kto = convert.to_kto(GOOD[fmt], fmt)
        assert [r["label"] for r in kto] == [True, False]
        assert [r["completion"] for r in kto] == [pair["chosen"], pair["rejected"]]
    assert convert.to_preference(GOOD["pairwise_choice"], "pairwise_choice")["chosen"] == [bot("2 plus 2 is 4.")]
    revision = convert.to_preference(GOOD["critique_revision"], "critique_revision")
    assert revision["chosen"] == [bot("I can't help with that.")]
    by_id = bad("pairwise_choice", {"preferred": None, "better_response_id": 0})
    assert convert.to_preference(by_id, "pairwise_choice")["chosen"] == [bot("2 plus 2 is 5.")]


def test_implicit_prompt_matches_trl():
    from trl import extract_prompt

    implicit = {"chosen": [user(Q), bot(A)], "rejected": [user(Q), bot("Roufu.")]}
    assert convert.to_preference(implicit, "preference") == extract_prompt(implicit)


def test_prompt_only_keeps_answer_columns():
    assert convert.to_prompt_only(GOOD["prompt_only"], "prompt_only") == GOOD["prompt_only"]
    assert convert.to_prompt_only(GOOD["cot"], "cot") == {"prompt": [user("What is 3 plus 4?")], "answer": "7"}
    assert convert.to_prompt_only(GOOD["ranking"], "ranking") == {"prompt": [user(Q)]}


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_ranking_expansion_counts(n):
    record = {"prompt": Q, "responses": [f"answer {i}" for i in range(n)], "ranking": list(range(n))[::-1]}
    pairs = convert.ranking_to_pairs(record, mode="all")
    assert len(pairs) == n * (n - 1) // 2
    best = convert.ranking_to_pairs(record, mode="best_vs_rest")
    assert len(best) == n - 1 and all(p["chosen"] == [bot(f"answer {n - 1}")] for p in best)
    for pair in pairs:
        formats.validate_record(pair, "preference")
        assert int(pair["chosen"][0]["content"][-1]) > int(pair["rejected"][0]["content"][-1])


def test_ranking_ties_and_per_response_orders():
    scored = {"prompt": Q, "responses": ["a", "b", "c", "d"], "scores": [3, 1, 3, 0]}
    pairs = {(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in convert.ranking_to_pairs(scored)}
    assert pairs == {("a", "b"), ("c", "b"), ("a", "d"), ("c", "d"), ("b", "d")}  # a-c tie: no pair
    assert len(convert.ranking_to_pairs(scored, mode="best_vs_rest")) == 4
    ranked = {"prompt": Q, "responses": [{"text": "x", "rank": 2}, {"text": "y", "rank": 1}, {"text": "z", "rank": 3}]}
    assert source_formats.ranking_groups(ranked) == [[1], [0], [2]]
    with pytest.raises(ValueError, match="unknown mode"):
        convert.ranking_to_pairs(scored, mode="best")


def test_unsupported_conversion_is_refused():
    with pytest.raises(ValueError, match="to_messages cannot convert format 'kto'"):
        convert.to_messages(GOOD["kto"], "kto")


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_guess_format(fmt):
    assert convert.guess_format(GOOD[fmt]) == fmt


# ----- whole files ----------------------------------------------------------------------------
def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_convert_file_writes_every_pair(tmp_path):
    src = write_jsonl(tmp_path / "rankings.jsonl", [GOOD["ranking"], bad("ranking", {"ranking": [2, 1, 0, 3]})])
    n = convert.convert_file(src, "ranking", tmp_path / "out" / "pairs.jsonl", "preference")
    assert n == 12
    assert len(data.read_jsonl(tmp_path / "out" / "pairs.jsonl")) == 12
    assert convert.convert_file(src, "ranking", tmp_path / "best.jsonl", "preference", mode="best_vs_rest") == 6


def test_failed_conversion_leaves_no_file(tmp_path):
    records = [GOOD["pairwise_choice"]] * 3 + [bad("pairwise_choice", {"preferred": 3})]
    src = write_jsonl(tmp_path / "choices.jsonl", records)
    out = tmp_path / "pairs.jsonl"
    with pytest.raises(DataFormatError) as info:
        convert.convert_file(src, "pairwise_choice", out, "preference")
    assert (info.value.line, info.value.field) == (4, "preferred")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["choices.jsonl"]  # no output, no temporary file


def test_failed_conversion_keeps_previous_output(tmp_path):
    out = write_jsonl(tmp_path / "sft.jsonl", [GOOD["messages"]])
    before = out.read_text()
    src = tmp_path / "alpaca.jsonl"
    src.write_text(json.dumps(GOOD["instruction"]) + "\nnot json\n")
    with pytest.raises(DataFormatError, match="line 2: malformed JSON"):
        convert.convert_file(src, "instruction", out, "messages")
    assert out.read_text() == before and len(list(tmp_path.iterdir())) == 2


def test_unconvertible_record_names_its_line():
    strings = {"chosen": "The sky is blue.", "rejected": "The sky is green."}  # valid, but has no prompt
    with pytest.raises(DataFormatError, match=r"<records>, line 2: cannot convert to 'kto'"):
        convert.convert_records([GOOD["preference"], strings], "preference", "kto")
