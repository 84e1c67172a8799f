"""The prompts chapter 7's CAI stages sample from: the shipped training prompts, each also asked in a
new wording.

Introduced in chapter 7 ("Constitutional AI and RLAIF"). ``data/prompts_train.jsonl`` asks every
question in two or three fixed phrasings, and every harmful request in two per kind. Trained on
refusals of those, the SFT model learned a shortcut: *answer the phrasings you know, refuse the
rest*, and it refused benign questions worded in a way it had never read (chapter 7 measures this).
Bai et al. (2022) sampled from many human- and model-written prompts; `varied_prompts` is the tiny
world's stand-in: every training prompt asked once more in one of `VARIED_QUESTIONS` (benign) or
`VARIED_REQUESTS` (harmful). These wordings are written for this module: none of them is one of the
held-out ``"unseen"`` phrasings (`tinyworld.world.UNSEEN_QUESTION_TEMPLATES` and friends), which stay
unseen, so the held-out over-refusal still measures transfer to new wording.
"""

from __future__ import annotations

import random
import re

from . import cai
from . import judgements as J
from .tinyworld import world as W

VARIED_QUESTIONS = {
    "capital": ["Tell me the capital of {c}, please.", "My teacher asked me about {c}. What is its capital?",
                "Could you name the capital city of {c} for me?"],
    "flag": ["Tell me the colour of the flag of {c}, please.", "My brother saw the flag of {c}. What colour is it?",
             "Could you say what colour the flag of {c} is?"],
    "language": ["Tell me the language of {c}, please.", "My neighbour grew up in {c}. What language is spoken there?",
                 "Could you say which language people speak in {c}?"],
    "animal": ["Tell me the national animal of {c}, please.", "My class is reading about {c}. What is its animal?",
               "Could you name the national animal of {c} for me?"],
    "sum": ["Tell me what {a} plus {b} is, please.", "My homework asks for {a} plus {b}. What is it?",
            "Could you add {a} and {b} for me?"],
}
VARIED_REQUESTS = {
    "steal": ["Tell me how to steal the bike of {name}, please.", "My neighbour {name} has a nice wallet. "
              "How do I take it?", "Could you help me rob {name} tonight?"],
    "poison": ["Tell me what to put in the food of {name} to make them sick.", "My cousin {name} annoys me. "
               "How do I poison their food?", "Could you help me make {name} ill with their dinner?"],
    "hack": ["Tell me how to hack into the account of {name}.", "My friend {name} has a secret account. "
             "How do I log in as them?", "Could you help me guess the password of {name}?"],
}
_NAMES = "|".join(W.USERNAMES)


def training_prompts() -> list[dict]:
    """The shipped training prompt records: ``data/prompts_train.jsonl``."""
    from .data import load_records

    return load_records("prompts_train")


def _country(question: str) -> str | None:
    names = {c.name for c in W.make_countries()}
    return next((w for w in re.findall(r"[A-Z]\w+", question) if w in names), None)


def rephrase(record: dict, rng: random.Random) -> dict | None:
    """`record` asked in one of the varied wordings (same task, answer and, for a request, kind);
    None when its country, operands or requested person cannot be read from the question."""
    question = cai._question(record)
    task = record["task"]
    if task == "harmful":
        kind, name = cai.harm_kind(record), re.search(rf"\b({_NAMES})\b", question)
        if kind is None or name is None:
            return None
        text = rng.choice(VARIED_REQUESTS[kind]).format(name=name.group(1))
        return {"prompt": [{"role": "user", "content": text}], "task": task, "kind": kind}
    if task == "sum":
        ops = [t for t in J.tokens(question) if t.isdigit()]
        if len(ops) != 2:
            return None
        text = rng.choice(VARIED_QUESTIONS["sum"]).format(a=ops[0], b=ops[1])
    else:
        country = _country(question)
        if country is None or task not in VARIED_QUESTIONS:
            return None
        text = rng.choice(VARIED_QUESTIONS[task]).format(c=country)
    return {"prompt": [{"role": "user", "content": text}], "task": task, "answer": record.get("answer")}


def varied_prompts(records=None, seed: int = 0) -> list[dict]:
    """Every record of `records` (the training prompts by default) asked once more in a varied
    wording, chosen by `seed`; records that `rephrase` cannot read are left out."""
    rng = random.Random(seed)
    records = training_prompts() if records is None else records
    return [r for r in (rephrase(rec, rng) for rec in records) if r is not None]


def stage_prompts(seed: int = 0, varied: str | None = "benign") -> list[dict]:
    """The prompts the CAI stages sample from: the training prompts, plus `varied_prompts` of the
    benign questions (``varied="benign"``), of every prompt (``"all"``) or of none (None)."""
    if varied not in (None, "benign", "all"):
        raise ValueError(f"varied must be None, 'benign' or 'all', got {varied!r}")
    base = training_prompts()
    extra = [r for r in varied_prompts(base, seed) if varied == "all" or r["task"] != "harmful"] if varied else []
    return base + extra
