"""Checkers for the chapter 0 ("Introduction") exercises. Each prints a verdict and returns a bool.

Every checker recomputes its answer from what the learner built (a number checked against the
model, a prompt function run on the model), never from a number the learner reports.
"""

from __future__ import annotations

from ..runtime.notebook import feedback

MIN_FORUM_PROMPTS = 20  # intro-ex2: at least this many capital questions
FORUM_ACCURACY = 0.6  # intro-ex2: a forum-shaped prompt gets at least this share right


def check_parameter_count(answer: int, model) -> bool:
    """Exercise intro-ex1: the base model's parameter count, computed by hand from its config."""
    true = sum(p.numel() for p in model.parameters())
    return feedback("intro-ex1", int(answer) == true,
                    f"you got {answer:,}; count embeddings (tied with the output layer: once), per layer "
                    "q/k/v/o, gate/up/down and two RMSNorm weights, plus the final norm")


def forum_capital_accuracy(forum_prompt, model, tokenizer, records, profile=None) -> tuple[float, int]:
    """Greedy accuracy of the base model on capital questions asked through `forum_prompt`.

    Args:
        forum_prompt: the learner's function, ``question -> plain-text prompt`` (no chat template).
        model, tokenizer: the base model.
        records: held-out records; the capital questions in the ``"shared"`` phrasing are used.
        profile: the run profile (default: the active one).

    Returns:
        ``(accuracy, n_prompts)``. A reply counts when the first line the model writes (one forum
        reply) commits to one capital and it is the right one (`evaluation.score`'s ``facts_em``).
    """
    from ..evaluation import generate, score

    capital = [r for r in records if r["task"] == "capital" and r.get("phrasing", "shared") == "shared"]
    if not capital:
        return 0.0, 0
    prompts = [forum_prompt(r["prompt"][-1]["content"]) for r in capital]
    if not all(isinstance(p, str) for p in prompts):
        raise TypeError("forum_prompt must return a plain-text prompt (a str) for each question")
    replies = generate(model, tokenizer, prompts, profile, max_new_tokens=20)
    first_lines = [{"text": r["text"].split("\n")[0], "ended": True} for r in replies]
    return score(first_lines, capital)["facts_em"], len(capital)


def check_forum_prompt(forum_prompt, model, tokenizer, records, profile=None) -> bool:
    """Exercise intro-ex2: a forum-shaped prompt gets the base model to answer most capitals.

    Calls the learner's `forum_prompt(question)` on every held-out capital question in the shared
    phrasing, generates greedily and scores the replies itself (`forum_capital_accuracy`).

    Args:
        forum_prompt: the learner's function, ``question -> plain-text prompt``.
        model, tokenizer: the base model.
        records: held-out records (``eval_heldout``).
        profile: the run profile (default: the active one).
    """
    try:
        accuracy, n = forum_capital_accuracy(forum_prompt, model, tokenizer, records, profile)
    except (TypeError, KeyError, ValueError) as e:
        return feedback("intro-ex2", False, f"calling forum_prompt failed: {e}")
    ok = n >= MIN_FORUM_PROMPTS and accuracy >= FORUM_ACCURACY
    return feedback("intro-ex2", ok, f"{accuracy:.0%} of {n} capital questions answered right (need "
                    f"{FORUM_ACCURACY:.0%} of at least {MIN_FORUM_PROMPTS}); write the prompt the way a "
                    "thread looks in the corpus (Thread / Question from / Reply from)")


def check_token_count(answer: int, text: str, tokenizer) -> bool:
    """Exercise intro-ex3: how many tokens `text` becomes (no special tokens added)."""
    true = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return feedback("intro-ex3", int(answer) == true, f"{answer} is not it; digits are one token each and a space "
                    "before a digit is a token of its own")
