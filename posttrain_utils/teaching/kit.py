"""The instructor's guide's data and tables: each chapter's objectives (read from the chapter), its
prerequisites, exercises and assignment (`kit_chapters.yaml`), the syllabi (`kit_syllabus.yaml`)
and the measured cpu run times (`runtimes.json`, also the README's table). Introduced on the page
"For instructors" (``chapters/instructors``).

`validate` checks the data against the chapters: every exercise listed, every mistake's hint a
message its checker really prints, every chapter in each syllabus and in the run times. A chapter
added later fails it until its exercises join the kit (CONTRIBUTING.md says how).

Run it: ``python -m posttrain_utils.teaching.kit --check`` (validate, and compare the README's
table with the run times), ``--write-readme`` (rewrite that table).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from functools import lru_cache
from pathlib import Path

from . import exercises as exercises_mod
from . import student

HERE = Path(__file__).resolve().parent
ROOT = student.ROOT
DIFFICULTY = {1: "warm-up", 2: "standard", 3: "substantial"}
README_START, README_END = "<!-- runtimes:start -->", "<!-- runtimes:end -->"
STAGE_CALL = re.compile(r"checkpoints\.(?:get|run_dir|path|is_cached)\(\"([\w-]+)\"")
CHECKER_IMPORT = re.compile(r"from posttrain_utils\.exercises import (\w+) as (\w+)")


@lru_cache(maxsize=None)
def _yaml(name: str):
    import yaml

    return yaml.safe_load((HERE / name).read_text())


def chapters() -> dict:
    """Per chapter: prerequisites, exercises (difficulty, minutes, mistakes) and assignment."""
    return _yaml("kit_chapters.yaml")


def syllabi() -> dict:
    """The suggested syllabi: name -> list of weeks (chapters, exercises, lab)."""
    return _yaml("kit_syllabus.yaml")


def runtimes() -> dict:
    """The measured cpu run times (notebooks, stages) and where they come from."""
    return json.loads((HERE / "runtimes.json").read_text())


def chapter_stems() -> list[str]:
    """The numbered chapters, in the book's order."""
    return [p.stem for p in student.chapter_sources() if re.match(r"\d\d_", p.stem)]


def _text(stem: str) -> str:
    return (ROOT / "chapters" / f"{stem}.md").read_text()


def title(stem: str) -> str:
    """The chapter's title, e.g. ``"2. Supervised fine-tuning"``."""
    return re.search(r"^# (.+)$", _text(stem), re.M).group(1).strip()


def objectives(stem: str) -> list[str]:
    """The chapter's learning objectives, read from its "Learning objectives" list."""
    block = re.search(r"\*\*Learning objectives\*\*\s*\n\n((?:- .*\n(?:  .*\n)*)+)", _text(stem))
    if not block:
        raise ValueError(f"chapters/{stem}.md: no **Learning objectives** list")
    return [" ".join(item.split()) for item in re.split(r"^- ", block.group(1), flags=re.M) if item.strip()]


def stages(stem: str) -> list[str]:
    """The stages a fresh clone trains before the chapter can run: those it loads, and upstream."""
    from ..runtime import pipeline
    from ..evaluation import report_card
    from ..runtime import checkpoints, profiles

    text = _text(stem)
    names = {name for name in STAGE_CALL.findall(text) if name in checkpoints.STAGES}
    if "report_card.build" in text:
        names |= {row.stage for row in report_card.ROWS}
    return pipeline.order(sorted(names), profiles.get_profile("cpu")) if names else []


def _checker_source(stem: str, label: str) -> str:
    """The source of the module that defines the checker an exercise's solution calls."""
    import importlib
    import inspect

    found = exercises_mod.read_chapter(ROOT / "chapters" / f"{stem}.md")
    aliases = dict((alias, module) for module, alias in CHECKER_IMPORT.findall(_text(stem)))
    exercise = next(e for e in found if e.label == label)
    alias, name = exercise.check_statements()[0].split("assert ", 1)[1].split("(", 1)[0].split(".")
    checker = getattr(importlib.import_module(f"posttrain_utils.exercises.{aliases[alias]}"), name)
    return inspect.getsource(sys.modules[checker.__module__])


def validate() -> int:
    """Check the kit against the chapters; the number of exercises it covers.

    Raises:
        ValueError: listing every problem found.
    """
    problems, data, times, total = [], chapters(), runtimes(), 0
    stems = chapter_stems()
    for stem in sorted(set(data) - set(stems)):
        problems.append(f"kit_chapters.yaml: {stem} is not a chapter of the book")
    for stem in stems:
        labels = [e.label for e in exercises_mod.read_chapter(ROOT / "chapters" / f"{stem}.md")]
        entry = data.get(stem)
        if entry is None:
            problems.append(f"kit_chapters.yaml: chapter {stem} is missing")
            continue
        listed = list(entry.get("exercises", {}))
        if listed != labels:
            problems.append(f"kit_chapters.yaml: {stem} lists exercises {listed}, the chapter has {labels}")
        for label, info in entry.get("exercises", {}).items():
            if info.get("difficulty") not in DIFFICULTY or not 0 < info.get("minutes", 0) <= 240:
                problems.append(f"kit_chapters.yaml: {label}: difficulty 1-3 and minutes 1-240")
            if label in labels:
                source = _checker_source(stem, label)
                for mistake in info.get("mistakes") or [{}]:
                    if not mistake.get("hint") or mistake["hint"] not in source:
                        problems.append(f"kit_chapters.yaml: {label}: hint {mistake.get('hint')!r} is not a "
                                        "message of its checker")
        if not entry.get("prerequisites") or not entry.get("assignment", {}).get("hand_in"):
            problems.append(f"kit_chapters.yaml: {stem} needs prerequisites and an assignment to hand in")
        if set(entry.get("assignment", {}).get("exercises", [])) - set(labels):
            problems.append(f"kit_chapters.yaml: {stem}'s assignment names exercises it does not have")
        if stem not in times["notebook_seconds"]:
            problems.append(f"runtimes.json: no measured run time for {stem}")
        missing = [s for s in stages(stem) if s not in times["stage_seconds"]]
        if missing:
            problems.append(f"runtimes.json: no measured time for stages {missing} ({stem})")
        total += len(labels)
    all_labels = {label for entry in data.values() for label in entry.get("exercises", {})}
    for name, weeks in syllabi().items():
        covered = [stem for week in weeks for stem in week["chapters"]]
        if sorted(covered) != sorted(stems):
            problems.append(f"kit_syllabus.yaml: {name} covers {covered}, not each chapter once")
        unknown = {label for week in weeks for label in week["exercises"]} - all_labels
        if unknown:
            problems.append(f"kit_syllabus.yaml: {name} names unknown exercises {sorted(unknown)}")
    if problems:
        raise ValueError("the teaching kit does not match the chapters:\n  " + "\n  ".join(problems))
    return total


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def runtime_table() -> str:
    """Markdown: per chapter, the notebook's measured time and the stages a fresh clone trains first."""
    times = runtimes()
    rows = ["| chapter | notebook, its stages cached | stages a fresh clone trains first | training them |",
            "|---|---|---|---|"]
    for stem in chapter_stems():
        trained = stages(stem)
        first = sum(times["stage_seconds"][s] for s in trained)
        rows.append(f"| {title(stem)} | {_minutes(times['notebook_seconds'][stem])} | "
                    f"{', '.join(f'`{s}`' for s in trained) or 'none'} | {_minutes(first) if trained else '-'} |")
    return "\n".join(rows)


def overview_table() -> str:
    """Markdown: per chapter, run time, exercises and the time students need for them."""
    times, data = runtimes(), chapters()
    rows = ["| chapter | notebook (cpu) | exercises | warm-up / standard / substantial | student time |",
            "|---|---|---|---|---|"]
    for stem in chapter_stems():
        info = data[stem]["exercises"]
        counts = [sum(e["difficulty"] == d for e in info.values()) for d in DIFFICULTY]
        rows.append(f"| {title(stem)} | {_minutes(times['notebook_seconds'][stem])} | {len(info)} | "
                    f"{' / '.join(map(str, counts))} | {sum(e['minutes'] for e in info.values())} min |")
    return "\n".join(rows)


def chapter_section(stem: str) -> str:
    """Markdown for one chapter: objectives, prerequisites, exercises, common mistakes, assignment."""
    entry = chapters()[stem]
    found = {e.label: e for e in exercises_mod.read_chapter(ROOT / "chapters" / f"{stem}.md")}
    lines = ["**Learning objectives** (from the chapter)", ""]
    lines += [f"- {item}" for item in objectives(stem)]
    lines += ["", "**Prerequisites**", ""] + [f"- {item}" for item in entry["prerequisites"]]
    lines += ["", "| exercise | difficulty | minutes | mistakes its checker catches |", "|---|---|---|---|"]
    for label, info in entry["exercises"].items():
        mistakes = "; ".join(m["mistake"] for m in info.get("mistakes") or [])
        lines.append(f"| {found[label].title} | {DIFFICULTY[info['difficulty']]} | {info['minutes']} | "
                     f"{mistakes.replace('|', '/')} |")
    assignment = entry["assignment"]
    lines += ["", "**Suggested assignment:** exercises "
              + ", ".join(found[label].number for label in assignment["exercises"]) + ". Hand in:", ""]
    lines += [f"- {item}" for item in assignment["hand_in"]]
    return "\n".join(lines)


def syllabus_table(name: str) -> str:
    """Markdown: one row per week of the syllabus `name` (``"6 weeks"`` or ``"10 weeks"``)."""
    numbers = {stem: stem.split("_")[0].lstrip("0") or "0" for stem in chapter_stems()}
    labels = {e.label: e.number for stem in chapter_stems()
              for e in exercises_mod.read_chapter(ROOT / "chapters" / f"{stem}.md")}
    rows = ["| week | chapters | exercises | the lab produces |", "|---|---|---|---|"]
    for week, plan in enumerate(syllabi()[name], start=1):
        rows.append(f"| {week} | {', '.join(numbers[s] for s in plan['chapters'])} | "
                    f"{', '.join(labels[x] for x in plan['exercises'])} | {plan['lab']} |")
    return "\n".join(rows)


def readme_block() -> str:
    """The README's run-time table with its markers and a line saying where it comes from."""
    times = runtimes()
    note = (f"Measured {times['date']} on commit {times['commit']} ({times['machine']}); the source is "
            "`posttrain_utils/teaching/runtimes.json`, which the instructor's guide reads too.")
    return f"{README_START}\n{runtime_table()}\n\n{note}\n{README_END}"


def main(argv: list[str] | None = None) -> int:
    """``python -m posttrain_utils.teaching.kit --check | --write-readme``."""
    parser = argparse.ArgumentParser(prog="python -m posttrain_utils.teaching.kit",
                                     description="Check the teaching kit, or write the README's run-time table.")
    parser.add_argument("--check", action="store_true", help="validate the kit and the README's table")
    parser.add_argument("--write-readme", action="store_true", help="rewrite the README's run-time table")
    args = parser.parse_args(argv)
    readme = ROOT / "README.md"
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if args.write_readme:
        if not pattern.search(text):
            print(f"error: README.md has no {README_START} ... {README_END} block", file=sys.stderr)
            return 1
        readme.write_text(pattern.sub(lambda _: readme_block(), text))
        print("README.md: run-time table written")
    try:
        n = validate()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.check and (match := pattern.search(readme.read_text())) and match.group(0) != readme_block():
        print("error: README.md's run-time table differs from runtimes.json (run --write-readme)",
              file=sys.stderr)
        return 1
    print(f"teaching kit: {len(chapter_stems())} chapters, {n} exercises, all listed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
