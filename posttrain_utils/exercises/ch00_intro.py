"""Checkers for the chapter 0 ("Introduction") exercises. Each prints a verdict and returns a bool.

Every checker recomputes its answer from what the learner built (a number checked against the
model, a prompt function run on the model), never from a number the learner reports.
"""

from __future__ import annotations

from ..runtime.notebook import feedback

MIN_FORUM_PROMPTS = 20  # intro-ex2: at least this many capital questions
FORUM_ACCURACY = 0.6  # intro-ex2: a forum-shaped prompt gets at least this share right


def reference_parameter_count(config, shared_kv: bool = True) -> int:
    """Intro-ex1's hand count of a Llama-architecture model's parameters, from its config alone.

    Embeddings (tied with the output layer, so counted once), per layer the attention projections,
    the MLP's gate/up/down and two RMSNorm weights, plus the final norm. Queries and the output
    projection have ``num_attention_heads`` heads; keys and values have ``num_key_value_heads``,
    which grouped-query attention (SmolLM2-135M: 9 query heads share 3 key/value heads) makes
    fewer. With ``shared_kv=False`` every head gets keys and values of its own: the count for a
    model without grouped-query attention, which is wrong for one with it.
    """
    hidden, heads = config.hidden_size, config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv_heads = config.num_key_value_heads if shared_kv else heads
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim  # q, o and k, v
    per_layer = attention + 3 * hidden * config.intermediate_size + 2 * hidden
    return config.vocab_size * hidden + config.num_hidden_layers * per_layer + hidden


def check_parameter_count(answer: int, model) -> bool:
    """Exercise intro-ex1: the base model's parameter count, computed by hand from its config."""
    true = sum(p.numel() for p in model.parameters())
    hint = (f"you got {answer:,}; count embeddings (tied with the output layer: once), per layer "
            "q/k/v/o, gate/up/down and two RMSNorm weights, plus the final norm")
    cfg = model.config
    if (cfg.num_key_value_heads != cfg.num_attention_heads
            and int(answer) == reference_parameter_count(cfg, shared_kv=False)):
        hint = (f"you got {answer:,}: that gives every head keys and values of its own, but this model "
                f"shares them (grouped-query attention: {cfg.num_attention_heads} query heads, "
                f"{cfg.num_key_value_heads} key/value heads), so k_proj and v_proj have "
                "num_key_value_heads * head_dim outputs, not hidden_size")
    return feedback("intro-ex1", int(answer) == true, hint)


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
    from ..evaluation.generation import generate, score

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
        records: held-out records (``eval_test``).
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


GREEDY_NEW_TOKENS = 16  # intro-ex4: new tokens per prompt (fewer where the stop token comes first)


def greedy_cases(model, tokenizer, seed: int = 0) -> list[tuple[list[int], int, int]]:
    """Fresh prompts for intro-ex4, picked from the tiny world with a seeded generator.

    Four prompts: two plain-text fact openings, a forum thread opening and a chat-template
    question, each paired with the stop token ``eos_token_id``. The last case stops at a token the
    model is known to write a few tokens into its greedy continuation, so that stopping is tested
    even for a base model that never ends its turn.

    Returns:
        ``[(prompt_ids, max_new_tokens, eos_token_id), ...]``.
    """
    import random

    from ..tinyworld import world

    rng = random.Random(seed)
    a, b, c, d = rng.sample(world.make_countries(), 4)
    texts = [f"The capital of {a.name} is", f"In {b.name}, people speak",
             f"Thread: What is the national animal of {c.name}?\nReply from sandy:"]
    cases = [(tokenizer(t, add_special_tokens=False)["input_ids"], GREEDY_NEW_TOKENS, tokenizer.eos_token_id)
             for t in texts]
    chat = tokenizer.apply_chat_template([{"role": "user", "content": f"What is the capital of {d.name}?"}],
                                         add_generation_prompt=True, tokenize=False)
    chat_ids = tokenizer(chat, add_special_tokens=False)["input_ids"]
    written = _reference_greedy(model, tokenizer, chat_ids, GREEDY_NEW_TOKENS, tokenizer.eos_token_id)
    new = written[len(chat_ids):]
    cases.append((chat_ids, GREEDY_NEW_TOKENS, new[min(3, len(new) - 1)]))
    return cases


def _reference_greedy(model, tokenizer, prompt_ids, max_new_tokens, eos_token_id) -> list[int]:
    """`model.generate` without sampling (and without a KV cache, as a plain loop computes)."""
    import torch

    device = next(model.parameters()).device
    ids = torch.tensor([prompt_ids], device=device)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=max_new_tokens, eos_token_id=eos_token_id,
                             pad_token_id=tokenizer.pad_token_id, use_cache=False)
    return out[0].tolist()


def _generate_is_blocked(*args, **kwargs):
    raise RuntimeError("my_greedy must decode with its own loop, not with model.generate")


def check_greedy(my_greedy, model, tokenizer, seed: int = 0) -> bool:
    """Exercise intro-ex4: a greedy decoding loop written from scratch equals `model.generate`.

    Runs the learner's ``my_greedy(model, input_ids, max_new_tokens, eos_token_id)`` on fresh
    prompts (`greedy_cases`) with ``model.generate`` blocked, and compares its output token for
    token with ``model.generate(do_sample=False)``: the prompt followed by the new tokens, the stop
    token included when the model writes it.

    Args:
        my_greedy: the learner's function; ``input_ids`` is a ``(1, prompt_length)`` tensor, and it
            returns the whole sequence (a tensor or a list of ids, with or without the batch axis).
        model, tokenizer: the base model.
        seed: picks the prompts.
    """
    import torch

    was_training = model.training
    model.eval()
    cases = greedy_cases(model, tokenizer, seed)
    expected = [_reference_greedy(model, tokenizer, *case) for case in cases]
    device = next(model.parameters()).device
    try:
        for (prompt, max_new, eos), want in zip(cases, expected):
            model.generate = _generate_is_blocked
            try:
                got = my_greedy(model, torch.tensor([prompt], device=device), max_new, eos)
            finally:
                del model.generate
            got = torch.as_tensor(got).reshape(-1).tolist()
            if got != want:
                return feedback("intro-ex4", False, _greedy_hint(got, want, prompt, max_new, eos, tokenizer))
    except (RuntimeError, TypeError, ValueError, IndexError) as e:
        return feedback("intro-ex4", False, f"calling my_greedy failed: {e}")
    finally:
        model.train(was_training)
    return feedback("intro-ex4", True, "")


def _greedy_hint(got, want, prompt, max_new, eos, tokenizer) -> str:
    """Say where the learner's sequence first leaves `model.generate`'s, and what usually causes it."""
    where = f"on the prompt {tokenizer.decode(prompt)!r} (max_new_tokens={max_new}, eos_token_id={eos})"
    if got[:len(prompt)] != prompt:
        return f"{where} your output does not start with the prompt: return the prompt and the new tokens"
    diverge = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
    if diverge < min(len(got), len(want)):
        return (f"{where} new token {diverge - len(prompt) + 1} is {got[diverge]}, generate wrote "
                f"{want[diverge]}: take the argmax of the logits at the last position")
    if len(got) > len(want):
        return (f"{where} you wrote {len(got) - len(prompt)} new tokens, generate {len(want) - len(prompt)}: "
                "stop right after appending eos_token_id, and after max_new_tokens")
    return (f"{where} you wrote {len(got) - len(prompt)} new tokens, generate {len(want) - len(prompt)}: keep "
            "going until max_new_tokens, and keep the eos token you stop at")
