"""Six preference methods on one dataset and one budget: chapter 6's ``dpo`` stage.

Introduced in chapter 6 ("DPO and its family"). Every method starts from the same model (the
``sft`` stage; ORPO, which merges SFT and preference tuning, from the ``base`` model), reads the same
pairs (the tone, length and correctness pairs of ``data/preference_train.jsonl``; KTO reads the
same replies unpaired, from ``data/kto_train.jsonl``) and runs the profile's ``"dpo"`` budget. Each
is TRL's own trainer, built here so the chapter can show its config:

* ``DPO``, ``IPO`` and ``RPO`` (DPO + an NLL term on the chosen reply): `trl.DPOTrainer`;
* ``KTO``: `trl.KTOTrainer`; ``SimPO``: `trl.experimental.cpo.CPOTrainer` (``loss_type="simpo"``,
  ``cpo_alpha=0``); ``ORPO``: `trl.experimental.orpo.ORPOTrainer`.

`judge` measures a tuned model on held-out prompts the way chapter 5 does (`drift_report`) plus the
*ramble* rate. `train` (the ``dpo`` stage) trains all six, writes their figures and log histories to
``results.json`` in its run folder, and keeps the method `pick` chooses on *development* prompts
(``data/eval_dev.jsonl``); every row the chapter asserts on is judged on the test prompts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..runtime.results import write_results

PAIR_ASPECTS = ("tone", "length", "correctness")  # harmlessness pairs left out (see chapter 6)
RAMBLE_WORDS = 15  # a reply longer than this rambles (the gold score's length limit)
N_HELDOUT = 300  # the first 300 test prompts, as in chapter 5
N_DEV = 150  # the development prompts `pick` reads
# name -> (trainer, starting stage, what the method changes in the shared "dpo" budget)
METHODS = {
    "DPO": ("dpo", "sft", dict(loss_type=["sigmoid"])),
    "IPO": ("dpo", "sft", dict(loss_type=["ipo"])),
    "KTO": ("kto", "sft", dict(loss_type="kto")),
    "ORPO": ("orpo", "base", {}),  # plus the profile's "orpo" budget (its own learning rate)
    "SimPO": ("cpo", "sft", dict(loss_type="simpo", cpo_alpha=0.0, beta=2.0, simpo_gamma=0.5)),
    "RPO": ("dpo", "sft", dict(loss_type=["sigmoid", "sft"])),
}
# trainer kind -> (TRL module, its config class, its trainer class)
TRL_CLASSES = {"dpo": ("trl", "DPOConfig", "DPOTrainer"), "kto": ("trl", "KTOConfig", "KTOTrainer"),
               "cpo": ("trl.experimental.cpo", "CPOConfig", "CPOTrainer"),
               "orpo": ("trl.experimental.orpo", "ORPOConfig", "ORPOTrainer")}
_USES_REFERENCE = {"dpo": True, "kto": True, "cpo": False, "orpo": False}


def pair_dataset(aspects=PAIR_ASPECTS):
    """The shipped preference pairs of `aspects` as a `datasets.Dataset` (prompt, chosen, rejected)."""
    from datasets import Dataset

    from ..reward.bradley_terry import preference_records

    return Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")}
                              for r in preference_records("preference_train", aspects)])


def kto_dataset(seed: int, aspects=PAIR_ASPECTS):
    """The unpaired file's rows whose prompt has a pair of `aspects`, shuffled by `seed`.

    KTOTrainer reads its data in file order (a `SequentialSampler`, so the trainer's seed never
    reaches it); shuffling here makes the seed change the order, as it does for the other methods.
    """
    from datasets import Dataset

    from ..data.loading import load_records
    from ..reward.bradley_terry import preference_records

    keep = {json.dumps(r["prompt"]) for r in preference_records("preference_train", aspects)}
    rows = [r for r in load_records("kto_train") if json.dumps(r["prompt"]) in keep]
    return Dataset.from_list(rows).shuffle(seed=seed)


def trl_classes(kind: str):
    """TRL's ``(Config, Trainer)`` classes for a trainer kind of `METHODS` (``"dpo"``, ``"kto"``,
    ``"cpo"`` or ``"orpo"``), imported on first use (the experimental ones warn)."""
    import importlib

    module, config, trainer = TRL_CLASSES[kind]
    module = importlib.import_module(module)
    return getattr(module, config), getattr(module, trainer)


def method_config(method: str, profile, output_dir, **overrides):
    """The TRL config of `method` (a key of `METHODS`) on the profile's ``"dpo"`` budget.

    Args:
        method: ``"DPO"``, ``"IPO"``, ``"KTO"``, ``"ORPO"``, ``"SimPO"`` or ``"RPO"``.
        profile: the run profile.
        output_dir: the trainer's scratch folder.
        **overrides: replace any field after the method's own settings, e.g. ``beta=0.3``.

    Returns:
        A `DPOConfig`, `KTOConfig`, `CPOConfig` or `ORPOConfig`.
    """
    if method not in METHODS:
        raise KeyError(f"unknown method {method!r}; methods: {sorted(METHODS)}")
    kind, _, changes = METHODS[method]
    if kind == "dpo":
        from .losses import dpo_config

        return dpo_config(profile, output_dir, **{**changes, **overrides})
    Config = trl_classes(kind)[0]
    kwargs = dict(profile.trainer_kwargs(), **profile.budget("dpo"))
    kwargs.pop("loss_type", None)  # the shared budget's loss is DPO's; each method names its own
    kwargs.update(output_dir=str(output_dir), max_length=profile.max_length, logging_steps=1)
    kwargs.update(changes)
    if kind == "orpo":  # ORPO learns the chat format too: it has a learning rate of its own
        kwargs.update(profile.budget("orpo"))
    kwargs.update(overrides)
    return Config(**kwargs)


def make_trainer(method: str, profile, output_dir, model, tokenizer, train_dataset=None, ref_model=None,
                 **overrides):
    """TRL's trainer for `method`, on the course's data unless `train_dataset` is given.

    The reference model (DPO, IPO, RPO, KTO) is `ref_model`, or else a frozen copy of `model`'s
    starting point, loaded by the trainer.
    """
    args = method_config(method, profile, output_dir, **overrides)
    kind = METHODS[method][0]
    Trainer = trl_classes(kind)[1]
    if train_dataset is None:
        train_dataset = kto_dataset(profile.seed) if kind == "kto" else pair_dataset()
    extra = {"ref_model": ref_model} if ref_model is not None else {}
    return Trainer(model=model, args=args, train_dataset=train_dataset, processing_class=tokenizer, **extra)


def run(method: str, profile, output_dir, start, train_dataset=None, ref_model=None, **overrides):
    """Train `method` from `start` (a folder, or a `(model, tokenizer)` pair); returns
    ``(model, tokenizer, info)``.

    ``info`` holds the trainer's ``log_history``, ``sec_per_step`` and ``models_held`` (2 when the
    method keeps a frozen reference model next to the policy, else 1).
    """
    from ..runtime.models import load_model
    from ..runtime.notebook import quiet
    from ..runtime.profiles import seed_everything

    seed_everything(profile.seed)
    model, tokenizer = start if isinstance(start, tuple) else load_model(start, profile)
    trainer = make_trainer(method, profile, output_dir, model, tokenizer, train_dataset, ref_model, **overrides)
    begin = time.perf_counter()
    quiet(trainer).train()
    steps = max(trainer.state.global_step, 1)
    kind = METHODS[method][0]
    info = {"log_history": trainer.state.log_history, "sec_per_step": (time.perf_counter() - begin) / steps,
            "models_held": 2 if _USES_REFERENCE[kind] else 1}
    return trainer.model, tokenizer, info


def ramble_rate(replies) -> float:
    """The fraction of replies longer than `RAMBLE_WORDS` words."""
    replies = list(replies)
    if not replies:
        raise ValueError("no replies")
    return sum(len(r["text"].split()) > RAMBLE_WORDS for r in replies) / len(replies)


def pair_logps(model, tokenizer, pairs, batch_size: int = 32) -> tuple[float, float]:
    """Mean summed log-probability of the chosen and of the rejected replies of `pairs`.

    Args:
        model, tokenizer: a causal LM and its chat tokenizer.
        pairs: ``{"prompt", "chosen", "rejected"}`` records in the conversational format.
        batch_size: sequences per forward pass.
    """
    import torch

    from .losses import reply_batches, reply_rows, sequence_logps

    totals = []
    for side in ("chosen", "rejected"):
        rows = reply_rows(tokenizer, [r["prompt"] for r in pairs],
                          [r["prompt"] + r[side] for r in pairs])
        sums = []
        for ids, att, comp in reply_batches(rows, tokenizer.pad_token_id, batch_size):
            device = next(model.parameters()).device
            with torch.no_grad():
                sums += sequence_logps(model, ids.to(device), att.to(device), comp.to(device)).tolist()
        totals.append(sum(sums) / len(sums))
    return totals[0], totals[1]


def judge(model, sft_model, tokenizer, records, reward_model, reward_tokenizer, profile) -> dict:
    """A tuned model's row of chapter 6's table, on held-out `records`.

    `drift_report`'s figures (KL to the SFT model, proxy and gold, and the sampled judgements:
    ``rude``, ``format``, ``length``...), then, from one sampled reply per prompt: ``ramble``, and
    ``dispreferred``, the fraction of replies that are rude or ramble; and from greedy replies:
    ``facts_em_greedy``, ``format_greedy``; and ``logp_right`` / ``logp_wrong``, the mean
    log-probability of the right and of the wrong reply of the held-out correctness pairs.
    """
    from ..reward.bradley_terry import preference_records
    from ..evaluation.generation import generate, score
    from ..evaluation.judgements import is_rude
    from ..reward.overoptimization import drift_report

    row = drift_report(model, sft_model, tokenizer, records, reward_model, reward_tokenizer, profile,
                       seed=profile.seed)
    prompts = [r["prompt"] for r in records]
    sampled = generate(model, tokenizer, prompts, profile, sample=True, seed=profile.seed)
    greedy = score(generate(model, tokenizer, prompts, profile), records)
    row.update(ramble=ramble_rate(sampled),
               dispreferred=sum(is_rude(r["text"]) or len(r["text"].split()) > RAMBLE_WORDS
                                for r in sampled) / len(sampled),
               facts_em_greedy=greedy["facts_em"], format_greedy=greedy["format"])
    was_training = model.training
    model.eval()
    right = preference_records("preference_heldout", ("correctness",))
    row["logp_right"], row["logp_wrong"] = pair_logps(model, tokenizer, right)
    model.train(was_training)
    return row


def heldout(profile=None) -> list[dict]:
    """The test records chapter 6 judges on: the first `N_HELDOUT` of ``eval_test``."""
    from ..data.splits import test_records

    return test_records(N_HELDOUT)


def pick(results: dict) -> str:
    """The method the ``dpo`` stage keeps, chosen on the development rows (``dev_row``) alone.

    The rule: the lowest KL to the SFT model among the methods that at least halve SFT's
    dispreferred rate and keep greedy format >= 95 % and greedy facts EM within 5 points of SFT's;
    if none does, the lowest dispreferred rate.
    """
    sft = results["SFT"]["dev_row"]
    dev = {m: r["dev_row"] for m, r in results.items() if m != "SFT"}
    kept = [m for m, r in dev.items() if r["dispreferred"] <= sft["dispreferred"] / 2
            and r["format_greedy"] >= 0.95 and r["facts_em_greedy"] >= sft["facts_em_greedy"] - 0.05]
    if kept:
        return min(kept, key=lambda m: dev[m]["kl"])
    return min(dev, key=lambda m: dev[m]["dispreferred"])


def train(profile, output_dir: str | Path, base: str | Path, sft: str | Path, reward: str | Path):
    """Train the ``dpo`` stage: all of `METHODS`, judged and saved; returns `pick`'s model.

    Args:
        profile: the run profile (its ``"dpo"`` budget).
        output_dir: the stage's run folder: ``results.json`` (per method: `judge`'s row, the
            log history, seconds per step, models held; and the SFT model's row) is written there,
            and every method's model (safetensors) in ``<method>/model`` (`stages.member_dir`);
            each row on the test prompts (``row``) and on `N_DEV` development prompts (``dev_row``).
        base, sft, reward: the folders of the upstream stages.

    Returns:
        `(model, tokenizer)` of the method `pick` chooses on the development rows.
    """
    from tqdm.auto import tqdm

    from ..data.splits import DEV, selection_records
    from ..runtime.models import load_model, load_reward_model

    sets = {"row": heldout(profile), "dev_row": selection_records(DEV, N_DEV)}
    sft_model, tokenizer = load_model(sft, profile, for_training=False)
    rm, rm_tokenizer = load_reward_model(reward, profile, for_training=False)

    def rows(model) -> dict:
        return {key: judge(model, sft_model, tokenizer, records, rm, rm_tokenizer, profile)
                for key, records in sets.items()}

    results = {"SFT": rows(sft_model)}
    for method in tqdm(METHODS, desc="dpo stage"):
        start = base if METHODS[method][1] == "base" else sft
        model, _, info = run(method, profile, Path(output_dir) / method, start)
        model.save_pretrained(Path(output_dir) / method / "model", safe_serialization=True)
        tokenizer.save_pretrained(Path(output_dir) / method / "model")
        results[method] = {**info, **rows(model)}
    write_results(output_dir, results)
    return load_model(Path(output_dir) / pick(results) / "model", profile, for_training=False)[0], tokenizer
