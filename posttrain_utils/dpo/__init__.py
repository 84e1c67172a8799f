"""Chapter 6's method: DPO and its family.

The learner's names are re-exported here (``from posttrain_utils import dpo``), so a notebook
reads e.g. ``dpo.dpo_loss``. Modules:

    losses   the DPO, IPO, SimPO and ORPO losses from scratch, `sequence_logps`, `dpo_config`
    family   six methods with TRL's trainers on one budget (the ``dpo`` stage), `judge`
    sweep    beta, over-optimisation, online DPO and best-of-n (the ``dpo-sweep`` stage)
    stages   the stages of the graph, and `member_dir` for each saved method
"""

from __future__ import annotations

from .losses import (PreferenceLoss, dpo_config, dpo_loss, ipo_loss, orpo_odds_ratio_loss,
                     sequence_logps, simpo_loss)

__all__ = ["PreferenceLoss", "dpo_config", "dpo_loss", "ipo_loss", "orpo_odds_ratio_loss",
           "sequence_logps", "simpo_loss"]
