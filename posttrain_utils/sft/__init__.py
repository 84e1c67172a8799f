"""Chapter 2's method: supervised fine-tuning.

The learner's names are re-exported here (``from posttrain_utils import sft``), so a notebook
reads e.g. ``sft.sft_loss``. Modules:

    recipe    `sft_loss` and `mask_labels` from scratch, the `sft_config` recipe, `train` (the ``sft`` stage)
    filtered  the ``sft-filtered`` stage (`good_quality` chats only)
    stages    the stages of the graph
"""

from __future__ import annotations

from .recipe import DATA_FILES, IGNORE_INDEX, mask_labels, sft_config, sft_loss, train

__all__ = ["DATA_FILES", "IGNORE_INDEX", "mask_labels", "sft_config", "sft_loss", "train"]
