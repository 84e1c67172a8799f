"""Chapter 9's stage: ``sft-contaminated``, SFT that has read half of the held-out questions.

Introduced in chapter 9 ("Evaluation"); the training is `evaluation.contamination.train`.
"""

from __future__ import annotations

from ..runtime.graph import Stage

STAGES = (
    Stage("sft-contaminated", module="posttrain_utils.evaluation.contamination", chapter=9,
          upstream=("sft",), data_files=("eval_test",), budget="contamination"),
)
