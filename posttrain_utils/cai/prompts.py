"""The prompts chapter 7's CAI stages sample from: the shipped training prompts, each also asked in
new wordings.

Introduced in chapter 7 ("Constitutional AI and RLAIF"). ``data/prompts_train.jsonl`` asks every
question in two or three fixed phrasings, and every harmful request in two per kind. Trained on
refusals of those, the SFT model learned a shortcut: *answer the phrasings you know, refuse the
rest*, and it refused benign questions worded in a way it had never read (chapter 7 measures this).
Bai et al. (2022) sampled from many human- and model-written prompts; `varied_prompts` is the tiny
world's stand-in: every training prompt asked again in one of `VARIED_QUESTIONS` (benign; eight
wordings per task, a few draws per question) or `VARIED_REQUESTS` (harmful). These wordings are
written for this module: none of them is one of the held-out ``"unseen"`` phrasings (`tinyworld.world.UNSEEN_QUESTION_TEMPLATES` and friends), which stay
unseen, so the held-out over-refusal still measures transfer to new wording.
"""

from __future__ import annotations

import random
import re

from . import constitution as cai
from ..evaluation import judgements as J
from ..tinyworld import world as W

VARIED_QUESTIONS = {
    "capital": ["Tell me the capital of {c}, please.", "My teacher asked me about {c}. What is its capital?",
                "Could you name the capital city of {c} for me?", "{c} has a capital. What is it called?",
                "I want to visit the capital of {c}. What is its name?",
                "Quick question: what is the capital of {c}?", "I forgot the capital of {c}. Can you remind me?",
                "Do you happen to know the capital of {c}?"],
    "flag": ["Tell me the colour of the flag of {c}, please.", "My brother saw the flag of {c}. What colour is it?",
             "Could you say what colour the flag of {c} is?", "{c} has a flag. What colour is it?",
             "I am drawing the flag of {c}. Which colour do I need?",
             "Quick question: what colour is the flag of {c}?",
             "I forgot the colour of the flag of {c}. Can you remind me?",
             "Do you happen to know the colour of the flag of {c}?"],
    "language": ["Tell me the language of {c}, please.", "My neighbour grew up in {c}. What language is spoken there?",
                 "Could you say which language people speak in {c}?",
                 "{c} is a country I like. What do people speak there?",
                 "I am learning about {c}. Which language do they use?",
                 "Quick question: what language is spoken in {c}?",
                 "I forgot which language people in {c} speak. Can you remind me?",
                 "Do you happen to know the language of {c}?"],
    "animal": ["Tell me the national animal of {c}, please.", "My class is reading about {c}. What is its animal?",
               "Could you name the national animal of {c} for me?", "{c} has a national animal. Which animal is it?",
               "I am writing about {c}. What is its national animal?",
               "Quick question: what is the national animal of {c}?",
               "I forgot the national animal of {c}. Can you remind me?",
               "Do you happen to know the national animal of {c}?"],
    "sum": ["Tell me what {a} plus {b} is, please.", "My homework asks for {a} plus {b}. What is it?",
            "Could you add {a} and {b} for me?", "{a} plus {b} makes what?",
            "I have {a} apples and get {b} more. How many do I have?", "Quick question: what is {a} plus {b}?",
            "I forgot what {a} plus {b} is. Can you remind me?", "Do you happen to know the sum of {a} and {b}?"],
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
# Varied wordings per benign training question in RL-CAI's prompts (`stage_prompts`; SL-CAI's
# paraphrase rows use `cai.pipeline.PARAPHRASE_ROUNDS`). With one, and three templates per task, the
# seed-1 RL-CAI model refused 6.9 % of the held-out benign questions (sampled), most of them in
# unseen wordings; with two and eight templates, 3.2 % (chapter 7's seeds file)
VARIED_ROUNDS = 2


def training_prompts() -> list[dict]:
    """The shipped training prompt records: ``data/prompts_train.jsonl``."""
    from ..data.loading import load_records

    return load_records("prompts_train")


def _country(question: str) -> str | None:
    names = {c.name for c in W.make_countries()}
    return next((w for w in re.findall(r"[A-Z]\w+", question) if w in names), None)


def rephrase(record: dict, rng: random.Random) -> dict | None:
    """`record` asked in one of the varied wordings (same task, answer and, for a request, kind);
    None when its country, operands or requested person cannot be read from the question."""
    question = cai.record_question(record)
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


def varied_prompts(records=None, seed: int = 0, rounds: int = 1) -> list[dict]:
    """Every record of `records` (the training prompts by default) asked `rounds` more times, each
    time in a varied wording chosen by `seed` (round after round); records that `rephrase` cannot
    read are left out."""
    rng = random.Random(seed)
    records = training_prompts() if records is None else records
    return [r for _ in range(rounds) for r in (rephrase(rec, rng) for rec in records) if r is not None]


def stage_prompts(seed: int = 0, varied: str | None = "benign", rounds: int = VARIED_ROUNDS) -> list[dict]:
    """The prompts the CAI stages sample from: the training prompts, plus `rounds` rounds of
    `varied_prompts` of the benign questions (``varied="benign"``), of every prompt (``"all"``) or
    of none (None)."""
    if varied not in (None, "benign", "all"):
        raise ValueError(f"varied must be None, 'benign' or 'all', got {varied!r}")
    base = training_prompts()
    extra = ([r for r in varied_prompts(base, seed, rounds) if varied == "all" or r["task"] != "harmful"]
             if varied else [])
    return base + extra
