"""Grade a student's notebook with the exercise checkers (`make grade NOTEBOOK=path`). Introduced on
the page "For instructors".

A student's notebook is untrusted input, so only its *answer* cells are used (found by their
``posttrain.exercise`` metadata, or by the first line the student edition writes in them). They are
put into a fresh student edition of the chapter, built from the repository: every other cell,
the check cells included, is the course's own, and each check cell first reloads its checker
module, so a patched checker does not survive into the grading. The notebook then runs in a kernel
with the `cpu` profile and its network guard (``POSTTRAIN_NO_NETWORK=1``), a time limit per cell,
and errors allowed, so that a crash in one exercise does not hide the others. A dead kernel (a
segfault, or memory) fails the exercise it died in, and the notebook is run again without that
answer.

Each exercise ends as ``passed``, ``failed`` (with the checker's hint or the error) or
``not attempted`` (its answer cell is still the template).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import exercises as exercises_mod
from . import student

DEFAULT_CELL_TIMEOUT = 900  # seconds per cell; the longest reference cell takes about 3 minutes on 2 cores
MARKER = re.compile(r"^#\s*Exercise\s+\S+\s+\(([\w-]+)\)")
GRADING_ENV = {"POSTTRAIN_PROFILE": "cpu", "POSTTRAIN_NO_NETWORK": "1", "HF_HUB_OFFLINE": "1",
               "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
               "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


class GradingError(Exception):
    """A notebook that cannot be graded at all (unreadable, or of no known chapter)."""


@dataclass
class Result:
    """One exercise's grade: ``status`` is ``passed``, ``failed`` or ``not attempted``."""

    label: str
    title: str
    status: str
    message: str = ""


def answers_of(notebook) -> dict[str, str]:
    """The student's answer cells by exercise label (metadata first, then the marker line)."""
    answers = {}
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata", {}).get("posttrain", {})
        label = meta.get("exercise") if meta.get("role") == "answer" else None
        if label is None and (match := MARKER.match(cell.get("source", "").lstrip())):
            label = match.group(1)
            if meta.get("role") == "check":
                label = None
        if label and label not in answers:
            answers[label] = cell.get("source", "")
    return answers


def chapter_of(notebook, path: Path, chapter: str | None = None, root: Path = student.ROOT) -> Path:
    """The chapter source a student notebook belongs to: `chapter` if given, else the notebook's
    metadata (``None`` for no notebook), else its file name."""
    stem = chapter or (notebook or {}).get("metadata", {}).get("posttrain", {}).get("chapter") or path.stem
    source = root / "chapters" / f"{stem}.md"
    if not source.is_file():
        raise GradingError(f"{path}: not a notebook of a known chapter (chapter {stem!r}); "
                           "pass --chapter NN_name")
    return source


def _hardened(exercise) -> str:
    """The exercise's check cell, reloading its checker modules first (undoing any patch made before)."""
    checks = exercise.check_statements()
    modules = []
    for check in checks:
        func = ast.parse(check).body[0].test.func
        if isinstance(func.value, ast.Name) and func.value.id not in modules:
            modules.append(func.value.id)
    reloads = [f"{name} = __import__('importlib').reload({name})  # grading" for name in modules]
    return "\n".join(exercise.checker_imports() + reloads + checks)


def _text(outputs) -> tuple[str, str]:
    """(printed text, error line) of a cell's outputs."""
    printed, error = [], ""
    for out in outputs:
        if out.get("output_type") == "stream":
            printed.append(out.get("text", ""))
        elif out.get("output_type") == "error":
            error = f"{out.get('ename')}: {out.get('evalue')}".strip().rstrip(":")
    return "".join(printed), error


def _run(notebook, cell_timeout: int, workdir: str):
    """Execute `notebook` in place; the index of the cell where the kernel died, else None."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    client = NotebookClient(notebook, timeout=cell_timeout, allow_errors=True, interrupt_on_timeout=True,
                            kernel_name="python3", resources={"metadata": {"path": workdir}})
    env = {**os.environ, **GRADING_ENV}
    try:
        client.execute(env=env)
    except DeadKernelError:
        done = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and c.get("execution_count")]
        return (done[-1] + 1) if done else 0
    return None


def _classify(exercise, answer_cell, check_cell, cell_timeout: int) -> Result:
    if student.template_hash(answer_cell.source) == student.template_hash(exercise.answer_template()):
        return Result(exercise.label, exercise.title, "not attempted")
    for cell, where in ((answer_cell, "your answer cell"), (check_cell, "the check")):
        if not cell.get("execution_count"):
            return Result(exercise.label, exercise.title, "failed", f"{where} did not run")
        printed, error = _text(cell.get("outputs", []))
        if error:
            if error.startswith("KeyboardInterrupt"):
                error = f"stopped at the time limit of {cell_timeout} s per cell"
            hints = [line.strip() for line in printed.splitlines() if "not yet" in line]
            return Result(exercise.label, exercise.title, "failed",
                          hints[-1] if hints and cell is check_cell else f"{where} raised {error}")
    return Result(exercise.label, exercise.title, "passed")


def grade(path: str | Path, chapter: str | None = None, cell_timeout: int = DEFAULT_CELL_TIMEOUT,
          executed_out: str | Path | None = None, reference: bool = False) -> dict:
    """Execute a student's notebook and run every exercise checker on its answers.

    Args:
        path: the student's .ipynb (ignored with ``reference=True``: then `chapter` names the chapter).
        chapter: the chapter's name (``"00_introduction"``) when the notebook does not say.
        cell_timeout: seconds any one cell may run.
        executed_out: where to save the executed notebook, for the instructor to read.
        reference: grade the reference solutions instead (every answer cell holds its solution).

    Returns:
        The report: chapter, per-exercise results, score, maximum and wall seconds.
    """
    import nbformat

    path = Path(path)
    if reference:
        source = chapter_of(None, path, chapter)
        answers = {e.label: e.reference_answer() for e in exercises_mod.read_chapter(source)}
    else:
        try:
            notebook = nbformat.read(path, as_version=4)
        except (OSError, ValueError, UnicodeDecodeError) as error:  # missing, not JSON, not a notebook
            raise GradingError(f"{path}: cannot read it as a notebook ({error})") from None
        source = chapter_of(notebook, path, chapter)
        answers = answers_of(notebook)
    exercises = exercises_mod.read_chapter(source)
    known = {e.label for e in exercises}
    answers = {label: text for label, text in answers.items() if label in known}
    results: dict[str, Result] = {}
    start = time.perf_counter()
    by_label = {e.label: e for e in exercises}
    while len(results) < len(exercises):
        pending = [e for e in exercises if e.label not in results]
        graded = student.student_notebook(source, answers)  # minus any answer that killed the kernel
        cells = {}
        for i, cell in enumerate(graded.cells):
            meta = cell.get("metadata", {}).get("posttrain", {})
            if meta.get("role") == "check":
                cell.source = _hardened(by_label[meta["exercise"]])
            if "exercise" in meta:
                cells[(meta["exercise"], meta["role"])] = i
        with tempfile.TemporaryDirectory(prefix="posttrain-grade-") as workdir:
            died_at = _run(graded, cell_timeout, workdir)
        if executed_out:
            nbformat.write(graded, executed_out)
        for exercise in pending:
            answer, check = cells[(exercise.label, "answer")], cells[(exercise.label, "check")]
            if died_at is not None and died_at < answer:
                if exercise is pending[0]:  # it died outside every pending exercise: stop
                    for rest in pending[pending.index(exercise):]:
                        results[rest.label] = Result(rest.label, rest.title, "failed",
                                                     f"the kernel died at cell {died_at}, before this exercise")
                break  # not reached: graded in the next run
            if died_at is not None and died_at <= check:
                results[exercise.label] = Result(exercise.label, exercise.title, "failed",
                                                 "the kernel died in this exercise (a crash, or out of memory)")
                answers.pop(exercise.label, None)
                break
            results[exercise.label] = _classify(exercise, graded.cells[answer], graded.cells[check],
                                                cell_timeout)
    ordered = [results[e.label] for e in exercises]
    return {"notebook": str(path), "chapter": source.stem, "profile": "cpu",
            "score": sum(r.status == "passed" for r in ordered), "max_score": len(ordered),
            "seconds": round(time.perf_counter() - start, 1), "exercises": [asdict(r) for r in ordered]}


def table(report: dict) -> str:
    """The report as a plain-text table, one row per exercise."""
    rows = [(r["title"], r["status"], r["message"]) for r in report["exercises"]]
    width = max(len(t) for t, _, _ in rows) if rows else 10
    lines = [f"{report['chapter']}: {report['score']}/{report['max_score']} exercises passed "
             f"({report['seconds']:.0f} s)", f"{'exercise':<{width}}  {'result':<13}  message"]
    lines += [f"{t:<{width}}  {s:<13}  {m}" for t, s, m in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m posttrain_utils.teaching.grade NOTEBOOK [--report FILE]``."""
    parser = argparse.ArgumentParser(
        prog="python -m posttrain_utils.teaching.grade",
        description="Execute a student's notebook (cpu profile, no network, a time limit per cell) and "
                    "run every exercise checker on its answer cells.")
    parser.add_argument("notebook", nargs="?", help="the student's .ipynb")
    parser.add_argument("--chapter", help="the chapter (e.g. 00_introduction) if the notebook does not say")
    parser.add_argument("--report", help="write the JSON report here (default: NOTEBOOK.grade.json)")
    parser.add_argument("--executed", help="save the executed notebook here")
    parser.add_argument("--cell-timeout", type=int, default=DEFAULT_CELL_TIMEOUT,
                        help=f"seconds any one cell may run (default {DEFAULT_CELL_TIMEOUT})")
    parser.add_argument("--reference", action="store_true",
                        help="grade the reference solutions of --chapter (they must score full marks)")
    args = parser.parse_args(argv)
    if not args.notebook and not (args.reference and args.chapter):
        parser.error("give a NOTEBOOK, or --reference --chapter NN_name")
    try:
        report = grade(args.notebook or f"{args.chapter}.reference.ipynb", args.chapter, args.cell_timeout,
                       args.executed, args.reference)
    except (GradingError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table(report))
    out = Path(args.report or f"{args.notebook or args.chapter + '.reference.ipynb'}.grade.json")
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"report: {out}")
    return 0 if report["score"] == report["max_score"] or not args.reference else 1


if __name__ == "__main__":
    sys.exit(main())
