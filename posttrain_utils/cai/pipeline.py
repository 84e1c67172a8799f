"""Supervised CAI and RL from AI feedback, end to end: chapter 7's ``sl-cai`` and ``rl-cai`` stages.

Introduced in chapter 7 ("Constitutional AI and RLAIF"). The constitution, its critic and the
programmatic reviser live in `cai`; this module runs the two stages of Bai et al. (2022) with them:

* **SL-CAI** (`sl_cai_data`, `train_sl`): sample replies from the SFT model to training prompts
  (`HARMFUL_SAMPLES` per harmful request, one per benign question), critique each against the
  constitution, revise the ones that violate a principle, drop revisions that still do, and
  fine-tune the SFT model on the result (the profile's ``"sl_cai"`` budget).
* **RL-CAI** (`ai_feedback_pairs`, `train_rl`): sample two replies per training prompt from the
  SL-CAI model, let the critic label the more constitutional one as chosen (ties dropped), write the
  pairs as a TRL preference file, validate it with chapter 1's validator, and tune the SL-CAI model on
  it with chapter 6's DPO (the ``"rl_cai"`` budget). `gold_label` is what the course's gold judgement
  would have chosen, so the critic's agreement with it can be measured.

`judge` gives every model the same row on held-out prompts: harmlessness (sampled and greedy),
over-refusal of benign questions, facts and sums EM, format, rudeness and length. The stages that
run these steps are in `cai.stages`.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from pathlib import Path

from . import constitution as cai
from . import prompts as cai_prompts
from ..evaluation import judgements as J

HARMFUL_SAMPLES = 4  # SL-CAI samples per harmful training prompt (one per benign prompt)
JUDGE_HARMFUL_SAMPLES = 4  # sampled replies per held-out harmful request in `judge`
JUDGE_BENIGN_SAMPLES = 2  # sampled replies per held-out benign question in `judge`
# RL-CAI pairs per harmful training prompt (one per benign prompt). Six, at seed 1, left RL-CAI less
# harmless than SL-CAI (87.5 % against 92.5 %) and refusing more benign questions (5.5 % against
# 2.7 %); four gave 95 % and 3.2 % (measured for chapter 7)
HARMFUL_PAIRS = 4
RESAMPLES = 3  # a sample the reviser cannot fix is drawn again up to this many times
N_EXAMPLES = 6  # critique -> revision examples kept for the chapter's page
# varied wordings per benign training question in SL-CAI's paraphrase rows. At seed 1, with two the
# SL-CAI model refused 5.2 % of held-out benign questions (sampled) and 13.8 % greedy; with three,
# 2.7 % and 2.2 % (measured for chapter 7; harmless 92.5 %, facts EM 70.7 %)
PARAPHRASE_ROUNDS = 3
PAIRS_FILE = "rlaif_pairs.jsonl"
RL_METHOD = "RPO"  # chapter 6's recommended recipe: DPO plus an NLL term on the chosen reply


def sample(model, tokenizer, records, profile, per_record, seed: int) -> tuple[list[dict], list[dict]]:
    """Sample replies at temperature 1: ``per_record(record)`` replies per record.

    Returns:
        ``(records, replies)``: each record repeated once per reply, and `evaluation.generate`'s dicts.
    """
    from ..evaluation.generation import generate

    repeated = [r for r in records for _ in range(per_record(r))]
    return repeated, generate(model, tokenizer, [r["prompt"] for r in repeated], profile, sample=True, seed=seed)


def revision(text: str, record: dict, constitution=cai.CONSTITUTION, reviser=cai.revise) -> str | None:
    """What SL-CAI trains on for one reply: the reply itself when it follows every principle, else
    `reviser`'s revision when that follows every principle (None: the sample is dropped; the critic
    checks the reviser too, which matters when the reviser is a model)."""
    if not cai.critique(text, record, constitution):
        return text
    revised = reviser(text, record, constitution)
    return revised if isinstance(revised, str) and not cai.critique(revised, record, constitution) else None


def sl_cai_data(records, replies, constitution=cai.CONSTITUTION, reviser=cai.revise):
    """SL-CAI's fine-tuning data: every reply critiqued, and revised when it violates a principle.

    Args:
        records: one prompt record per reply.
        replies: the sampled replies (strings or `evaluation.generate` dicts).
        constitution: the principles to critique against.
        reviser: ``(reply, record, constitution) -> str | None``; None drops the sample.

    Returns:
        ``(rows, stats, examples)``: ``{"messages": prompt + [assistant reply]}`` rows (a reply that
        follows every principle is kept as it is); counts of ``samples``, ``clean``, ``revised``,
        ``dropped`` and of each principle's violations; and up to `N_EXAMPLES` critique -> revision
        examples (``question``, ``reply``, ``critique``, ``revision``), harmful and benign alternately.
    """
    if len(records) != len(replies):
        raise ValueError(f"got {len(replies)} replies for {len(records)} records")
    rows, stats, examples = [], Counter(samples=0, clean=0, revised=0, dropped=0), {"harmful": [], "benign": []}
    for record, reply in zip(records, replies):
        text = J.reply_text(reply)
        found = cai.critique(text, record, constitution)
        stats["samples"] += 1
        stats.update(f"violates {name}" for name, _ in found)
        if not found:
            stats["clean"] += 1
            revised = text
        else:
            revised = revision(text, record, constitution, reviser)
            stats["revised" if revised is not None else "dropped"] += 1
            group = examples["harmful" if record["task"] == "harmful" else "benign"]
            if revised is not None and len(group) < N_EXAMPLES // 2:
                group.append({"question": cai.record_question(record), "reply": text,
                              "critique": [f"{n}: {why}" for n, why in found], "revision": revised})
        if revised is not None:
            rows.append({"messages": [dict(m) for m in record["prompt"]]
                         + [{"role": "assistant", "content": revised}]})
    mixed = [e for pair in zip(examples["harmful"], examples["benign"]) for e in pair]
    return rows, dict(stats), mixed


def fine_tune(model, tokenizer, rows, profile, output_dir, budget: str = "sl_cai"):
    """Supervised fine-tuning of `model` on `rows` with chapter 2's recipe and the profile's `budget`."""
    from datasets import Dataset
    from trl import SFTTrainer

    from ..runtime.notebook import quiet
    from ..runtime.profiles import seed_everything
    from ..sft.recipe import sft_config

    seed_everything(profile.seed)
    args = sft_config(profile, output_dir, eval_strategy="no", **profile.budget(budget))
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    quiet(trainer).train()
    return trainer.model


def gold_label(reply_a: dict, reply_b: dict, record: dict) -> str | None:
    """What the course's gold judgement prefers: for a harmful request the harmless reply (a
    refusal above a harmless non-refusal); for a question the higher `reward.overoptimization.gold_score`,
    which checks the answer against the record (the critic never sees it). None on a tie."""
    from ..reward.overoptimization import gold_score

    if record["task"] == "harmful":
        def value(reply):
            return J.is_harmless(reply["text"]) + J.is_refusal(reply["text"])
    else:
        def value(reply):
            return gold_score(reply["text"], reply["ended"], record)
    va, vb = value(reply_a), value(reply_b)
    return None if va == vb else ("a" if va > vb else "b")


def ai_feedback_pairs(model, tokenizer, records, profile, constitution=cai.CONSTITUTION, seed: int = 0):
    """RL-CAI's data: two sampled replies per record, labelled by the AI critic (`cai.label_pair`).

    Returns:
        ``(pairs, stats)``: TRL conversational preference records (ties and empty replies left out,
        `cai.preference_records`), and ``prompts``, ``pairs``, ``ties``, ``agreement`` (the critic's
        non-tie labels that match `gold_label`) and ``gold_ties``.
    """
    repeated, replies = sample(model, tokenizer, records, profile,
                               lambda r: 2 * (HARMFUL_PAIRS if r["task"] == "harmful" else 1), seed)
    a, b = replies[0::2], replies[1::2]
    recs = repeated[0::2]
    labels = [cai.label_pair(x["text"], y["text"], r, constitution) for x, y, r in zip(a, b, recs)]
    gold = [gold_label(x, y, r) for x, y, r in zip(a, b, recs)]
    pairs = cai.preference_records(recs, a, b, constitution)
    stats = {"prompts": len(recs), "pairs": len(pairs), "ties": labels.count(None),
             "agreement": cai.agreement(labels, gold),
             "gold_ties": sum(g is None for g, x in zip(gold, labels) if x is not None)}
    return pairs, stats


def write_pairs(output_dir, pairs) -> Path:
    """Write `pairs` to `PAIRS_FILE` in `output_dir` and validate the file (chapter 1's validator).

    The records are validated before anything is written, so an invalid pair leaves no file.

    Raises:
        DataFormatError: naming the first invalid pair and field.
    """
    from ..data.formats import validate_records
    from ..data.jsonl import write_jsonl
    from ..data.validate import validate_file

    path = Path(output_dir) / PAIRS_FILE
    validate_records(pairs, "preference", path)
    write_jsonl(path, pairs)
    validate_file(path, "preference")
    return path


def dpo_on_pairs(model, tokenizer, pairs, profile, output_dir):
    """Chapter 6's DPO on `pairs`, from `model`, with a frozen copy of it as the reference."""
    from datasets import Dataset

    from ..dpo import family as dpo_family

    ref = copy.deepcopy(model).eval()
    tuned, _, info = dpo_family.run(RL_METHOD, profile, output_dir, (model, tokenizer), Dataset.from_list(pairs),
                                    ref_model=ref, **profile.budget("rl_cai"))
    return tuned, info


def _rate(flags) -> float:
    flags = list(flags)
    return sum(flags) / len(flags) if flags else float("nan")


def judge(model, tokenizer, profile, records=None) -> dict:
    """A model's row of chapter 7's table, on the held-out prompts (``eval_test`` by default).

    Sampled (temperature 1; `JUDGE_HARMFUL_SAMPLES` per harmful request, `JUDGE_BENIGN_SAMPLES` per
    benign question):
    ``harmless`` (no how-to given), ``refusal`` (refuses, no how-to), ``over_refusal`` (benign
    questions refused), ``rude``, ``constitutional`` (replies that violate no principle). Greedy:
    ``harmless_greedy``, ``over_refusal_greedy``, ``facts_em``, ``sums_em``, ``format``, ``length``.
    Each over-refusal and harmlessness figure also comes split by phrasing: ``*_shared`` (wordings
    the training files use) and ``*_unseen`` (wordings no training file has).
    """
    from ..data.splits import test_records
    from ..evaluation.generation import generate, score

    records = test_records() if records is None else list(records)
    harmful = [r for r in records if r["task"] == "harmful"]
    benign = [r for r in records if r["task"] != "harmful"]
    h_recs, h_sampled = sample(model, tokenizer, harmful, profile, lambda r: JUDGE_HARMFUL_SAMPLES, profile.seed)
    b_recs, b_sampled = sample(model, tokenizer, benign, profile, lambda r: JUDGE_BENIGN_SAMPLES, profile.seed + 1)
    greedy = generate(model, tokenizer, [r["prompt"] for r in records], profile)
    g = score(greedy, records)
    g_benign = [(r, x) for r, x in zip(records, greedy) if r["task"] != "harmful"]
    g_harmful = [(r, x) for r, x in zip(records, greedy) if r["task"] == "harmful"]
    every = list(zip(h_recs + b_recs, h_sampled + b_sampled))
    refuses = lambda x: bool(J.find_fragments(x["text"], J.REFUSAL_FRAGMENTS))  # noqa: E731
    row = {"rude": _rate(J.is_rude(x["text"]) for _, x in every),
           "constitutional": _rate(not cai.critique(x["text"], r) for r, x in every),
           "facts_em": g["facts_em"], "sums_em": g["sums_em"],
           "format": _rate(J.is_well_formatted(x["text"], x["ended"]) for _, x in g_benign),
           "length": _rate(len(x["text"].split()) for _, x in g_benign) * 1.0}
    for split in ("", "_shared", "_unseen"):
        keep = (lambda r: True) if not split else (lambda r, s=split[1:]: r.get("phrasing", "shared") == s)
        row["harmless" + split] = _rate(J.is_harmless(x["text"]) for r, x in zip(h_recs, h_sampled) if keep(r))
        row["refusal" + split] = _rate(J.is_refusal(x["text"]) for r, x in zip(h_recs, h_sampled) if keep(r))
        row["harmless_greedy" + split] = _rate(J.is_harmless(x["text"]) for r, x in g_harmful if keep(r))
        row["over_refusal" + split] = _rate(refuses(x) for r, x in zip(b_recs, b_sampled) if keep(r))
        row["over_refusal_greedy" + split] = _rate(refuses(x) for r, x in g_benign if keep(r))
    return row


def paraphrase_rows(rows, records, seed: int, constitution=cai.CONSTITUTION,
                    rounds: int = PARAPHRASE_ROUNDS) -> list[dict]:
    """Each benign question of `records` asked in `rounds` varied wordings (`cai.prompts.rephrase`),
    answered with the reply SL-CAI kept for its original wording: a form of context distillation, in
    which no new answer is written; a paraphrase whose reply breaks a principle is left out.

    Harmful requests are not paraphrased: `cai.prompts.VARIED_REQUESTS` share their frames ("Could
    you ...", "My neighbour ...") with the varied questions, and with them SL-CAI refused *more*
    benign questions in unseen wordings, not fewer (measured for chapter 7, seeds 0 and 1).
    """
    import json
    import random

    kept = {}
    for row in rows:
        kept.setdefault(json.dumps(row["messages"][:-1]), row["messages"][-1]["content"])
    rng, out = random.Random(seed), []
    for record in (r for _ in range(rounds) for r in records if r["task"] != "harmful"):
        text, new = kept.get(json.dumps(record["prompt"])), cai_prompts.rephrase(record, rng)
        if text is not None and new is not None and not cai.critique(text, new, constitution):
            out.append({"messages": new["prompt"] + [{"role": "assistant", "content": text}]})
    return out


def sl_cai(model, tokenizer, profile, output_dir, harmful_only: bool = False, paraphrase: bool = True,
           constitution=cai.CONSTITUTION):
    """Sample, critique, revise, fine-tune (see the module docstring); returns ``(model, info)``.

    `harmful_only` samples the harmful requests alone; `paraphrase` adds `paraphrase_rows`.
    """
    records = cai_prompts.training_prompts()
    if harmful_only:
        records = [r for r in records if r["task"] == "harmful"]
    begin = time.perf_counter()
    recs, replies = sample(model, tokenizer, records, profile,
                           lambda r: HARMFUL_SAMPLES if r["task"] == "harmful" else 1, profile.seed)
    rows, stats, examples = sl_cai_data(recs, replies, constitution)
    stats["resampled"] = stats["rows_from_resampling"] = 0
    for attempt in range(1, RESAMPLES + 1):  # a dropped sample is drawn again, up to RESAMPLES times
        recs = [r for r, x in zip(recs, replies) if revision(x["text"], r, constitution) is None]
        if not recs:
            break
        stats["resampled"] += len(recs)
        recs, replies = sample(model, tokenizer, recs, profile, lambda r: 1, profile.seed + 100 * attempt)
        more, _, _ = sl_cai_data(recs, replies, constitution)
        rows += more
        stats["rows_from_resampling"] += len(more)
    if paraphrase:
        more = paraphrase_rows(rows, records, profile.seed, constitution)
        rows += more
        stats["rows_from_paraphrases"] = len(more)
    sampled = time.perf_counter()
    model = fine_tune(model, tokenizer, rows, profile, output_dir)
    return model, {"data": stats, "examples": examples, "rows": len(rows),
                   "sample_s": sampled - begin, "train_s": time.perf_counter() - sampled}


def rl_cai(model, tokenizer, profile, output_dir, varied: str | None = "benign", constitution=cai.CONSTITUTION):
    """Label pairs with the AI critic, write and validate them, tune with DPO; returns ``(model, info)``."""
    begin = time.perf_counter()
    records = cai_prompts.stage_prompts(profile.seed + 1, varied)
    pairs, stats = ai_feedback_pairs(model, tokenizer, records, profile, constitution, profile.seed)
    if not pairs:
        raise ValueError("the critic labelled no pair (every pair was a tie): nothing to tune on")
    path = write_pairs(output_dir, pairs)
    labelled = time.perf_counter()
    model, info = dpo_on_pairs(model, tokenizer, pairs, profile, Path(output_dir) / "dpo")
    return model, {"pairs": stats, "pairs_file": path.name, "label_s": labelled - begin,
                   "train_s": time.perf_counter() - labelled, "log_history": info["log_history"]}

