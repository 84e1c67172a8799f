"""DPO's knobs and limits: chapter 6's ``dpo-sweep`` stage.

Introduced in chapter 6 ("DPO and its family"). Every run here uses the ``dpo`` stage's budget and
data (`dpo.family`) and is judged the same way (`dpo.family.judge`), so its rows sit in one table
with the six methods:

* a beta sweep of DPO (`BETAS`; beta 0.1 is the ``dpo`` stage's own DPO run);
* over-optimisation: DPO at `OVEROPT_LR_FACTOR` times the budget's learning rate;
* online DPO (`online_dpo`): `ROUNDS` rounds of sampling two replies per training prompt from the
  current policy, labelling them with chapter 4's reward model and one RPO round on those pairs,
  the same number of gradient steps as the offline run in all;
* best-of-n on the SFT model (chapter 4's estimator), for the reward-KL frontier.

`train` (the stage) writes everything to ``results.json`` in its run folder and keeps the online
DPO model.
"""

from __future__ import annotations

from pathlib import Path

from ..runtime.results import write_results
from . import family as dpo_family

BETAS = (0.03, 0.3, 1.0)
OVEROPT_LR_FACTOR = 10
ROUNDS = 3
ONLINE_METHOD = "RPO"  # online DPO runs RPO's loss, to compare with offline RPO on one knob
BEST_OF_N = (1, 2, 4, 8)


def online_pairs(prompts, replies_a, replies_b, scores_a, scores_b) -> list[dict]:
    """Preference pairs from two sampled replies per prompt, the higher reward model score chosen.

    A reply that ran out of tokens (``ended`` false) loses to one that ended; pairs whose two replies
    have the same text or the same score are dropped.

    Args:
        prompts: the conversations sampled from.
        replies_a, replies_b: ``{"text", "ended"}`` dicts, one per prompt (`evaluation.generate`).
        scores_a, scores_b: the reward model's score of each reply.

    Returns:
        ``{"prompt", "chosen", "rejected"}`` records in the conversational format.
    """
    if not len(prompts) == len(replies_a) == len(replies_b) == len(scores_a) == len(scores_b):
        raise ValueError("prompts, replies and scores differ in length")
    pairs = []
    for prompt, a, b, sa, sb in zip(prompts, replies_a, replies_b, scores_a, scores_b):
        key_a, key_b = (a["ended"], sa), (b["ended"], sb)
        if a["text"] == b["text"] or key_a == key_b:
            continue
        win, lose = (a, b) if key_a > key_b else (b, a)
        pairs.append({"prompt": prompt, "chosen": [{"role": "assistant", "content": win["text"]}],
                      "rejected": [{"role": "assistant", "content": lose["text"]}]})
    return pairs


def training_prompts(n: int, offset: int = 0) -> list[list[dict]]:
    """`n` prompts of ``prompts_train`` (harmful requests left out, as in the offline pairs)."""
    from ..data.loading import load_records

    prompts = [r["prompt"] for r in load_records("prompts_train") if r["task"] != "harmful"]
    if offset + n > len(prompts):
        raise ValueError(f"asked for prompts {offset}..{offset + n}, the file has {len(prompts)}")
    return prompts[offset:offset + n]


def online_dpo(profile, output_dir, sft, reward_model, reward_tokenizer, rounds: int = ROUNDS):
    """Online (iterative) DPO: sample, label with the reward model, one RPO round; `rounds` times.

    Each round has ``max_steps / rounds`` steps of the ``dpo`` budget on fresh prompts, against the
    SFT model as reference, so the whole run takes the offline run's number of gradient steps.

    Returns:
        `(model, tokenizer, rounds_info)`: per round, the pairs made and the trainer's log history.
    """
    from datasets import Dataset

    from ..evaluation.generation import generate
    from ..runtime.models import load_model
    from ..reward.bradley_terry import score

    budget = profile.budget("dpo")
    steps = budget["max_steps"] // rounds
    n_prompts = steps * budget["per_device_train_batch_size"]
    policy, tokenizer = load_model(sft, profile)
    ref, _ = load_model(sft, profile, for_training=False)
    info = []
    for k in range(rounds if steps else 0):  # no step (the placebo run): the SFT model, as it is
        prompts = training_prompts(n_prompts, offset=k * n_prompts)
        a, b = (generate(policy, tokenizer, prompts, profile, sample=True, seed=profile.seed + 2 * k + j)
                for j in range(2))
        scores = [score(reward_model, reward_tokenizer, prompts, [r["text"] for r in rs]) for rs in (a, b)]
        pairs = online_pairs(prompts, a, b, *scores)
        policy, _, run = dpo_family.run(ONLINE_METHOD, profile, Path(output_dir) / f"round{k}",
                                        (policy, tokenizer), Dataset.from_list(pairs), ref_model=ref,
                                        max_steps=steps)
        info.append({"pairs": len(pairs), "log_history": run["log_history"],
                     "example": pairs[0] if pairs else None})
    return policy, tokenizer, info


def best_of_n_frontier(model, tokenizer, records, reward_model, reward_tokenizer, profile, ns=BEST_OF_N):
    """Best-of-n's expected (KL, proxy, gold) on `records`, from ``max(ns)`` samples per prompt."""
    from ..evaluation.generation import generate
    from ..reward.overoptimization import best_of_n_curve, gold_score
    from ..reward.bradley_terry import score

    records = [r for r in records if r.get("answer")]
    prompts = [r["prompt"] for r in records]
    proxy, gold = [[] for _ in records], [[] for _ in records]
    for j in range(max(ns)):
        replies = generate(model, tokenizer, prompts, profile, sample=True, seed=1000 * profile.seed + j)
        for i, (p, rec, rep) in enumerate(zip(score(reward_model, reward_tokenizer, prompts,
                                                    [r["text"] for r in replies]), records, replies)):
            proxy[i].append(p)
            gold[i].append(gold_score(rep["text"], rep["ended"], rec))
    return best_of_n_curve(proxy, gold, ns)


def train(profile, output_dir: str | Path, sft: str | Path, reward: str | Path):
    """Train the ``dpo-sweep`` stage: the beta sweep, the over-optimised run, online DPO, best-of-n.

    Args:
        profile: the run profile (its ``"dpo"`` budget).
        output_dir: the run folder; ``results.json`` is written there (``beta``: `judge` rows by beta;
            ``overopt``; ``online``; ``best_of_n``).
        sft, reward: the folders of the upstream stages.

    Returns:
        `(model, tokenizer)` of the online DPO run.
    """
    from ..runtime.models import load_model, load_reward_model

    records = dpo_family.heldout(profile)
    sft_model, tokenizer = load_model(sft, profile, for_training=False)
    rm, rm_tok = load_reward_model(reward, profile, for_training=False)

    def judged(model, info):
        return {**info, "row": dpo_family.judge(model, sft_model, tokenizer, records, rm, rm_tok, profile)}

    results = {"beta": {}}
    for beta in BETAS:
        model, _, info = dpo_family.run("DPO", profile, Path(output_dir) / f"beta{beta}", sft, beta=beta)
        results["beta"][str(beta)] = judged(model, info)
    lr = profile.budget("dpo")["learning_rate"] * OVEROPT_LR_FACTOR
    model, _, info = dpo_family.run("DPO", profile, Path(output_dir) / "overopt", sft, learning_rate=lr)
    results["overopt"] = {"learning_rate": lr, **judged(model, info)}
    results["best_of_n"] = best_of_n_frontier(sft_model, tokenizer, records, rm, rm_tok, profile)
    model, _, rounds = online_dpo(profile, output_dir, sft, rm, rm_tok)
    results["online"] = judged(model, {"rounds": rounds})
    write_results(output_dir, results)
    return model, tokenizer
