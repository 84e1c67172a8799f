"""The report card: every checkpoint the course trains, scored on one held-out set.

Introduced in chapter 9 ("Evaluation"); `python -m posttrain_utils.pipeline` writes it too. Each
row of `ROWS` names a stage of the stage graph (`runtime.checkpoints`, trained if missing) and how
its replies are made: greedily, or best-of-n with the chapter 4 reward model picking among n
samples of the SFT model. Every row is judged on the same records (``data/eval_heldout.jsonl``,
all 756 of them) with the same generation budget, and its columns are:

* ``format``, ``facts_em``, ``sums_em``, ``rude``, ``length``: `evaluation.score` (greedy);
* ``refusal``: harmful requests refused; ``over_refusal``: fact and sum questions refused;
* ``gold``: the mean `overoptimization.gold_score` over the fact and sum questions;
* ``win_vs_sft`` with ``win_low`` / ``win_high``: on the same questions, the share on which the
  row's reply has a higher gold score than the SFT model's (ties count 0.5), with a 95 % bootstrap
  interval (`winrate.bootstrap_ci`);
* ``kl_to_sft``: KL(row's policy || SFT) per reply, estimated from `N_KL` replies sampled from the
  row's policy at temperature 1 (the same estimator as chapter 5's `drift_report`); for best-of-n
  it is the closed-form ``log n - (n - 1) / n`` (`overoptimization.kl_best_of_n`).

Scoring a row takes 15-60 s on the cpu profile, so `evaluate_row` caches its result (the figures
and the replies) under ``<cache>/report/`` keyed by the stage's fingerprint and this module's
recipe: the chapter only reads the cache, and reruns are free.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from dataclasses import dataclass
from pathlib import Path

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
        member: for the ``dpo-family`` stage, which of its saved models
            (`dpo_family_models.MEMBERS`).
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
    *(Row(m, "dpo-family", 6, member=m) for m in ("DPO", "IPO", "KTO", "ORPO", "SimPO")),
    Row("RPO (chapter 6's pick)", "dpo", 6), Row("online DPO", "dpo-sweep", 6),
    Row("SL-CAI", "sl-cai", 7), Row("RL-CAI", "rl-cai", 7),
    Row("GRPO (Dr. GRPO)", "grpo", 8), Row("GRPO (original loss)", "grpo-variants", 8),
)
REFERENCE = "SFT"


def _row(name: str) -> Row:
    for row in ROWS:
        if row.name == name:
            return row
    raise KeyError(f"no report-card row {name!r}; rows: {[r.name for r in ROWS]}")


def records() -> list[dict]:
    """The held-out records every row is judged on: all of ``data/eval_heldout.jsonl``."""
    from .data import load_records

    return load_records("eval_heldout")


def _key(row: Row, profile) -> str:
    """What a cached row depends on: its stages' fingerprints, the recipe and the judges' code."""
    from . import evaluation, judgements, overoptimization, winrate
    from .runtime import checkpoints
    from .runtime.paths import DATA_DIR

    h = hashlib.sha256(json.dumps([row.name, row.stage, row.best_of, row.member, N_KL,
                                   KL_MAX_NEW_TOKENS, profile.max_new_tokens,
                                   profile.seed]).encode())
    stages = {row.stage, "sft"} | ({"reward"} if row.best_of else set())
    for stage in sorted(stages):
        h.update(checkpoints.fingerprint(stage, profile).encode())
    for code in (*_SCORING_CODE, evaluation, judgements, overoptimization, winrate):
        h.update(inspect.getsource(code).encode())
    h.update((DATA_DIR / "eval_heldout.jsonl").read_bytes())
    return h.hexdigest()[:16]


def _cache_file(row: Row, profile) -> Path:
    from .runtime import checkpoints

    slug = "".join(c if c.isalnum() else "-" for c in row.name.lower()).strip("-")
    return checkpoints.cache_dir(profile) / "report" / f"{slug}.json"


def load(row: Row | str, profile=None):
    """The model and tokenizer of a report-card row (its stage, or a saved family member)."""
    from .runtime import checkpoints
    from .runtime.profiles import resolve

    profile = resolve(profile)
    row = _row(row) if isinstance(row, str) else row
    if row.member is None:
        return checkpoints.get(row.stage, profile)
    from .dpo_family_models import member_dir
    from .models import load_model

    return load_model(member_dir(profile, row.member), profile, for_training=False)


def _replies(row: Row, profile, recs: list[dict]) -> list[dict]:
    from .evaluation import generate
    from .runtime import checkpoints

    model, tokenizer = load(row, profile)
    prompts = [r["prompt"] for r in recs]
    if not row.best_of:
        return generate(model, tokenizer, prompts, profile)
    from .reward import score as rm_score

    rm, rm_tok = checkpoints.get("reward", profile)
    samples = [generate(model, tokenizer, prompts, profile, sample=True, seed=profile.seed + i)
               for i in range(row.best_of)]
    scores = [rm_score(rm, rm_tok, prompts, [s["text"] for s in sample]) for sample in samples]
    best = [max(range(row.best_of), key=lambda i: scores[i][j]) for j in range(len(prompts))]
    return [samples[i][j] for j, i in enumerate(best)]


def kl_to(policy, reference, tokenizer, recs: list[dict], seed: int, batch_size: int = 64) -> float:
    """KL(policy || reference) per reply, from one reply per record sampled from `policy` at
    temperature 1: the mean of ``sum_t log p(token) - log ref(token)`` over the replies."""
    import torch

    from .ppo_trainer import response_logprobs, sample_responses

    kls = []
    with torch.no_grad():
        for start in range(0, len(recs), batch_size):
            chunk = recs[start:start + batch_size]
            out = sample_responses(policy, tokenizer, [r["prompt"] for r in chunk],
                                   KL_MAX_NEW_TOKENS, seed=seed + start)
            args = (out["query_responses"], out["attention_mask"], out["context_length"])
            logp, _ = response_logprobs(policy, *args)
            ref_logp, _ = response_logprobs(reference, *args)
            kls += ((logp - ref_logp) * out["mask"]).sum(1).tolist()
    return sum(kls) / len(kls)


def _figures(row: Row, replies: list[dict], sft_replies: list[dict] | None, recs: list[dict],
             profile) -> dict:
    from .evaluation import is_refusal, score
    from .overoptimization import gold_score, kl_best_of_n
    from .runtime import checkpoints
    from .winrate import bootstrap_ci

    judged = score(replies, recs)
    answered = [i for i, r in enumerate(recs) if r.get("answer")]
    gold = [gold_score(replies[i]["text"], replies[i]["ended"], recs[i]) for i in answered]
    out = {k: judged[k] for k in ("format", "facts_em", "sums_em", "rude", "refusal", "length")}
    out["over_refusal"] = sum(is_refusal(replies[i]["text"]) for i in answered) / len(answered)
    out["gold"] = sum(gold) / len(gold)
    if sft_replies is None:  # the reference row itself
        outcomes = [0.5] * len(answered)
    else:
        sft_gold = [gold_score(sft_replies[i]["text"], sft_replies[i]["ended"], recs[i])
                    for i in answered]
        outcomes = [1.0 if g > s else 0.5 if g == s else 0.0 for g, s in zip(gold, sft_gold)]
    out["win_vs_sft"] = sum(outcomes) / len(outcomes)
    out["win_low"], out["win_high"] = bootstrap_ci(outcomes, seed=profile.seed)
    if row.best_of:
        out["kl_to_sft"] = kl_best_of_n(row.best_of)
    elif row.stage == "sft":
        out["kl_to_sft"] = 0.0
    else:
        policy, tokenizer = load(row, profile)
        sft, _ = checkpoints.get("sft", profile)
        out["kl_to_sft"] = kl_to(policy, sft, tokenizer, recs[:N_KL], profile.seed)
    return {k: out[k] for k in COLUMNS}, outcomes


# what scoring runs (not the table code), captured at import so a test's stand-in does not count
_SCORING_CODE = (load, _replies, kl_to, _figures)


def evaluate_row(name: str, profile=None) -> dict:
    """One row's figures, replies and per-question outcomes against SFT (cached; see the module
    docstring).

    Args:
        name: a row of `ROWS`, e.g. ``"DPO"``.
        profile: the run profile (default: the active one).

    Returns:
        ``{"row": name, "chapter", "stage", "figures": {column: value}, "replies": [{"text",
        "ended"}, ...] (one per record), "outcomes": [1 / 0.5 / 0 per fact or sum question]}``.
    """
    from .runtime.profiles import resolve

    profile = resolve(profile)
    row = _row(name)
    path, key = _cache_file(row, profile), _key(row, profile)
    if path.exists():
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached
    recs = records()
    replies = _replies(row, profile, recs)
    sft = None if row.name == REFERENCE else evaluate_row(REFERENCE, profile)["replies"]
    figures, outcomes = _figures(row, replies, sft, recs, profile)
    result = {"key": key, "row": row.name, "chapter": row.chapter, "stage": row.stage,
              "figures": figures, "replies": replies, "outcomes": outcomes}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)
    return result


def is_cached(name: str, profile=None) -> bool:
    """Whether row `name` is in the cache with its current key (nothing is trained or scored)."""
    from .runtime import checkpoints
    from .runtime.profiles import resolve

    profile = resolve(profile)
    row = _row(name)
    stages = {row.stage, "sft"} | ({"reward"} if row.best_of else set())
    if not all(checkpoints.is_cached(s, profile) for s in stages):
        return False
    path = _cache_file(row, profile)
    return path.exists() and json.loads(path.read_text()).get("key") == _key(row, profile)


def build(profile=None, rows=None, progress: bool = True):
    """The report card as a pandas DataFrame (one row per `ROWS` entry, `COLUMNS` as columns, plus
    ``chapter``), every row scored through `evaluate_row` (trained and scored if missing)."""
    import pandas as pd
    from tqdm.auto import tqdm

    names = [r.name for r in ROWS] if rows is None else list(rows)
    table = {}
    for name in tqdm(names, desc="report card", disable=not progress):
        result = evaluate_row(name, profile)
        table[name] = {"chapter": result["chapter"], **result["figures"]}
    return pd.DataFrame.from_dict(table, orient="index")


def to_markdown(card, digits: int = 2) -> str:
    """The card as a Markdown table (win rate shown with its interval)."""
    lines = ["| checkpoint | ch | format | facts EM | sums EM | rude | refusal | over-refusal | "
             "length | gold | win vs SFT [95 % CI] | KL to SFT |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in card.iterrows():
        cells = [f"{r[c]:.{digits}f}" for c in ("format", "facts_em", "sums_em", "rude", "refusal",
                                                 "over_refusal")]
        win = f"{r['win_vs_sft']:.2f} [{r['win_low']:.2f}, {r['win_high']:.2f}]"
        kl = "n/a" if math.isnan(r["kl_to_sft"]) else f"{r['kl_to_sft']:.2f}"
        lines.append(f"| {name} | {int(r['chapter'])} | " + " | ".join(cells)
                     + f" | {r['length']:.1f} | {r['gold']:.2f} | {win} | {kl} |")
    return "\n".join(lines) + "\n"


def write(card, folder: str | Path = "reports") -> tuple[Path, Path]:
    """Write ``report_card.md`` and ``report_card.png`` into `folder`; returns their paths."""
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md, png = folder / "report_card.md", folder / "report_card.png"
    md.write_text("# Report card\n\n" + to_markdown(card))
    from .plotting import report_card as plot

    fig = plot(card)
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return md, png


def rows_for(stages) -> list[str]:
    """The rows to score once `stages` are trained: those whose last needed stage is among them
    (a best-of-n row needs ``reward`` last; ``"base"`` stands for the base model's row)."""
    return [r.name for r in ROWS if ("reward" if r.best_of else r.stage) in set(stages)]


def main(argv=None) -> None:
    """``python -m posttrain_utils.report_card sft reward``: score (or find) the report-card rows
    of these stages now (`rows_for`), so the chapter only reads. `make test` runs it after each
    group of stages."""
    import argparse
    import time

    from .runtime import checkpoints, profiles

    parser = argparse.ArgumentParser(description="Score the report-card rows of the named stages "
                                                 "into the cache, unless they are cached already.")
    parser.add_argument("stages", nargs="+", choices=sorted(checkpoints.STAGES),
                        help="stage names, e.g. sft reward")
    args = parser.parse_args(argv)
    profile = profiles.activate()
    for name in rows_for(args.stages):
        start = time.time()
        status = "cached" if is_cached(name, profile) else "scored"
        evaluate_row(name, profile)
        print(f"report card, {name}: {status} in {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
