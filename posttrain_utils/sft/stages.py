"""Chapter 2's stages: ``sft`` (`sft.recipe.train`) and ``sft-filtered`` (`sft.filtered`).

Introduced in chapter 2 ("Supervised fine-tuning"); `runtime.graph` collects `STAGES`, and
``checkpoints.get("sft", profile)`` trains the stage on first use.
"""

from __future__ import annotations

from ..runtime.graph import Stage

STAGES = (
    Stage("sft", module="posttrain_utils.sft.recipe", chapter=2, upstream=("base",),
          data_files=("sft_train", "sft_heldout"), budget="sft"),
    Stage("sft-filtered", module="posttrain_utils.sft.filtered", chapter=2, upstream=("base",),
          train="train_filtered", data_files=("sft_train", "sft_heldout"), budget="sft"),
)
