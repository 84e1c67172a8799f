"""Checkers for the chapter 2 ("Supervised fine-tuning") exercises. Each prints a verdict and returns a bool."""

from __future__ import annotations

from ..runtime.notebook import feedback


def check_overfitting(history: dict) -> bool:
    """Exercise sft-ex1: over-training must leave held-out loss *and* held-out facts worse than their best.

    Args:
        history: ``{"eval_loss": [(step, loss), ...], "facts_em": [(step, em), ...]}`` with at least
            three points each, measured during one over-training run.
    """
    losses, facts = history.get("eval_loss", []), history.get("facts_em", [])
    if len(losses) < 3 or len(facts) < 3:
        return feedback("sft-ex1", False, "record at least three (step, value) points of eval_loss and facts_em")
    best_loss = min(v for _, v in losses)
    best_facts = max(v for _, v in facts)
    ok = losses[-1][1] > best_loss + 0.05 and facts[-1][1] < best_facts - 0.05
    return feedback("sft-ex1", ok, f"final held-out loss {losses[-1][1]:.3f} vs best {best_loss:.3f}, final facts "
                    f"{facts[-1][1]:.2f} vs best {best_facts:.2f}: train longer, on fewer examples, or at a higher lr")


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
