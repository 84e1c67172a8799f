"""The whole course as one command: every stage of the stage graph, then the report card.

Introduced in chapter 9. ``python -m posttrain_utils.runtime.pipeline`` (or ``make pipeline``) trains every
stage of `runtime.checkpoints.STAGES` that is not cached yet, upstream stages first, and prints one
line per stage: cached, or trained in how many seconds, and its folder. It then scores every row of
the report card (`posttrain_utils.evaluation.report_card`) and writes ``reports/report_card.md`` and
``reports/report_card.png``. A cached stage or row costs nothing, so a rerun after a finished run
takes seconds.

``--only dpo`` runs only the ``dpo`` stage and the stages it is trained from, then writes the rows
whose stages are all cached; ``--force`` retrains the selected stages (never their upstream stages
unless they are selected too) and rescores their rows. `run` does the same from Python and returns
the timings.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from ..evaluation.report_card import cache as card_cache, render as card_render, rows as card_rows
from . import checkpoints, profiles
from .profiles import Profile


def _upstream(name: str, profile: Profile) -> tuple[str, ...]:
    return checkpoints.resolve_upstream(checkpoints.STAGES[name], profile)


def _trained(name: str, profile: Profile) -> bool:
    """Whether `profile` trains stage `name`: not ``base``, and ``world-base`` only in gpu."""
    if checkpoints.STAGES[name].module is None:
        return False
    return name != checkpoints.WORLD_BASE or checkpoints.base_stage(profile) != "base"


def order(stages=None, profile: Profile | None = None) -> list[str]:
    """The stages to train, each after every stage it is trained from.

    Args:
        stages: stage names to run (their upstream stages are added); ``None`` for every stage.
        profile: the run profile (default: the active one); it decides whether ``world-base`` is
            a stage (`checkpoints.base_stage`).

    Returns:
        Stage names in dependency order (ties in `checkpoints.STAGES` order), without ``base``
        (the profile's base model needs no training).

    Raises:
        ValueError: if a name is not a stage, or is ``world-base`` in a profile without it.
    """
    profile = profiles.resolve(profile)
    wanted = list(checkpoints.STAGES) if stages is None else list(stages)
    for name in wanted:
        if name not in checkpoints.STAGES:
            raise ValueError(f"unknown stage {name!r}; stages: {sorted(checkpoints.STAGES)}")
        if stages is not None and checkpoints.STAGES[name].module is not None \
                and not _trained(name, profile):
            raise ValueError(f"profile {profile.name!r} has no {name!r} stage: its base model has "
                             "read the tiny world already")
    done: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise ValueError(f"the stage graph has a cycle: {' -> '.join((*path, name))}")
        if name in done:
            return
        for up in _upstream(name, profile):
            visit(up, (*path, name))
        done.append(name)

    for name in wanted:
        if _trained(name, profile):
            visit(name, ())
    return [name for name in done if _trained(name, profile)]


def _available(name: str, profile: Profile) -> bool:
    return name in checkpoints.STAGES and checkpoints.is_cached(name, profile)


def _forget_stage(name: str, profile: Profile) -> None:
    """Delete stage `name`'s cached folder (under its lock): `checkpoints.path` retrains it."""
    from filelock import FileLock

    target = checkpoints.cache_dir(profile) / name
    with FileLock(str(target) + ".lock"):
        shutil.rmtree(target, ignore_errors=True)


def _train_stages(names: list[str], profile: Profile, forced: set[str]) -> dict:
    from tqdm.auto import tqdm

    timings = {}
    bar = tqdm(names, unit="stage")
    for i, name in enumerate(bar, start=1):
        bar.set_description(f"stage {i}/{len(names)}: {name}")
        if name in forced:
            _forget_stage(name, profile)
        start, cached = time.perf_counter(), checkpoints.is_cached(name, profile)
        folder = checkpoints.path(name, profile)
        seconds = time.perf_counter() - start
        status = "cached" if cached else "trained"
        timings[name] = {"status": status, "seconds": seconds, "folder": str(folder)}
        said = "cached" if cached else f"trained in {seconds:.0f} s"
        bar.write(f"{name}: {said} ({folder})")
    bar.close()
    return timings


def _score_rows(rows: list[card_rows.Row], profile: Profile, forced: set[str]) -> dict:
    from tqdm.auto import tqdm

    # the reference row first: every other row compares its replies with it
    todo = sorted(rows, key=lambda row: row.name != card_rows.REFERENCE)
    timings = {}
    bar = tqdm(todo, unit="row")
    for i, row in enumerate(bar, start=1):
        bar.set_description(f"row {i}/{len(todo)}: {row.name}")
        if row.stage in forced:
            card_cache.cache_file(row, profile).unlink(missing_ok=True)
        start, cached = time.perf_counter(), card_cache.is_cached(row.name, profile)
        card_cache.evaluate_row(row.name, profile)
        seconds = time.perf_counter() - start
        timings[row.name] = {"status": "cached" if cached else "scored", "seconds": seconds}
        bar.write(f"{row.name}: {'cached' if cached else f'scored in {seconds:.0f} s'}")
    bar.close()
    return timings


def run(profile: Profile | None = None, only=None, force: bool = False,
        out: str | Path = "reports", report: bool = True) -> dict:
    """Train the stages (cached ones are skipped), then score and write the report card.

    Args:
        profile: the run profile (default: the active one, `profiles.current()`).
        only: stage names to run with their upstream stages; ``None`` for every stage. With `only`,
            the card has the rows whose stages are all cached, and is skipped when there are none.
        force: retrain the selected stages (`only`, or every stage) even if cached, and rescore
            their report-card rows; upstream stages that are not selected are left alone.
        out: the folder ``report_card.md`` and ``report_card.png`` are written to.
        report: score the rows and write the card (``False``: train the stages only).

    Returns:
        ``{"profile", "seed", "stages": {name: {"status": "cached" | "trained", "seconds",
        "folder"}}, "rows": {row: {"status": "cached" | "scored", "seconds"}}, "report": (md, png)
        paths or ``None``, "markdown": the card's table or ``None``, "total_seconds"}``.
    """
    profile = profiles.resolve(profile)
    began = time.perf_counter()
    names = order(only, profile)
    selected = set(names) if only is None else set(only)
    forced = selected if force else set()
    print(f"pipeline: profile {profile.name}, seed {profile.seed}, {len(names)} stage(s), "
          f"cache {checkpoints.cache_dir(profile)}")
    result = {"profile": profile.name, "seed": profile.seed,
              "stages": _train_stages(names, profile, forced), "rows": {}, "report": None,
              "markdown": None}
    if report:
        rows = [row for row in card_rows.ROWS
                if all(_available(s, profile) for s in card_rows.row_stages(row, profile))]
        skipped = [row.name for row in card_rows.ROWS if row not in rows]
        if skipped:
            print(f"report card: skipping rows whose stages are not available: {skipped}")
        if rows:
            result["rows"] = _score_rows(rows, profile, forced)
            card = card_render.build(profile, rows=[row.name for row in rows], progress=False)
            result["report"] = card_render.write(card, out)
            result["markdown"] = card_render.to_markdown(card)
            print(f"\n{result['markdown']}\nwritten: {result['report'][0]}, {result['report'][1]}")
        else:
            print("report card: no row has all its stages available; skipped")
    result["total_seconds"] = time.perf_counter() - began
    print(f"total wall time: {result['total_seconds']:.1f} s")
    return result


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m posttrain_utils.runtime.pipeline``."""
    p = argparse.ArgumentParser(
        prog="python -m posttrain_utils.runtime.pipeline",
        description="Train every stage of the course's stage graph in dependency order (cached "
                    "stages are skipped), then score the report card and write "
                    "OUT/report_card.md and OUT/report_card.png.")
    p.add_argument("--profile", choices=sorted(profiles.PROFILES), default=None,
                   help="run profile (default: $POSTTRAIN_PROFILE, else gpu if CUDA is available, "
                        "else cpu)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the run and of its cache folder (default: $POSTTRAIN_SEED, "
                        "else 0)")
    p.add_argument("--only", action="append", choices=sorted(checkpoints.STAGES), metavar="STAGE",
                   help="run only this stage and its upstream stages (repeatable); the card then "
                        "has the rows whose stages are all cached. Stages: "
                        + ", ".join(sorted(checkpoints.STAGES)))
    p.add_argument("--force", action="store_true",
                   help="retrain the selected stages even if cached (not their upstream stages "
                        "unless selected too) and rescore their report-card rows")
    p.add_argument("--out", default="reports",
                   help="folder for report_card.md and report_card.png (default: reports)")
    p.add_argument("--no-report", dest="report", action="store_false",
                   help="train the stages only; do not score or write the report card")
    return p


def main(argv=None) -> dict:
    """``python -m posttrain_utils.runtime.pipeline [--profile cpu] [--seed 1] [--only dpo] ...``."""
    cli = parser()
    args = cli.parse_args(argv)
    try:
        profile = profiles.get_profile(args.profile)
        order(args.only, profile)  # a bad --only fails before anything is activated or trained
    except ValueError as err:
        cli.error(str(err))
    profile = profiles.activate(args.profile, args.seed)
    return run(profile, only=args.only, force=args.force, out=args.out, report=args.report)


if __name__ == "__main__":
    main()
