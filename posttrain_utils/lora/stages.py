"""Chapter 3's stages: ``lora`` and ``qlora``, adapters trained on the SFT data and merged.

Introduced in chapter 3 ("Parameter-efficient fine-tuning"); the training is `lora.adapters`.
"""

from __future__ import annotations

from ..runtime.graph import Stage

STAGES = (
    Stage("lora", module="posttrain_utils.lora.adapters", chapter=3, upstream=("base",),
          train="train_lora", data_files=("sft_train",), budget="peft"),
    Stage("qlora", module="posttrain_utils.lora.adapters", chapter=3, upstream=("base",),
          train="train_qlora", data_files=("sft_train",), budget="peft"),
)
