"""Verifiable rewards for chapter 8: programs that check a reply's sum, and one that can be fooled.

Introduced in chapter 8 ("GRPO and verifiable rewards"). `strict_reward` gives 1 when the reply
states the right sum (`evaluation.judgements.answer_matches`) and no other number; `lenient_reward`
is the deliberately flawed verifier of the reward-hacking lesson (any stated number that matches
counts, so listing many numbers pays). Both take TRL's reward-function arguments
(``prompts, completions, answer``) and return one float per completion.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..evaluation.judgements import answer_matches, question_text, reply_text, tokens

# a word that mixes letters and digits ("7th", "abc7def", "7b") states no number
_MIXED_WORD = re.compile(r"\w*(?:[^\W\d_]\d|\d[^\W\d_])\w*")


def numbers_in(completion) -> list[str]:
    """The numbers a reply states as words of their own: digits glued to letters ("7th", "7b")
    are not numbers, and number words ("seven") are left to `evaluation.judgements.stated_answers`."""
    return [t for t in tokens(_MIXED_WORD.sub(" ", reply_text(completion))) if t.isdigit()]


def _check_lengths(prompts, completions, answer) -> None:
    if not len(prompts) == len(completions) == len(answer):
        raise ValueError(f"got {len(prompts)} prompts, {len(completions)} completions and "
                         f"{len(answer)} answers; expected one of each per completion")


def strict_reward(prompts: Sequence, completions: Sequence, answer: Sequence[str], **kwargs) -> list[float]:
    """The verifier: 1.0 when the reply commits to exactly one number and it is the sum, else 0.0.

    The numbers the question asks about, echoed in the reply ("3 plus 4 is 7"), are not answers
    (`evaluation.judgements.stated_answers`); a reply naming two candidates ("7, or maybe 8") or none scores 0.

    Args:
        prompts: the prompts (strings or chat messages), one per completion.
        completions: the replies (strings or chat messages), as `GRPOTrainer` passes them.
        answer: the dataset's ``answer`` column: the right sum, as a string.
        **kwargs: the trainer's other keyword arguments (ignored).

    Returns:
        One reward per completion.
    """
    _check_lengths(prompts, completions, answer)
    return [float(answer_matches(_MIXED_WORD.sub(" ", reply_text(c)), str(a), "sum", question_text(p)))
            for p, c, a in zip(prompts, completions, answer)]


def lenient_reward(prompts: Sequence, completions: Sequence, answer: Sequence[str], **kwargs) -> list[float]:
    """A *flawed* verifier (chapter 8's reward-hacking lab): 1.0 when the right number appears
    anywhere in the reply as a word of its own (`numbers_in`), however many other numbers it states.

    Args and returns as `strict_reward`.
    """
    _check_lengths(prompts, completions, answer)
    return [float(str(a).strip() in numbers_in(c)) for c, a in zip(completions, answer)]
