"""Pairwise judges: three ways to decide which of two replies is better, and the gold verdict.

Introduced in chapter 9 ("Evaluation"). Each judge is a callable ``judge(question, reply_a,
reply_b) -> "a" | "b" | "tie"``, the shape `evaluation.winrate.position_flip_rate` tests:

* `rule_judge`: a rude reply loses, then the clearly shorter reply wins. It knows nothing of
  facts, as a cheap heuristic judge does not;
* `reward_judge`: the chapter 4 reward model scores each reply on its own, and the higher wins. A
  judge that scores replies one at a time cannot prefer a position;
* `model_judge`: a chat model is shown the question and both replies, labelled A and B, and asked
  which is better; its verdict is whichever of the tokens "A" and "B" it finds more likely next.
  This is the LLM-as-a-judge recipe (the gpu profile's SmolLM2 is the intended judge; on the cpu
  profile the tiny SFT model plays it, badly, which is the point of measuring it).

`gold_verdict` is the reference the judges are measured against: the reply with the higher
`reward.overoptimization.gold_score` wins.
"""

from __future__ import annotations

from collections.abc import Callable

from .judgements import is_rude
from ..reward.overoptimization import gold_score

Judge = Callable[[str, str, str], str]
JUDGE_TEMPLATE = ("Which answer to the question is better?\nQuestion: {question}\n"
                  "Answer A: {a}\nAnswer B: {b}\nReply with A or B.")
RULE_LENGTH_MARGIN = 3  # words: a shorter reply wins only if it is at least this much shorter


def gold_verdict(record: dict, reply_a: dict, reply_b: dict) -> str:
    """``"a"``, ``"b"`` or ``"tie"`` by `gold_score` (``{"text", "ended"}`` replies to `record`, a
    fact or sum question)."""
    a = gold_score(reply_a["text"], reply_a["ended"], record)
    b = gold_score(reply_b["text"], reply_b["ended"], record)
    return "a" if a > b else "b" if b > a else "tie"


def rule_judge(question: str, reply_a: str, reply_b: str) -> str:
    """A rude reply loses to a polite one; otherwise the reply at least `RULE_LENGTH_MARGIN` words
    shorter wins; otherwise a tie. `question` is unused: the rules never read it."""
    rude_a, rude_b = is_rude(reply_a), is_rude(reply_b)
    if rude_a != rude_b:
        return "b" if rude_a else "a"
    diff = len(reply_a.split()) - len(reply_b.split())
    if abs(diff) >= RULE_LENGTH_MARGIN:
        return "a" if diff < 0 else "b"
    return "tie"


def reward_judge(reward_model, tokenizer, tie_margin: float = 0.0) -> Judge:
    """A judge from a reward model: the reply scored higher by more than `tie_margin` wins.

    Args:
        reward_model, tokenizer: e.g. ``checkpoints.get("reward")``.
        tie_margin: score differences at most this large are ties.

    Returns:
        ``judge(question, reply_a, reply_b)``; scores are memoised, so a swapped pair costs nothing.
    """
    from ..reward.bradley_terry import score

    cache: dict[tuple[str, str], float] = {}

    def value(question: str, reply: str) -> float:
        if (question, reply) not in cache:
            prompt = [{"role": "user", "content": question}]
            cache[question, reply] = score(reward_model, tokenizer, [prompt], [reply])[0]
        return cache[question, reply]

    def judge(question: str, reply_a: str, reply_b: str) -> str:
        diff = value(question, reply_a) - value(question, reply_b)
        return "tie" if abs(diff) <= tie_margin else "a" if diff > 0 else "b"

    return judge


def model_judge(model, tokenizer, template: str = JUDGE_TEMPLATE) -> Judge:
    """A chat model prompted as a judge (LLM-as-a-judge).

    The user turn is `template` filled with the question and the two replies; the verdict is
    ``"a"`` if the model's next-token logit for "A" beats the one for "B", else ``"b"`` (it never
    says tie).

    Args:
        model, tokenizer: a chat model, e.g. ``checkpoints.get("sft")``.
        template: the judge prompt, with ``{question}``, ``{a}`` and ``{b}`` fields.

    Returns:
        ``judge(question, reply_a, reply_b)``.
    """
    import torch

    ids = {}
    for label in ("A", "B"):
        tokens = tokenizer.encode(label, add_special_tokens=False)
        if len(tokens) != 1:
            raise ValueError(f"the judge needs {label!r} to be one token; the tokenizer gives "
                             f"{tokens}")
        ids[label] = tokens[0]
    device = next(model.parameters()).device

    def judge(question: str, reply_a: str, reply_b: str) -> str:
        content = template.format(question=question, a=reply_a, b=reply_b)
        text = tokenizer.apply_chat_template([{"role": "user", "content": content}],
                                             tokenize=False, add_generation_prompt=True)
        enc = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(device)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                logits = model(**enc).logits[0, -1]
        finally:
            model.train(was_training)
        return "a" if logits[ids["A"]] > logits[ids["B"]] else "b"

    return judge


def verdicts(judge: Judge, pairs) -> list[str]:
    """`judge`'s verdict on each ``(question, reply_a, reply_b)`` of `pairs`."""
    return [judge(q, a, b) for q, a, b in pairs]
