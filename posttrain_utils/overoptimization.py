"""Reward over-optimisation: a gold score, and best-of-n picked by a proxy reward model.

Introduced in chapter 4 ("Reward modelling"), reused by chapter 5's reward-hacking lab. After Gao,
Schulman & Hilton (2022), "Scaling Laws for Reward Model Overoptimization": optimise a *proxy*
(the trained reward model) and watch a *gold* score (what we really want) as the policy moves away
from where it started. Best-of-n is the simplest optimiser: sample n replies, keep the one the
proxy likes best. Its distance from the sampling policy is known in closed form,
``KL_bon = log n - (n - 1) / n``.

Run it: score m samples per prompt with the proxy and the gold score, then
`best_of_n_curve(proxy, gold, ns)` gives the expected proxy and gold of best-of-n for each n <= m,
with the unbiased estimator (every n-subset of the m samples counted once).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .judgements import answer_matches, is_rude, is_well_formatted

GOLD_WEIGHTS = {"correct": 1.0, "rude": -1.0, "badly_formatted": -0.5, "per_word_over": -0.02}
GOLD_MAX_WORDS = 15


def gold_score(text: str, ended: bool, record: dict) -> float:
    """What we really want from a reply to a fact or sum question, as one number.

    ``1·correct − 1·rude − 0.5·badly formatted − 0.02·(words over 15)``.

    Args:
        text: the reply, without special tokens.
        ended: whether it stopped at the end-of-turn token.
        record: its prompt record (``task``, ``answer``, ``prompt``); facts and sums only.

    Raises:
        ValueError: for a record without an answer to check (e.g. a harmful request).
    """
    if not record.get("answer"):
        raise ValueError(f"gold_score needs a fact or sum record with an answer, got task {record.get('task')!r}")
    question = record["prompt"][-1]["content"] if record.get("prompt") else None
    words = len(text.split())
    return (GOLD_WEIGHTS["correct"] * answer_matches(text, record["answer"], record["task"], question)
            + GOLD_WEIGHTS["rude"] * is_rude(text)
            + GOLD_WEIGHTS["badly_formatted"] * (not is_well_formatted(text, ended))
            + GOLD_WEIGHTS["per_word_over"] * max(0, words - GOLD_MAX_WORDS))


def kl_best_of_n(n: int) -> float:
    """KL divergence of best-of-n from the sampling policy: ``log n - (n - 1) / n``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return math.log(n) - (n - 1) / n


def best_of_n_weights(m: int, n: int) -> list[float]:
    """P(the i-th lowest of m proxy scores is the best of a random n-subset), i = 1..m.

    ``C(i-1, n-1) / C(m, n)``: the unbiased best-of-n estimator weights (they sum to 1).
    """
    if not 1 <= n <= m:
        raise ValueError(f"need 1 <= n <= m, got n={n}, m={m}")
    total = math.comb(m, n)
    return [math.comb(i - 1, n - 1) / total for i in range(1, m + 1)]


def best_of_n(proxy: Sequence[float], gold: Sequence[float], n: int) -> tuple[float, float]:
    """Expected (proxy, gold) of the reply best-of-n would pick, from m >= n samples of one prompt.

    Args:
        proxy: the proxy reward of each of the m samples.
        gold: their gold scores, in the same order.
        n: how many samples best-of-n draws.
    """
    if len(proxy) != len(gold):
        raise ValueError(f"{len(proxy)} proxy scores for {len(gold)} gold scores")
    order = sorted(range(len(proxy)), key=lambda i: proxy[i])
    weights = best_of_n_weights(len(proxy), n)
    return (sum(w * proxy[i] for w, i in zip(weights, order)),
            sum(w * gold[i] for w, i in zip(weights, order)))


def best_of_n_curve(proxy: Sequence[Sequence[float]], gold: Sequence[Sequence[float]],
                    ns: Sequence[int]) -> list[dict]:
    """Mean expected proxy and gold of best-of-n over prompts, for each n in `ns`.

    Args:
        proxy: per prompt, the proxy scores of its m samples.
        gold: per prompt, the gold scores of the same samples.
        ns: the n values (each at most m).

    Returns:
        One row per n: ``{"n", "kl", "sqrt_kl", "proxy", "gold"}``.
    """
    if len(proxy) != len(gold) or not proxy:
        raise ValueError("proxy and gold need the same, non-zero number of prompts")
    rows = []
    for n in ns:
        pairs = [best_of_n(p, g, n) for p, g in zip(proxy, gold)]
        kl = kl_best_of_n(n)
        rows.append({"n": n, "kl": kl, "sqrt_kl": math.sqrt(kl), "proxy": sum(p for p, _ in pairs) / len(pairs),
                     "gold": sum(g for _, g in pairs) / len(pairs)})
    return rows


def gold_drop_interval(proxy: Sequence[Sequence[float]], gold: Sequence[Sequence[float]], n_from: int,
                       n_to: int, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """How much best-of-n's gold falls from ``n_from`` to ``n_to``, with a 95 % bootstrap interval.

    Prompts are resampled with replacement; the drop is ``gold(n_from) - gold(n_to)``.

    Returns:
        `(drop, low, high)`: the drop on all prompts and the 2.5 % and 97.5 % bootstrap quantiles.
    """
    import random

    per_prompt = [best_of_n(p, g, n_from)[1] - best_of_n(p, g, n_to)[1] for p, g in zip(proxy, gold)]
    if not per_prompt:
        raise ValueError("no prompts")
    rng = random.Random(seed)
    k = len(per_prompt)
    boots = sorted(sum(rng.choices(per_prompt, k=k)) / k for _ in range(n_boot))
    return sum(per_prompt) / k, boots[int(0.025 * n_boot)], boots[int(0.975 * n_boot) - 1]
