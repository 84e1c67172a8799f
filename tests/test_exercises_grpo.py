"""Chapter 8's exercise checkers, both ways: the reference solutions pass, constants and near-misses
fail, and a learner's function that raises gives a verdict, not a traceback."""

from __future__ import annotations

import re

import numpy as np
import torch

from posttrain_utils import grpo
from posttrain_utils.evaluation import judgements as J
from posttrain_utils.exercises import ch08_grpo as ex

NUMBER_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
                "fifteen sixteen seventeen eighteen nineteen twenty").split()


# --- reference solutions ----------------------------------------------------------------------------

def group_advantages(rewards, group_size, scale=True):  # the reference solution of grpo-ex1
    grouped = torch.as_tensor(rewards, dtype=torch.float32).view(-1, group_size)
    advantages = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:
        advantages = advantages / (grouped.std(dim=1, keepdim=True) + 1e-4)
    return advantages.flatten()


def group_advantages_numpy(rewards, group_size, scale=True):  # also right: NumPy, returning a list
    grouped = np.asarray(rewards, dtype=np.float64).reshape(-1, group_size)
    advantages = grouped - grouped.mean(axis=1, keepdims=True)
    if scale:
        advantages = advantages / (grouped.std(axis=1, ddof=1, keepdims=True) + 1e-4)
    return advantages.ravel().tolist()


def grpo_loss(logps, old_logps, advantages, mask, loss_type, epsilon=0.2, max_completion_length=None):
    """The reference solution of grpo-ex2."""
    mask = mask.float()
    ratio = torch.exp(logps - old_logps)
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon)
    per_token = -torch.minimum(ratio * advantages[:, None], clipped * advantages[:, None]) * mask
    if loss_type == "grpo":
        return (per_token.sum(1) / mask.sum(1)).mean()
    if loss_type == "dr_grpo":
        return per_token.sum() / (logps.shape[0] * (max_completion_length or logps.shape[1]))
    if loss_type == "dapo":
        return per_token.sum() / mask.sum()
    raise ValueError(loss_type)


def grpo_loss_where(logps, old_logps, advantages, mask, loss_type, epsilon=0.2, max_completion_length=None):
    """Also right: the clip written as "which branch binds", with torch.where."""
    ratio, a = torch.exp(logps - old_logps), advantages.unsqueeze(-1)
    binds = ((ratio > 1 + epsilon) & (a > 0)) | ((ratio < 1 - epsilon) & (a < 0))
    per_token = -torch.where(binds, ratio.clamp(1 - epsilon, 1 + epsilon).detach(), ratio) * a
    weights = {"grpo": 1 / (mask.sum(1, keepdim=True) * len(mask)),
               "dr_grpo": torch.tensor(1 / (len(mask) * (max_completion_length or mask.shape[1]))),
               "dapo": 1 / mask.sum()}[loss_type]
    return (per_token * mask * weights).sum()


def verifier(question, reply, answer):  # the reference solution of grpo-ex3, with the course's judgement
    reply = re.sub(r"\w*(?:[^\W\d_]\d|\d[^\W\d_])\w*", " ", reply)  # "7th", "abc7def": no number
    return J.answer_matches(reply, answer, "sum", question)


def verifier_from_scratch(question, reply, answer):
    """Also right: tokens, number words, the echoed operands dropped, negation up to the clause's end."""
    a, b = re.findall(r"\d+", question)
    toks = re.findall(r"[a-z0-9]+|[+=.,;:!?]", reply.lower())  # "7th" is one word, not a number
    value = {i: str(int(t)) if t.isdigit() else str(NUMBER_WORDS.index(t)) for i, t in enumerate(toks)
             if t.isdigit() or t in NUMBER_WORDS}
    echoed, positions = set(), sorted(value)
    for i, j in zip(positions, positions[1:]):
        between = toks[i + 1:j]
        if sorted([value[i], value[j]]) == sorted([a, b]) and 1 <= len(between) <= 2 \
                and all(t in ("plus", "+", "and", "to", "with", "added", "add") for t in between):
            echoed |= {i, j}
    stated, negated = set(), 0
    for i, t in enumerate(toks):
        if t in ("not", "never"):
            negated = 3
        elif t in ".,;:!?":
            negated = 0
        else:
            if i in value and i not in echoed and not negated:
                stated.add(value[i])
            negated = max(negated - 1, 0)
    return stated == {answer}


def test_reference_solutions_pass():
    assert ex.check_group_advantages(group_advantages)
    assert ex.check_group_advantages(group_advantages_numpy)
    assert ex.check_group_advantages(lambda r, g, scale=True: grpo.group_advantages(r, g, scale).numpy())
    assert ex.check_grpo_loss(grpo_loss)
    assert ex.check_grpo_loss(grpo_loss_where)
    assert ex.check_grpo_loss(grpo.grpo_loss)
    assert ex.check_verifier(verifier)
    assert ex.check_verifier(verifier_from_scratch)


def test_verifier_bank_has_both_labels_and_is_the_strict_rewards():
    cases = ex.verifier_cases()
    assert len(cases) >= 20
    truths = [c["truth"] for c in cases]
    assert 10 <= sum(truths) <= len(cases) - 10
    assert all(c["truth"] == (grpo.strict_reward([c["question"]], [c["reply"]], [c["answer"]])[0] == 1.0)
               for c in cases)
    hacks = [c for c in cases if not c["truth"]]  # what the chapter calls hacks are all rejected
    assert {"every number from 0 to 18", "a hedge between two answers", "an empty reply", "a wrong number",
            "only the question's numbers", "the sum only inside a bigger number"} <= {c["why"] for c in hacks}
    assert {"the sum as a word", "the question's numbers echoed, then the sum"} <= {
        c["why"] for c in cases if c["truth"]}
    assert ex.verifier_cases() == cases  # built the same way every time


# --- constants, near misses, exceptions ---------------------------------------------------------------

def test_constants_fail():
    assert not ex.check_group_advantages(lambda r, g, scale=True: torch.zeros(len(r)))
    assert not ex.check_group_advantages(lambda r, g, scale=True: r)
    assert not ex.check_grpo_loss(lambda *args, **kwargs: torch.tensor(0.0, requires_grad=True))
    assert not ex.check_grpo_loss(lambda logps, *args, **kwargs: logps.sum() * 0)
    assert not ex.check_verifier(lambda q, r, a: True)
    assert not ex.check_verifier(lambda q, r, a: False)
    assert not ex.check_verifier(lambda q, r, a: None)


def test_advantage_near_misses_fail():
    def variant(eps=1e-4, unbiased=True, per_group=True, scale_always=False):
        def fn(rewards, group_size, scale=True):
            grouped = rewards.view(-1, group_size) if per_group else rewards.view(1, -1)
            out = grouped - grouped.mean(dim=1, keepdim=True)
            if scale or scale_always:
                out = out / (grouped.std(dim=1, unbiased=unbiased, keepdim=True) + eps)
            return out.flatten()
        return fn
    assert not ex.check_group_advantages(variant(eps=0.0))  # nan on zero-spread groups
    assert not ex.check_group_advantages(variant(unbiased=False))  # biased std: larger by sqrt(n / (n - 1))
    assert not ex.check_group_advantages(variant(per_group=False))  # normalised over the batch
    assert not ex.check_group_advantages(variant(scale_always=True))  # ignores scale=False
    assert not ex.check_group_advantages(lambda r, g, scale=True: group_advantages(r, g, scale).view(-1, g))
    assert not ex.check_group_advantages(  # eps inside the square root
        lambda r, g, scale=True: (r.view(-1, g) - r.view(-1, g).mean(1, keepdim=True)).div(
            (r.view(-1, g).var(1, keepdim=True) + 1e-4).sqrt() if scale else 1.0).flatten())


def test_loss_near_misses_fail():
    def dr_grpo_as_mean(logps, old, advantages, mask, loss_type, epsilon=0.2, max_completion_length=None):
        loss_type = "dapo" if loss_type == "dr_grpo" else loss_type
        return grpo_loss(logps, old, advantages, mask, loss_type, epsilon)

    def dr_grpo_padded_width(logps, old, advantages, mask, loss_type, epsilon=0.2, **kwargs):
        return grpo_loss(logps, old, advantages, mask, loss_type, epsilon)  # ignores max_completion_length

    def unclipped(logps, old, advantages, mask, loss_type, epsilon=0.2, max_completion_length=None):
        return grpo_loss(logps, old, advantages, mask, loss_type, 1e9, max_completion_length)

    def clip_only(logps, old, advantages, mask, loss_type, epsilon=0.2, max_completion_length=None):
        ratio = torch.exp(logps - old).clamp(1 - epsilon, 1 + epsilon)  # no min with the unclipped term
        return grpo_loss(torch.log(ratio) + old, old, advantages, mask, loss_type, 1e9, max_completion_length)

    def detached(logps, *args, **kwargs):
        return grpo_loss(logps.detach(), *args, **kwargs)

    def no_mask(logps, old, advantages, mask, *args, **kwargs):
        return grpo_loss(logps, old, advantages, torch.ones_like(logps), *args, **kwargs)

    def clamped_detached(logps, old, advantages, mask, loss_type, epsilon=0.2, max_completion_length=None):
        ratio = torch.exp(logps - old)
        clipped = ratio + (ratio.clamp(1 - epsilon, 1 + epsilon) - ratio).detach()  # right value, wrong grad
        per_token = -torch.minimum(ratio * advantages[:, None], clipped * advantages[:, None]) * mask
        return per_token.sum() / mask.sum() if loss_type == "dapo" else grpo_loss(
            logps, old, advantages, mask, loss_type, epsilon, max_completion_length)

    for near_miss in (dr_grpo_as_mean, dr_grpo_padded_width, unclipped, clip_only, detached, no_mask,
                      clamped_detached):
        assert not ex.check_grpo_loss(near_miss), near_miss.__name__
    assert not ex.check_grpo_loss(lambda *args, **kwargs: -grpo_loss(*args, **kwargs))
    assert not ex.check_grpo_loss(lambda *args, **kwargs: grpo_loss(*args, **kwargs).item())


def test_verifier_near_misses_fail():
    def numbers(reply):
        return [str(int(J.NUMBER_WORDS.get(t, t))) for t in J.tokens(reply)
                if t.isdigit() or t in J.NUMBER_WORDS]

    near_misses = {
        "last number": lambda q, r, a: bool(numbers(r)) and numbers(r)[-1] == a,
        "first number": lambda q, r, a: bool(numbers(r)) and numbers(r)[0] == a,
        "substring": lambda q, r, a: a in r,
        "lenient": lambda q, r, a: grpo.lenient_reward([q], [r], [a])[0] == 1.0,
        "one number, echo counted": lambda q, r, a: set(numbers(r)) == {a},
        "digits only": lambda q, r, a: bool(re.findall(r"\d+", r)) and set(re.findall(r"\d+", r)) <= {a},
        "ignores negation": lambda q, r, a: set(numbers(r)) - set(re.findall(r"\d+", q)) == {a},
        "any stated answer": lambda q, r, a: a in J.stated_answers(r, "sum", q),
    }
    for name, fn in near_misses.items():
        assert not ex.check_verifier(fn), name


def test_learner_exceptions_become_verdicts(capsys):
    def boom(*args, **kwargs):
        raise RuntimeError("oops")
    assert not ex.check_group_advantages(boom)
    assert not ex.check_grpo_loss(boom)
    assert not ex.check_verifier(boom)
    out = capsys.readouterr().out
    assert out.count("not yet: your function raised RuntimeError('oops')") == 3

    def fails_on_empty(question, reply, answer):
        return verifier(question, reply[0] + reply[1:], answer)  # IndexError on ""
    assert not ex.check_verifier(fails_on_empty)
    assert "IndexError" in capsys.readouterr().out
    assert not ex.check_grpo_loss(lambda logps, *args, **kwargs: (logps.sum() * 0,)[1])
    assert not ex.check_group_advantages(lambda r, g, scale=True: object())  # not array-like
    assert not ex.check_verifier(lambda q, r, a: np.array([True, False]))  # ambiguous truth value


def test_hints_name_the_mistake(capsys):
    ex.check_verifier(lambda q, r, a: grpo.lenient_reward([q], [r], [a])[0] == 1.0)
    out = capsys.readouterr().out
    assert "[grpo-ex3] not yet:" in out and "replies judged wrongly, e.g. to" in out
    assert not ex.check_verifier(lambda q, r, a: verifier(q, r, a) or not r.strip())  # rewards silence
    out = capsys.readouterr().out
    assert f"3 of {len(ex.verifier_cases())} replies judged" in out  # one empty reply per sum
    assert not ex.check_verifier(lambda q, r, a: verifier(q, r, a) or not r.strip())
    assert "(an empty reply) must earn nothing" in capsys.readouterr().out
    ex.check_group_advantages(lambda r, g, scale=True: (r.view(-1, g) - r.view(-1, g).mean(1, keepdim=True))
                              .div(r.view(-1, g).std(1, unbiased=False, keepdim=True) + 1e-4
                                   if scale else 1.0).flatten())
    assert "unbiased" in capsys.readouterr().out
    ex.check_group_advantages(lambda r, g, scale=True: (r.view(-1, g) - r.view(-1, g).mean(1, keepdim=True))
                              .div(r.view(-1, g).std(1, keepdim=True)).flatten())
    assert "nan" in capsys.readouterr().out
    ex.check_grpo_loss(lambda *a, **k: grpo_loss(*a[:4], "dapo" if a[4] == "dr_grpo" else a[4], **k))
    assert "'dapo' normalisation" in capsys.readouterr().out
    ex.check_grpo_loss(lambda *a, **k: grpo_loss(*a, **{**k, "epsilon": 1e9}))
    assert "clip the ratio" in capsys.readouterr().out
    ex.check_grpo_loss(lambda logps, *a, **k: grpo_loss(logps.detach(), *a, **k))
    assert "no gradient" in capsys.readouterr().out
    assert ex.check_grpo_loss(grpo_loss) and capsys.readouterr().out == "[grpo-ex2] correct!\n"
