"""Evaluation: generating and judging replies (chapter 0 on), and chapter 9's tools.

The learner's names are re-exported here (``from posttrain_utils import evaluation``), so a notebook
reads e.g. ``evaluation.generate``. Modules:

    generation     `generate`, `score`, `evaluate`, `knowledge_probe`
    judgements     what every Check rests on: rude, refusal, harmless, format, answer matching
    metric_cases   the judgements' test cases; metrics: exact match, ROUGE, BLEU
    rollouts       sampling and token log-probs shared by PPO, best-of-n and the report card
    winrate        win rates, bootstrap and Wilson intervals, agreement and kappa
    judges         rule, reward-model and model judges; perplexity; contamination
    report_card    every checkpoint scored on one held-out set (a package: rows, scoring, cache,
                   render, cli)
"""

from __future__ import annotations

from .generation import PHRASINGS, evaluate, generate, knowledge_probe, score
from .judgements import (FORUM_ARTIFACTS, answer_matches, is_harmless, is_refusal, is_rude,
                         is_well_formatted, question_text, reply_text, stated_answers)
from .metric_cases import METRIC_CASES, MetricCase, metric_case_table

__all__ = ["FORUM_ARTIFACTS", "METRIC_CASES", "MetricCase", "PHRASINGS", "answer_matches",
           "evaluate", "generate", "is_harmless", "is_refusal", "is_rude", "is_well_formatted",
           "knowledge_probe", "metric_case_table", "question_text", "reply_text", "score",
           "stated_answers"]
