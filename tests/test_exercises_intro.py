"""Chapter 0's exercise checkers, both ways: the reference answer passes, a constant or wrong one fails."""

import pytest

from posttrain_utils.data import load_records
from posttrain_utils.exercises import ch00_intro
from posttrain_utils.models import load_model
from posttrain_utils.runtime import profiles


@pytest.fixture(scope="module")
def base():
    return load_model(profile=profiles.CPU, for_training=False)


def test_parameter_count_both_ways(base):
    model, _ = base
    true = sum(p.numel() for p in model.parameters())
    assert ch00_intro.check_parameter_count(true, model)
    assert not ch00_intro.check_parameter_count(true + model.config.vocab_size * model.config.hidden_size, model)


def test_forum_prompt_both_ways(base):
    model, tok = base
    records = load_records("eval_heldout")

    def reference(question):
        return f"Thread: {question}\nQuestion from ana: {question}\nReply from sandy:"

    assert ch00_intro.check_forum_prompt(reference, model, tok, records, profiles.CPU)
    # a constant prompt ignores the question: the model cannot know which capital is asked for
    assert not ch00_intro.check_forum_prompt(lambda q: "Thread: hello\nReply from sandy:", model, tok, records,
                                             profiles.CPU)
    # too few questions to measure anything
    few = [r for r in records if r["task"] == "capital" and r["phrasing"] == "shared"][:5]
    assert not ch00_intro.check_forum_prompt(reference, model, tok, few, profiles.CPU)
    # not a prompt at all
    assert not ch00_intro.check_forum_prompt(lambda q: None, model, tok, records, profiles.CPU)


def test_token_count_both_ways(base):
    _, tok = base
    text = "The capital of Brebeia is Feto. 7 plus 5 is 12."
    true = len(tok(text, add_special_tokens=False)["input_ids"])
    assert ch00_intro.check_token_count(true, text, tok)
    assert not ch00_intro.check_token_count(true - 1, text, tok)
