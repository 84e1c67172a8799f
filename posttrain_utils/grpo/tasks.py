"""Chapter 8's task: one-digit sums, the prompts GRPO trains on, the held-out set it is judged on,
and the measurements taken during and after training.

Introduced in chapter 8 ("GRPO and verifiable rewards"). The tiny world holds 30 of its 100
one-digit sums out (`tinyworld.world.heldout_sums`): the pretraining corpus states them only as
bare equations, and no training file asks them. GRPO trains on the other 70 sums, asked in
`TRAIN_TEMPLATES`. The 30 held-out sums are split like ``eval_dev`` / ``eval_test``: it is judged
on the 16 test sums in those wordings and in the world's held-out wording (`HELDOUT_TEMPLATE`), 128
questions in all, none of them ever trained on; the 14 development sums are for choices.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .verifiers import numbers_in, strict_reward
from ..evaluation.judgements import question_text, reply_text
from ..tinyworld import world

# The world's two training wordings, then five written for this chapter. None is a held-out
# wording of the world (tests/test_grpo.py checks this).
NEW_TEMPLATES = ("What do {a} and {b} add up to?", "Tell me the sum of {a} and {b}.",
                 "Quick one: {a} plus {b} equals what?",
                 "I have {a} apples and get {b} more. How many apples now?",
                 "Compute {a} + {b}, please.")
TRAIN_TEMPLATES = (*world.SUM_QUESTIONS, *NEW_TEMPLATES)
HELDOUT_TEMPLATE = world.HELDOUT_SUM_QUESTION
EVAL_MAX_NEW_TOKENS = 48


def _record(a: int, b: int, template: str, wording: str) -> dict:
    question = template.format(a=a, b=b)
    return {"prompt": [{"role": "user", "content": question}], "answer": str(a + b), "wording": wording}


def train_prompts(seed: int = 0) -> list[dict]:
    """GRPO's training prompts: every sum that is not held out, in every `TRAIN_TEMPLATES` wording,
    shuffled with `seed` (``prompt`` as chat messages, ``answer``, ``wording``)."""
    held = world.heldout_sums()
    out = [_record(a, b, t, "trained") for a in range(10) for b in range(10) if (a, b) not in held
           for t in TRAIN_TEMPLATES]
    random.Random(seed).shuffle(out)
    return out


def heldout_prompts(side: str = "test") -> list[dict]:
    """The held-out questions of one side (128 test, 112 development): its held-out sums
    (`world.dev_test_sums`, as in ``eval_dev`` / ``eval_test``) in the 7 training wordings
    (``wording`` ``"trained"``) and in the world's held-out wording (``"held-out"``). Checks read
    ``"test"``; choices read ``"dev"``."""
    if side not in ("dev", "test"):
        raise ValueError(f"side must be 'dev' or 'test', not {side!r}")
    dev, test = world.dev_test_sums()
    out = []
    for a, b in dev if side == "dev" else test:
        out += [_record(a, b, t, "trained") for t in TRAIN_TEMPLATES]
        out.append(_record(a, b, HELDOUT_TEMPLATE, "held-out"))
    return out


def sums_accuracy(model, tokenizer, records: Sequence[dict] | None = None, profile=None, *,
                  sample: bool = False, seed: int | None = None) -> dict[str, float]:
    """Greedy (or sampled) accuracy on sum questions, judged by `grpo.strict_reward`.

    Args:
        model, tokenizer: the policy.
        records: questions with ``prompt`` and ``answer`` (default: `heldout_prompts`).
        profile: the run profile (default: the active one).
        sample: sample at temperature 1 instead of greedy decoding.
        seed: the sampling seed (default: the profile's).

    Returns:
        ``accuracy`` over all records, ``accuracy_held_out_wording`` over records whose ``wording``
        is ``"held-out"`` (NaN if none), and ``length``, the mean reply length in words.
    """
    from ..evaluation.generation import generate

    records = heldout_prompts() if records is None else list(records)
    replies = generate(model, tokenizer, [r["prompt"] for r in records], profile,
                       max_new_tokens=EVAL_MAX_NEW_TOKENS, sample=sample, seed=seed)
    ok = strict_reward([r["prompt"] for r in records], [x["text"] for x in replies],
                       [r["answer"] for r in records])
    held = [o for o, r in zip(ok, records) if r.get("wording") == "held-out"]
    return {"accuracy": sum(ok) / len(ok),
            "accuracy_held_out_wording": sum(held) / len(held) if held else float("nan"),
            "length": sum(len(x["text"].split()) for x in replies) / len(replies)}


class RewardLog:
    """A reward function for `GRPOTrainer` that also records, per step, what the chapter plots.

    It returns `reward` (default `strict_reward`) and records, for every batch, the strict accuracy,
    the fraction of groups with zero reward spread, and the mean length in tokens of the strictly
    correct and incorrect completions. Pass it in ``reward_funcs``; read `rows` after training.

    Args:
        reward: the reward function actually optimised (e.g. `grpo.lenient_reward`).
        group_size: completions per prompt, to count zero-spread groups.
    """

    def __init__(self, reward=strict_reward, group_size: int = 8):
        self.reward, self.group_size, self.rows = reward, group_size, []
        self.__name__ = getattr(reward, "__name__", "reward")

    def __call__(self, prompts, completions, answer, completion_ids=None, **kwargs) -> list[float]:
        from .loss import zero_spread_fraction

        rewards = self.reward(prompts, completions, answer)
        strict = strict_reward(prompts, completions, answer)
        lengths = ([len(ids) for ids in completion_ids] if completion_ids is not None
                   else [len(reply_text(c).split()) for c in completions])

        def mean(xs):
            return sum(xs) / len(xs) if xs else float("nan")

        self.rows.append({
            "reward": mean(rewards), "strict_accuracy": mean(strict),
            "zero_spread": zero_spread_fraction(rewards, self.group_size),
            "length": mean(lengths),
            "length_correct": mean([n for n, s in zip(lengths, strict) if s]),
            "length_incorrect": mean([n for n, s in zip(lengths, strict) if not s]),
            "numbers_per_reply": mean([len(numbers_in(c)) for c in completions]),
            "question": question_text(prompts[0])})
        return rewards


# the columns of `RewardLog.rows`, the question aside
STEP_COLUMNS = ("reward", "strict_accuracy", "zero_spread", "length", "length_correct",
                "length_incorrect", "numbers_per_reply")


def steps_frame(rows):
    """`RewardLog.rows` as a `pandas.DataFrame` of `STEP_COLUMNS`, one row per step (none when
    nothing trained, as in the placebo run)."""
    import pandas as pd

    return pd.DataFrame(list(rows), columns=[*STEP_COLUMNS, "question"]).drop(columns="question")
