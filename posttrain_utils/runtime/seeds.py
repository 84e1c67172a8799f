"""Lessons that hold on every seed: record a chapter's Check figures, and run it at seeds 0, 1, 2.

Introduced in chapter 0. Every chapter's Check cell calls `notebook.check(figures, conditions)`,
which prints the figures and asserts the conditions; when ``$POSTTRAIN_FIGURES`` names a file it
also writes both there (`record`). ``make seeds CHAPTER=03`` (``python -m
posttrain_utils.runtime.seeds 03``) executes the chapter once per seed with ``POSTTRAIN_SEED`` set,
collects those files into ``chapters/seeds/03_peft.json``, and fails if any condition failed at
any seed. Each chapter shows its band from that committed file with `band`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .paths import REPO_ROOT

FIGURES_ENV = "POSTTRAIN_FIGURES"
CHAPTERS_DIR = REPO_ROOT / "chapters"
SEEDS_DIR = CHAPTERS_DIR / "seeds"
SEEDS = (0, 1, 2)


def record(figures: dict, conditions: dict) -> Path | None:
    """Write a Check's figures and conditions to ``$POSTTRAIN_FIGURES`` (if set); returns the file."""
    target = os.environ.get(FIGURES_ENV)
    if not target:
        return None
    payload = {"figures": {k: float(v) for k, v in figures.items()},
               "conditions": {k: bool(v) for k, v in conditions.items()}}
    Path(target).write_text(json.dumps(payload, indent=1, sort_keys=True))
    return Path(target)


def seeds_file(chapter: str) -> Path:
    """``chapters/seeds/<stem>.json`` for a chapter number (``"03"``) or stem (``"03_peft"``,
    ``"instructors"``)."""
    return SEEDS_DIR / f"{_notebook(chapter).stem}.json"


def _notebook(chapter: str) -> Path:
    if (CHAPTERS_DIR / f"{chapter}.ipynb").is_file():  # an exact stem, e.g. "instructors"
        return CHAPTERS_DIR / f"{chapter}.ipynb"
    matches = sorted(CHAPTERS_DIR.glob(f"{chapter.split('_')[0]}_*.ipynb"))
    if len(matches) != 1:
        raise FileNotFoundError(f"no single chapter notebook for {chapter!r} in {CHAPTERS_DIR}")
    return matches[0]


def band(chapter: str, tolerance: float = 0.05):
    """The committed 3-seed band of a chapter's Check as two `pandas.DataFrame`s.

    Args:
        chapter: chapter number or stem.
        tolerance: a figure is *seed-stable* when its spread is at most this much (absolute, or
            relative for figures larger than 1).

    Returns:
        `(figures, conditions)`: figures by seed with min, max, spread (max - min) and stable;
        and each asserted condition by seed (True = held). Both empty when there is no seeds file.
    """
    import pandas as pd

    if not seeds_file(chapter).exists():
        print(f"no seeds file yet: run `make seeds CHAPTER={chapter.split('_')[0]}`")
        return pd.DataFrame(), pd.DataFrame()
    data = json.loads(seeds_file(chapter).read_text())
    runs = {f"seed {s}": data["seeds"][str(s)] for s in sorted(map(int, data["seeds"]))}
    figures = pd.DataFrame({k: v["figures"] for k, v in runs.items()})
    figures["min"], figures["max"] = figures.min(axis=1), figures.max(axis=1)
    figures["spread"] = figures["max"] - figures["min"]
    figures["stable"] = figures["spread"] <= tolerance * figures["max"].abs().clip(lower=1)
    conditions = pd.DataFrame({k: v["conditions"] for k, v in runs.items()})
    return figures.round(3), conditions


def _run_one(notebook: Path, seed: int, workdir: Path, timeout: int) -> dict:
    out = workdir / f"seed{seed}.json"
    env = dict(os.environ, POSTTRAIN_SEED=str(seed), **{FIGURES_ENV: str(out)})
    cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", str(notebook),
           "--output-dir", str(workdir), "--output", f"{notebook.stem}-seed{seed}",
           f"--ExecutePreprocessor.timeout={timeout}"]
    proc = subprocess.run(cmd, env=env, cwd=notebook.parent, capture_output=True, text=True)
    if not out.exists():  # the notebook stopped before its Check (an error, or a failed exercise)
        tail = (proc.stderr or proc.stdout)[-3000:]
        raise RuntimeError(f"{notebook.name} at seed {seed} did not reach its Check:\n{tail}")
    result = json.loads(out.read_text())
    result["executed"] = proc.returncode == 0
    return result


def run(chapter: str, seeds=SEEDS, jobs: int = 2, timeout: int = 1800) -> Path:
    """Execute `chapter` once per seed (`jobs` at a time) and write its seeds file.

    Raises:
        RuntimeError: if a run did not reach its Check, or any condition failed at any seed (the
            seeds file is still written, so the failing figures can be read).
    """
    notebook = _notebook(chapter)
    with tempfile.TemporaryDirectory(prefix="seeds-") as tmp:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {s: pool.submit(_run_one, notebook, s, Path(tmp), timeout) for s in seeds}
            results = {s: f.result() for s, f in futures.items()}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                            text=True).stdout.strip()
    SEEDS_DIR.mkdir(exist_ok=True)
    target = seeds_file(chapter)
    target.write_text(json.dumps({"chapter": notebook.stem, "profile": os.environ.get("POSTTRAIN_PROFILE", "cpu"),
                                  "date": datetime.date.today().isoformat(), "commit": commit,
                                  "seeds": {str(s): results[s] for s in seeds}}, indent=1, sort_keys=True) + "\n")
    failed = [f"seed {s}: {name}" for s, r in results.items() for name, ok in r["conditions"].items() if not ok]
    failed += [f"seed {s}: the notebook raised after its Check" for s, r in results.items() if not r["executed"]]
    if failed:
        raise RuntimeError(f"{notebook.stem}: lessons that do not hold on every seed: {failed} (see {target})")
    return target


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Run a chapter at several seeds and write chapters/seeds/<chapter>.json.")
    parser.add_argument("chapter", help="chapter number or stem, e.g. 03 or 03_peft")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="seeds to run (default 0 1 2)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks run at the same time (default 2)")
    args = parser.parse_args(argv)
    try:
        print(f"wrote {run(args.chapter, args.seeds, args.jobs)}")
    except (RuntimeError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
