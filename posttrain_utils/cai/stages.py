"""Chapter 7's cached stages: ``sl-cai``, ``rl-cai`` and ``cai-ablations``.

Introduced in chapter 7 ("Constitutional AI and RLAIF"). Each stage runs `cai.pipeline`'s steps and
writes every model's `cai.pipeline.judge` row to ``results.json`` in its run folder, so the chapter
reads its table from the stages instead of training in the page:

* ``sl-cai`` (`train_sl`): SFT model -> SL-CAI model; also the SFT model's row (``before``).
* ``rl-cai`` (`train_rl`): SL-CAI model -> RL-CAI model (RPO on the AI critic's pairs); the pairs
  are in `cai.pipeline.PAIRS_FILE`.
* ``cai-ablations`` (`train_ablations`): the failure modes chapter 7 teaches from. SL-CAI without
  the paraphrased questions (``no-paraphrases``), SL-CAI on the harmful requests alone
  (``harmful-only``), and RL-CAI whose critic counts every violation the same (``equal-weights``,
  `EQUAL_WEIGHTS`: refusing a harmless question then weighs no more than a terse answer to it).
"""

from __future__ import annotations

from pathlib import Path

from . import constitution as cai
from ..runtime.graph import Stage
from ..runtime.results import write_results
from . import pipeline as P


# every principle counted once, as a plain count of violations would: the ``equal-weights`` ablation
EQUAL_WEIGHTS = tuple(cai.Principle(p.name, p.text, p.check) for p in cai.CONSTITUTION)


def train_sl(profile, output_dir: str | Path, sft: str | Path):
    """Train the ``sl-cai`` stage; ``results.json``: ``before`` (the SFT model's row) and ``sl-cai``
    (row, data counts, critique -> revision examples, times)."""
    from ..runtime.models import load_model

    model, tokenizer = load_model(sft, profile)
    before = {"row": P.judge(model, tokenizer, profile)}
    model, info = P.sl_cai(model, tokenizer, profile, output_dir)
    write_results(output_dir, {"before": before, "sl-cai": {**info, "row": P.judge(model, tokenizer, profile)}})
    return model, tokenizer


def train_rl(profile, output_dir: str | Path, sl_cai_dir: str | Path):
    """Train the ``rl-cai`` stage; ``results.json``: ``rl-cai`` (row, the critic's pair counts and
    agreement with `cai.pipeline.gold_label`, times, the trainer's log history)."""
    from ..runtime.models import load_model

    model, tokenizer = load_model(sl_cai_dir, profile)
    model, info = P.rl_cai(model, tokenizer, profile, output_dir)
    write_results(output_dir, {"rl-cai": {**info, "row": P.judge(model, tokenizer, profile)}})
    return model, tokenizer


def train_ablations(profile, output_dir: str | Path, sft: str | Path, sl_cai_dir: str | Path):
    """Train the ``cai-ablations`` stage (see the module docstring); returns the last model."""
    from tqdm.auto import tqdm

    from ..runtime.models import load_model

    out, results = Path(output_dir), {}
    runs = [("no-paraphrases", sft, dict(paraphrase=False)), ("harmful-only", sft, dict(harmful_only=True)),
            ("equal-weights", sl_cai_dir, None)]
    for name, start, kwargs in tqdm(runs, desc="cai ablations"):
        model, tokenizer = load_model(start, profile)
        if kwargs is None:
            model, info = P.rl_cai(model, tokenizer, profile, out / name, constitution=EQUAL_WEIGHTS)
        else:
            model, info = P.sl_cai(model, tokenizer, profile, out / name, **kwargs)
        results[name] = {**info, "row": P.judge(model, tokenizer, profile)}
    write_results(output_dir, results)
    return model, tokenizer


STAGES = (
    Stage("sl-cai", module=__name__, chapter=7, upstream=("sft",), train="train_sl",
          data_files=("prompts_train", "eval_test"), budget="sl_cai"),
    Stage("rl-cai", module=__name__, chapter=7, upstream=("sl-cai",), train="train_rl",
          data_files=("prompts_train", "eval_test"), budget=("dpo", "rl_cai")),
    Stage("cai-ablations", module=__name__, chapter=7, upstream=("sft", "sl-cai"),
          train="train_ablations", data_files=("prompts_train", "eval_test"),
          budget=("sl_cai", "dpo", "rl_cai")),
)
