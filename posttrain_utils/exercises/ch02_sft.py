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


def check_template_mismatch(matched_rude: float, mismatched_rude: float) -> bool:
    """Exercise sft-ex2: outside its chat template the SFT model should be clearly ruder (greedy)."""
    ok = mismatched_rude - matched_rude >= 0.1
    return feedback("sft-ex2", ok, f"rude rate {matched_rude:.2f} with the template vs {mismatched_rude:.2f} without: "
                    "build the mismatched prompt as plain text, e.g. 'User: ...\\nAssistant:', and decode greedily")


def check_padding_fraction(answer: float, batch: dict, pad_token_id: int) -> bool:
    """Exercise sft-ex3: the fraction of positions in a padded batch that are padding."""
    ids = batch["input_ids"]
    true = (ids == pad_token_id).float().mean().item()
    return feedback("sft-ex3", abs(float(answer) - true) < 1e-6,
                    f"{answer:.4f} is not it: count positions equal to the pad token id over all positions")
