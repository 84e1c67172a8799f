"""Chapter 6's stages: ``dpo`` (six preference methods on one budget) and ``dpo-sweep``.

Introduced in chapter 6 ("DPO and its family"). The ``dpo`` stage (`family.train`) trains DPO,
IPO, KTO, ORPO, SimPO and RPO, judges each, keeps the method `family.pick` chooses on development prompts as the stage's model
and saves every method's model in its run folder, where chapter 9's report card finds them
(`member_dir`). The ``dpo-sweep`` stage (`sweep.train`) runs the beta sweep, the over-optimised
run, online DPO and the best-of-n frontier.
"""

from __future__ import annotations

from pathlib import Path

from ..runtime.graph import Stage

MEMBERS = ("DPO", "IPO", "KTO", "ORPO", "SimPO", "RPO")  # `family.METHODS`, each saved


def member_dir(profile, method: str) -> Path:
    """The folder of the ``dpo`` stage's model for `method` (the stage is trained if missing)."""
    from ..runtime import graph

    if method not in MEMBERS:
        raise ValueError(f"unknown method {method!r}; expected one of {MEMBERS}")
    graph.path("dpo", profile)
    return graph.run_dir("dpo", profile) / method / "model"


STAGES = (
    Stage("dpo", module="posttrain_utils.dpo.family", chapter=6, upstream=("base", "sft", "reward"),
          data_files=("preference_train", "preference_heldout", "kto_train", "eval_dev", "eval_test"),
          budget=("dpo", "orpo")),
    Stage("dpo-sweep", module="posttrain_utils.dpo.sweep", chapter=6, upstream=("sft", "reward"),
          data_files=("preference_train", "preference_heldout", "prompts_train", "eval_test"),
          budget="dpo"),
)
