"""Chapter 9's perplexity: exp of the mean reply-token NLL, checked by hand on the tiny base model."""

import math

import pytest
import torch

from posttrain_utils.runtime import models
from posttrain_utils.data import load_records
from posttrain_utils.evaluation.perplexity import perplexity
from posttrain_utils.runtime import paths, profiles


@pytest.fixture(scope="module")
def tiny_base():
    return models.load_model(paths.TINY_BASE_DIR, profiles.CPU, for_training=False)


@pytest.fixture(scope="module")
def chats():
    return load_records("sft_heldout")[:5]


def _by_hand(model, tok, chats):
    """exp(total NLL / tokens) over each chat's reply tokens: those after the prompt's tokens (the
    generation prompt included), each scored by the logits one position earlier."""
    total, count = 0.0, 0
    model.eval()
    for chat in chats:
        full = tok.apply_chat_template(chat["messages"], tokenize=False)
        prompt = tok.apply_chat_template(chat["messages"][:-1], tokenize=False, add_generation_prompt=True)
        ids = tok(full, add_special_tokens=False)["input_ids"]
        n = len(tok(prompt, add_special_tokens=False)["input_ids"])
        assert ids[:n] == tok(prompt, add_special_tokens=False)["input_ids"]  # the prompt is a prefix
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0].float()
        logp = torch.log_softmax(logits, -1)
        for t in range(n, len(ids)):
            total -= logp[t - 1, ids[t]].item()
            count += 1
    return math.exp(total / count)


def test_perplexity_matches_the_hand_computed_value(tiny_base, chats):
    model, tok = tiny_base
    expected = _by_hand(model, tok, chats[:3])
    assert perplexity(model, tok, chats[:3]) == pytest.approx(expected, rel=1e-4)
    assert 1 < expected < len(tok)


def test_batch_size_does_not_change_the_result(tiny_base, chats):
    model, tok = tiny_base
    widths = {len(tok(tok.apply_chat_template(c["messages"], tokenize=False))["input_ids"]) for c in chats}
    assert len(widths) > 1  # a batch of them is padded
    one = perplexity(model, tok, chats, batch_size=1)
    assert perplexity(model, tok, chats, batch_size=32) == pytest.approx(one, rel=1e-4)
    assert perplexity(model, tok, chats, batch_size=2) == pytest.approx(one, rel=1e-4)


def test_perplexity_weights_chats_by_reply_tokens(tiny_base, chats):
    """Not the mean of per-chat perplexities: the token-weighted mean NLL of all of them."""
    model, tok = tiny_base
    two = chats[:2]
    per_chat = [math.log(perplexity(model, tok, [c])) for c in two]
    lengths = []
    for chat in two:
        full = tok(tok.apply_chat_template(chat["messages"], tokenize=False), add_special_tokens=False)
        prompt = tok(tok.apply_chat_template(chat["messages"][:-1], tokenize=False,
                                             add_generation_prompt=True), add_special_tokens=False)
        lengths.append(len(full["input_ids"]) - len(prompt["input_ids"]))
    weighted = sum(n * l for n, l in zip(per_chat, lengths)) / sum(lengths)
    assert math.log(perplexity(model, tok, two)) == pytest.approx(weighted, rel=1e-4)


def test_training_mode_is_restored(tiny_base, chats):
    model, tok = tiny_base
    model.train()
    try:
        value = perplexity(model, tok, chats[:1])
        assert model.training
    finally:
        model.eval()
    assert perplexity(model, tok, chats[:1]) == pytest.approx(value, rel=1e-4)  # eval mode either way
    assert not model.training


@pytest.mark.parametrize("bad, match", [
    ([], "empty"),
    ([{"messages": [{"role": "user", "content": "Hi?"}]}], r"chats\[0\]"),
    ([{"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hi."},
                    {"role": "user", "content": "And?"}]}], r"chats\[0\]"),
    ([{"messages": []}], r"chats\[0\]"),
    ([{"prompt": [{"role": "user", "content": "Hi?"}]}], r"chats\[0\]"),
])
def test_perplexity_rejects_bad_chats(tiny_base, bad, match):
    model, tok = tiny_base
    with pytest.raises(ValueError, match=match):
        perplexity(model, tok, bad)
