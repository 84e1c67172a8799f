"""Chapter 4's method: reward modelling, and what optimising against a reward model does.

The learner's names are re-exported here (``from posttrain_utils import reward``), so a notebook
reads e.g. ``reward.bradley_terry_loss``. Modules:

    bradley_terry     the Bradley-Terry loss, the preference data, `reward_config`, `train`
                      (the ``reward`` stage), `score`, `pair_accuracy`, `calibration_bins`
    overoptimization  the gold score, best-of-n and its KL, and chapter 5's `drift_report`
    stages            the stages of the graph
"""

from __future__ import annotations

from .bradley_terry import (ALL_ASPECTS, ASPECTS, DATA_FILES, HELDOUT_FILE, bradley_terry_loss,
                            calibration_bins, pair_accuracy, preference_dataset,
                            preference_records, reward_config, score, train)

__all__ = ["ALL_ASPECTS", "ASPECTS", "DATA_FILES", "HELDOUT_FILE", "bradley_terry_loss",
           "calibration_bins", "pair_accuracy", "preference_dataset", "preference_records",
           "reward_config", "score", "train"]
