"""Chapter 6's exercise checkers, both ways: the chapter's solutions pass, constants and near-misses fail.

The solutions below follow the chapter's dropdowns (dpo-ex1 to dpo-ex3), in plain PyTorch; dpo-ex3
trains the tiny base model on 8 real preference pairs (2 batches, 5 steps), and `make_pair_batches`
is checked against TRL's own `DPOTrainer` collation of the same pairs.
"""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from posttrain_utils import dpo, reward
from posttrain_utils.runtime import models
from posttrain_utils.exercises import ch06_dpo
from posttrain_utils.runtime import paths, profiles

SIDES = ("chosen", "rejected")


def my_dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen = beta * (policy_chosen_logps - ref_chosen_logps)
    rejected = beta * (policy_rejected_logps - ref_rejected_logps)
    return -F.logsigmoid(chosen - rejected).mean()


def my_reward_stats(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen = beta * (policy_chosen_logps - ref_chosen_logps)
    rejected = beta * (policy_rejected_logps - ref_rejected_logps)
    return {"rewards/chosen": chosen.mean().item(), "rewards/rejected": rejected.mean().item(),
            "rewards/margins": (chosen - rejected).mean().item(),
            "rewards/accuracies": (chosen > rejected).float().mean().item()}


def completion_logps(model, batch, side, average=False):
    ids = batch[f"{side}_input_ids"]
    logits = model(input_ids=ids, attention_mask=batch[f"{side}_attention_mask"]).logits
    token_logps = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    mask = batch[f"{side}_completion_mask"][:, 1:]
    sums = (token_logps * mask).sum(-1)
    return sums / mask.sum(-1) if average else sums


def make_train(use_ref=True, step=True, average=False, loss_fn=my_dpo_loss):
    """A DPO loop for dpo-ex3: the chapter's solution with the defaults, a near-miss otherwise."""

    def my_train(policy, ref, batches, beta, lr, steps):
        optimizer = torch.optim.AdamW(policy.parameters(), lr=lr)
        losses = []
        for i in range(steps):
            b = batches[i % len(batches)]
            pc, pr = [completion_logps(policy, b, s, average) for s in SIDES]
            with torch.no_grad():
                rc, rr = [completion_logps(ref, b, s, average) for s in SIDES]
            if not use_ref:
                rc, rr = torch.zeros_like(rc), torch.zeros_like(rr)
            loss = loss_fn(pc, pr, rc, rr, beta)
            loss.backward()
            if step:
                optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        return losses

    return my_train


def one_pass_train(policy, ref, batches, beta, lr, steps):
    """Also right: one forward pass over both sides, padded to one width, as TRL does."""
    optimizer = torch.optim.AdamW(policy.parameters(), lr=lr)
    losses = []
    for i in range(steps):
        b = batches[i % len(batches)]
        width = max(b[f"{s}_input_ids"].shape[1] for s in SIDES)
        padded = {k: F.pad(v, (0, width - v.shape[1])) for k, v in b.items()}
        both = {f"chosen_{k}": torch.cat([padded[f"{s}_{k}"] for s in SIDES])
                for k in ("input_ids", "attention_mask", "completion_mask")}
        pc, pr = completion_logps(policy, both, "chosen").chunk(2)
        with torch.no_grad():
            rc, rr = completion_logps(ref, both, "chosen").chunk(2)
        loss = dpo.dpo_loss(pc, pr, rc, rr, beta).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


# --- dpo-ex1 ----------------------------------------------------------------------------------------

def test_dpo_loss_both_ways(capsys):
    assert ch06_dpo.check_dpo_loss(my_dpo_loss)
    assert ch06_dpo.check_dpo_loss(lambda *args: dpo.dpo_loss(*args))  # a PreferenceLoss: its loss is read
    assert ch06_dpo.check_dpo_loss(lambda pc, pr, rc, rr, beta: F.softplus(beta * (pr - rr - pc + rc)).mean())
    capsys.readouterr()
    margin = lambda pc, pr, rc, rr, beta: beta * (pc - rc - pr + rr)  # noqa: E731
    wrong = {
        "constant": (lambda *args: torch.tensor(0.6931), "the loss differs"),
        "no beta": (lambda pc, pr, rc, rr, beta: my_dpo_loss(pc, pr, rc, rr, 1.0), "beta is missing"),
        "swapped": (lambda pc, pr, rc, rr, beta: my_dpo_loss(pr, pc, rr, rc, beta), "swapped"),
        "no reference": (lambda pc, pr, rc, rr, beta: my_dpo_loss(pc, pr, 0 * rc, 0 * rr, beta),
                         "the reference is missing"),
        "sum": (lambda *args: my_dpo_loss(*args) * len(args[0]), "not the sum"),
        "naive": (lambda *args: -torch.log(torch.sigmoid(margin(*args))).mean(), "F.logsigmoid"),
        "naive softplus": (lambda *args: torch.log(1 + torch.exp(-margin(*args))).mean(), "F.logsigmoid"),
        "eps": (lambda *args: -torch.log(torch.sigmoid(margin(*args)) + 1e-10).mean(), "an eps"),
        "float": (lambda *args: my_dpo_loss(*args).item(), "scalar tensor"),
        "detached": (lambda *args: my_dpo_loss(*args).detach(), "no gradient"),
        "raises": (lambda *args: 1 / 0, "ZeroDivisionError"),
    }
    for name, (fn, hint) in wrong.items():
        assert not ch06_dpo.check_dpo_loss(fn), name
        assert hint in capsys.readouterr().out, name


def test_naive_dpo_loss_both_ways(capsys):
    margin = lambda pc, pr, rc, rr, beta: beta * (pc - rc - pr + rr)  # noqa: E731
    assert ch06_dpo.check_naive_dpo_loss(lambda *args: -torch.log(torch.sigmoid(margin(*args))).mean())
    assert ch06_dpo.check_naive_dpo_loss(lambda *args: torch.log(1 + torch.exp(-margin(*args))).mean())
    capsys.readouterr()
    wrong = {
        "the exact loss": (my_dpo_loss, "stays finite"),
        "an eps": (lambda *args: -torch.log(torch.sigmoid(margin(*args)) + 1e-10).mean(), "stays finite"),
        "constant": (lambda *args: torch.tensor(float("inf")), "ordinary margins"),
        "none": (lambda *args: None, "ordinary margins"),
        "raises": (lambda *args: 1 / 0, "ZeroDivisionError"),
    }
    for name, (fn, hint) in wrong.items():
        assert not ch06_dpo.check_naive_dpo_loss(fn), name
        assert hint in capsys.readouterr().out, name


# --- dpo-ex2 ----------------------------------------------------------------------------------------

def test_reward_stats_both_ways(capsys):
    assert ch06_dpo.check_reward_stats(my_reward_stats)

    def variant(**changes):  # the solution with some entries replaced, computed from the same inputs
        def fn(pc, pr, rc, rr, beta):
            out = my_reward_stats(pc, pr, rc, rr, beta)
            out.update({k: v(pc, pr, rc, rr, beta) for k, v in changes.items()})
            return out
        return fn

    capsys.readouterr()
    wrong = {
        "constant": (lambda *args: dict.fromkeys(ch06_dpo.STATS_KEYS, 0.5), "rewards/chosen is"),
        "no beta": (lambda pc, pr, rc, rr, beta: my_reward_stats(pc, pr, rc, rr, 1.0), "beta is missing"),
        "no reference": (variant(**{"rewards/chosen": lambda pc, pr, rc, rr, beta: (beta * pc).mean()}),
                         "the reference is missing"),
        "margins reversed": (variant(**{"rewards/margins": lambda pc, pr, rc, rr, beta:
                                        (beta * (pr - rr - pc + rc)).mean()}), "chosen minus rejected"),
        "accuracy from log-probs": (variant(**{"rewards/accuracies": lambda pc, pr, rc, rr, beta:
                                               (pc > pr).float().mean()}), "not log-probs"),
        "accuracy as a count": (variant(**{"rewards/accuracies": lambda pc, pr, rc, rr, beta:
                                           (pc - rc > pr - rr).sum()}), "not a count"),
        "per-pair rewards": (variant(**{"rewards/chosen": lambda pc, pr, rc, rr, beta: beta * (pc - rc)}),
                             "one number"),
        "missing key": (lambda *args: {k: v for k, v in my_reward_stats(*args).items() if "margins" not in k},
                        "return a dict"),
        "raises": (lambda *args: 1 / 0, "ZeroDivisionError"),
    }
    for name, (fn, hint) in wrong.items():
        assert not ch06_dpo.check_reward_stats(fn), name
        assert hint in capsys.readouterr().out, name


# --- dpo-ex3 ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    """The tiny base model and its tokenizer, and 2 batches of 4 real tone and length pairs."""
    model, tok = models.load_model(paths.TINY_BASE_DIR, profiles.CPU)
    pairs = reward.preference_records("preference_train", aspects=("tone", "length"))[:8]
    return model, tok, ch06_dpo.make_pair_batches(tok, pairs, batch_size=4)


def test_make_pair_batches_matches_dpo_trainer(tiny, tmp_path):
    from trl import DPOTrainer

    model, tok, batches = tiny
    assert [sorted(b) for b in batches] == [sorted(ch06_dpo.PAIR_KEYS)] * 2
    b = batches[0]
    assert b["chosen_input_ids"].shape == (4, b["chosen_attention_mask"].sum(1).max())
    assert (b["chosen_input_ids"][b["chosen_attention_mask"] == 0] == tok.pad_token_id).all()  # right padding
    record = reward.preference_records("preference_train", aspects=("tone", "length"))[0]
    completion = b["chosen_input_ids"][0][b["chosen_completion_mask"][0] == 1]
    assert tok.decode(completion).startswith(record["chosen"][0]["content"])
    # TRL's own tokenization and collation of the same 4 pairs, row by row
    trainer = DPOTrainer(model=copy.deepcopy(model), ref_model=copy.deepcopy(model), processing_class=tok,
                         args=dpo.dpo_config(profiles.CPU, tmp_path),
                         train_dataset=reward.preference_dataset().select(range(4)))
    theirs = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    for row in range(8):
        side, i = SIDES[row // 4], row % 4
        n = int(b[f"{side}_attention_mask"][i].sum())
        assert theirs["attention_mask"][row].sum() == n
        for key in ("input_ids", "completion_mask"):
            assert torch.equal(theirs[key][row, :n], b[f"{side}_{key}"][i, :n]), (row, key)
    with pytest.raises(ValueError, match="positive batch_size"):
        ch06_dpo.make_pair_batches(tok, [], batch_size=4)
    with pytest.raises(ValueError, match="adds no token"):
        ch06_dpo.make_pair_batches(tok, [dict(record, chosen=[])])


def test_dpo_train_loop_reference_passes(tiny):
    model, _, batches = tiny
    before = [p.detach().clone() for p in model.parameters()]
    ref = copy.deepcopy(model)
    assert ch06_dpo.check_dpo_train_loop(make_train(), model, ref, batches)
    assert ch06_dpo.check_dpo_train_loop(one_pass_train, model, ref, batches)
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))  # the checker trains copies
    assert all(torch.equal(a, p) for a, p in zip(before, ref.parameters()))
    losses = ch06_dpo.reference_dpo_train(copy.deepcopy(model), ref, batches)
    assert losses[0] == pytest.approx(math.log(2), abs=1e-6)  # the policy starts as the reference
    assert losses[-1] < losses[0] - 0.1


def test_dpo_train_loop_wrong_loops_fail(tiny, capsys):
    model, _, batches = tiny
    ref = copy.deepcopy(model)
    reference_losses = ch06_dpo.reference_dpo_train(copy.deepcopy(model), ref, batches)
    wrong = {
        "constant": (lambda policy, ref, batches, beta, lr, steps: [0.6931] * steps, "never changes"),
        "constant 1.0": (lambda policy, ref, batches, beta, lr, steps: [1.0] * steps, "step 0"),
        "no reference": (make_train(use_ref=False), "you left out the reference model"),
        "no optimizer step": (make_train(step=False), "never changes"),
        "average log-probs": (make_train(average=True), "then the log-probs"),
        "swapped sides": (make_train(loss_fn=lambda pc, pr, rc, rr, beta: my_dpo_loss(pr, pc, rr, rc, beta)),
                          "step 1"),
        "copied losses": (lambda policy, ref, batches, beta, lr, steps: reference_losses, "weights end far"),
        "too few losses": (lambda *args: make_train()(*args)[:-1], "a list of 5 losses"),
        "raises": (lambda *args: 1 / 0, "ZeroDivisionError"),
    }
    capsys.readouterr()
    for name, (fn, hint) in wrong.items():
        assert not ch06_dpo.check_dpo_train_loop(fn, model, ref, batches), name
        assert hint in capsys.readouterr().out, name
    with pytest.raises(ValueError, match="need batches"):
        ch06_dpo.check_dpo_train_loop(make_train(), model, ref, [])
    with pytest.raises(ValueError, match="chosen_completion_mask"):
        ch06_dpo.check_dpo_train_loop(make_train(), model, ref, [{"input_ids": torch.ones(1, 3)}])
