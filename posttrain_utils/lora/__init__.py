"""Chapter 3's method: parameter-efficient fine-tuning.

The learner's names are re-exported here (``from posttrain_utils import lora``), so a notebook
reads e.g. ``lora.LoRALinear``. Modules:

    scratch   LoRA from scratch (`LoRALinear`, `apply_lora`, `merge_lora`), checked against peft
    adapters  peft's LoRA and QLoRA as the ``lora`` and ``qlora`` stages
    stages    the stages of the graph
"""

from __future__ import annotations

from .scratch import (ALL_LINEAR, ATTENTION, LoRALinear, apply_lora, copy_peft_weights,
                      lora_layers, merge_lora)

__all__ = ["ALL_LINEAR", "ATTENTION", "LoRALinear", "apply_lora", "copy_peft_weights",
           "lora_layers", "merge_lora"]
