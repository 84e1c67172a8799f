"""Checkers for the chapter 2 ("Supervised fine-tuning") exercises. Each prints a verdict and returns a bool.

Every checker recomputes its answer from what the learner built (their function, their model, their
batch), never from numbers the learner reports.
"""

from __future__ import annotations

from ..runtime.notebook import feedback


def chat_loss(model, tokenizer, chats, batch_size: int = 16) -> float:
    """Mean SFT loss of `model` over the assistant tokens of `chats` (token-weighted).

    Args:
        model, tokenizer: a causal LM and its tokenizer (with the chat template).
        chats: lists of ``{"role", "content"}`` messages.
        batch_size: chats per forward pass.
    """
    import torch

    from ..sft import IGNORE_INDEX, sft_loss

    if not chats:
        raise ValueError("no chats to measure the loss on")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, n_tokens = 0.0, 0
    for start in range(0, len(chats), batch_size):
        encs = [tokenizer.apply_chat_template(c, return_dict=True, return_assistant_tokens_mask=True)
                for c in chats[start:start + batch_size]]
        width = max(len(e["input_ids"]) for e in encs)
        ids = torch.tensor([e["input_ids"] + [tokenizer.pad_token_id] * (width - len(e["input_ids"]))
                            for e in encs], device=device)
        labels = torch.tensor([[t if m else IGNORE_INDEX for t, m in zip(e["input_ids"], e["assistant_masks"])]
                               + [IGNORE_INDEX] * (width - len(e["input_ids"])) for e in encs], device=device)
        attention = (torch.arange(width, device=device)[None, :]
                     < torch.tensor([len(e["input_ids"]) for e in encs], device=device)[:, None]).long()
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=attention).logits
        count = int((labels[:, 1:] != IGNORE_INDEX).sum())
        total += sft_loss(logits, labels).item() * count
        n_tokens += count
    model.train(was_training)
    return total / n_tokens


def check_overfitting(before, after, tokenizer, train_chats, heldout_chats, heldout_records,
                      profile=None) -> bool:
    """Exercise sft-ex1: over-training memorises the training chats and leaves held-out loss *and*
    held-out facts worse than where they started.

    Measures both models itself: the SFT loss on the chats the learner over-trained on (it must
    fall: the model memorised them), the SFT loss on held-out chats (it must rise by 0.05 or more)
    and greedy held-out facts (they must fall by 5 points or more). A model that was not trained,
    or was damaged rather than over-trained, fails.

    Args:
        before: the model before over-training (the SFT model).
        after: the learner's over-trained copy.
        tokenizer: their tokenizer.
        train_chats: the message lists the learner over-trained on.
        heldout_chats: held-out message lists (``sft_heldout``), for the held-out loss.
        heldout_records: held-out evaluation records (``eval_heldout``), for facts.
        profile: the run profile (default: the active one).
    """
    from ..evaluation import evaluate

    m = {name: {"train loss": chat_loss(model, tokenizer, list(train_chats)),
                "held-out loss": chat_loss(model, tokenizer, list(heldout_chats)),
                "facts": evaluate(model, tokenizer, heldout_records, profile)["facts_em"]}
         for name, model in (("before", before), ("after", after))}
    b, a = m["before"], m["after"]
    ok = (a["train loss"] < b["train loss"] and a["held-out loss"] >= b["held-out loss"] + 0.05
          and a["facts"] <= b["facts"] - 0.05)
    return feedback("sft-ex1", ok, (
        f"training-chat loss {b['train loss']:.3f} -> {a['train loss']:.3f} (must fall), held-out loss "
        f"{b['held-out loss']:.3f} -> {a['held-out loss']:.3f} (must rise by 0.05), held-out facts "
        f"{b['facts']:.2f} -> {a['facts']:.2f} (must fall by 0.05): train longer, on fewer chats, or "
        "at a higher learning rate"))


PLAIN_TEMPLATE = "User: {question}\nAssistant:"


def reference_plain_replies(model, tokenizer, questions, profile=None) -> list[dict]:
    """The checker's own answer to sft-ex2: greedy replies to ``PLAIN_TEMPLATE`` prompts."""
    from ..evaluation import generate

    return generate(model, tokenizer, [PLAIN_TEMPLATE.format(question=q) for q in questions], profile,
                    max_new_tokens=80)


def check_template_mismatch(plain_replies, model, tokenizer, records, profile=None) -> bool:
    """Exercise sft-ex2: outside its chat template the SFT model answers clearly fewer facts.

    Recomputes everything: calls the learner's `plain_replies(model, tokenizer, questions)`,
    compares its replies with the checker's own greedy ``PLAIN_TEMPLATE`` generation, and measures
    held-out facts with and without the chat template.

    Args:
        plain_replies: the learner's function, returning one ``{"text", "ended"}`` per question.
        model, tokenizer: the unfiltered SFT model.
        records: held-out records (``prompt``, ``task``, ``answer``).
        profile: the run profile (default: the active one).
    """
    from ..evaluation import generate, score

    questions = [r["prompt"][-1]["content"] for r in records]
    model.eval()
    theirs = plain_replies(model, tokenizer, questions)
    ours = reference_plain_replies(model, tokenizer, questions, profile)
    if [r.get("text") if isinstance(r, dict) else r for r in theirs] != [r["text"] for r in ours]:
        return feedback("sft-ex2", False, "your replies differ from greedy decoding of "
                        "'User: <question>\nAssistant:' prompts (80 new tokens, cut at the end-of-turn token)")
    matched = score(generate(model, tokenizer, [r["prompt"] for r in records], profile, max_new_tokens=80),
                    records)["facts_em"]
    mismatched = score(ours, records)["facts_em"]
    return feedback("sft-ex2", matched - mismatched >= 0.1,
                    f"held-out facts {matched:.2f} with the chat template vs {mismatched:.2f} without: "
                    "expected a drop of at least 0.10 for the unfiltered SFT model")


def check_padding_fraction(answer: float, batch: dict, pad_token_id: int) -> bool:
    """Exercise sft-ex3: the fraction of positions in a padded batch that are padding."""
    ids = batch["input_ids"]
    true = (ids == pad_token_id).float().mean().item()
    return feedback("sft-ex3", abs(float(answer) - true) < 1e-6,
                    f"{answer:.4f} is not it: count positions equal to the pad token id over all positions")
