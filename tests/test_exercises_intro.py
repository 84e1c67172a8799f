"""Chapter 0's exercise checkers, both ways: the reference answer passes, a constant or wrong one fails."""

import pytest

from posttrain_utils.data import load_records
from posttrain_utils.exercises import ch00_intro
from posttrain_utils.runtime.models import load_model
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
    records = load_records("eval_test")

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


def reference_greedy(model, input_ids, max_new_tokens, eos_token_id):
    """The chapter's solution to intro-ex4: argmax at the last position, append, stop at eos."""
    import torch

    with torch.no_grad():
        for _ in range(max_new_tokens):
            next_id = model(input_ids).logits[:, -1].argmax(dim=-1, keepdim=True)
            input_ids = torch.cat([input_ids, next_id], dim=1)
            if next_id.item() == eos_token_id:
                break
    return input_ids


def test_greedy_both_ways(base, capsys):
    import torch

    model, tok = base
    assert ch00_intro.check_greedy(reference_greedy, model, tok)
    assert ch00_intro.check_greedy(lambda *a: reference_greedy(*a).tolist(), model, tok, seed=3)  # a list is fine
    # the stopping case: a stop token the model writes a few tokens in
    *_, (prompt, max_new, eos) = ch00_intro.greedy_cases(model, tok)
    written = reference_greedy(model, torch.tensor([prompt]), max_new, eos)[0].tolist()
    assert written[-1] == eos and len(written) - len(prompt) < max_new

    def never_stops(model, input_ids, max_new_tokens, eos_token_id):
        return reference_greedy(model, input_ids, max_new_tokens, -1)

    def first_position(model, input_ids, max_new_tokens, eos_token_id):  # argmax at position 0
        with torch.no_grad():
            for _ in range(max_new_tokens):
                next_id = model(input_ids).logits[:, 0].argmax(dim=-1, keepdim=True)
                input_ids = torch.cat([input_ids, next_id], dim=1)
                if next_id.item() == eos_token_id:
                    break
        return input_ids

    def drops_eos(model, input_ids, max_new_tokens, eos_token_id):
        out = reference_greedy(model, input_ids, max_new_tokens, eos_token_id)
        return out[:, :-1] if out[0, -1] == eos_token_id else out

    def new_tokens_only(model, input_ids, max_new_tokens, eos_token_id):
        return reference_greedy(model, input_ids, max_new_tokens, eos_token_id)[:, input_ids.shape[1]:]

    def library(model, input_ids, max_new_tokens, eos_token_id):  # not from scratch: generate is blocked
        return model.generate(input_ids, max_new_tokens=max_new_tokens, eos_token_id=eos_token_id,
                              do_sample=False)

    constant = lambda model, input_ids, max_new_tokens, eos_token_id: [1, 2, 3]  # noqa: E731
    for wrong in (never_stops, first_position, drops_eos, new_tokens_only, library, constant):
        assert not ch00_intro.check_greedy(wrong, model, tok), wrong
    assert "not yet" in capsys.readouterr().out
    assert type(model).generate is model.generate.__func__  # the checker put generate back
