"""``python -m posttrain_utils.evaluation.report_card sft reward``: score the rows of these stages.

Introduced in chapter 9 ("Evaluation"). `make test` runs it after each group of stages trains, so
that chapter 9 only reads the cache.
"""

from __future__ import annotations

from . import cache, rows

def main(argv=None) -> None:
    """``python -m posttrain_utils.evaluation.report_card sft reward``: score (or find) the report-card rows
    of these stages now (`rows_for`), so the chapter only reads. `make test` runs it after each
    group of stages."""
    import argparse
    import time

    from ...runtime import graph, profiles

    parser = argparse.ArgumentParser(description="Score the report-card rows of the named stages "
                                                 "into the cache, unless they are cached already.")
    parser.add_argument("stages", nargs="+", choices=sorted(graph.all_stages()),
                        help="stage names, e.g. sft reward")
    args = parser.parse_args(argv)
    profile = profiles.activate()
    for name in rows.rows_for(args.stages):
        start = time.time()
        status = "cached" if cache.is_cached(name, profile) else "scored"
        cache.evaluate_row(name, profile)
        print(f"report card, {name}: {status} in {time.time() - start:.0f} s", flush=True)
