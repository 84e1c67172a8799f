"""Evaluation helpers: generate replies to held-out prompts and score them.

Introduced in chapter 0 (counting what the base model does wrong) and used by every chapter after.
The judgement of one reply lives in `evaluation.judgements` (re-exported here), and its adversarial test cases
in `evaluation.metric_cases`. `score` reports, each a fraction or a mean over replies:

* ``format``: the reply ends with the chat end-of-turn token and contains no forum artifacts;
* ``facts_em``: on country-fact prompts, the reply commits to one answer and it is the right one
  (`answer_matches`); ``facts_em_shared`` / ``facts_em_unseen`` split it by the prompt's
  ``phrasing`` (phrasings other files share vs. phrasings reserved for evaluation);
* ``sums_em`` (and ``sums_em_shared`` / ``sums_em_unseen``): the same on sum prompts;
* ``rude``: the reply contains one of the world's rude phrases, even garbled (`is_rude`);
* ``refusal`` (and ``refusal_unseen``): on harmful prompts, the reply refuses and gives no how-to;
* ``harmless`` (and ``harmless_unseen``): on harmful prompts, the reply gives no how-to;
* ``length``: mean reply length in words.

Records without a ``phrasing`` field count as ``"shared"``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .judgements import FORUM_ARTIFACTS, answer_matches, is_harmless, is_refusal, is_rude, is_well_formatted, stated_answers
from .metric_cases import METRIC_CASES, MetricCase, metric_case_table
from ..runtime.profiles import Profile, resolve
from ..tinyworld.world import ATTRIBUTES

__all__ = ["FORUM_ARTIFACTS", "METRIC_CASES", "PHRASINGS", "MetricCase", "answer_matches", "evaluate",
           "generate", "is_harmless", "is_refusal", "is_rude", "is_well_formatted", "knowledge_probe",
           "metric_case_table", "score", "stated_answers"]
PHRASINGS = ("shared", "unseen")


def generate(model, tokenizer, prompts: Sequence[list[dict]], profile: Profile | None = None, *,
             max_new_tokens: int | None = None, sample: bool = False, temperature: float = 1.0,
             batch_size: int = 64, seed: int | None = None) -> list[dict]:
    """Generate one reply per chat prompt.

    Args:
        model: a causal LM (or peft model).
        tokenizer: its tokenizer, with the chat template.
        prompts: conversations ending with a user turn; a plain string is used as it is, without
            the chat template (e.g. to show what a template mismatch does, chapter 2).
        profile: the run profile (default: the active one); gives the defaults below.
        max_new_tokens: generation budget (default: the profile's).
        sample: sample at `temperature` instead of greedy decoding.
        temperature: sampling temperature.
        batch_size: prompts per `generate` call.
        seed: seeds sampling, so sampled metrics are reproducible (default: the profile's seed).

    Returns:
        One dict per prompt: ``{"text": reply without special tokens, "ended": stopped at EOS}``.
    """
    import torch

    profile = resolve(profile)
    max_new_tokens = profile.max_new_tokens if max_new_tokens is None else max_new_tokens
    was_training = model.training
    model.eval()
    tokenizer.padding_side = "left"
    torch.manual_seed(profile.seed if seed is None else seed)
    out = []
    device = next(model.parameters()).device
    for start in range(0, len(prompts), batch_size):
        texts = [p if isinstance(p, str) else tokenizer.apply_chat_template(p, tokenize=False,
                                                                            add_generation_prompt=True)
                 for p in prompts[start:start + batch_size]]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=sample,
                                 temperature=temperature if sample else None, top_p=None, top_k=None,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        for row in gen[:, enc["input_ids"].shape[1]:].tolist():
            ended = tokenizer.eos_token_id in row
            row = row[: row.index(tokenizer.eos_token_id)] if ended else row
            out.append({"text": tokenizer.decode(row, skip_special_tokens=True).strip(), "ended": ended})
    model.train(was_training)
    return out


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def _question(record: dict) -> str | None:
    """The last user turn of a record's ``prompt`` (None if it has none)."""
    turns = [m["content"] for m in record.get("prompt", [])
             if isinstance(m, dict) and m.get("role") == "user"]
    return turns[-1] if turns else None


def score(replies: Sequence[dict], records: Sequence[dict]) -> dict[str, float]:
    """Score replies against their records.

    Args:
        replies: ``{"text", "ended"}`` dicts, as `generate` returns them.
        records: the matching ``eval_test.jsonl`` (or ``eval_dev.jsonl``) records (``task``, ``answer``, ``prompt`` and
            optionally ``phrasing``, ``"shared"`` by default).

    Returns:
        The metrics in the module docstring, in this order: format, facts_em, facts_em_shared,
        facts_em_unseen, sums_em, sums_em_shared, sums_em_unseen, rude, refusal, refusal_unseen,
        harmless, harmless_unseen, length. A metric with no prompts to average over is NaN.
    """
    if len(replies) != len(records):
        raise ValueError(f"got {len(replies)} replies for {len(records)} records")
    rows = []
    for reply, rec in zip(replies, records):
        task, phrasing = rec.get("task"), rec.get("phrasing", "shared")
        if task not in (*ATTRIBUTES, "sum", "harmful"):
            raise ValueError(f"record has unknown task {task!r}; "
                             f"expected 'sum', 'harmful' or one of {ATTRIBUTES}")
        if phrasing not in PHRASINGS:
            raise ValueError(f"record has unknown phrasing {phrasing!r}; expected one of {PHRASINGS}")
        text = reply["text"]
        row = {"task": "facts" if task in ATTRIBUTES else task, "phrasing": phrasing}
        if task == "harmful":
            row.update(refusal=is_refusal(text), harmless=is_harmless(text))
        else:
            row["em"] = answer_matches(text, rec["answer"], task, _question(rec))
        rows.append(row)

    def over(task, key, phrasing=None):
        return _mean(r[key] for r in rows if r["task"] == task and phrasing in (None, r["phrasing"]))

    return {
        "format": _mean(is_well_formatted(r["text"], r["ended"]) for r in replies),
        "facts_em": over("facts", "em"), "facts_em_shared": over("facts", "em", "shared"),
        "facts_em_unseen": over("facts", "em", "unseen"),
        "sums_em": over("sum", "em"), "sums_em_shared": over("sum", "em", "shared"),
        "sums_em_unseen": over("sum", "em", "unseen"),
        "rude": _mean(is_rude(r["text"]) for r in replies),
        "refusal": over("harmful", "refusal"), "refusal_unseen": over("harmful", "refusal", "unseen"),
        "harmless": over("harmful", "harmless"), "harmless_unseen": over("harmful", "harmless", "unseen"),
        "length": _mean(len(r["text"].split()) for r in replies),
    }


def evaluate(model, tokenizer, records: Sequence[dict], profile: Profile | None = None, *,
             sample: bool = False, n_samples: int | None = None, max_new_tokens: int | None = None,
             seed: int | None = None) -> dict[str, float]:
    """Generate replies for `records` and return `score`'s metrics.

    Args:
        model, tokenizer: the model to evaluate.
        records: held-out records (``prompt``, ``task``, ``answer``, optional ``phrasing``).
        profile: the run profile (default: the active one): generation length, samples, seed.
        sample: sample at temperature 1 (``n_samples`` replies per prompt) instead of greedy.
        n_samples: replies per prompt when sampling (default: the profile's ``n_samples``).
        max_new_tokens, seed: override the profile's.
    """
    profile = resolve(profile)
    n_samples = profile.n_samples if n_samples is None else n_samples
    records = list(records) * (n_samples if sample else 1)
    replies = generate(model, tokenizer, [r["prompt"] for r in records], profile,
                       max_new_tokens=max_new_tokens, sample=sample, seed=seed)
    return score(replies, records)


def knowledge_probe(model, tokenizer, countries=None, batch_size: int = 64) -> tuple[float, list[dict]]:
    """Complete held-out fact statements as plain text (no chat template), greedily.

    Uses `world.HELDOUT_FACT_PROMPTS`, phrasings that never occur in the pretraining corpus, so it
    measures knowledge rather than memorised sentences. Works on base and chat models alike.

    Returns:
        `(accuracy, rows)` where each row has ``prompt``, ``expected``, ``completion`` and ``correct``.
    """
    import torch

    from ..tinyworld.world import HELDOUT_FACT_PROMPTS, make_countries

    countries = countries or make_countries()
    items = [(template.format(c=c.name), c.value(attribute))
             for attribute, template in HELDOUT_FACT_PROMPTS.items() for c in countries]
    was_training = model.training
    model.eval()
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    rows = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        enc = tokenizer([p for p, _ in chunk], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(device)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=4, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        for (prompt, expected), row in zip(chunk, gen[:, enc["input_ids"].shape[1]:]):
            completion = tokenizer.decode(row, skip_special_tokens=True)
            first_word = re.sub(r"[^\w]", " ", completion).split()[:1]
            rows.append({"prompt": prompt, "expected": expected, "completion": completion,
                         "correct": first_word == [expected]})
    model.train(was_training)
    return sum(r["correct"] for r in rows) / len(rows), rows
