"""The student edition: every chapter notebook with its solutions removed (`make student`), and the
same as a website of its own (`make student-book`). Introduced on the page "For instructors".

Each gated solution (``:::{solution-start}`` … ``:::{solution-end}``: its code cells and its prose)
is replaced by two cells, both tagged and marked in their metadata (``posttrain.exercise``):

* an **answer** cell (tag ``answer``): the exercise's imports and a stub per name its checker reads
  (`exercises.Exercise.answer_template`); the only cell `grade` takes from a student's notebook;
* a **check** cell (tag ``check``): the checker call of the reference solution, unchanged.

Run it: ``python -m posttrain_utils.teaching.student --out student`` writes
``student/chapters/NN_name.ipynb`` and the book's files (``_config.yml``, ``_toc.yml``,
``index.md``) beside them.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import sys
from pathlib import Path

from . import exercises as exercises_mod

ROOT = Path(__file__).resolve().parents[2]
EXCLUDED_PAGES = ("chapters/instructors",)  # instructors only: not in the student edition
BANNER = (
    "```{note}\n**Student edition.** The solutions are removed. Each exercise has an *answer* cell, "
    "where you write your answer (only that cell is graded), followed by a *check* cell that calls "
    "the exercise's checker on it: run it, do not edit it. Until you answer an exercise, its check "
    "cell stops with an error; the cells before it run.\n```")
SOLUTION_NOTE = re.compile(r"^Each solution is hidden behind a click.*?(?:\n\n|\Z)", re.S | re.M)
STUDENT_NOTE = ("Write each answer in the cell marked *answer* under the exercise, then run the check "
                "cell after it: the checker recomputes the result from your function, model or data.\n\n")


def template_hash(source: str) -> str:
    """A short hash of a cell's source with whitespace normalised: `grade` compares an answer cell's
    with its template's to spot an unanswered exercise."""
    return hashlib.sha256(" ".join(source.split()).encode()).hexdigest()[:16]


def _prose(lines: list[str]) -> str:
    """Markdown lines kept for the student edition, its note on the exercises rewritten."""
    return SOLUTION_NOTE.sub(STUDENT_NOTE, "\n".join(lines)).strip("\n")


def _cell(nbformat, exercise, role: str, source: str):
    meta = {"tags": [role], "posttrain": {"exercise": exercise.label, "role": role}}
    return nbformat.v4.new_code_cell(source, metadata=meta)


def _answer_cells(nbformat, exercise, answer: str | None):
    intro = nbformat.v4.new_markdown_cell(
        f"**Your answer to exercise {exercise.number}** (answer cell, then check cell):")
    return [intro, _cell(nbformat, exercise, "answer", answer or exercise.answer_template()),
            _cell(nbformat, exercise, "check", exercise.check_source())]


def student_notebook(path: str | Path, answers: dict[str, str] | None = None):
    """The student edition of the chapter at `path` (.md or .ipynb), as an `nbformat` notebook.

    Args:
        path: the chapter's source.
        answers: optional answer-cell sources by exercise label (tests and ``grade --reference``
            fill in the reference answers); the others keep their template.
    """
    import nbformat

    path = Path(path)
    source = exercises_mod.load(path)
    by_label = {e.label: e for e in exercises_mod.read(source)}
    unknown = set(answers or {}) - set(by_label)
    if unknown:
        raise ValueError(f"{path.name}: no exercise labelled {sorted(unknown)}")
    cells, current, skip_close = [], None, False
    for cell in source.cells:
        if cell.cell_type != "markdown":
            if current is None:
                cells.append(nbformat.v4.new_code_cell(cell.source, metadata=dict(cell.metadata)))
            continue
        kept = []
        for line in cell.source.splitlines():
            if skip_close:
                skip_close = False
                if line.strip() == ":::":
                    continue
            if (match := exercises_mod.START.match(line)):
                if _prose(kept):
                    cells.append(nbformat.v4.new_markdown_cell(_prose(kept)))
                kept, current = [], by_label[match.group(1)]
            elif exercises_mod.END.match(line):
                cells += _answer_cells(nbformat, current, (answers or {}).get(current.label))
                current, skip_close = None, True
            elif current is None:
                kept.append(line)
        if _prose(kept):
            cells.append(nbformat.v4.new_markdown_cell(_prose(kept), metadata=dict(cell.metadata)))
    if cells and cells[0].cell_type == "markdown":
        cells.insert(1, nbformat.v4.new_markdown_cell(BANNER))
    notebook = nbformat.v4.new_notebook(cells=cells, metadata=dict(source.metadata))
    notebook.metadata.pop("jupytext", None)
    notebook.metadata["posttrain"] = {"edition": "student", "chapter": path.stem}
    notebook.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3",
                                          "codemirror_mode": {"name": "ipython", "version": 3}}
    return notebook


def chapter_sources(root: Path = ROOT) -> list[Path]:
    """The book's chapter sources (.md) in `_toc.yml` order, instructors' pages excluded."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [entry["file"] for part in toc.get("parts", []) for entry in part.get("chapters", [])]
    return [root / f"{file}.md" for file in files if file not in EXCLUDED_PAGES]


def write(out: str | Path, root: Path = ROOT, chapters: list[str] | None = None) -> list[Path]:
    """Write the student edition under `out` (``chapters/*.ipynb`` and the book's files).

    Args:
        out: the output folder; its ``chapters/`` is replaced.
        root: the course repository.
        chapters: optional chapter stems (``"00_introduction"``) or numbers (``"00"``) to write;
            all by default.

    Returns:
        The notebooks written.
    """
    import nbformat
    import yaml

    out = Path(out)
    sources = chapter_sources(root)
    if chapters:
        sources = [s for s in sources if s.stem in chapters or s.stem.split("_")[0] in chapters]
        if not sources:
            raise ValueError(f"no chapter matches {chapters}")
    notebooks = [(src, student_notebook(src)) for src in sources]  # all built before any is written
    shutil.rmtree(out / "chapters", ignore_errors=True)
    (out / "chapters").mkdir(parents=True)
    written = []
    for src, notebook in notebooks:
        target = out / "chapters" / f"{src.stem}.ipynb"
        nbformat.write(notebook, target)
        written.append(target)
    config = yaml.safe_load((root / "_config.yml").read_text())
    config["title"] = f"{config.get('title', 'Course')} (student edition)"
    config.setdefault("exclude_patterns", [])
    (out / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    stems = {f"chapters/{src.stem}" for src in sources}
    for part in toc.get("parts", []):
        part["chapters"] = [e for e in part.get("chapters", []) if e["file"] in stems]
    toc["parts"] = [part for part in toc.get("parts", []) if part["chapters"]]
    (out / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    index = (root / "index.md").read_text()
    for page in EXCLUDED_PAGES:  # a link to a page the edition leaves out would break the build
        index = index.replace(f"{{doc}}`{page}`", "the page *For instructors* of the full course")
    (out / "index.md").write_text(index.replace("\n", f"\n\n{BANNER}\n", 1) if "\n" in index else index)
    for extra in ("references.bib", "_static", "images"):
        if (root / extra).exists():
            copy = shutil.copytree if (root / extra).is_dir() else shutil.copy
            copy(root / extra, out / extra, **({"dirs_exist_ok": True} if (root / extra).is_dir() else {}))
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m posttrain_utils.teaching.student --out DIR [CHAPTER ...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m posttrain_utils.teaching.student",
        description="Write the student edition: every chapter notebook with its solutions replaced "
                    "by an answer cell and a check cell.")
    parser.add_argument("chapters", nargs="*", help="chapter numbers (00) or names; all by default")
    parser.add_argument("--out", default="student", help="output folder (default: student)")
    args = parser.parse_args(argv)
    try:
        written = write(args.out, chapters=args.chapters or None)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    n = sum(len(exercises_mod.read_chapter(ROOT / "chapters" / f"{p.stem}.md")) for p in written)
    print(f"student edition: {len(written)} notebooks, {n} exercises -> {Path(args.out) / 'chapters'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
