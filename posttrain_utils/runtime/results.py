"""The figures a stage measures while it trains, kept in ``results.json`` in its run folder.

Introduced in chapter 6: the ``dpo`` stage judges six methods as it trains them, and the chapter
reads their table instead of training in the page. Chapters 7 and 8's stages do the same.
``read_results(checkpoints.run_dir("dpo", profile))`` reads one back.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS_FILE = "results.json"


def write_results(output_dir, results: dict) -> Path:
    """Write `results` to ``results.json`` in `output_dir` (atomically) and return its path."""
    path = Path(output_dir) / RESULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, default=float))
    tmp.replace(path)
    return path


def read_results(output_dir) -> dict:
    """The ``results.json`` a stage wrote to `output_dir` (see `write_results`)."""
    path = Path(output_dir) / RESULTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: train the stage first (checkpoints.get)")
    return json.loads(path.read_text())
