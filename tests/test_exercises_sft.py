"""Chapter 2's exercise checkers, both ways: the reference answer passes, a constant fails."""

import pytest
import torch

from posttrain_utils.data import load_records
from posttrain_utils.exercises import ch02_sft
from posttrain_utils.runtime import checkpoints, paths, profiles


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory):
    """The real chapter-2 SFT stage (cpu budget, about a minute), in a private cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(paths.CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        model, tokenizer = checkpoints.get("sft", profiles.CPU)
    return model, tokenizer


def test_template_mismatch_both_ways(sft_model):
    model, tok = sft_model
    records = load_records("eval_heldout")[:100]

    def reference(model, tokenizer, questions):
        return ch02_sft.reference_plain_replies(model, tokenizer, questions, profiles.CPU)

    assert ch02_sft.check_template_mismatch(reference, model, tok, records, profiles.CPU)
    constant = lambda model, tokenizer, questions: [{"text": "Paris", "ended": True}] * len(questions)  # noqa: E731
    assert not ch02_sft.check_template_mismatch(constant, model, tok, records, profiles.CPU)

    def chat_template(model, tokenizer, questions):  # the matched template is not a mismatch
        from posttrain_utils.evaluation import generate
        return generate(model, tokenizer, [[{"role": "user", "content": q}] for q in questions], profiles.CPU,
                        max_new_tokens=80)

    assert not ch02_sft.check_template_mismatch(chat_template, model, tok, records, profiles.CPU)


def test_padding_fraction_both_ways():
    batch = {"input_ids": torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0]])}
    assert ch02_sft.check_padding_fraction(5 / 8, batch, pad_token_id=0)
    assert not ch02_sft.check_padding_fraction(0.5, batch, pad_token_id=0)


def test_overfitting_both_ways(sft_model, tmp_path):
    from datasets import Dataset
    from trl import SFTTrainer

    from posttrain_utils.models import load_model
    from posttrain_utils.sft import sft_config

    model, tok = sft_model
    small_chats = [r["messages"] for r in load_records("sft_train")[:16]]
    heldout_chats = [r["messages"] for r in load_records("sft_heldout")]
    records = load_records("eval_heldout")[:100]
    model.save_pretrained(tmp_path / "snapshot")
    tok.save_pretrained(tmp_path / "snapshot")

    def copy_of_sft():
        return load_model(tmp_path / "snapshot", profiles.CPU)[0]

    # the reference: 60 steps of 8 on 16 chats at lr 2e-3, as in the chapter's solution
    over = copy_of_sft()
    SFTTrainer(model=over, processing_class=tok, train_dataset=Dataset.from_list([{"messages": m}
                                                                                 for m in small_chats]),
               args=sft_config(profiles.CPU, tmp_path / "over", max_steps=60, learning_rate=2e-3,
                               per_device_train_batch_size=8, eval_strategy="no")).train()
    assert ch02_sft.check_overfitting(model, over, tok, small_chats, heldout_chats, records, profiles.CPU)
    # an untrained copy changes nothing
    assert not ch02_sft.check_overfitting(model, copy_of_sft(), tok, small_chats, heldout_chats, records,
                                          profiles.CPU)
    # a damaged model is worse on held-out data, but it has not memorised the training chats
    damaged = copy_of_sft()
    with torch.no_grad():
        torch.manual_seed(0)
        for p in damaged.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert not ch02_sft.check_overfitting(model, damaged, tok, small_chats, heldout_chats, records, profiles.CPU)


def test_chat_loss_matches_sft_loss_on_one_chat(sft_model):
    """chat_loss on one chat equals sft.sft_loss on its chat-template labels."""
    from posttrain_utils.sft import sft_loss

    model, tok = sft_model
    chat = load_records("sft_heldout")[0]["messages"]
    enc = tok.apply_chat_template(chat, return_dict=True, return_assistant_tokens_mask=True)
    labels = torch.tensor([[t if m else -100 for t, m in zip(enc["input_ids"], enc["assistant_masks"])]])
    with torch.no_grad():
        expected = sft_loss(model(input_ids=torch.tensor([enc["input_ids"]])).logits, labels).item()
    assert abs(ch02_sft.chat_loss(model, tok, [chat]) - expected) < 1e-5
