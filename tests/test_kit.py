"""The instructor's guide's data: it lists every exercise of every chapter with hints its checkers
really print, both syllabi cover every chapter, the README's run-time table is generated from the
same file as the guide's, and the student edition builds as a website of its own."""

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest

from posttrain_utils.teaching import kit, student


def test_kit_matches_the_chapters():
    n = kit.validate()
    assert n == sum(len(entry["exercises"]) for entry in kit.chapters().values()) >= 30


def test_every_chapter_has_objectives_and_a_substantial_exercise():
    for stem in kit.chapter_stems():
        assert len(kit.objectives(stem)) >= 3, stem
        difficulties = [e["difficulty"] for e in kit.chapters()[stem]["exercises"].values()]
        assert 3 in difficulties or 2 in difficulties, stem


@pytest.mark.parametrize("breakage, message", [
    ("drop an exercise", "lists exercises"),
    ("a hint the checker never prints", "is not a message of its checker"),
    ("an unknown assignment", "assignment names exercises"),
    ("a chapter missing", "is missing"),
])
def test_validate_reports_a_broken_kit(monkeypatch, breakage, message):
    data = copy.deepcopy(kit.chapters())
    entry = data["02_sft"]
    if breakage == "drop an exercise":
        entry["exercises"].pop(next(iter(entry["exercises"])))
    elif breakage == "a hint the checker never prints":
        next(iter(entry["exercises"].values()))["mistakes"] = [{"mistake": "x", "hint": "no checker says this"}]
    elif breakage == "an unknown assignment":
        entry["assignment"]["exercises"] = ["sft-ex99"]
    else:
        del data["02_sft"]
    monkeypatch.setattr(kit, "chapters", lambda: data)
    with pytest.raises(ValueError, match=message):
        kit.validate()


def test_syllabus_must_cover_every_chapter(monkeypatch):
    weeks = copy.deepcopy(kit.syllabi())
    weeks["6 weeks"][0]["chapters"].remove("00_introduction")
    monkeypatch.setattr(kit, "syllabi", lambda: weeks)
    with pytest.raises(ValueError, match="not each chapter once"):
        kit.validate()


def test_tables_read_the_measured_run_times():
    times = kit.runtimes()
    table = kit.runtime_table()
    assert len(table.splitlines()) == 2 + len(kit.chapter_stems())
    assert f"| {kit.title('01_data_formats')} | {times['notebook_seconds']['01_data_formats']} s |" in table
    assert kit.stages("00_introduction") == [] and kit.stages("05_ppo")[-2:] == ["ppo", "ppo-hack"]
    assert "`sft-contaminated`" in table  # chapter 9 reads every report-card row's stage
    section = kit.chapter_section("02_sft")
    assert "2.4 An SFT training loop from scratch" in section and "Suggested assignment" in section
    assert kit.syllabus_table("10 weeks").count("\n") == 1 + len(kit.syllabi()["10 weeks"])


def test_readme_table_is_generated_from_runtimes():
    readme = (kit.ROOT / "README.md").read_text()
    block = re.search(re.escape(kit.README_START) + ".*?" + re.escape(kit.README_END), readme, re.S)
    assert block and block.group(0) == kit.readme_block(), "run: python -m posttrain_utils.teaching.kit --write-readme"
    result = subprocess.run([sys.executable, "-m", "posttrain_utils.teaching.kit", "--check"],
                            capture_output=True, text=True, cwd=kit.ROOT)
    assert result.returncode == 0, result.stderr
    assert f"{len(kit.chapter_stems())} chapters" in result.stdout


def test_student_book_builds_with_warnings_as_errors(tmp_path):
    student.write(tmp_path)
    jupyter_book = Path(sys.executable).parent / "jupyter-book"  # the venv's, beside its python
    result = subprocess.run([str(jupyter_book), "build", str(tmp_path), "--builder", "html", "--all", "-W"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    pages = sorted(p.name for p in (tmp_path / "_build" / "html" / "chapters").glob("*.html"))
    assert pages == [f"{stem}.html" for stem in sorted(kit.chapter_stems())]
    assert "instructors.html" not in pages
    html = (tmp_path / "_build" / "html" / "chapters" / "02_sft.html").read_text()
    assert "Student edition" in html and "solution-start" not in html
