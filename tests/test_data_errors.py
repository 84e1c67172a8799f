"""Data errors never escape (chapter 1): every bad file gives a `DataFormatError` naming file, line and field.

Bad bytes, bad JSON, bad values and bad fields are each refused with a located, one-line message and no
raw traceback; what `datasets.load_dataset("json")` reads as JSON Lines, `read_jsonl` reads the same way;
`convert_file` leaves nothing behind on error; a ranking cannot explode into millions of pairs.
"""

import gzip
import json
import os
import random
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from posttrain_utils.data import convert, fields, formats, source_formats, validate
from posttrain_utils import data
from posttrain_utils.data.jsonl import DataFormatError, iter_jsonl, read_jsonl, write_jsonl
from posttrain_utils.runtime.paths import DATA_DIR

CHAT = {"messages": [{"role": "user", "content": "What is 2 plus 2?"},
                    {"role": "assistant", "content": "4."}]}
GOOD = json.dumps(CHAT)
NOT_ENDING_WITH_ASSISTANT = json.dumps({"messages": [{"role": "user", "content": "Hi"}]})
RANKED = {"prompt": "What is 2 plus 2?", "responses": ["4.", "It is 4.", "5."], "ranking": [0, 1, 2]}


def expect_error(call, path, line, field=None, says=""):
    """`call()` raises DataFormatError whose attributes and message name `path`, `line` and `field`."""
    with pytest.raises(DataFormatError) as info:
        call()
    err, text = info.value, str(info.value)
    assert (err.path, err.line, err.field) == (str(path), line, field), text
    where = str(path) + (f", line {line}" if line is not None else "")
    where += f", field '{field}'" if field else ""
    assert text.startswith(where + ": "), text
    assert says in text and "\n" not in text, text
    return err


def write(path: Path, content) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def zipped(text: str) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("data.jsonl", text)
    return buffer.getvalue()


# ----- bad files: (case, file content, line, field, what the message says) -------------------
BAD_FILES = [
    ("latin-1", f"{GOOD}\n{GOOD}\n".encode() + '{"text": "café"}\n'.encode("latin-1"), 3, None, "not UTF-8"),
    ("utf-16-with-bom", f"{GOOD}\n".encode("utf-16"), 1, None, "UTF-16"),
    ("utf-16-without-bom", f"{GOOD}\n".encode("utf-16-le"), 1, None, "NUL byte"),
    ("utf-32-be-with-bom", b"\x00\x00\xfe\xff" + f"{GOOD}\n".encode("utf-32-be"), 1, None, "UTF-32"),
    ("gzip", gzip.compress(f"{GOOD}\n".encode()), 1, None, "gzip-compressed"),
    ("zip", zipped(f"{GOOD}\n"), 1, None, "zip archive"),
    ("deep-nesting", f"{GOOD}\n" + '{"text": ' + "[" * 5000 + "]" * 5000 + "}\n", 2, None,
     "nested too deeply"),
    ("huge-integer", f"{GOOD}\n" + '{"messages": [], "meta": {"ids": [1, ' + "9" * 5000 + "]}}\n", 2,
     "meta.ids[1]", "5000 digits"),
    ("malformed-after-blank-lines", f"\n{GOOD}\n\n   \n" + '{"messages": [}\n', 5, None, "malformed JSON"),
    ("two-objects-on-one-line", f"{GOOD} {GOOD}\n", 1, None, "more than one JSON value on one line"),
    ("pretty-printed-json-array", f"[\n  {GOOD}\n]\n", 1, None, "spread over several lines"),
    ("json-array-on-one-line", f"[{GOOD}]\n", 1, None, "expected a JSON object, got list"),
    ("string-not-object", f'{GOOD}\n"hello"\n', 2, None, "expected a JSON object, got str"),
    ("bom-in-the-middle", f"{GOOD}\n\ufeff{GOOD}\n", 2, None, "BOM"),
    ("lone-cr-line-ends", f"{GOOD}\r{GOOD}\r{{oops\r", 3, None, "malformed JSON"),
]


@pytest.mark.parametrize("case, content, line, field, says", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_file_is_located(case, content, line, field, says, tmp_path):
    """Reading, validating and converting the file all raise the same located error."""
    path = write(tmp_path / "bad.jsonl", content)
    expect_error(lambda: read_jsonl(path), path, line, field, says)
    expect_error(lambda: validate.validate_file(path, "messages"), path, line, field, says)
    expect_error(lambda: convert.convert_file(path, "messages", tmp_path / "out.jsonl", "prompt_completion"),
                 path, line, field, says)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]  # no output, no temporary file


def test_missing_file_and_folder(tmp_path):
    missing = tmp_path / "nope.jsonl"
    expect_error(lambda: read_jsonl(missing), missing, None, None, "no such file")
    expect_error(lambda: validate.validate_file(tmp_path), tmp_path, None, None, "is a folder")
    expect_error(lambda: data.load_records("sft_train", data_dir=tmp_path), tmp_path / "sft_train.jsonl",
                 None)
    source = write(tmp_path / "chats.jsonl", GOOD + "\n")
    (tmp_path / "out").mkdir()
    expect_error(lambda: convert.convert_file(source, "messages", tmp_path / "out", "prompt_completion"),
                 tmp_path / "out", None, None, "is a folder")


def test_lone_surrogate_is_refused_at_validation(tmp_path):
    """Today's bug: "\\ud800" passed validation, then broke convert_file when writing UTF-8."""
    bad = {"messages": [{"role": "user", "content": "Hi \ud800 there"},
                        {"role": "assistant", "content": "Hello"}]}
    path = write(tmp_path / "chats.jsonl", f"{GOOD}\n\n{json.dumps(bad)}\n")  # json.dumps writes \\ud800
    assert "\\ud800" in path.read_text()
    expect_error(lambda: validate.validate_file(path), path, 3, "messages[0].content",
                 "lone surrogate \\ud800")
    expect_error(lambda: convert.convert_file(path, "messages", tmp_path / "pc.jsonl", "prompt_completion"),
                 path, 3, "messages[0].content", "lone surrogate")
    assert not (tmp_path / "pc.jsonl").exists() and len(list(tmp_path.iterdir())) == 1
    expect_error(lambda: formats.validate_records([CHAT, bad], "messages", path="mine.jsonl"),
                 "mine.jsonl", 2, "messages[0].content", "cannot be written as UTF-8")


def test_lone_surrogate_in_a_key_gives_a_printable_message(tmp_path):
    path = write(tmp_path / "prompts.jsonl", '{"prompt": "Hi", "note\\udc00": 1}\n')
    err = expect_error(lambda: validate.validate_file(path, "prompt_only"), path, 1, "note\\udc00",
                       "of the key")
    str(err).encode("utf-8")  # printable: the surrogate is escaped in the message and the field


def test_valid_surrogate_pair_is_accepted(tmp_path):
    path = write(tmp_path / "emoji.jsonl", '{"text": "Well done \\ud83d\\ude00"}\n')
    assert read_jsonl(path) == [{"text": "Well done \U0001F600"}]
    assert validate.validate_file(path).records == 1


def test_nesting_deeper_than_the_limit_names_the_top_field(tmp_path):
    deep = "[" * (fields.MAX_DEPTH + 5) + "]" * (fields.MAX_DEPTH + 5)
    text = f'{{"prompt": "q", "answer": "a"}}\n{{"prompt": "q", "answer": {deep}}}\n'
    path = write(tmp_path / "prompts.jsonl", text)
    expect_error(lambda: validate.validate_file(path, "prompt_only"), path, 2, "answer",
                 "nested more than 100")
    ok = "[" * (fields.MAX_DEPTH - 1) + "]" * (fields.MAX_DEPTH - 1)  # 99 lists under a field: depth 100
    assert formats.validate_record({"prompt": "q", "answer": json.loads(ok)}, "prompt_only")


def test_huge_integer_in_memory_names_its_field():
    record = {"prompt": "q", "responses": ["a", "b"], "scores": [1, 10 ** 400]}
    expect_error(lambda: formats.validate_records([record], "ranking", path="mine.jsonl"),
                 "mine.jsonl", 1, "scores[1]", "number too large")


def test_empty_and_blank_only_files(tmp_path):
    for name, content in (("empty.jsonl", ""), ("blank.jsonl", "\n  \n\t\n")):
        path = write(tmp_path / name, content)
        assert read_jsonl(path) == []
        expect_error(lambda: validate.validate_file(path), path, None, None, "no records")


def test_unguessable_format_names_the_line(tmp_path):
    path = write(tmp_path / "odd.jsonl", '\n{"question_text": "q", "reply": "a"}\n')
    expect_error(lambda: validate.validate_file(path), path, 2, None, "cannot guess the format")


def test_guessed_format_is_said_in_the_error(tmp_path):
    path = write(tmp_path / "chats.jsonl", f"{GOOD}\n{NOT_ENDING_WITH_ASSISTANT}\n")
    expect_error(lambda: validate.validate_file(path), path, 2, "messages[0].role",
                 "(format 'messages', guessed from the first record's keys)")
    expect_error(lambda: validate.validate_file(path, "messages"), path, 2, "messages[0].role",
                 "(format 'messages')")


# ----- what is accepted: BOM, blank lines, line ends -----------------------------------------
def test_bom_and_blank_lines_keep_physical_line_numbers(tmp_path):
    lines = ["\ufeff" + GOOD, "", "   ", "\t", GOOD, " \t ", NOT_ENDING_WITH_ASSISTANT, "", "", ""]
    path = write(tmp_path / "chats.jsonl", "\n".join(lines) + "\n")
    assert [n for n, _ in iter_jsonl(path)] == [1, 5, 7]
    expect_error(lambda: validate.validate_file(path, "messages"), path, 7, "messages[0].role",
                 "ends with a user turn")
    fixed = write(tmp_path / "fixed.jsonl", "\n".join(lines[:6] + ["", "", ""]) + "\n")  # trailing blanks
    assert read_jsonl(fixed) == [CHAT, CHAT]
    assert validate.validate_file(fixed) == (str(fixed), "messages", 2, True)


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_line_ends_count_like_an_editor(end, tmp_path):
    path = write(tmp_path / "chats.jsonl", end.join([GOOD, "", GOOD, NOT_ENDING_WITH_ASSISTANT]) + end)
    assert [n for n, _ in iter_jsonl(path)] == [1, 3, 4]
    expect_error(lambda: validate.validate_file(path, "messages"), path, 4, "messages[0].role")


def test_shipped_file_with_bom_and_blank_lines_loads_the_same_records(tmp_path):
    """A shipped file padded with a BOM and blank lines: same records; errors name physical lines."""
    lines = (DATA_DIR / "kto_train.jsonl").read_text().splitlines()
    padded = ["\ufeff" + lines[0], ""] + [x for line in lines[1:] for x in (line, "  ")] + ["", ""]
    write(tmp_path / "kto_train.jsonl", "\n".join(padded) + "\n")
    assert data.load_records("kto_train", data_dir=tmp_path) == data.load_records("kto_train")
    record = json.loads(lines[10])
    record["label"] = "yes"
    padded[2 + 2 * 9] = json.dumps(record)  # lines[10] sits on physical line 21
    write(tmp_path / "kto_train.jsonl", "\n".join(padded) + "\n")
    expect_error(lambda: data.load_records("kto_train", data_dir=tmp_path), tmp_path / "kto_train.jsonl", 21,
                 "label")


# ----- the same records as datasets.load_dataset("json") -------------------------------------
VALID_FILES = {
    "bom-blank-lines": "\ufeff" + GOOD + "\n\n  \n" + GOOD.replace("4.", "Four.") + "\n\t\n\n",
    "crlf": "".join(json.dumps({"text": f"line {i}", "n": i, "ok": i % 2 == 0}) + "\r\n" for i in range(5)),
    "lone-cr": "\r".join(json.dumps({"text": f"line {i}"}) for i in range(3)) + "\r",
    "unicode": "\n".join([json.dumps({"text": "café, naïve \u2028 ok"}, ensure_ascii=False),
                          '{"text": "emoji \\ud83d\\ude00 and \\u00e9"}', '{"text": "tab\\there"}']) + "\n",
    "shipped-preference": "".join((DATA_DIR / "preference_train.jsonl").read_text().splitlines(True)[:40]),
}


@pytest.mark.parametrize("name", sorted(VALID_FILES))
def test_read_jsonl_agrees_with_datasets(name, tmp_path):
    from datasets import load_dataset

    path = write(tmp_path / f"{name}.jsonl", VALID_FILES[name])
    theirs = load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert read_jsonl(path) == theirs.to_list()


# ----- validate_records takes any iterable, or a Dataset ----------------------------------------
def test_validate_records_takes_iterables_and_datasets():
    from datasets import Dataset

    records = [CHAT, CHAT]
    assert formats.validate_records(tuple(records), "messages") == tuple(records)
    assert formats.validate_records((r for r in records), "messages") == records  # a generator: its records
    with_margin = {"prompt": "Q?", "chosen": "A.", "rejected": "B.", "margin": 1.5}
    without = {"prompt": "Q?", "chosen": "A.", "rejected": "C."}
    dataset = Dataset.from_list([with_margin, without])  # Arrow gives `without` a margin of None
    assert formats.validate_records(dataset, "preference") is dataset
    bad = Dataset.from_list([with_margin, without, {**without, "rejected": "A."}])
    expect_error(lambda: formats.validate_records(bad, "preference", path="hub"), "hub", 3, "rejected")
    assert len(convert.convert_records(dataset, "preference", "kto")) == 4


def test_validate_records_refuses_what_is_not_records():
    expect_error(lambda: formats.validate_records({"train": [CHAT]}, "messages"), "<records>", 1, None,
                 "pass one split")
    expect_error(lambda: formats.validate_records(GOOD, "messages"), "<records>", 1, None, "got str")
    expect_error(lambda: formats.validate_records(iter([]), "messages"), "<records>", 1, None, "no records")
    expect_error(lambda: formats.validate_records([CHAT, CHAT], "text", lines=[2, 4]), "<records>", 2, "text",
                 "missing field")


# ----- the command line ---------------------------------------------------------------------
def test_command_line_verdicts(tmp_path, capsys):
    from posttrain_utils.data.validate import main

    good = write(tmp_path / "good.jsonl", f"\ufeff{GOOD}\n\n{GOOD}\n")
    bad = write(tmp_path / "bad.jsonl", f"{GOOD}\n\n{NOT_ENDING_WITH_ASSISTANT}\n")
    assert main([str(good)]) == 0
    out = capsys.readouterr().out
    assert out == f"{good}: OK, 2 valid records in format 'messages' (guessed from the first record's keys)\n"
    assert main([str(bad), "--format", "messages"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"INVALID: {bad}, line 3, field 'messages[0].role': ") and err.count("\n") == 1


def test_python_dash_m_formats_exits_1_without_traceback(tmp_path):
    bad = write(tmp_path / "bad.jsonl", '{"text": "caf'.encode() + b"\xe9" + b'"}\n')
    env = {**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning"}
    run = subprocess.run([sys.executable, "-m", "posttrain_utils.data", str(bad)], capture_output=True,
                         text=True, env=env, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.startswith(f"INVALID: {bad}, line 1: not UTF-8") and run.stdout == ""


# ----- ranking expansion is capped ----------------------------------------------------------
def big_ranking(n):
    return {"prompt": "Pick the best.", "responses": [f"answer {i}" for i in range(n)],
            "scores": list(range(n))}


def test_ranking_with_2000_responses_is_refused_before_any_pair_is_built():
    start = time.perf_counter()
    with pytest.raises(DataFormatError, match=r"2000 responses give 1999000 pairs in mode 'all'") as info:
        convert.ranking_to_pairs(big_ranking(2000))
    assert info.value.field == "responses" and time.perf_counter() - start < 2.0
    with pytest.raises(DataFormatError, match="1999 pairs in mode 'best_vs_rest'"):
        convert.ranking_to_pairs(big_ranking(2000), mode="best_vs_rest")
    uncapped = convert.ranking_to_pairs(big_ranking(2000), mode="best_vs_rest", max_pairs_per_record=None)
    assert len(uncapped) == 1999


def test_pair_cap_boundary_and_option():
    assert convert.MAX_PAIRS_PER_RECORD == 1000
    assert len(convert.ranking_to_pairs(big_ranking(45))) == 990  # 45 responses fit under the default
    with pytest.raises(DataFormatError, match="1035 pairs"):
        convert.ranking_to_pairs(big_ranking(46))
    assert len(convert.ranking_to_pairs(RANKED, max_pairs_per_record=3)) == 3
    with pytest.raises(DataFormatError, match="max_pairs_per_record=2"):
        convert.ranking_to_pairs(RANKED, max_pairs_per_record=2)
    tied = {"prompt": RANKED["prompt"], "responses": RANKED["responses"], "scores": [2, 2, 1]}
    assert len(convert.ranking_to_pairs(tied, max_pairs_per_record=2)) == 2  # ties are not counted
    for cap in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="positive int or None"):
            convert.ranking_to_pairs(RANKED, max_pairs_per_record=cap)
        with pytest.raises(ValueError, match="positive int or None") as info:
            convert.convert_records([RANKED], "ranking", "preference", max_pairs_per_record=cap)
        assert not isinstance(info.value, DataFormatError)  # a wrong argument, not bad data


def test_pair_cap_in_convert_file_names_the_line_and_writes_nothing(tmp_path):
    source = write(tmp_path / "rankings.jsonl", f"{json.dumps(RANKED)}\n\n{json.dumps(big_ranking(50))}\n")
    out = tmp_path / "pairs.jsonl"
    expect_error(lambda: convert.convert_file(source, "ranking", out, "preference"), source, 3, "responses",
                 "1225 pairs")
    assert not out.exists() and len(list(tmp_path.iterdir())) == 1
    assert convert.convert_file(source, "ranking", out, "preference", max_pairs_per_record=None) == 3 + 1225
    assert convert.convert_file(source, "ranking", out, "preference", mode="best_vs_rest") == 2 + 49


def test_ranking_order_unchanged_and_validation_linear():
    """The O(n log n) grouping gives what the old quadratic one gave, ties included."""
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(2, 12)
        scores = [rng.choice([0, 1, 1.0, 2, 2.5, -1]) for _ in range(n)]
        if len(set(scores)) == 1:
            continue
        old = [[i for i in range(n) if scores[i] == s] for s in sorted(set(scores), reverse=True)]
        assert source_formats.ranking_groups({"responses": ["x"] * n, "scores": scores}) == old
    start = time.perf_counter()
    formats.validate_record(big_ranking(20000), "ranking")
    assert time.perf_counter() - start < 2.0


# ----- atomic writing -------------------------------------------------------------------------
def test_write_jsonl_is_atomic(tmp_path):
    out = tmp_path / "out.jsonl"
    assert write_jsonl(out, [CHAT, CHAT]) == 2 and read_jsonl(out) == [CHAT, CHAT]
    expect_error(lambda: write_jsonl(out, [CHAT, {"text": "bad \udc80"}]), out, 2, None,
                 "cannot write as UTF-8")
    assert read_jsonl(out) == [CHAT, CHAT] and sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
