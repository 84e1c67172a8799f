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
    records = load_records("eval_test")[:100]

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

    from posttrain_utils.runtime.models import load_model
    from posttrain_utils.sft import sft_config

    model, tok = sft_model
    small_chats = [r["messages"] for r in load_records("sft_train")[:16]]
    heldout_chats = [r["messages"] for r in load_records("sft_heldout")]
    records = load_records("eval_test")[:100]
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


def small_sft_batches(tok, n_batches=2, size=4):
    """Padded batches of chat-template SFT labels (assistant tokens only), as the collator builds them."""
    records = load_records("sft_train")[: n_batches * size]
    batches = []
    for start in range(0, len(records), size):
        encs = [tok.apply_chat_template(r["messages"], return_dict=True, return_assistant_tokens_mask=True)
                for r in records[start:start + size]]
        width = max(len(e["input_ids"]) for e in encs)
        pad = lambda row, v: row + [v] * (width - len(row))  # noqa: E731
        batches.append({
            "input_ids": torch.tensor([pad(e["input_ids"], tok.pad_token_id) for e in encs]),
            "attention_mask": torch.tensor([pad([1] * len(e["input_ids"]), 0) for e in encs]),
            "labels": torch.tensor([pad([t if m else -100 for t, m in zip(e["input_ids"], e["assistant_masks"])],
                                        -100) for e in encs])})
    return batches


def make_train_loop(loss_fn=None, weight_decay=0.0, zero_grad=True, step=True, clip=None):
    """A training loop for sft-ex4: the reference with the defaults, a subtly wrong one otherwise."""
    from posttrain_utils.sft import sft_loss

    loss_fn = loss_fn or sft_loss

    def my_train(model, batches, lr, steps):
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        model.train()
        losses = []
        for i in range(steps):
            b = batches[i % len(batches)]
            loss = loss_fn(model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits, b["labels"])
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            if step:
                optimizer.step()
            if zero_grad:
                optimizer.zero_grad()
            losses.append(loss.item())
        return losses

    return my_train


@pytest.fixture(scope="module")
def base_and_batches():
    from posttrain_utils.runtime.models import load_model

    model, tok = load_model(profile=profiles.CPU)
    return model, small_sft_batches(tok)


def test_train_loop_reference_passes(base_and_batches):
    import torch.nn.functional as F

    model, batches = base_and_batches
    before = [p.detach().clone() for p in model.parameters()]
    assert ch02_sft.check_train_loop(make_train_loop(), model, batches)
    # the same loss written another way is just as right
    hf_loss = lambda logits, labels: F.cross_entropy(  # noqa: E731
        logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
    assert ch02_sft.check_train_loop(make_train_loop(loss_fn=hf_loss), model, batches, steps=3)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the checker trains copies


def test_train_loop_wrong_loops_fail(base_and_batches, capsys):
    import copy

    import torch.nn.functional as F

    model, batches = base_and_batches

    def unshifted(logits, labels):  # position t scored against its own token
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100)

    def every_position(logits, labels):  # -100 replaced by the input token: prompt and padding count
        ids = torch.where(labels == -100, 0, labels)
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1))

    wrong = {"unshifted": make_train_loop(loss_fn=unshifted),
             "every position": make_train_loop(loss_fn=every_position),
             "no zero_grad": make_train_loop(zero_grad=False),
             "no optimizer step": make_train_loop(step=False),
             "clipped at 0.1": make_train_loop(clip=0.1),
             "AdamW's default weight decay": make_train_loop(weight_decay=0.01),
             "constant": lambda model, batches, lr, steps: [2.0] * steps,
             "too few losses": lambda model, batches, lr, steps: make_train_loop()(model, batches, lr, steps)[:-1]}
    for name, fn in wrong.items():
        assert not ch02_sft.check_train_loop(fn, model, batches, steps=3), name
    # losses copied from a reference run on another copy: the learner's model never trained
    reference_losses = ch02_sft.reference_train(copy.deepcopy(model), batches, 1e-3, 3)
    assert not ch02_sft.check_train_loop(lambda model, b, lr, steps: reference_losses, model, batches, steps=3)
    assert "not yet" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no batches"):
        ch02_sft.check_train_loop(make_train_loop(), model, [])
