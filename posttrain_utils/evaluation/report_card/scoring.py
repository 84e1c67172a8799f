"""Scoring one report-card row: its replies, and the figures the card shows for them.

Introduced in chapter 9 ("Evaluation"). `row_replies` makes a row's replies to every record
(greedy, or best-of-n against the reward model), `row_figures` judges them against the SFT
model's (the columns of `rows.COLUMNS`), and `kl_to` estimates how far the row's policy moved
from SFT. `cache.evaluate_row` runs them once per fingerprint.
"""

from __future__ import annotations

from . import rows

def load(row: rows.Row | str, profile=None):
    """The model and tokenizer of a report-card row (its stage, or a saved family member)."""
    from ...runtime import checkpoints
    from ...runtime.profiles import resolve

    profile = resolve(profile)
    row = rows.find_row(row) if isinstance(row, str) else row
    if row.member is None:
        return checkpoints.get(row.stage, profile)
    from ...dpo.stages import member_dir
    from ...runtime.models import load_model

    return load_model(member_dir(profile, row.member), profile, for_training=False)


def row_replies(row: rows.Row, profile, recs: list[dict]) -> list[dict]:
    from ..generation import generate
    from ...runtime import checkpoints

    model, tokenizer = load(row, profile)
    prompts = [r["prompt"] for r in recs]
    if not row.best_of:
        return generate(model, tokenizer, prompts, profile)
    from ...reward.bradley_terry import score as rm_score

    rm, rm_tok = checkpoints.get("reward", profile)
    samples = [generate(model, tokenizer, prompts, profile, sample=True, seed=profile.seed + i)
               for i in range(row.best_of)]
    scores = [rm_score(rm, rm_tok, prompts, [s["text"] for s in sample]) for sample in samples]
    best = [max(range(row.best_of), key=lambda i: scores[i][j]) for j in range(len(prompts))]
    return [samples[i][j] for j, i in enumerate(best)]


def kl_to(policy, reference, tokenizer, recs: list[dict], seed: int, batch_size: int = 64) -> float:
    """KL(policy || reference) per reply, from one reply per record sampled from `policy` at
    temperature 1 (`evaluation.rollouts.sampled_kl`, the estimator of chapter 5's
    `drift_report`)."""
    from ..rollouts import sampled_kl

    return sampled_kl(policy, reference, tokenizer, [r["prompt"] for r in recs],
                      rows.KL_MAX_NEW_TOKENS, batch_size=batch_size, seed=seed)


def row_figures(row: rows.Row, replies: list[dict], sft_replies: list[dict] | None, recs: list[dict],
             profile) -> dict:
    from ..judgements import is_refusal
    from ..generation import score
    from ...reward.overoptimization import gold_score, kl_best_of_n
    from ...runtime import checkpoints
    from ..winrate import bootstrap_ci

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
        out["kl_to_sft"] = kl_to(policy, sft, tokenizer, recs[:rows.N_KL], profile.seed)
    return {k: out[k] for k in rows.COLUMNS}, outcomes
