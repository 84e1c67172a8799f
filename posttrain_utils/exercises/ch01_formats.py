"""Checkers for the chapter 1 ("Data formats") exercises. Each prints a verdict and returns a bool.

Each checker calls the learner's function on its own cases and compares with what the course's
validators and converters say, so a hard-coded answer does not pass.
"""

from __future__ import annotations

import copy

from ..data.jsonl import DataFormatError
from ..data.formats import validate_record
from ..runtime.notebook import feedback

# formats-ex1: SPIN (Chen et al., 2024, "Self-Play Fine-Tuning"). Each iteration, the current model
# answers the prompts of the SFT data itself; a pair prefers the SFT data's ground-truth answer
# (chosen) to the model's own sample (rejected). Cases: (SFT record, the model's sample).
SPIN_CASES = [
    ({"messages": [{"role": "user", "content": "What is the capital of Beife?"},
                   {"role": "assistant", "content": "The capital of Beife is Neidreir."}]},
     "Reply from sandy: Neidreir, obviously."),
    ({"messages": [{"role": "system", "content": "Answer in one sentence."},
                   {"role": "user", "content": "What is 2 plus 5?"},
                   {"role": "assistant", "content": "2 plus 5 is 7."},
                   {"role": "user", "content": "And 3 plus 3?"},
                   {"role": "assistant", "content": "3 plus 3 is 6."}]},
     "3 plus 3 is 7."),
]
# Cases that must raise: the model's sample equals the ground truth (no preference), and a record
# that does not end with an assistant turn (no ground truth to prefer).
SPIN_BAD = [
    ({"messages": [{"role": "user", "content": "What is 1 plus 1?"},
                   {"role": "assistant", "content": "1 plus 1 is 2."}]}, "1 plus 1 is 2."),
    ({"messages": [{"role": "user", "content": "What is 1 plus 1?"}]}, "1 plus 1 is 2."),
]

# formats-ex2: a labeller scored answers (higher is better); in the first list answers 0 and 2 tie.
EX2_SCORES = [4, 2, 4, 1]
EX2_MORE_SCORES = [[1, 2, 3], [5, 5, 5], [0.5, 2.0, 1.0, 2.0, -1.0]]

# formats-ex3: the chat whose labels learners compute.
EX3_CHATS = [
    [{"role": "system", "content": "Answer in one sentence."},
     {"role": "user", "content": "What is the national animal of Thuson?"},
     {"role": "assistant", "content": "The national animal of Thuson is the falcon."}],
    [{"role": "user", "content": "What is 2 plus 5?"}, {"role": "assistant", "content": "2 plus 5 is 7."},
     {"role": "user", "content": "And 3 plus 3?"}, {"role": "assistant", "content": "3 plus 3 is 6."}],
]

# formats-ex4: a batch of "messages" records, some of them broken.
EX4_BATCH = [
    {"messages": [{"role": "user", "content": "What is 1 plus 2?"}, {"role": "assistant", "content": "1 plus 2 is 3."}]},
    {"messages": [{"role": "user", "content": "What is the capital of Figam?"}]},
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "helper", "content": "Hello."}]},
    {"messages": [{"role": "user", "content": "Which colour is the flag of Zupim?"},
                  {"role": "assistant", "content": "The flag of Zupim is white."}]},
    {"messages": [{"role": "user", "content": "What is 4 plus 4?"}, {"role": "assistant", "content": ""}]},
    {"text": "The capital of Beife is Neidreir."},
]
EX4_MORE = [  # a second batch the checker runs the learner's function on
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello."}]},
    {"messages": "What is 2 plus 2?"},
    {"messages": [{"role": "user", "content": "What is 2 plus 2?"}, {"role": "assistant", "content": "4"}]},
]


def _content(value) -> str | None:
    """The text of a completion, whether a string or a one-turn assistant list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        return value[0].get("content")
    return None


def check_spin_converter(spin_to_preference) -> bool:
    """Exercise formats-ex1: `spin_to_preference(record, sample)` turns an SFT ``messages`` record and
    the model's own sample into a SPIN pair: ground truth chosen, the model's sample rejected.

    Calls the learner's function on `SPIN_CASES` (one single-turn and one multi-turn chat: the
    prompt is every turn before the last assistant turn) and on `SPIN_BAD`, which must raise.
    """
    try:
        for record, sample in SPIN_CASES:
            out = spin_to_preference(copy.deepcopy(record), sample)
            validate_record(out, "preference")
            *prompt, truth = record["messages"]
            if (_content(out["chosen"]), _content(out["rejected"])) != (truth["content"], sample):
                return feedback("formats-ex1", False, "chosen must be the SFT data's answer (the ground "
                                "truth) and rejected the model's own sample")
            if out.get("prompt") != prompt:
                return feedback("formats-ex1", False, "the prompt must be every turn before the last "
                                "assistant turn, system and earlier turns included")
    except (DataFormatError, KeyError, TypeError, IndexError) as e:
        return feedback("formats-ex1", False, f"the output is not a valid preference record: {e}")
    for record, sample in SPIN_BAD:
        try:
            spin_to_preference(copy.deepcopy(record), sample)
        except ValueError:
            continue
        return feedback("formats-ex1", False, "a sample equal to the ground truth, or a chat without a "
                        "final assistant turn, must raise an error (ValueError or DataFormatError)")
    return feedback("formats-ex1", True, "")


def expected_pairs(scores) -> set[tuple[int, int]]:
    """Every (better id, worse id) pair of `scores` (higher is better); a tie gives no pair."""
    return {(i, j) for i, a in enumerate(scores) for j, b in enumerate(scores) if a > b}


def check_ranking_pairs(ranking_pairs) -> bool:
    """Exercise formats-ex2: `ranking_pairs(scores)` lists every (better id, worse id) pair, ties giving none.

    Calls the learner's function on `EX2_SCORES` and on `EX2_MORE_SCORES`.
    """
    for scores in [EX2_SCORES, *EX2_MORE_SCORES]:
        pairs = [tuple(p) for p in ranking_pairs(list(scores))]
        expected = expected_pairs(scores)
        if set(pairs) != expected or len(pairs) != len(expected):
            ties = {(i, j) for i, a in enumerate(scores) for j, b in enumerate(scores) if i != j and a == b}
            hint = (f"for scores {scores}: expected {len(expected)} pairs (every higher score against "
                    "every lower one), got " + str(sorted(pairs)) + "; "
                    + ("a tie gives no pair" if ties & set(pairs)
                       else "each pair is (better id, worse id) with 0-based ids, listed once"))
            return feedback("formats-ex2", False, hint)
    return feedback("formats-ex2", True, "")


def check_labels(labels_for, tokenizer) -> bool:
    """Exercise formats-ex3: `labels_for(tokenizer, messages)` gives the SFT labels (-100 where masked)."""
    for chat in EX3_CHATS:
        enc = tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        expected = [t if m else -100 for t, m in zip(enc["input_ids"], enc["assistant_masks"])]
        got = list(labels_for(tokenizer, chat))
        if got != expected:
            return feedback("formats-ex3", False, f"{len(got)} labels, expected {len(expected)} with "
                            f"{sum(x != -100 for x in expected)} trained; train the assistant tokens and their "
                            f"end-of-turn token {tokenizer.eos_token}")
    return feedback("formats-ex3", True, "")


def bad_lines_of(records, fmt: str = "messages") -> set[int]:
    """The 1-based positions of `records` that are not valid `fmt` records."""
    bad = set()
    for line, record in enumerate(records, start=1):
        try:
            validate_record(record, fmt, line=line)
        except DataFormatError:
            bad.add(line)
    return bad


def check_bad_lines(bad_lines) -> bool:
    """Exercise formats-ex4: `bad_lines(records)` returns the 1-based line numbers of every record that
    is not valid ``messages`` (all of them, not only the first). Runs it on `EX4_BATCH` and `EX4_MORE`.
    """
    for batch in (EX4_BATCH, EX4_MORE):
        expected = bad_lines_of(batch)
        got = set(bad_lines(copy.deepcopy(batch)))
        if got != expected:
            return feedback("formats-ex4", False,
                            f"{len(got & expected)} of {len(expected)} bad lines found"
                            + (f", {len(got - expected)} good lines reported as bad" if got - expected else "")
                            + "; lines are 1-based, and catch DataFormatError for each record instead of "
                            "stopping")
    return feedback("formats-ex4", True, "")
