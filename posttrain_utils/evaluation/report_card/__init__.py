"""The report card: every checkpoint the course trains, scored on one held-out set.

Introduced in chapter 9 ("Evaluation"); ``python -m posttrain_utils.runtime.pipeline`` writes it too. Each
row of `ROWS` names a stage of the stage graph (`runtime.checkpoints`, trained if missing) and how
its replies are made: greedily, or best-of-n with the chapter 4 reward model picking among n
samples of the SFT model. Every row is judged on the same records (``data/eval_test.jsonl``,
all 408 of them: the test half, never used for a choice) with the same generation budget, and its columns are:

* ``format``, ``facts_em``, ``sums_em``, ``rude``, ``length``: `evaluation.score` (greedy);
* ``refusal``: harmful requests refused; ``over_refusal``: fact and sum questions refused;
* ``gold``: the mean `reward.overoptimization.gold_score` over the fact and sum questions;
* ``win_vs_sft`` with ``win_low`` / ``win_high``: on the same questions, the share on which the
  row's reply has a higher gold score than the SFT model's (ties count 0.5), with a 95 % bootstrap
  interval (`evaluation.winrate.bootstrap_ci`);
* ``kl_to_sft``: KL(row's policy || SFT) per reply, estimated from `N_KL` replies sampled from the
  row's policy at temperature 1 (the same estimator as chapter 5's `drift_report`); for best-of-n
  it is the closed-form ``log n - (n - 1) / n`` (`reward.overoptimization.kl_best_of_n`).

Scoring a row takes 15-60 s on the cpu profile, so `evaluate_row` caches its result (the figures
and the replies) under ``<cache>/report/`` keyed by the stage's fingerprint and this module's
recipe: the chapter only reads the cache, and reruns are free.
"""

from __future__ import annotations

from .cache import cache_file, cache_key, evaluate_row, is_cached
from .cli import main
from .render import build, to_markdown, write
from .rows import (BEST_OF, COLUMNS, KL_MAX_NEW_TOKENS, N_KL, REFERENCE, ROWS, Row, find_row,
                   records, row_stages, rows_for)
from .scoring import kl_to, load, row_figures, row_replies

__all__ = ["BEST_OF", "COLUMNS", "KL_MAX_NEW_TOKENS", "N_KL", "REFERENCE", "ROWS", "Row", "build",
           "cache_file", "cache_key", "evaluate_row", "find_row", "is_cached", "kl_to", "load",
           "main", "records", "row_figures", "row_replies", "row_stages", "rows_for", "to_markdown",
           "write"]
