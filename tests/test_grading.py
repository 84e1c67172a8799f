"""Grading executes notebooks: chapter 1's (about 11 s a run, no training) in the cpu profile.

The reference solutions score full marks, the bare student edition scores zero (and runs without
an error up to its first check cell), one wrong answer fails exactly that exercise even when it
patches its checker, and a crash, a cell past the time limit and a dead kernel each fail only
their own exercise."""

import json

import nbformat
import pytest

from posttrain_utils.teaching import exercises, grade, student

CHAPTER = student.ROOT / "chapters" / "01_data_formats.md"
FOUND = exercises.read_chapter(CHAPTER)
LABELS = [e.label for e in FOUND]


def _notebook(tmp_path, answers, name="mine.ipynb"):
    path = tmp_path / name
    nbformat.write(student.student_notebook(CHAPTER, answers), path)
    return path


def _statuses(report):
    return {r["label"]: r["status"] for r in report["exercises"]}


def test_reference_scores_full_marks(tmp_path, capsys):
    reference = {e.label: e.reference_answer() for e in FOUND}
    path = _notebook(tmp_path, reference)
    assert grade.main([str(path), "--report", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["score"] == report["max_score"] == len(FOUND) >= 3
    assert set(_statuses(report).values()) == {"passed"}
    assert "4/4 exercises passed" in capsys.readouterr().out


def test_bare_student_edition_scores_zero_and_runs_to_its_first_check(tmp_path):
    path = _notebook(tmp_path, {})
    executed = tmp_path / "executed.ipynb"
    report = grade.grade(path, executed_out=executed)
    assert report["score"] == 0 and set(_statuses(report).values()) == {"not attempted"}
    cells = nbformat.read(executed, as_version=4).cells
    first_check = next(i for i, c in enumerate(cells) if c.metadata.get("posttrain", {}).get("role") == "check")
    errors = [i for i, c in enumerate(cells) if c.cell_type == "code"
              and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert errors and errors[0] == first_check  # every cell before the first check ran cleanly


def test_one_wrong_answer_fails_exactly_that_exercise(tmp_path):
    answers = {e.label: e.reference_answer() for e in FOUND}
    answers["formats-ex2"] = (  # a wrong answer that also patches its checker to always pass
        "from posttrain_utils.exercises import ch01_formats as exercises_formats\n"
        "exercises_formats.check_ranking_pairs = lambda fn: True\n"
        "def ranking_pairs(scores):\n    return []\n")
    report = grade.grade(_notebook(tmp_path, answers))
    assert _statuses(report) == {label: "failed" if label == "formats-ex2" else "passed" for label in LABELS}
    message = next(r["message"] for r in report["exercises"] if r["label"] == "formats-ex2")
    assert message.startswith("[formats-ex2] not yet:")  # the checker's own hint


def test_a_crash_a_timeout_and_a_dead_kernel_each_fail_only_their_exercise(tmp_path):
    answers = {e.label: e.reference_answer() for e in FOUND}
    answers["formats-ex2"] = "raise ZeroDivisionError('oops')\n"
    answers["formats-ex3"] = "import time\ntime.sleep(120)\n" + answers["formats-ex3"]
    answers["formats-ex4"] = "import os\nos._exit(1)\n"
    report = grade.grade(_notebook(tmp_path, answers), cell_timeout=20)
    assert _statuses(report) == {"formats-ex1": "passed", "formats-ex2": "failed", "formats-ex3": "failed",
                                 "formats-ex4": "failed"}
    messages = {r["label"]: r["message"] for r in report["exercises"]}
    assert "ZeroDivisionError" in messages["formats-ex2"]
    assert "time limit of 20 s" in messages["formats-ex3"]
    assert "kernel died" in messages["formats-ex4"]


@pytest.mark.parametrize("edit", ["delete_checks", "drop_metadata"])
def test_only_answer_cells_count(tmp_path, edit):
    notebook = student.student_notebook(CHAPTER, {e.label: e.reference_answer() for e in FOUND[:1]})
    if edit == "delete_checks":  # the grader brings its own check cells
        notebook.cells = [c for c in notebook.cells if c.metadata.get("posttrain", {}).get("role") != "check"]
    else:
        for cell in notebook.cells:
            cell.metadata = {}
    path = tmp_path / "01_data_formats.ipynb"
    nbformat.write(notebook, path)
    answers = grade.answers_of(nbformat.read(path, as_version=4))
    assert answers[FOUND[0].label] == FOUND[0].reference_answer()
    assert grade.chapter_of(nbformat.read(path, as_version=4), path) == CHAPTER
