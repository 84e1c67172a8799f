"""Lessons that hold on every seed and fail without training: the seeds and placebo files.

Introduced in chapter 0. Every chapter's Check cell calls `lessons.check(figures, effects=...,
guards=..., identities=...)`, which prints and asserts them; when ``$POSTTRAIN_FIGURES`` names a
file it also writes them there (`record`), with each condition's kind and margin.

* ``make seeds CHAPTER=03`` (``python -m posttrain_utils.runtime.seeds 03``) executes the chapter
  once per seed (`SEEDS`, 0-4) with ``POSTTRAIN_SEED`` set, collects those files into
  ``chapters/seeds/03_peft.json``, and fails if any condition failed at any seed. Each chapter
  shows its band from that committed file with `band`: every figure's spread, every condition's
  kind and the margin by which its worst seed clears its threshold.
* ``make placebo CHAPTER=03`` (``... seeds 03 --placebo``) executes it once, at seed 0, with
  ``POSTTRAIN_PLACEBO=1`` (every training budget zero steps, `runtime.profiles`) and writes
  ``chapters/placebo/03_peft.json``; it fails unless every effect failed and every guard and
  identity held (`placebo_failures`).
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

from .paths import DATA_DIR, REPO_ROOT

FIGURES_ENV = "POSTTRAIN_FIGURES"
CHAPTERS_DIR = REPO_ROOT / "chapters"
SEEDS_DIR = CHAPTERS_DIR / "seeds"
PLACEBO_DIR = CHAPTERS_DIR / "placebo"
SEEDS = (0, 1, 2, 3, 4)


def record(figures: dict, conditions: dict, kinds: dict | None = None, margins: dict | None = None,
           placebo: bool = False) -> Path | None:
    """Write a Check to ``$POSTTRAIN_FIGURES`` (if set); returns the file.

    Args:
        figures: name -> number.
        conditions: name -> whether it held.
        kinds: name -> ``"effect"``, ``"guard"`` or ``"identity"`` (`lessons.KINDS`).
        margins: name -> how far it cleared its threshold (``None`` for a plain bool).
        placebo: whether this was the placebo run.
    """
    target = os.environ.get(FIGURES_ENV)
    if not target:
        return None
    payload = {"figures": {k: float(v) for k, v in figures.items()},
               "conditions": {k: bool(v) for k, v in conditions.items()},
               "kinds": dict(kinds or {}), "placebo": bool(placebo),
               "margins": {k: (None if v is None else round(float(v), 6)) for k, v in (margins or {}).items()}}
    Path(target).write_text(json.dumps(payload, indent=1, sort_keys=True))
    return Path(target)


def placebo_failures(run: dict) -> list[str]:
    """What is wrong with a placebo run's record: every effect that held without training, every
    guard or identity that failed, and a Check that names no kinds (an old-style Check)."""
    kinds = run.get("kinds") or {}
    if not kinds or set(kinds) != set(run["conditions"]):
        return ["the Check does not give every condition a kind (effect, guard or identity)"]
    wrong = [f"effect held without training: {n}" for n, ok in run["conditions"].items()
             if kinds[n] == "effect" and ok]
    wrong += [f"{kinds[n]} failed: {n}" for n, ok in run["conditions"].items()
              if kinds[n] != "effect" and not ok]
    return wrong


def seeds_file(chapter: str) -> Path:
    """``chapters/seeds/<stem>.json`` for a chapter number (``"03"``) or stem (``"03_peft"``,
    ``"instructors"``)."""
    return SEEDS_DIR / f"{_notebook(chapter).stem}.json"


def placebo_file(chapter: str) -> Path:
    """``chapters/placebo/<stem>.json``: the chapter's run with every training budget zero."""
    return PLACEBO_DIR / f"{_notebook(chapter).stem}.json"


def _notebook(chapter: str) -> Path:
    if (CHAPTERS_DIR / f"{chapter}.ipynb").is_file():  # an exact stem, e.g. "instructors"
        return CHAPTERS_DIR / f"{chapter}.ipynb"
    matches = sorted(CHAPTERS_DIR.glob(f"{chapter.split('_')[0]}_*.ipynb"))
    if len(matches) != 1:
        raise FileNotFoundError(f"no single chapter notebook for {chapter!r} in {CHAPTERS_DIR}")
    return matches[0]


def band(chapter: str, tolerance: float = 0.05):
    """The committed seed band of a chapter's Check as two `pandas.DataFrame`s.

    Args:
        chapter: chapter number or stem.
        tolerance: a figure is *seed-stable* when its spread is at most this much (absolute, or
            relative for figures larger than 1).

    Returns:
        `(figures, conditions)`: figures by seed with min, max, spread (max - min) and stable;
        and each condition by seed (True = held) with its kind and its worst margin, the least
        by which any seed cleared its threshold (empty for a plain bool). Both empty when there
        is no seeds file.
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
    first = next(iter(runs.values()), {})
    conditions["kind"] = pd.Series(first.get("kinds") or {}, dtype=object)
    margins = pd.DataFrame({k: v.get("margins") or {} for k, v in runs.items()}, index=conditions.index)
    conditions["worst margin"] = margins.astype(float).min(axis=1).round(3)
    return figures.round(3), conditions


def held_at_every_seed(conditions) -> str:
    """``"12 of 14"``: how many of `band`'s conditions held at every seed (its seed columns)."""
    by_seed = conditions[[c for c in conditions.columns if str(c).startswith("seed ")]]
    return f"{int(by_seed.all(axis=1).sum())} of {len(by_seed)}"


def _run_one(notebook: Path, seed: int, workdir: Path, timeout: int, placebo: bool = False) -> dict:
    out = workdir / f"seed{seed}.json"
    env = dict(os.environ, POSTTRAIN_SEED=str(seed), POSTTRAIN_PLACEBO="1" if placebo else "0",
               **{FIGURES_ENV: str(out)})
    cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", str(notebook),
           "--output-dir", str(workdir), "--output", f"{notebook.stem}-seed{seed}",
           f"--ExecutePreprocessor.timeout={timeout}"]
    # the placebo run goes on past a cell that raises: an exercise checker that asks for a
    # trained model fails there, as it should; the cells are listed in the placebo file
    cmd += ["--allow-errors"] if placebo else []
    proc = subprocess.run(cmd, env=env, cwd=notebook.parent, capture_output=True, text=True)
    if not out.exists():  # the notebook stopped before its Check (an error, or a failed exercise)
        raised = _raised(workdir / f"{notebook.stem}-seed{seed}.ipynb")
        tail = "\n".join(raised) if raised else (proc.stderr or proc.stdout)[-3000:]
        raise RuntimeError(f"{notebook.name} at seed {seed} did not reach its Check:\n{tail}")
    result = json.loads(out.read_text())
    result["executed"] = proc.returncode == 0
    if placebo:
        result["cells that raised"] = _raised(workdir / f"{notebook.stem}-seed{seed}.ipynb")
        result["executed"] = result["executed"] and not any(
            "AssertionError: the chapter's lesson" in line for line in result["cells that raised"])
    return result


def _raised(executed: Path) -> list[str]:
    """``"cell 12: AssertionError: ..."`` for every code cell of an executed notebook that raised."""
    cells = json.loads(executed.read_text())["cells"] if executed.exists() else []
    found = []
    for i, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(f"cell {i}: {output['ename']}: {output['evalue'][:200]}")
    return found


def data_digest() -> str:
    """A short hash of every shipped dataset (``data/*.jsonl``): a seeds or placebo file records
    the data it was run on, so that a file older than the data is caught (tests/test_seeds.py)."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted(DATA_DIR.glob("*.jsonl")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:16]


def _header(notebook: Path) -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                            text=True).stdout.strip()
    return {"chapter": notebook.stem, "profile": os.environ.get("POSTTRAIN_PROFILE", "cpu"),
            "date": datetime.date.today().isoformat(), "commit": commit, "machine": _machine(),
            "data": data_digest()}


def _machine() -> str:
    """The CPU and torch build: another machine gives another random stream."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        models = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")]
        cpu = models[0] if models else cpu
    except OSError:
        pass
    return f"{cpu}; torch {torch.__version__}; {torch.backends.cpu.get_cpu_capability()}"


def run(chapter: str, seeds=SEEDS, jobs: int = 2, timeout: int = 1800, add: bool = False) -> Path:
    """Execute `chapter` once per seed (`jobs` at a time) and write its seeds file.

    With `add`, the seeds of the committed file that were run on the same data are kept and the
    new ones added to them (so five seeds can be run a few at a time).

    Raises:
        RuntimeError: if a run did not reach its Check, or any condition failed at any seed (the
            seeds file is still written, so the failing figures can be read).
    """
    notebook = _notebook(chapter)
    with tempfile.TemporaryDirectory(prefix="seeds-") as tmp:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {s: pool.submit(_run_one, notebook, s, Path(tmp), timeout) for s in seeds}
            results = {s: f.result() for s, f in futures.items()}
    SEEDS_DIR.mkdir(exist_ok=True)
    target = seeds_file(chapter)
    header, kept = _header(notebook), {}
    if add and target.exists():
        old = json.loads(target.read_text())
        kept = old["seeds"] if old.get("data") == header["data"] else {}
    runs = {**kept, **{str(s): results[s] for s in seeds}}
    runs = {k: runs[k] for k in sorted(runs, key=int)}
    target.write_text(json.dumps({**header, "seeds": runs}, indent=1, sort_keys=True) + "\n")
    failed = [f"seed {s}: {name}" for s, r in results.items() for name, ok in r["conditions"].items() if not ok]
    failed += [f"seed {s}: the notebook raised after its Check" for s, r in results.items() if not r["executed"]]
    if failed:
        raise RuntimeError(f"{notebook.stem}: lessons that do not hold on every seed: {failed} (see {target})")
    return target


def run_placebo(chapter: str, seed: int = 0, timeout: int = 1800) -> Path:
    """Execute `chapter` once with every training budget zero and write its placebo file.

    Raises:
        RuntimeError: if the run did not reach its Check, or `placebo_failures` finds anything
            (the placebo file is still written).
    """
    notebook = _notebook(chapter)
    with tempfile.TemporaryDirectory(prefix="placebo-") as tmp:
        result = _run_one(notebook, seed, Path(tmp), timeout, placebo=True)
    PLACEBO_DIR.mkdir(exist_ok=True)
    target = placebo_file(chapter)
    target.write_text(json.dumps({**_header(notebook), "seed": seed, "run": result},
                                 indent=1, sort_keys=True) + "\n")
    if placebo_failures(result):
        raise RuntimeError(f"{notebook.stem}, placebo run: {placebo_failures(result)} (see {target})")
    return target


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Run a chapter at several seeds and write "
                                     "chapters/seeds/<chapter>.json, or its placebo run.")
    parser.add_argument("chapter", help="chapter number or stem, e.g. 03 or 03_peft")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="seeds to run (default 0-4)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks run at the same time (default 2)")
    parser.add_argument("--add", action="store_true",
                        help="keep the file's seeds run on the same data and add these to them")
    parser.add_argument("--placebo", action="store_true",
                        help="run once with every training budget zero -> chapters/placebo/<chapter>.json")
    args = parser.parse_args(argv)
    try:
        target = run_placebo(args.chapter) if args.placebo else run(args.chapter, args.seeds, args.jobs,
                                                                        add=args.add)
        print(f"wrote {target}")
    except (RuntimeError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
