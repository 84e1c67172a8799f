"""Checkers for the chapter 6 ("DPO and its family") exercises. Each prints a verdict and returns a bool.

Every checker calls the learner's function on fresh random inputs, or trains fresh copies of the
learner's model, and compares it with the course's own (`posttrain_utils.dpo`), so a constant or a
memorised number cannot pass. `make_pair_batches` builds exercise dpo-ex3's batches.
"""

from __future__ import annotations

import copy

import torch
from torch.nn.utils import parameters_to_vector as flat

from .. import dpo
from ..runtime.notebook import feedback
from .common import call as _call
from .common import close as _close
from .common import gradient_hint

STATS_KEYS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")
SIDES, FIELDS = ("chosen", "rejected"), ("input_ids", "attention_mask", "completion_mask")
PAIR_KEYS = tuple(f"{side}_{field}" for side in SIDES for field in FIELDS)
TRAIN_LOOP_TOLERANCE = 1e-4  # dpo-ex3: largest |learner loss - reference loss| at any step
# dpo-ex3: largest |learner - reference weights| / |reference - start weights|, norms over all weights
# (elementwise, an equivalent loop can differ by 0.1 lr where Adam rescales a gradient of about 0)
TRAIN_WEIGHT_TOLERANCE = 1e-2




def _which(theirs, candidates, default: str) -> str:
    """The hint of the first ``(hint, value)`` candidate that `theirs` equals, else `default`."""
    return next((hint for hint, value in candidates if _close(theirs, torch.as_tensor(value))), default)


def check_dpo_loss(fn) -> bool:
    """Exercise dpo-ex1: the DPO loss and its gradient, at ordinary and at huge margins.

    Args:
        fn: the learner's ``fn(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
            ref_rejected_logps, beta)`` returning the scalar mean loss (or a tuple whose first element
            is it). Called on random `(batch,)` summed log-probs at beta 0.1, 0.5 and 2.0, then on
            pairs with margins of +-1000, where ``-log(sigmoid(margin))`` overflows.
    """
    generator = torch.Generator().manual_seed(6)
    cases = []
    for n, beta in ((8, 0.1), (5, 0.5), (6, 2.0)):  # summed log-probs of n pairs, the policy's near the ref's
        rc, rr = -5 - 40 * torch.rand(2, n, generator=generator)
        cases.append((*(torch.stack([rc, rr]) + 3 * torch.randn(2, n, generator=generator)), rc, rr, beta))
    rc, rr = torch.tensor([-600.0, -550.0, -40.0]), torch.tensor([-580.0, -620.0, -35.0])  # long replies
    cases.append((rc + torch.tensor([-500.0, 0.0, 0.25]), rr + torch.tensor([0.0, -500.0, 0.0]), rc, rr, 2.0))
    for i, (pc, pr, rc, rr, beta) in enumerate(cases):  # the last: margins of -1000, +1000 and 0.5
        ours_in, theirs_in = pc.clone().requires_grad_(), pc.clone().requires_grad_()
        ours = dpo.dpo_loss(ours_in, pr, rc, rr, beta).loss
        theirs = _call(fn, theirs_in, pr, rc, rr, beta)
        if isinstance(theirs, Exception):
            return feedback("dpo-ex1", False, f"your function raised {theirs!r}")
        theirs = theirs[0] if isinstance(theirs, (tuple, list)) else theirs
        if not (torch.is_tensor(theirs) and theirs.dim() == 0):
            return feedback("dpo-ex1", False, "return the mean loss as a scalar tensor (no .item())")
        if not _close(theirs, ours):
            zero = torch.zeros_like(rc)
            return feedback("dpo-ex1", False, _which(theirs, [
                ("beta is missing: a reward is beta * (logp - ref)", dpo.dpo_loss(pc, pr, rc, rr, 1).loss),
                ("the sign is flipped (chosen and rejected swapped): the loss is "
                 "-logsigmoid(r_chosen - r_rejected)", dpo.dpo_loss(pr, pc, rr, rc, beta).loss),
                ("the reference is missing: subtract ref_chosen_logps and ref_rejected_logps",
                 dpo.dpo_loss(pc, pr, zero, zero, beta).loss),
                ("the loss is MINUS logsigmoid of the margin: it is positive", -ours),
                ("take the mean over pairs, not the sum", ours * len(pc))],
                f"with margins of -1000 your loss is {theirs.item():.4g}, not {ours.item():.4g}: sigmoid(x) "
                "rounds to 0 there, so -log(sigmoid(x)) overflows (or an eps caps it); use F.logsigmoid, "
                "exact for any margin" if i == len(cases) - 1 else
                f"the loss differs at beta={beta}: the mean of -logsigmoid(beta * ((pc - rc) - (pr - rr)))"))
        no_gradient, wrong_gradient = ("the loss has no gradient: do not detach the log-probs",
                                       "the loss matches but its gradient with respect to "
                                       "policy_chosen_logps does not: do not detach, clamp or add an eps")
        if hint := gradient_hint(theirs, ours, theirs_in, ours_in, no_gradient, wrong_gradient):
            return feedback("dpo-ex1", False, hint)
    return feedback("dpo-ex1", True, "")


def check_naive_dpo_loss(fn) -> bool:
    """Exercise dpo-ex1, second half: the naive loss ``-log(sigmoid(margin))`` is right at ordinary
    margins and overflows at a margin of -1000 (where `F.logsigmoid` stays exact).

    Args:
        fn: the learner's naive loss, with the arguments of `check_dpo_loss`'s `fn`.
    """
    generator = torch.Generator().manual_seed(61)
    for beta in (0.1, 0.5):
        rc, rr = -5 - 40 * torch.rand(2, 6, generator=generator)
        pc, pr = torch.stack([rc, rr]) + 3 * torch.randn(2, 6, generator=generator)
        theirs = _call(fn, pc, pr, rc, rr, beta)
        if isinstance(theirs, Exception):
            return feedback("dpo-ex1", False, f"naive_dpo_loss raised {theirs!r}")
        theirs = theirs[0] if isinstance(theirs, (tuple, list)) else theirs
        if not (torch.is_tensor(theirs) and _close(theirs, dpo.dpo_loss(pc, pr, rc, rr, beta).loss)):
            return feedback("dpo-ex1", False, f"at beta={beta} and ordinary margins naive_dpo_loss should "
                            "equal the DPO loss: the mean of -log(sigmoid(beta * margin))")
    rc, rr = torch.tensor([-600.0, -40.0]), torch.tensor([-580.0, -35.0])
    huge = _call(fn, rc - 500.0, rr, rc, rr, 2.0)  # a margin of -1000 on the first pair
    huge = huge[0] if isinstance(huge, (tuple, list)) else huge
    if not torch.is_tensor(huge) or torch.isfinite(huge).all():
        return feedback("dpo-ex1", False, "at a margin of -1000 naive_dpo_loss stays finite: compute "
                        "-torch.log(torch.sigmoid(margin)) as written (no eps, no clamp) to see it fail")
    return feedback("dpo-ex1", True, "")


def check_reward_stats(fn) -> bool:
    """Exercise dpo-ex2: the batch means `DPOTrainer` logs as ``rewards/chosen``, ``rewards/rejected``,
    ``rewards/margins`` and ``rewards/accuracies``.

    Args:
        fn: the learner's ``fn(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
            ref_rejected_logps, beta)`` returning a dict of those four keys, each one number. Called on
            random batches in which some pairs, but not all, have the larger reward on the chosen side.
    """
    generator = torch.Generator().manual_seed(16)
    rand = lambda n, f=torch.rand: f(n, generator=generator, dtype=torch.float64)  # noqa: E731
    # which pairs the rewards rank right, and which the policy's raw log-probs do (both accuracies differ)
    for beta, signs, raw in ((0.1, [1, 1, -1, 1, -1, 1, 1, -1], [1, -1, -1, 1, 1, -1, 1, -1]),
                             (0.5, [-1, 1, -1, -1, 1], [1, 1, 1, -1, 1]), (2.0, [1, -1, 1], [-1, -1, -1])):
        n, signs, raw = len(signs), torch.tensor(signs), torch.tensor(raw)
        rc, gap, margin = -60 - 40 * rand(n), 3 * rand(n, torch.randn), signs * (0.2 + 2 * rand(n)) / beta
        rr = rc - raw * (margin.abs() + 1 + 5 * rand(n))
        pc, pr = rc + gap, rr + gap - margin  # reward margins: beta * margin
        _, chosen, rejected = dpo.dpo_loss(pc, pr, rc, rr, beta)
        wins = (chosen > rejected).double()
        ours = dict(zip(STATS_KEYS, [x.mean() for x in (chosen, rejected, chosen - rejected, wins)]))
        theirs = _call(fn, pc, pr, rc, rr, beta)
        if isinstance(theirs, Exception):
            return feedback("dpo-ex2", False, f"your function raised {theirs!r}")
        theirs = _call(lambda: {key: torch.tensor(float(theirs[key]), dtype=torch.float64) for key in ours})
        if isinstance(theirs, Exception):
            return feedback("dpo-ex2", False, f"return a dict with the keys {', '.join(STATS_KEYS)}, each "
                            "one number, a batch mean (.mean().item())")
        hints = {"rewards/chosen": [("beta is missing: a reward is beta * (logp - ref)", (pc - rc).mean()),
                                    ("the reference is missing: subtract its log-probs", beta * pc.mean())],
                 "rewards/margins": [("a margin is chosen minus rejected", -ours["rewards/margins"])],
                 "rewards/accuracies": [("a fraction of the pairs, not a count", wins.sum()),
                                        ("count the pairs whose CHOSEN reward is larger", 1 - wins.mean()),
                                        ("compare rewards, not log-probs", (pc > pr).double().mean())]}
        for key, what in zip(STATS_KEYS, ("beta * (policy_chosen_logps - ref_chosen_logps)",
                                          "beta * (policy_rejected_logps - ref_rejected_logps)",
                                          "chosen reward - rejected reward", "(chosen reward > rejected)")):
            if not _close(theirs[key], ours[key]):
                hint = _which(theirs[key], hints.get(key, []), f"the mean over pairs of {what}")
                return feedback("dpo-ex2", False, f"{key} is {theirs[key].item():.5f}, not "
                                f"{ours[key].item():.5f} (beta={beta}): {hint}")
    return feedback("dpo-ex2", True, "")


def make_pair_batches(tokenizer, pairs, batch_size: int = 4) -> list[dict]:
    """Conversational preference records as right-padded batches of tokenized pairs, for dpo-ex3.

    Each side is prompt + reply rendered with the tokenizer's chat template; its completion starts
    where that first differs from the prompt rendered with ``add_generation_prompt=True`` (as TRL's
    `DPOTrainer` tokenizes, without its truncation).

    Args:
        tokenizer: a tokenizer with a chat template (e.g. from `runtime.models.load_model`).
        pairs: ``{"prompt", "chosen", "rejected"}`` records of message lists (`reward.preference_records`).
        batch_size: pairs per batch (the last batch may be smaller).

    Returns:
        Dicts of `(batch, seq)` long tensors keyed by `PAIR_KEYS`: ``{side}_input_ids`` (padded with the
        pad token), ``{side}_attention_mask`` and ``{side}_completion_mask`` (1 on completion tokens only).
    """
    pairs = list(pairs)
    if not pairs or batch_size < 1:
        raise ValueError(f"need pairs and a positive batch_size, got {len(pairs)} pairs and {batch_size}")
    encode = lambda messages, **kw: list(  # noqa: E731
        tokenizer.apply_chat_template(messages, return_dict=True, **kw)["input_ids"])
    rows = {side: [] for side in SIDES}  # (token ids, completion mask) of each pair
    for i, pair in enumerate(pairs):
        prompt = encode(pair["prompt"], add_generation_prompt=True)
        for side in SIDES:
            ids = encode([*pair["prompt"], *pair[side]])
            start = next((j for j, (a, b) in enumerate(zip(prompt, ids)) if a != b), len(prompt))
            if start >= len(ids):
                raise ValueError(f"pair {i}: the {side} reply adds no token after the prompt")
            rows[side].append((ids, [0] * start + [1] * (len(ids) - start)))
    batches = []
    for first in range(0, len(pairs), batch_size):
        batches.append({})
        for side in SIDES:
            chunk = rows[side][first:first + batch_size]
            width = max(len(ids) for ids, _ in chunk)
            pad = lambda row, value: row + [value] * (width - len(row))  # noqa: E731
            for field, values in (("input_ids", [pad(ids, tokenizer.pad_token_id) for ids, _ in chunk]),
                                  ("attention_mask", [pad([1] * len(ids), 0) for ids, _ in chunk]),
                                  ("completion_mask", [pad(mask, 0) for _, mask in chunk])):
                batches[-1][f"{side}_{field}"] = torch.tensor(values)
    return batches


def _side_logps(model, batch):
    """Summed completion log-probs of a pair batch's chosen and rejected sides under `model`."""
    return [dpo.sequence_logps(model, *(batch[f"{side}_{field}"] for field in FIELDS)) for side in SIDES]


def reference_dpo_train(policy, ref, batches, beta: float = 0.1, lr: float = 1e-4, steps: int = 5,
                        seed: int = 0) -> list[float]:
    """The checker's own DPO loop for dpo-ex3: summed `dpo.sequence_logps` under `policy` and (without
    gradients) `ref`, `dpo.dpo_loss`, `torch.optim.AdamW` at `lr` with its default settings; step ``i``
    uses ``batches[i % len(batches)]``. Seeds torch with `seed` first.

    Changes `policy` in place (never `ref`) and returns each step's loss, measured before its update.
    """
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=lr)
    policy.train()
    ref.eval()
    losses = []
    for step in range(steps):
        batch = batches[step % len(batches)]
        with torch.no_grad():
            ref_chosen, ref_rejected = _side_logps(ref, batch)
        loss = dpo.dpo_loss(*_side_logps(policy, batch), ref_chosen, ref_rejected, beta).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def check_dpo_train_loop(my_train, policy, ref, batches, beta: float = 0.1, lr: float = 1e-4, steps: int = 5,
                         seed: int = 0) -> bool:
    """Exercise dpo-ex3: a DPO loop written from scratch follows `reference_dpo_train` step for step.

    Trains two deep copies of `policy` (each with a copy of `ref`), with the learner's loop and with the
    reference loop, each after ``torch.manual_seed(seed)``. The losses must agree at every step
    (`TRAIN_LOOP_TOLERANCE`), the learner's copy must end at the reference's weights
    (`TRAIN_WEIGHT_TOLERANCE`: it is the model that was trained), and the loss must fall.

    Args:
        my_train: the learner's ``my_train(policy, ref, batches, beta, lr, steps)``, returning the
            per-step losses (floats or scalar tensors).
        policy, ref: the causal LM to train (e.g. the SFT model) and the frozen reference (e.g. a copy).
        batches: dicts of the `PAIR_KEYS` tensors (`make_pair_batches`), moved to the policy's device.
        beta, lr, steps, seed: the DPO beta, AdamW's learning rate, optimizer steps, the seed of each run.
    """
    if not batches or steps < 1 or not float(beta) > 0:
        raise ValueError(f"need batches, steps >= 1, beta > 0; got {len(batches)} batches, {steps}, {beta}")
    missing = sorted({key for batch in batches for key in PAIR_KEYS if key not in batch})
    if missing:
        raise ValueError(f"the batches lack {missing}: build them with make_pair_batches")
    device = next(policy.parameters()).device
    batches = [{key: batch[key].to(device) for key in PAIR_KEYS} for batch in batches]
    ours_model, theirs_model = copy.deepcopy(policy), copy.deepcopy(policy)
    ours = reference_dpo_train(ours_model, copy.deepcopy(ref), batches, beta, lr, steps, seed)
    torch.manual_seed(seed)
    theirs = _call(my_train, theirs_model, copy.deepcopy(ref), batches, beta, lr, steps)
    if isinstance(theirs, Exception):
        return feedback("dpo-ex3", False, f"calling my_train raised {theirs!r}")
    theirs = _call(lambda: [float(v) for v in theirs])
    if isinstance(theirs, Exception) or len(theirs) != steps:
        return feedback("dpo-ex3", False, f"my_train must return a list of {steps} losses, one per step")
    step = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if abs(a - b) > TRAIN_LOOP_TOLERANCE), None)
    if step is not None:
        logps = ("sum each completion's token log-probs (the logits at t - 1 score token t; completion_mask "
                 "picks the tokens), the policy's with gradients, the reference's under torch.no_grad()")
        hint = ("check the update (AdamW(policy.parameters(), lr=lr), defaults otherwise; batches[i % "
                "len(batches)] at step i; zero the gradients after each step; record each loss before its "
                "step), then the log-probs (a policy equal to its reference scores log 2 with any): " + logps)
        if step == 0:
            with torch.no_grad():
                chosen, rejected = _side_logps(policy, batches[0])
            zero = torch.zeros_like(chosen)
            no_ref = dpo.dpo_loss(chosen, rejected, zero, zero, beta).loss.item()
            hint = ("you left out the reference model: a reward is beta * (policy logp - ref logp)"
                    if abs(theirs[0] - no_ref) <= TRAIN_LOOP_TOLERANCE else f"{logps}, then the DPO loss")
        elif max(theirs) - min(theirs) <= TRAIN_LOOP_TOLERANCE:
            hint = "your loss never changes: call optimizer.step() after loss.backward() at every step"
        return feedback("dpo-ex3", False, f"step {step}: your loss {theirs[step]:.5f}, the reference loop's "
                        f"{ours[step]:.5f}: {hint}")
    with torch.no_grad():
        end = flat(ours_model.parameters())
        gap, moved = ((flat(model.parameters()) - end).norm().item() for model in (theirs_model, policy))
    if gap > TRAIN_WEIGHT_TOLERANCE * moved:
        return feedback("dpo-ex3", False, f"the losses match, but your policy's weights end far from the "
                        f"reference loop's ({gap / moved:.0%} of how far training moved them): train the "
                        "policy you are given, in place, one AdamW step per batch")
    return feedback("dpo-ex3", ours[-1] < ours[0], f"the loss went {ours[0]:.4f} -> {ours[-1]:.4f} in "
                    f"{steps} steps, as in the reference loop, but it must fall: try a larger lr")
