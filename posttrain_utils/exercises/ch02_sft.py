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

    from ..sft.recipe import IGNORE_INDEX, sft_loss

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
        heldout_records: held-out evaluation records (``eval_test``), for facts.
        profile: the run profile (default: the active one).
    """
    from ..evaluation.generation import evaluate

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
    from ..evaluation.generation import generate

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
    from ..evaluation.generation import generate, score

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


TRAIN_LOOP_TOLERANCE = 1e-4  # sft-ex4: largest |learner loss - reference loss| at any step
TRAIN_WEIGHT_TOLERANCE = 1e-5  # sft-ex4: largest |learner weight - reference weight| after training


def reference_train(model, batches, lr: float, steps: int) -> list[float]:
    """The checker's own SFT loop for sft-ex4: AdamW (no weight decay, constant `lr`, no clipping),
    one batch per step in order (cycling), `sft.sft_loss` on the batch's labels.

    Changes `model` in place and returns the loss of every step, measured before that step's update.
    """
    import torch

    from ..sft.recipe import sft_loss

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for step in range(steps):
        batch = batches[step % len(batches)]
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = sft_loss(logits, batch["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def independent_copy(model):
    """A deep copy of `model` that computes with, and trains, its own weights.

    TRL 1.16's trainers patch ``model.forward`` in place with a fused LM head whose closure holds
    the original model's bound ``forward``. `copy.deepcopy` copies that closure by reference, so a
    plain deep copy of a model once handed to a trainer (chapter 2's ``base_model``, after the
    packing exercise) would run, and send its gradients to, the *original* model: its own weights
    would never change. Dropping the instance-level ``forward`` overrides gives the copy its
    class's ``forward`` back (the same computation without the fused head).
    """
    import copy

    clone = copy.deepcopy(model)
    for module in clone.modules():
        module.__dict__.pop("forward", None)
    return clone


def check_train_loop(my_train, model, batches, lr: float = 1e-3, steps: int = 5) -> bool:
    """Exercise sft-ex4: an SFT training loop written from scratch follows the reference loop step for step.

    Trains two deep copies of `model`: one with the learner's ``my_train(model, batches, lr,
    steps)``, one with `reference_train`. The learner's losses must equal the reference's at every
    step (within `TRAIN_LOOP_TOLERANCE`) and fall (below), and the learner's
    copy must end with the reference's weights (within `TRAIN_WEIGHT_TOLERANCE`: the losses were
    really measured while training it, and AdamW's default weight decay of 0.01 shows there).
    "Fall" compares one batch with itself: step 0 with the last step that uses ``batches[0]``
    (with no such later step, the last step). The copies are `independent_copy`s, and `model`
    itself is left untouched.

    Args:
        my_train: the learner's function; returns the list of per-step losses (floats or scalar tensors).
        model: the causal LM to start from.
        batches: collated batches (``input_ids``, ``attention_mask``, ``labels`` with -100 on
            positions that are not trained); they are moved to the model's device.
        lr: AdamW learning rate.
        steps: optimizer steps; step ``i`` uses ``batches[i % len(batches)]``.
    """
    import torch

    if not batches:
        raise ValueError("no batches to train on")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    device = next(model.parameters()).device
    batches = [{k: batch[k].to(device) for k in ("input_ids", "attention_mask", "labels")} for batch in batches]
    theirs_model, ours_model = independent_copy(model), independent_copy(model)
    ours = reference_train(ours_model, batches, lr, steps)
    try:
        theirs = [float(v) for v in my_train(theirs_model, batches, lr, steps)]
    except (RuntimeError, TypeError, ValueError, IndexError, KeyError) as e:
        return feedback("sft-ex4", False, f"calling my_train failed: {e}")
    if len(theirs) != steps:
        return feedback("sft-ex4", False, f"my_train returned {len(theirs)} losses for {steps} steps: one per step")
    gaps = [abs(a - b) for a, b in zip(theirs, ours)]
    if max(gaps) > TRAIN_LOOP_TOLERANCE:
        step = next(i for i, g in enumerate(gaps) if g > TRAIN_LOOP_TOLERANCE)
        hint = ("shift by one (logits[:, :-1] predict labels[:, 1:]) and skip labels equal to -100"
                if step == 0 else "AdamW with weight_decay=0 on every trainable parameter, a constant "
                "learning rate, zero the gradients after each step, and record the loss before the update")
        return feedback("sft-ex4", False, f"step {step}: your loss {theirs[step]:.5f}, the reference loop's "
                        f"{ours[step]:.5f}: {hint}")
    with torch.no_grad():
        drift = max((a - b).abs().max().item()
                    for a, b in zip(theirs_model.parameters(), ours_model.parameters()))
    if drift > TRAIN_WEIGHT_TOLERANCE:
        return feedback("sft-ex4", False, f"the losses match, but your model's weights end {drift:.1e} from the "
                        "reference's: train the model you are given, in place, one optimizer step per batch, "
                        "with weight_decay=0 (AdamW's default is 0.01)")
    again = max(range(0, steps, len(batches))) or steps - 1  # the last step on batch 0, else the last step
    return feedback("sft-ex4", theirs[again] < theirs[0], f"the loss went {theirs[0]:.4f} -> {theirs[again]:.4f} "
                    f"(steps 0 and {again}), as in the reference loop, but it must fall: try a larger lr or more "
                    "steps")
