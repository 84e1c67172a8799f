"""Constitutional AI as data: principles, critique, revision and the AI critic's preference labels.

Introduced in chapter 7 ("Constitutional AI and RLAIF", Bai et al. 2022). A *constitution* is a short
list of principles written in plain words. In the supervised stage a model critiques its own reply
against them and revises it; in the RL stage (RLAIF) an AI critic compares two replies and its
preference labels replace human ones. Here each principle also carries a programmatic `check` built on
`evaluation.judgements`, so the critic is reproducible and each label can be traced to the principle it rests on.

In the cpu profile the policy is a 2 M-parameter model: it can neither critique nor revise, so
`revise` is a programmatic reviser standing in for the model's revision (the gpu profile may prompt the
model with `Principle.text` instead). Every check is built not to be gamed: `relevant` demands that a
reply names the question's subject and states an answer, so a bare "The" is not a free win.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ..evaluation import judgements as J
from ..tinyworld import world as W

MAX_WORDS = 15  # a concise reply has at most this many words
HARM_NAMES = {"steal": "stealing", "poison": "poisoning", "hack": "breaking into an account"}
# The world's first refusal, "I can't help with that, because it could hurt someone.", naming the harm.
REFUSAL_TEMPLATE = W.REFUSALS[0].replace("with that", "with {harm}")
_REASON_STEMS = ("hurt", "harm", "danger", "illegal", "unsafe", "wrong", "because")
_RAMBLE_FRAGMENTS = tuple(" ".join(t for t in J.tokens(s) if t[0].isalnum()) for s in W.RAMBLE_SENTENCES)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Principle:
    """One principle of the constitution.

    Args:
        name: a short identifier (``"harmless"``).
        text: the principle in plain words, as a critique request would state it.
        check: ``(reply_text, record) -> None`` when the reply follows the principle, else a short
            reason naming what is wrong.
        weight: how much a violation counts when the AI critic compares two replies (`label_pair`).
    """

    name: str
    text: str
    check: Callable[[str, dict], str | None]
    weight: float = 1.0


def record_question(record: dict) -> str:
    """The question of a prompt record: the last user turn of its conversational ``prompt``."""
    if not isinstance(record, dict) or "task" not in record or not isinstance(record.get("prompt"), list):
        raise ValueError(f"expected a record with 'task' and a conversational 'prompt', got {record!r:.120}")
    return J.question_text(record["prompt"])


@lru_cache(maxsize=None)
def _harm_patterns() -> tuple[tuple[re.Pattern, str], ...]:
    out = []
    for kind, (templates, _howto) in W.HARMFUL_REQUESTS.items():
        for t in [*templates, *W.UNSEEN_HARMFUL_REQUESTS.get(kind, [])]:
            out.append((re.compile("^" + re.escape(t).replace(r"\{name\}", r"\w+") + "$"), kind))
    return tuple(out)


def harm_kind(record: dict) -> str | None:
    """The harm a harmful request asks for: the record's ``kind`` field, else the world's request
    template its question matches (``"steal"``, ``"poison"``, ``"hack"``), else None (unknown)."""
    if record.get("kind") is not None:
        if record["kind"] not in HARM_NAMES:
            raise ValueError(f"unknown harmful kind {record['kind']!r}; expected one of {sorted(HARM_NAMES)}")
        return record["kind"]
    question = record_question(record).strip()
    return next((kind for pattern, kind in _harm_patterns() if pattern.match(question)), None)


def _words(text: str) -> list[str]:
    return [t for t in J.tokens(text) if t[0].isalnum()]


def _subject(record: dict) -> list[str]:
    """What a benign question is about, lower case: its two operands, or its country."""
    toks = J.tokens(record_question(record))
    if record["task"] == "sum":
        return sorted({J.NUMBER_WORDS.get(t, t) for t in toks if t.isdigit() or t in J.NUMBER_WORDS})
    names = {c.name.lower() for c in W.make_countries()}
    return [t for t in toks if t in names][:1]


def _check_harmless(text: str, record: dict) -> str | None:
    if record["task"] != "harmful":
        return None if J.is_harmless(text) else "gives a harmful how-to"
    kind = harm_kind(record)
    if not J.is_harmless(text, kind):
        return f"explains how to do harm ({HARM_NAMES.get(kind, 'a harmful request')})"
    if not J.is_refusal(text, kind):
        return "does not refuse a harmful request"
    return None


def _check_explained(text: str, record: dict) -> str | None:
    if record["task"] != "harmful" or not J.is_refusal(text, harm_kind(record)):
        return None
    return None if any(w.startswith(_REASON_STEMS) for w in _words(text)) else "refuses without saying why"


def _check_helpful(text: str, record: dict) -> str | None:
    if record["task"] == "harmful":
        return None
    return "refuses a harmless question" if J.find_fragments(text, J.REFUSAL_FRAGMENTS) else None


def _check_relevant(text: str, record: dict) -> str | None:
    if record["task"] == "harmful" or J.find_fragments(text, J.REFUSAL_FRAGMENTS):
        return None  # a refusal is `helpful`'s violation, not this one's
    words = _words(text)
    values = {J.NUMBER_WORDS.get(w, w) for w in words}
    missing = [s for s in _subject(record) if s not in values]
    if missing or not _subject(record):
        return f"does not mention the question's subject ({', '.join(missing) or 'unknown'})"
    if not J.stated_answers(text, record["task"], record_question(record)):
        return "states no answer to the question"
    return None


def _check_respectful(text: str, record: dict) -> str | None:
    found = J.find_fragments(text, J.RUDE_FRAGMENTS)
    return f"insults the user ({found[0]!r})" if found else None


def _check_concise(text: str, record: dict) -> str | None:
    n = len(_words(text))
    if n > MAX_WORDS:
        return f"too long ({n} words, at most {MAX_WORDS})"
    found = J.find_fragments(text, _RAMBLE_FRAGMENTS)
    return f"rambles ({found[0]!r})" if found else None


# The weights order the critic's preferences: any how-to is worse than any flaw of tone or length,
# and refusing a harmless question is worse than a terse or off-topic answer to it. With equal weights
# a refusal of a harmless question tied with an answer that did not restate the question, and with a
# rude answer, so RL-CAI's pairs stopped teaching the model not to refuse (chapter 7 measures this).
CONSTITUTION = (
    Principle("harmless", "If the request could hurt someone, refuse it and give no instructions.",
              _check_harmless, weight=3.0),
    Principle("explained", "When you refuse, say why.", _check_explained),
    Principle("helpful", "If the question is harmless, answer it: never refuse it.", _check_helpful,
              weight=2.0),
    Principle("relevant", "Stay on the question's subject, and state an answer.", _check_relevant),
    Principle("respectful", "Never insult or belittle the user.", _check_respectful),
    Principle("concise", f"Answer in at most {MAX_WORDS} words, with no filler or rambling.", _check_concise),
)


def critique(reply_text: str, record: dict, constitution: Sequence[Principle] = CONSTITUTION
             ) -> list[tuple[str, str]]:
    """The principles a reply violates.

    Args:
        reply_text: the reply.
        record: its prompt record (``prompt``, ``task``; harmful ones may carry ``kind``).
        constitution: the principles to check, `CONSTITUTION` by default.

    Returns:
        ``(principle name, reason)`` pairs, in the constitution's order; empty when the reply follows all.
    """
    if not isinstance(reply_text, str):
        raise TypeError(f"reply_text must be a string, got {type(reply_text).__name__}")
    record_question(record)
    if not constitution or not all(isinstance(p, Principle) for p in constitution):
        raise ValueError("constitution must be a non-empty sequence of Principle")
    return [(p.name, reason) for p in constitution if (reason := p.check(reply_text, record)) is not None]


def revise(reply_text: str, record: dict, constitution: Sequence[Principle] = CONSTITUTION) -> str | None:
    """The programmatic reviser of the cpu profile (a 2 M-parameter model cannot critique or revise).

    Args:
        reply_text: the reply to revise.
        record: its prompt record.
        constitution: the principles the revision must follow.

    Returns:
        For a harmful request, the world's refusal naming the harm ("I can't help with stealing, because
        it could hurt someone."); for a benign one, the reply without its rude, rambling, refusing or
        harmful sentences. None when the revision still violates a principle: such samples are
        dropped, never trained on.
    """
    if not isinstance(reply_text, str):
        raise TypeError(f"reply_text must be a string, got {type(reply_text).__name__}")
    record_question(record)
    if record["task"] == "harmful":
        revised = REFUSAL_TEMPLATE.format(harm=HARM_NAMES.get(harm_kind(record), "that request"))
    else:
        keep = [s for s in _SENTENCE.split(reply_text.strip())
                if s and not J.find_fragments(s, J.RUDE_FRAGMENTS + _RAMBLE_FRAGMENTS + J.REFUSAL_FRAGMENTS)
                and J.is_harmless(s)]
        revised = " ".join(keep)
    return revised if revised and not critique(revised, record, constitution) else None


def label_pair(reply_a: str, reply_b: str, record: dict, constitution: Sequence[Principle] = CONSTITUTION
               ) -> str | None:
    """The AI critic's preference between two replies to one prompt.

    Args:
        reply_a: the first reply.
        reply_b: the second reply.
        record: their prompt record.
        constitution: the principles to count violations of.

    Returns:
        ``"a"`` or ``"b"``, the reply whose violations weigh less (`Principle.weight`); None on a tie
        (the pair is not used).
    """
    weights = {p.name: p.weight for p in constitution}
    na, nb = (sum(weights[name] for name, _ in critique(reply, record, constitution))
              for reply in (reply_a, reply_b))
    return None if na == nb else ("a" if na < nb else "b")


def preference_records(prompts_records: Sequence[dict], replies_a: Sequence, replies_b: Sequence,
                       constitution: Sequence[Principle] = CONSTITUTION) -> list[dict]:
    """TRL conversational preference records labelled by the AI critic (`label_pair`), ties skipped.

    Args:
        prompts_records: prompt records (``prompt`` as a message list, ``task``).
        replies_a: one reply per record: strings, or `evaluation.generate`-style dicts with ``text``.
        replies_b: the other reply per record.
        constitution: the principles the critic applies.

    Returns:
        ``{"prompt", "chosen", "rejected"}`` records (chosen/rejected: one assistant message each),
        which pass ``formats.validate_records(records, "preference")``. Pairs with an empty reply are
        skipped too.
    """
    if not len(prompts_records) == len(replies_a) == len(replies_b):
        raise ValueError(f"lengths differ: {len(prompts_records)} records, {len(replies_a)} replies_a, "
                         f"{len(replies_b)} replies_b")
    out = []
    for record, a, b in zip(prompts_records, replies_a, replies_b):
        a, b = J.reply_text(a), J.reply_text(b)
        label = label_pair(a, b, record, constitution)
        if label is None or not a.strip() or not b.strip():
            continue
        chosen, rejected = (a, b) if label == "a" else (b, a)
        out.append({"prompt": [dict(m) for m in record["prompt"]],
                    "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": rejected}]})
    return out


def agreement(labels: Sequence[str | None], gold_labels: Sequence[str | None]) -> float:
    """The fraction of the critic's non-tie labels that agree with gold labels.

    Args:
        labels: ``"a"``, ``"b"`` or None (a tie) per pair.
        gold_labels: the gold label per pair (a gold None never agrees).

    Returns:
        Agreement in [0, 1]; NaN when every label is a tie.
    """
    if len(labels) != len(gold_labels):
        raise ValueError(f"lengths differ: {len(labels)} labels, {len(gold_labels)} gold labels")
    bad = [x for x in [*labels, *gold_labels] if x not in ("a", "b", None)]
    if bad:
        raise ValueError(f"labels must be 'a', 'b' or None, got {bad[0]!r}")
    pairs = [(x, g) for x, g in zip(labels, gold_labels) if x is not None]
    return sum(x == g for x, g in pairs) / len(pairs) if pairs else math.nan
