"""The report card's rows: which checkpoint each row scores, and on which records.

Introduced in chapter 9 ("Evaluation"). Each `Row` names a stage of the stage graph and how its
replies are made: greedily, or best-of-n with the chapter 4 reward model picking among n samples
of the SFT model. `scoring` turns a row into figures, `cache` keeps them, `render` draws the table;
the package's docstring says what each column means.
"""

from __future__ import annotations

from dataclasses import dataclass

COLUMNS = ("format", "facts_em", "sums_em", "rude", "refusal", "over_refusal", "length", "gold",
           "win_vs_sft", "win_low", "win_high", "kl_to_sft")
N_KL = 256  # replies sampled per row for the KL estimate
KL_MAX_NEW_TOKENS = 48
BEST_OF = 4


@dataclass(frozen=True)
class Row:
    """One row of the report card.

    Args:
        name: the row's label, e.g. ``"DPO"``.
        stage: the stage whose model makes the replies (`runtime.checkpoints.STAGES`).
        chapter: the chapter that trains it.
        best_of: if set, sample this many replies per prompt from `stage` at temperature 1 and keep
            the one the ``reward`` stage scores highest (chapter 4's best-of-n), instead of greedy.
        member: for the ``dpo`` stage, which of the six methods it trained and saved
            (`dpo.stages.member_dir`); ``None`` for the stage's own model (RPO).
    """

    name: str
    stage: str
    chapter: int
    best_of: int | None = None
    member: str | None = None


ROWS = (
    Row("base", "base", 0), Row("SFT", "sft", 2), Row("SFT-filtered", "sft-filtered", 2),
    Row("LoRA", "lora", 3), Row("QLoRA", "qlora", 3),
    Row(f"best-of-{BEST_OF} (RM)", "sft", 4, best_of=BEST_OF),
    Row("PPO", "ppo", 5), Row("PPO, no KL (hacked)", "ppo-hack", 5),
    *(Row(m, "dpo", 6, member=m) for m in ("DPO", "IPO", "KTO", "ORPO", "SimPO", "RPO")),
    Row("online DPO", "dpo-sweep", 6),
    Row("SL-CAI", "sl-cai", 7), Row("RL-CAI", "rl-cai", 7),
    Row("GRPO (Dr. GRPO)", "grpo", 8), Row("GRPO (original loss)", "grpo-variants", 8),
)
REFERENCE = "SFT"


def find_row(name: str) -> Row:
    """The row called `name`; a `KeyError` lists the rows otherwise."""
    for row in ROWS:
        if row.name == name:
            return row
    raise KeyError(f"no report-card row {name!r}; rows: {[r.name for r in ROWS]}")


def records() -> list[dict]:
    """The test records every row is judged on: all of ``data/eval_test.jsonl``."""
    from ...data.splits import test_records

    return test_records()


def rows_for(stages) -> list[str]:
    """The rows to score once `stages` are trained: those whose last needed stage is among them
    (a best-of-n row needs ``reward`` last; ``"base"`` stands for the base model's row)."""
    return [r.name for r in ROWS if ("reward" if r.best_of else r.stage) in set(stages)]


def row_stages(row: Row, profile=None) -> set[str]:
    """The stages a row reads: its own, ``sft`` (the reference) and, for best-of-n, ``reward``;
    ``base`` read as `runtime.graph.base_stage` (``world-base`` in the ``gpu`` profile)."""
    from ...runtime.graph import base_stage

    names = {row.stage, "sft"} | ({"reward"} if row.best_of else set())
    start = base_stage(profile)
    return {start if name == "base" else name for name in names}
