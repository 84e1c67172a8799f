"""The teaching kit without executing a chapter: the student edition of every chapter (no solution
survives, one answer and one check cell per exercise) and the grader's parsing and errors.
tests/test_grading.py executes notebooks."""

import json
import re

import nbformat
import pytest

from posttrain_utils.teaching import exercises, grade, student

CHAPTERS = [p for p in student.chapter_sources() if exercises.read_chapter(p)]
IDS = [p.stem for p in CHAPTERS]


def _sources(notebook):
    return "\n".join(cell.source for cell in notebook.cells)


def test_every_chapter_with_exercises_is_covered():
    numbered = sorted(p.stem for p in student.ROOT.glob("chapters/[0-9][0-9]_*.md"))
    assert [p.stem for p in CHAPTERS] == numbered
    assert sum(len(exercises.read_chapter(p)) for p in CHAPTERS) >= 3 * len(CHAPTERS)


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_student_edition_has_answer_and_check_cells(path):
    found = exercises.read_chapter(path)
    notebook = student.student_notebook(path)
    roles = [(c.metadata["posttrain"]["exercise"], c.metadata["posttrain"]["role"])
             for c in notebook.cells if "posttrain" in c.get("metadata", {})]
    assert roles == [(e.label, role) for e in found for role in ("answer", "check")]
    by_role = {(c.metadata["posttrain"]["exercise"], c.metadata["posttrain"]["role"]): c
               for c in notebook.cells if "posttrain" in c.get("metadata", {})}
    for exercise in found:
        answer, check = by_role[(exercise.label, "answer")], by_role[(exercise.label, "check")]
        assert answer.source == exercise.answer_template() and answer.metadata["tags"] == ["answer"]
        assert check.source == exercise.check_source() and check.metadata["tags"] == ["check"]
        compile(answer.source, exercise.label, "exec")
        compile(check.source, exercise.label, "exec")
        compile(exercise.reference_answer(), exercise.label, "exec")
        # the check reads something only the student defines: an untouched template cannot pass
        assert exercise.needed_names(), exercise.label
        assert not any(line in exercise.reference_answer() for line in exercise.check_statements())
    text = _sources(notebook)
    assert "solution-start" not in text and "solution-end" not in text
    assert "Each solution is hidden behind a click" not in text
    assert notebook.metadata["posttrain"] == {"edition": "student", "chapter": path.stem}
    nbformat.validate(notebook)


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_no_solution_text_survives(path):
    source = exercises.load(path)
    found = exercises.read_chapter(path)
    text = _sources(student.student_notebook(path))
    kept = set()  # lines the student edition shows on purpose, or the chapter shows elsewhere
    for exercise in found:
        kept |= set(exercise.answer_template().splitlines()) | set(exercise.check_source().splitlines())
    solution_code = {cell for e in found for cell in e.solution}
    for cell in source.cells:
        if cell.cell_type == "code" and cell.source not in solution_code:
            kept |= set(cell.source.splitlines())
    kept_text = "\n".join(kept)
    leaked = []
    for exercise in found:
        lines = [line for cell in exercise.solution for line in cell.splitlines()] + exercise.prose
        for line in lines:
            line = line.strip()
            if len(line) >= 12 and line not in kept_text and line in text:
                leaked.append((exercise.label, line))
    assert not leaked


def test_no_solution_text_survives_would_catch_a_leak():
    path = CHAPTERS[0]
    exercise = exercises.read_chapter(path)[0]
    leaky = student.student_notebook(path, {exercise.label: exercise.reference_answer()})
    body = [line.strip() for line in exercise.reference_answer().splitlines()
            if len(line.strip()) >= 12 and line.strip() not in exercise.answer_template()]
    assert body and all(line in _sources(leaky) for line in body)


def test_reference_answer_drops_only_the_checks():
    exercise = next(e for p in CHAPTERS for e in exercises.read_chapter(p) if e.label == "dpo-ex1")
    answer = exercise.reference_answer()
    assert "def naive_dpo_loss" in answer and "assert not exercises_dpo.check_dpo_loss" in answer
    assert "assert exercises_dpo.check_naive_dpo_loss" not in answer
    assert exercise.needed_names() == ["naive_dpo_loss"]


def test_answer_template_stubs():
    by_label = {e.label: e for p in CHAPTERS for e in exercises.read_chapter(p)}
    assert "def my_greedy(model, input_ids, max_new_tokens, eos_token_id):" in \
        by_label["intro-ex4"].answer_template()
    assert "raise NotImplementedError" in by_label["intro-ex4"].answer_template()
    assert "answer = ..." in by_label["intro-ex1"].answer_template()
    assert "exercises_intro = ..." not in by_label["intro-ex1"].answer_template()  # a checker: imported
    assert by_label["peft-ex2"].needed_names() == ["merged_weight"]  # bound inside a `with` block
    assert "sft_model" not in by_label["sft-ex1"].needed_names()  # the chapter defined it before


def test_read_rejects_broken_gating():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        ":::{solution-start} nowhere\n:class: dropdown\n:::")])
    with pytest.raises(ValueError, match="no exercise before it"):
        exercises.read(notebook)
    notebook.cells[0].source = ":::{exercise} 1.1 X\n:label: a-ex1\n:::\n\n:::{solution-start} a-ex1\n:::"
    with pytest.raises(ValueError, match="never closed"):
        exercises.read(notebook)
    notebook.cells += [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_markdown_cell(
        ":::{solution-end}\n:::")]
    with pytest.raises(ValueError, match="no `assert <module>.check_"):
        exercises.read(notebook)


def test_write_builds_a_book(tmp_path):
    written = student.write(tmp_path, chapters=["00", "01"])
    assert [p.name for p in written] == ["00_introduction.ipynb", "01_data_formats.ipynb"]
    toc = (tmp_path / "_toc.yml").read_text()
    assert "chapters/00_introduction" in toc and "chapters/02_sft" not in toc
    assert "student edition" in (tmp_path / "_config.yml").read_text()
    with pytest.raises(ValueError, match="no chapter matches"):
        student.write(tmp_path / "none", chapters=["99"])


def test_answers_found_by_metadata_or_marker():
    path = CHAPTERS[0]
    notebook = student.student_notebook(path, {"intro-ex1": "# Exercise 0.1 (intro-ex1): mine\nanswer = 1\n"})
    assert grade.answers_of(notebook)["intro-ex1"].endswith("answer = 1\n")
    for cell in notebook.cells:  # a student who copied cells around loses the metadata
        cell.metadata = {}
    answers = grade.answers_of(notebook)
    assert answers["intro-ex1"].endswith("answer = 1\n")
    assert set(answers) == {e.label for e in exercises.read_chapter(path)}


def test_hardened_check_reloads_its_checker():
    exercise = next(e for e in exercises.read_chapter(CHAPTERS[0]) if e.label == "intro-ex2")
    hardened = grade._hardened(exercise)
    assert "exercises_intro = __import__('importlib').reload(exercises_intro)" in hardened
    assert hardened.rstrip().endswith(exercise.check_statements()[-1])


def test_grade_cli_errors(tmp_path, capsys):
    bad = tmp_path / "notes.ipynb"
    bad.write_text("this is not json")
    assert grade.main([str(bad)]) == 2
    assert "cannot read it as a notebook" in capsys.readouterr().err
    stray = tmp_path / "mine.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), stray)
    assert grade.main([str(stray)]) == 2
    assert "not a notebook of a known chapter" in capsys.readouterr().err
    assert grade.main([str(tmp_path / "missing.ipynb")]) == 2


def test_report_table():
    report = {"chapter": "01_data_formats", "score": 1, "max_score": 2, "seconds": 3.0, "exercises": [
        {"label": "a", "title": "1.1 A", "status": "passed", "message": ""},
        {"label": "b", "title": "1.2 B", "status": "failed", "message": "not yet: hint"}]}
    text = grade.table(report)
    assert "1/2 exercises passed" in text and re.search(r"1\.2 B\s+failed\s+not yet: hint", text)
    json.dumps(report)
