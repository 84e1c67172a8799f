"""Chapter 9's report card: its rows against the stage graph, the figures of a row on hand-built
replies, the Markdown table and plot, and the cache of `evaluate_row` (no model is trained or
loaded: replies are faked and every row used has stage ``sft``)."""

import math

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from posttrain_utils import evaluation
from posttrain_utils.reward import overoptimization
from posttrain_utils.evaluation import report_card  # noqa: E402
from posttrain_utils.evaluation.report_card import cache as rc_cache, rows as rc_rows  # noqa: E402
from posttrain_utils.evaluation.report_card import scoring as rc_scoring  # noqa: E402
from posttrain_utils.data import load_records  # noqa: E402
from posttrain_utils.evaluation.report_card.rows import Row  # noqa: E402
from posttrain_utils.runtime import checkpoints, graph, profiles  # noqa: E402

PROFILE = profiles.CPU
REFUSAL = "I can't help with that, because it could hurt someone."  # tinyworld.world.REFUSALS[0]
BEST_OF = f"best-of-{report_card.BEST_OF} (RM)"


# ----- the rows --------------------------------------------------------------------------------
def test_rows_name_existing_stages_once():
    names = [r.name for r in report_card.ROWS]
    assert len(names) == len(set(names))
    assert all(r.stage in checkpoints.STAGES for r in report_card.ROWS)
    assert report_card.REFERENCE in names and BEST_OF in names
    assert all(report_card.find_row(r.name) is r for r in report_card.ROWS)
    assert all(r.stage == "dpo" for r in report_card.ROWS if getattr(r, "member", None))
    with pytest.raises(KeyError, match="no report-card row"):
        report_card.find_row("nope")


def test_rows_have_distinct_cache_files(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path))
    files = [report_card.cache_file(r, PROFILE) for r in report_card.ROWS]
    assert len(set(files)) == len(files)
    assert all(f.parent == tmp_path / f"cpu-seed{PROFILE.seed}" / "report" for f in files)


def test_rows_for_stages():
    sft_rows = report_card.rows_for(["base", "sft"])
    assert "base" in sft_rows and "SFT" in sft_rows and BEST_OF not in sft_rows
    assert report_card.rows_for(["sft"]) == ["SFT"]
    assert report_card.rows_for(["reward"]) == [BEST_OF]
    assert report_card.rows_for(checkpoints.STAGES) == [r.name for r in report_card.ROWS]
    assert report_card.rows_for([]) == []


# ----- _figures on hand-built replies ----------------------------------------------------------
@pytest.fixture(scope="module")
def recs():
    heldout = load_records("eval_test")
    sums = [r for r in heldout if r["task"] == "sum"][:2]
    fact = next(r for r in heldout if r["task"] not in ("sum", "harmful"))
    harmful = next(r for r in heldout if r["task"] == "harmful")
    return [*sums, fact, harmful]


def _r(text, ended=True):
    return {"text": text, "ended": ended}


@pytest.fixture(scope="module")
def replies(recs):
    s1, s2, fact, _ = recs
    wrong = str(int(s2["answer"]) + 1)
    sft = [_r(f"The answer is {s1['answer']}."), _r(f"The answer is {wrong}."),
           _r(f"It is {fact['answer']}."), _r(REFUSAL)]
    row = [_r(REFUSAL),                                  # refuses a sum SFT got right: loses
           _r(f"The answer is {s2['answer']}."),         # right where SFT was wrong: wins
           _r(f"It is {fact['answer']}."),               # the same reply as SFT: tie
           _r(REFUSAL)]                                  # refuses the harmful request
    return row, sft


def test_refusal_text_is_a_refusal():
    assert evaluation.is_refusal(REFUSAL)


def test_figures_against_sft(recs, replies):
    row, sft = replies
    figures, outcomes = report_card.row_figures(Row("X", "sft", 2), row, sft, recs, PROFILE)
    assert list(figures) == list(report_card.COLUMNS)
    assert outcomes == [0.0, 1.0, 0.5]
    assert figures["win_vs_sft"] == pytest.approx(0.5)
    assert figures["win_low"] <= figures["win_vs_sft"] <= figures["win_high"]
    assert figures["win_low"] < figures["win_high"]
    assert figures["over_refusal"] == pytest.approx(1 / 3)  # the harmful refusal is not counted
    assert figures["refusal"] == 1.0
    gold = [overoptimization.gold_score(row[i]["text"], True, recs[i]) for i in range(3)]
    assert figures["gold"] == pytest.approx(sum(gold) / 3)
    judged = evaluation.score(row, recs)
    for column in ("format", "facts_em", "sums_em", "rude", "length"):
        assert figures[column] == pytest.approx(judged[column])
    assert figures["kl_to_sft"] == 0.0


def test_outcomes_follow_the_gold_comparison(recs, replies):
    row, sft = replies
    _, outcomes = report_card.row_figures(Row("X", "sft", 2), row, sft, recs, PROFILE)
    for i, outcome in enumerate(outcomes):  # answered records are the first three
        g = overoptimization.gold_score(row[i]["text"], row[i]["ended"], recs[i])
        s = overoptimization.gold_score(sft[i]["text"], sft[i]["ended"], recs[i])
        assert outcome == (1.0 if g > s else 0.5 if g == s else 0.0)
    # an unfinished copy of SFT's reply scores lower: the row loses there
    worse = [*sft[:2], _r(sft[2]["text"], ended=False), sft[3]]
    figures, outcomes = report_card.row_figures(Row("X", "sft", 2), worse, sft, recs, PROFILE)
    assert outcomes == [0.5, 0.5, 0.0]
    assert figures["win_vs_sft"] == pytest.approx(1 / 3) and figures["over_refusal"] == 0.0


def test_reference_row_ties_itself_and_best_of_uses_the_closed_form(recs, replies):
    row, sft = replies
    figures, outcomes = report_card.row_figures(Row("SFT", "sft", 2), sft, None, recs, PROFILE)
    assert outcomes == [0.5] * 3
    assert figures["win_vs_sft"] == figures["win_low"] == figures["win_high"] == 0.5
    figures, _ = report_card.row_figures(Row("B", "sft", 4, best_of=4), row, sft, recs, PROFILE)
    assert figures["kl_to_sft"] == pytest.approx(overoptimization.kl_best_of_n(4))
    assert figures["kl_to_sft"] == pytest.approx(math.log(4) - 0.75)


# ----- to_markdown and write -------------------------------------------------------------------
def _card():
    rows = {"SFT": dict(chapter=2, format=1.0, facts_em=0.5, sums_em=0.25, rude=0.0, refusal=1.0,
                        over_refusal=0.0, length=9.25, gold=0.5, win_vs_sft=0.5, win_low=0.5,
                        win_high=0.5, kl_to_sft=0.0),
            "DPO": dict(chapter=6, format=0.9, facts_em=0.6, sums_em=0.3, rude=0.1, refusal=0.8,
                        over_refusal=0.05, length=12.0, gold=0.55, win_vs_sft=0.61, win_low=0.52,
                        win_high=0.7, kl_to_sft=float("nan"))}
    return pd.DataFrame.from_dict(rows, orient="index")


def test_to_markdown_has_a_header_and_a_line_per_row():
    lines = report_card.to_markdown(_card()).splitlines()
    assert len(lines) == 2 + 2
    assert lines[0].startswith("| checkpoint | ch |") and "win vs SFT [95 % CI]" in lines[0]
    assert lines[1].count("---") == lines[0].count("|") - 1
    assert lines[2].startswith("| SFT | 2 | 1.00 | 0.50 | 0.25 |")
    assert "| 9.2 |" in lines[2] or "| 9.3 |" in lines[2]
    assert "0.50 [0.50, 0.50]" in lines[2] and lines[2].endswith("| 0.00 |")
    assert lines[3].startswith("| DPO | 6 |")
    assert "0.61 [0.52, 0.70]" in lines[3] and lines[3].endswith("| n/a |")  # NaN KL
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_write_produces_the_table_and_the_plot(tmp_path):
    md, png = report_card.write(_card(), tmp_path / "reports")
    assert md.read_text().startswith("# Report card\n\n| checkpoint |")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


# ----- evaluate_row's cache --------------------------------------------------------------------
@pytest.fixture
def fake_scoring(monkeypatch, tmp_path, recs, replies):
    """A cache in tmp_path, `records` = `recs`, and `row_replies` answering from `replies` (counted)."""
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path))
    monkeypatch.setattr(rc_rows, "records", lambda: list(recs))
    row, sft = replies
    calls = []

    def fake_replies(r, profile, records):
        assert records == recs
        calls.append(r.name)
        return [dict(x) for x in (sft if r.name == report_card.REFERENCE else row)]

    monkeypatch.setattr(rc_scoring, "row_replies", fake_replies)
    return calls


def test_evaluate_row_caches_and_recomputes_when_the_key_changes(fake_scoring, monkeypatch, tmp_path,
                                                                 recs, replies):
    result = report_card.evaluate_row(BEST_OF, PROFILE)
    assert sorted(fake_scoring) == sorted([BEST_OF, report_card.REFERENCE])  # SFT scored as reference
    assert result["row"] == BEST_OF and result["stage"] == "sft" and result["chapter"] == 4
    assert result["outcomes"] == [0.0, 1.0, 0.5] and result["replies"] == replies[0]
    assert result["figures"]["kl_to_sft"] == pytest.approx(overoptimization.kl_best_of_n(report_card.BEST_OF))
    path = report_card.cache_file(report_card.find_row(BEST_OF), PROFILE)
    assert path.is_relative_to(tmp_path) and path.exists()

    again = report_card.evaluate_row(BEST_OF, PROFILE)
    sft = report_card.evaluate_row(report_card.REFERENCE, PROFILE)
    assert len(fake_scoring) == 2  # both read from the cache
    assert again == result and sft["outcomes"] == [0.5] * 3

    monkeypatch.setattr(graph, "is_cached", lambda stage, profile=None: True)
    assert report_card.is_cached(BEST_OF, PROFILE)
    card = report_card.build(PROFILE, rows=[report_card.REFERENCE, BEST_OF], progress=False)
    assert list(card.index) == [report_card.REFERENCE, BEST_OF] and len(fake_scoring) == 2
    assert card.loc[BEST_OF, "win_vs_sft"] == pytest.approx(0.5) and card.loc[BEST_OF, "chapter"] == 4

    old_key = result["key"]
    monkeypatch.setattr(rc_rows, "N_KL", rc_rows.N_KL + 1)  # part of the recipe
    assert report_card.cache_key(report_card.find_row(BEST_OF), PROFILE) != old_key
    assert not report_card.is_cached(BEST_OF, PROFILE)
    recomputed = report_card.evaluate_row(BEST_OF, PROFILE)
    assert len(fake_scoring) == 4 and recomputed["key"] != old_key
    assert report_card.is_cached(BEST_OF, PROFILE)


def test_evaluate_row_recomputes_under_a_patched_key(fake_scoring, monkeypatch):
    monkeypatch.setattr(rc_cache, "cache_key", lambda row, profile: "k1")
    report_card.evaluate_row(report_card.REFERENCE, PROFILE)
    report_card.evaluate_row(report_card.REFERENCE, PROFILE)
    assert fake_scoring == [report_card.REFERENCE]
    monkeypatch.setattr(rc_cache, "cache_key", lambda row, profile: "k2")
    assert report_card.evaluate_row(report_card.REFERENCE, PROFILE)["key"] == "k2"
    assert fake_scoring == [report_card.REFERENCE] * 2


def test_is_cached_needs_the_stages_trained(fake_scoring, monkeypatch):
    report_card.evaluate_row(report_card.REFERENCE, PROFILE)
    monkeypatch.setattr(graph, "is_cached", lambda stage, profile=None: False)
    assert not report_card.is_cached(report_card.REFERENCE, PROFILE)
