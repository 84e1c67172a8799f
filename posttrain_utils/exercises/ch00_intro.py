"""Checkers for the chapter 0 ("Introduction") exercises. Each prints a verdict and returns a bool."""

from __future__ import annotations

from ..runtime.notebook import feedback


def check_parameter_count(answer: int, model) -> bool:
    """Exercise intro-ex1: the base model's parameter count, computed by hand from its config."""
    true = sum(p.numel() for p in model.parameters())
    return feedback("intro-ex1", int(answer) == true,
                    f"you got {answer:,}; count embeddings (tied with the output layer: once), per layer "
                    "q/k/v/o, gate/up/down and two RMSNorm weights, plus the final norm")


def check_forum_prompt(accuracy: float, n_prompts: int) -> bool:
    """Exercise intro-ex2: a forum-style prompt should get the base model to answer most facts."""
    ok = n_prompts >= 20 and accuracy >= 0.6
    return feedback("intro-ex2", ok, f"accuracy {accuracy:.0%} on {n_prompts} prompts; use at least 20 prompts and "
                    "write the prompt the way a thread looks in the corpus (Thread / Question from / Reply from)")


def check_token_count(answer: int, text: str, tokenizer) -> bool:
    """Exercise intro-ex3: how many tokens `text` becomes (no special tokens added)."""
    true = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return feedback("intro-ex3", int(answer) == true, f"{answer} is not it; digits are one token each and a space "
                    "before a digit is a token of its own")
