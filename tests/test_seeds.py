"""Lessons hold on every seed: each chapter's committed seeds file, and the recorder behind it."""

import json

import pytest

from posttrain_utils.runtime import notebook, seeds

CHAPTERS = sorted(p.stem for p in seeds.CHAPTERS_DIR.glob("*.ipynb"))  # chapters and the guide


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_lesson_held_at_seeds_0_1_2(chapter):
    path = seeds.seeds_file(chapter)
    assert path.exists(), f"run `make seeds CHAPTER={chapter[:2]}` and commit {path.name}"
    data = json.loads(path.read_text())
    assert sorted(map(int, data["seeds"])) == [0, 1, 2]
    for seed, run in data["seeds"].items():
        assert run["executed"], f"{chapter} raised at seed {seed}"
        assert run["conditions"], f"{chapter} at seed {seed} asserted nothing"
        failed = [name for name, ok in run["conditions"].items() if not ok]
        assert not failed, f"{chapter} at seed {seed}: {failed}"
    names = [set(run["conditions"]) for run in data["seeds"].values()]
    assert all(n == names[0] for n in names), "the seeds ran different Checks"
    text = (seeds.CHAPTERS_DIR / f"{chapter}.md").read_text()
    assert all(name in text for name in names[0]), "the seeds file is older than the chapter's Check"


def test_check_records_and_fails_loudly(tmp_path, monkeypatch, capsys):
    out = tmp_path / "figures.json"
    monkeypatch.setenv(seeds.FIGURES_ENV, str(out))
    notebook.check({"facts": 0.9}, {"facts >= 0.8": True})
    assert json.loads(out.read_text()) == {"figures": {"facts": 0.9}, "conditions": {"facts >= 0.8": True}}
    with pytest.raises(AssertionError, match="facts >= 0.95"):
        notebook.check({"facts": 0.9}, {"facts >= 0.95": False})
    assert json.loads(out.read_text())["conditions"] == {"facts >= 0.95": False}  # recorded before failing
    notebook.check({"facts": 0.9}, {"facts >= 0.95": False}, enforce=False)
    assert "FAIL  facts >= 0.95" in capsys.readouterr().out


def test_band_reads_spread_and_stability(tmp_path, monkeypatch):
    monkeypatch.setattr(seeds, "SEEDS_DIR", tmp_path)
    run = lambda v: {"figures": {"facts": v, "loss": 2.0}, "conditions": {"ok": True}, "executed": True}  # noqa: E731
    (tmp_path / f"{CHAPTERS[0]}.json").write_text(json.dumps({"seeds": {"0": run(0.9), "1": run(0.7), "2": run(0.8)}}))
    figures, conditions = seeds.band(CHAPTERS[0])
    assert figures.loc["facts", "spread"] == pytest.approx(0.2) and not figures.loc["facts", "stable"]
    assert figures.loc["loss", "stable"] and conditions.loc["ok"].all()
