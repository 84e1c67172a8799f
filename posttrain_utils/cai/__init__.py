"""Chapter 7's method: Constitutional AI and RLAIF.

The learner's names are re-exported here (``from posttrain_utils import cai``), so a notebook
reads e.g. ``cai.critique``. Modules:

    constitution  the principles, `critique`, `revise`, `label_pair`, `agreement`
    prompts       the training prompts and their varied wordings
    pipeline      SL-CAI (critique -> revision -> SFT) and RL-CAI (AI-labelled pairs -> RPO)
    stages        the ``sl-cai``, ``rl-cai`` and ``cai-ablations`` stages
"""

from __future__ import annotations

from .constitution import (CONSTITUTION, HARM_NAMES, MAX_WORDS, Principle, REFUSAL_TEMPLATE,
                           agreement, critique, harm_kind, label_pair, preference_records, revise)

__all__ = ["CONSTITUTION", "HARM_NAMES", "MAX_WORDS", "Principle", "REFUSAL_TEMPLATE", "agreement",
           "critique", "harm_kind", "label_pair", "preference_records", "revise"]
