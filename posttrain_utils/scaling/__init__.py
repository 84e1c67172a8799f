"""The appendix's tools (chapter 11): scaling up with accelerate.

The learner's names are re-exported here (``from posttrain_utils import scaling``), so a notebook
reads e.g. ``scaling.per_gpu_bytes``. Modules:

    memory     the memory arithmetic of DDP, ZeRO and FSDP, checked against tensors
    launching  launching the training scripts with python, torchrun or accelerate
    train      the training scripts (``python -m posttrain_utils.scaling.train sft ...``)
"""

from __future__ import annotations

from .memory import (GIB, PRECISIONS, STRATEGIES, bytes_per_param, main, measure, per_gpu_bytes,
                     state_bytes, table)

__all__ = ["GIB", "PRECISIONS", "STRATEGIES", "bytes_per_param", "main", "measure",
           "per_gpu_bytes", "state_bytes", "table"]
