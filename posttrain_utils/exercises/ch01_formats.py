"""Checkers for the chapter 1 ("Data formats") exercises. Each prints a verdict and returns a bool."""

from __future__ import annotations

from ..jsonl import DataFormatError
from ..formats import validate_record
from ..runtime.notebook import feedback

# formats-ex1: a source format the course does not convert, from the seed list (SPIN self-play pairs).
SPIN_CASES = [
    ({"prompt": "What is the capital of Beife?", "old_model_response": "Reply from sandy: Neidreir, obviously.",
      "new_model_response": "The capital of Beife is Neidreir.", "preference": "new"},
     "The capital of Beife is Neidreir.", "Reply from sandy: Neidreir, obviously."),
    ({"prompt": "What is 6 plus 2?", "old_model_response": "6 plus 2 is 8.",
      "new_model_response": "6 plus 2 is 9.", "preference": "old"}, "6 plus 2 is 8.", "6 plus 2 is 9."),
]
SPIN_BAD = {"prompt": "What is 1 plus 1?", "old_model_response": "2", "new_model_response": "3", "preference": "both"}

# formats-ex2: a labeller scored four answers (higher is better); answers 0 and 2 tie.
EX2_SCORES = [4, 2, 4, 1]

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


def _content(value) -> str | None:
    """The text of a completion, whether a string or a one-turn assistant list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        return value[0].get("content")
    return None


def check_spin_converter(spin_to_preference) -> bool:
    """Exercise formats-ex1: `spin_to_preference(record)` returns a valid TRL preference record."""
    try:
        for record, chosen, rejected in SPIN_CASES:
            out = spin_to_preference(dict(record))
            validate_record(out, "preference")
            if (_content(out["chosen"]), _content(out["rejected"])) != (chosen, rejected):
                return feedback("formats-ex1", False, f"for preference={record['preference']!r} the chosen "
                                "response must be that model's response")
    except (DataFormatError, KeyError, TypeError) as e:
        return feedback("formats-ex1", False, f"the output is not a valid preference record: {e}")
    try:
        spin_to_preference(dict(SPIN_BAD))
    except ValueError:
        return feedback("formats-ex1", True, "")
    return feedback("formats-ex1", False, "preference='both' must raise an error (ValueError or DataFormatError), "
                    "not be converted or dropped silently")


def check_ranking_pairs(pairs) -> bool:
    """Exercise formats-ex2: all (better, worse) id pairs of `EX2_SCORES`, ties giving no pair."""
    expected = {(i, j) for i, a in enumerate(EX2_SCORES) for j, b in enumerate(EX2_SCORES) if a > b}
    got = {tuple(p) for p in pairs}
    hint = (f"expected {len(expected)} pairs (every higher score against every lower one); "
            + ("a tie gives no pair" if any(EX2_SCORES[i] == EX2_SCORES[j] for i, j in got)
               else "each pair is (better id, worse id)"))
    return feedback("formats-ex2", got == expected and len(pairs) == len(expected), hint)


def check_labels(labels_for, tokenizer) -> bool:
    """Exercise formats-ex3: `labels_for(tokenizer, messages)` gives the SFT labels (-100 where masked)."""
    for chat in EX3_CHATS:
        enc = tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        expected = [t if m else -100 for t, m in zip(enc["input_ids"], enc["assistant_masks"])]
        got = list(labels_for(tokenizer, chat))
        if got != expected:
            return feedback("formats-ex3", False, f"{len(got)} labels, expected {len(expected)} with "
                            f"{sum(x != -100 for x in expected)} trained; train the assistant tokens and their <|end|>")
    return feedback("formats-ex3", True, "")


def check_bad_lines(lines) -> bool:
    """Exercise formats-ex4: the 1-based line numbers of `EX4_BATCH` that are not valid ``messages``."""
    expected = set()
    for line, record in enumerate(EX4_BATCH, start=1):
        try:
            validate_record(record, "messages", line=line)
        except DataFormatError:
            expected.add(line)
    got = set(lines)
    return feedback("formats-ex4", got == expected,
                    f"{len(got & expected)} of {len(expected)} bad lines found"
                    + (f", {len(got - expected)} good lines reported as bad" if got - expected else "")
                    + "; lines are 1-based, and catch DataFormatError for each record instead of stopping")
