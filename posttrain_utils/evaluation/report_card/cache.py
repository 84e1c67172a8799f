"""The report card's cache: each row scored once per fingerprint, under ``<cache>/report/``.

Introduced in chapter 9 ("Evaluation"). Scoring a row takes 15-60 s on the cpu profile, so
`evaluate_row` keeps its figures, replies and per-question outcomes in a JSON file
(`cache_file`) keyed by `cache_key`: the fingerprints of the stages it reads, the recipe, the
held-out records and the source of everything `scoring` runs. The chapter only reads the cache.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from . import rows, scoring

def cache_key(row: rows.Row, profile) -> str:
    """What a cached row depends on: its stages' fingerprints, the recipe, the held-out records
    and the source of everything scoring runs (`scoring` and every module it imports)."""
    from ...runtime import graph, sources
    from ...runtime.paths import DATA_DIR

    h = hashlib.sha256(json.dumps([row.name, row.stage, row.best_of, row.member, rows.N_KL,
                                   rows.KL_MAX_NEW_TOKENS, profile.max_new_tokens,
                                   profile.seed]).encode())
    for stage in sorted(rows.row_stages(row, profile)):
        h.update(graph.fingerprint(stage, profile).encode())
    h.update(sources.digest([scoring.__name__], skip=graph.MACHINERY).encode())
    h.update((DATA_DIR / "eval_test.jsonl").read_bytes())
    return h.hexdigest()[:16]


def cache_file(row: rows.Row, profile) -> Path:
    """Where row `row` is cached: ``<cache>/report/<row name>.json``."""
    from ...runtime import graph

    slug = "".join(c if c.isalnum() else "-" for c in row.name.lower()).strip("-")
    return graph.cache_dir(profile) / "report" / f"{slug}.json"


def evaluate_row(name: str, profile=None) -> dict:
    """One row's figures, replies and per-question outcomes against SFT (cached; see the module
    docstring).

    Args:
        name: a row of `ROWS`, e.g. ``"DPO"``.
        profile: the run profile (default: the active one).

    Returns:
        ``{"row": name, "chapter", "stage", "figures": {column: value}, "replies": [{"text",
        "ended"}, ...] (one per record), "outcomes": [1 / 0.5 / 0 per fact or sum question]}``.
    """
    from ...runtime.profiles import resolve

    profile = resolve(profile)
    row = rows.find_row(name)
    path, key = cache_file(row, profile), cache_key(row, profile)
    if path.exists():
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached
    recs = rows.records()
    replies = scoring.row_replies(row, profile, recs)
    sft = None if row.name == rows.REFERENCE else evaluate_row(rows.REFERENCE, profile)["replies"]
    figures, outcomes = scoring.row_figures(row, replies, sft, recs, profile)
    result = {"key": key, "row": row.name, "chapter": row.chapter, "stage": row.stage,
              "figures": figures, "replies": replies, "outcomes": outcomes}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)
    return result


def is_cached(name: str, profile=None) -> bool:
    """Whether row `name` is in the cache with its current key (nothing is trained or scored)."""
    from ...runtime import graph
    from ...runtime.profiles import resolve

    profile = resolve(profile)
    row = rows.find_row(name)
    if not all(graph.is_cached(s, profile) for s in rows.row_stages(row, profile)):
        return False
    path = cache_file(row, profile)
    return path.exists() and json.loads(path.read_text()).get("key") == cache_key(row, profile)
