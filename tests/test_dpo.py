"""Chapter 6's DPO family: each loss against hand-computed numbers, and against TRL 1.16's trainers.

The cross-checks score one batch of 4 real preference pairs with the tiny base model: ``loss(ours)``
uses `dpo.sequence_logps` on the trainer's own collated batch, ``loss(TRL)`` is the trainer's
`compute_loss` on that batch. `DPOTrainer` (sigmoid and IPO) is stable TRL; SimPO lives in
`trl.experimental.cpo.CPOTrainer` and ORPO in `trl.experimental.orpo.ORPOTrainer`.
"""

import copy
import dataclasses
import math
import warnings
from types import SimpleNamespace

import pytest
import torch

from posttrain_utils import dpo, reward
from posttrain_utils.runtime import models
from posttrain_utils.runtime import paths, profiles

LOG2 = math.log(2.0)
# a profile with a "dpo" budget (runtime/profiles.py has none yet), for `dpo.dpo_config`
PROFILE = dataclasses.replace(profiles.CPU, budgets={**profiles.CPU.budgets, "dpo": dict(
    max_steps=3, per_device_train_batch_size=4, learning_rate=1e-4, beta=0.1)})


def t(values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype)


# --- the losses by hand ---------------------------------------------------------------------------

def test_dpo_loss_hand_computed():
    # pair 1: rewards 0.1 * (-10 + 12) = 0.2 and 0.1 * (-15 + 14) = -0.1, margin 0.3
    # pair 2: policy = reference, margin 0: log 2
    out = dpo.dpo_loss(t([-10.0, -5.0]), t([-15.0, -5.0]), t([-12.0, -5.0]), t([-14.0, -5.0]), beta=0.1)
    assert out.loss.item() == pytest.approx((math.log1p(math.exp(-0.3)) + LOG2) / 2, abs=1e-12)
    assert out.chosen_rewards.tolist() == pytest.approx([0.2, 0.0])
    assert out.rejected_rewards.tolist() == pytest.approx([-0.1, 0.0])
    loss, chosen, rejected = out  # unpacks like TRL's (losses, chosen_rewards, rejected_rewards)
    assert loss is out.loss and not chosen.requires_grad


def test_dpo_loss_gradient_and_stability():
    policy_chosen = t([-10.0, -5.0]).requires_grad_()
    out = dpo.dpo_loss(policy_chosen, t([-15.0, -5.0]), t([-12.0, -5.0]), t([-14.0, -5.0]), beta=0.1)
    out.loss.backward()
    # dL/d logp_w = -beta * sigmoid(-margin) / n: -0.1 * sigmoid(-0.3) / 2 and -0.1 * 0.5 / 2
    sigmoid = 1 / (1 + math.exp(0.3))
    assert policy_chosen.grad.tolist() == pytest.approx([-0.1 * sigmoid / 2, -0.025], abs=1e-12)
    huge = dpo.dpo_loss(t([0.0]), t([1000.0]), t([0.0]), t([0.0]), beta=1.0).loss  # margin -1000
    assert torch.isfinite(huge) and huge.item() == pytest.approx(1000.0)


def test_ipo_loss_hand_computed():
    # pair 1: h = (-1 + 1.5) - (-2 + 1.5) = 1; pair 2: h = 0
    args = (t([-1.0, -3.0]), t([-2.0, -3.0]), t([-1.5, -3.0]), t([-1.5, -3.0]))
    assert dpo.ipo_loss(*args, beta=0.5).loss.item() == pytest.approx((0.0 + 1.0) / 2)  # target 1
    out = dpo.ipo_loss(*args, beta=0.25)  # target 1 / (2 * 0.25) = 2: (1 - 2)^2 and (0 - 2)^2
    assert out.loss.item() == pytest.approx((1.0 + 4.0) / 2)
    assert out.chosen_rewards.tolist() == pytest.approx([0.125, 0.0])  # 0.25 * 0.5
    assert out.rejected_rewards.tolist() == pytest.approx([-0.125, 0.0])


def test_simpo_loss_hand_computed():
    # beta * (avg_w - avg_l) - gamma = 2 * (-1 + 2) - 0.5 = 1.5; gamma is in reward units, not divided
    out = dpo.simpo_loss(t([-1.0]), t([-2.0]), beta=2.0, gamma=0.5)
    assert out.loss.item() == pytest.approx(math.log1p(math.exp(-1.5)), abs=1e-12)
    assert (out.chosen_rewards.item(), out.rejected_rewards.item()) == (-2.0, -4.0)
    # a reward gap of exactly gamma: 2 * 0.25 - 0.5 = 0, log 2
    assert dpo.simpo_loss(t([-1.0]), t([-1.25]), beta=2.0, gamma=0.5).loss.item() == pytest.approx(LOG2)
    assert dpo.simpo_loss(t([-1.0]), t([-1.25]), beta=2.0, gamma=0.0).loss.item() == \
        pytest.approx(math.log1p(math.exp(-0.5)))


def test_orpo_odds_ratio_loss_hand_computed():
    # p_w = 1/2, p_l = 1/4: odds 1 and 1/3, log odds ratio log 3, term -log sigmoid(log 3) = log(4/3);
    # pair 2 equal: log 2
    term = dpo.orpo_odds_ratio_loss(t([math.log(0.5), -1.0]), t([math.log(0.25), -1.0]))
    assert term.item() == pytest.approx((math.log(4 / 3) + LOG2) / 2, abs=1e-12)
    swapped = dpo.orpo_odds_ratio_loss(t([math.log(0.25)]), t([math.log(0.5)]))  # log OR = -log 3
    assert swapped.item() == pytest.approx(math.log(4))


def test_orpo_odds_ratio_loss_is_stable_near_probability_one():
    chosen, rejected = torch.tensor([-1e-9]), torch.tensor([-2.0])  # float32
    assert torch.isinf(torch.log1p(-torch.exp(chosen))).all()  # the naive log(1 - p) is -inf here
    # log odds: -1e-9 - log(1e-9) = 20.7233 and -2 - log(1 - e^-2) = -1.8546; term = log1p(exp(-22.578))
    expected = math.log1p(math.exp(-(-1e-9 - math.log(-math.expm1(-1e-9)) + 2 + math.log1p(-math.exp(-2)))))
    term = dpo.orpo_odds_ratio_loss(chosen, rejected)
    assert term.dtype == torch.float32 and term.item() == pytest.approx(expected, rel=1e-4)


# --- validation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("loss, n_logps", [(dpo.dpo_loss, 4), (dpo.ipo_loss, 4), (dpo.simpo_loss, 2)])
def test_losses_validate_shapes_and_beta(loss, n_logps):
    good = [torch.zeros(3) - 1] * n_logps
    with pytest.raises(ValueError, match="differ in shape"):
        loss(*good[:-1], torch.zeros(4) - 1)
    with pytest.raises(ValueError, match="empty"):
        loss(*[torch.zeros(0)] * n_logps)
    for beta in (0.0, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="beta must be a positive number"):
            loss(*good, beta=beta)
    assert torch.isfinite(loss(*good, beta=0.1).loss)


def test_simpo_and_orpo_validate_their_inputs():
    with pytest.raises(ValueError, match="gamma"):
        dpo.simpo_loss(t([-1.0]), t([-2.0]), gamma=float("nan"))
    with pytest.raises(ValueError, match="differ in shape"):
        dpo.orpo_odds_ratio_loss(t([-1.0, -2.0]), t([-1.0]))
    with pytest.raises(ValueError, match="<= 0"):
        dpo.orpo_odds_ratio_loss(t([0.5]), t([-1.0]))


class BigramLM(torch.nn.Module):
    """A stand-in causal LM: the next-token log-probs depend only on the current token (known by hand)."""

    PROBS = [[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [1 / 3, 1 / 3, 1 / 3]]

    def __init__(self):
        super().__init__()
        self.table = torch.nn.Parameter(torch.tensor(self.PROBS).log())

    def forward(self, input_ids, attention_mask, use_cache=False):
        return SimpleNamespace(logits=self.table[input_ids])


def test_sequence_logps_by_hand():
    ids = torch.tensor([[0, 1, 2, 2], [2, 0, 0, 1]])
    attention = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    completion = torch.tensor([[0, 1, 1, 0], [1, 0, 1, 1]])  # row 2's first token is never scored
    # row 1: p(1|0) p(2|1) = 0.25 * 0.25; row 2: p(0|0) p(1|0) = 0.5 * 0.25
    sums = dpo.sequence_logps(BigramLM(), ids, attention, completion)
    assert sums.tolist() == pytest.approx([2 * math.log(0.25), math.log(0.5 * 0.25)], abs=1e-6)
    averages = dpo.sequence_logps(BigramLM(), ids, attention, completion, average=True)
    assert averages.tolist() == pytest.approx([math.log(0.25), math.log(0.5 * 0.25) / 2], abs=1e-6)
    with pytest.raises(ValueError, match="one \\(batch, seq\\) shape"):
        dpo.sequence_logps(BigramLM(), ids, attention[:, :3], completion)
    with pytest.raises(ValueError, match="rows \\[1\\]"):
        dpo.sequence_logps(BigramLM(), ids, attention, torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0]]))


# --- against TRL 1.16 -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def policy_and_ref():
    """The tiny base model as reference, and a copy with seeded noise on every weight as the policy."""
    ref, tok = models.load_model(paths.TINY_BASE_DIR, profiles.CPU)
    policy = copy.deepcopy(ref)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
    return policy, ref, tok


def _pairs():
    return reward.preference_dataset().select(range(4))  # chosen and rejected differ in length


def _batch(trainer):
    return trainer.data_collator([trainer.train_dataset[i] for i in range(len(trainer.train_dataset))])


def _logps(model, ids, attention, completion, average):
    with torch.no_grad():
        return dpo.sequence_logps(model, ids, attention, completion, average=average).chunk(2)


@pytest.mark.parametrize("loss_type, beta", [("sigmoid", 0.1), ("ipo", 0.1), ("ipo", 0.5)])
def test_dpo_and_ipo_equal_dpo_trainer_compute_loss(policy_and_ref, tmp_path, loss_type, beta):
    from trl import DPOTrainer

    policy, ref, tok = policy_and_ref
    args = dpo.dpo_config(PROFILE, tmp_path, loss_type=loss_type, beta=beta)
    trainer = DPOTrainer(model=copy.deepcopy(policy), ref_model=copy.deepcopy(ref), args=args,
                         train_dataset=_pairs(), processing_class=tok)
    assert len(trainer.train_dataset) == 4  # nothing dropped
    batch = _batch(trainer)
    with torch.no_grad():
        theirs = trainer.compute_loss(trainer.model, dict(batch)).item()
    average = loss_type == "ipo"
    inputs = (batch["input_ids"], batch["attention_mask"], batch["completion_mask"], average)
    policy_chosen, policy_rejected = _logps(trainer.model, *inputs)
    ref_chosen, ref_rejected = _logps(trainer.ref_model, *inputs)
    loss = dpo.ipo_loss if average else dpo.dpo_loss
    ours = loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=beta)
    assert ours.loss.item() == pytest.approx(theirs, abs=1e-5)
    if average:  # IPO on summed log-probs is another number: TRL averages per token
        summed = [_logps(m, *inputs[:3], False) for m in (trainer.model, trainer.ref_model)]
        assert abs(dpo.ipo_loss(*summed[0], *summed[1], beta=beta).loss.item() - theirs) > 1e-2
    else:  # the logged metrics: summed log-probs and rewards beta * (policy - ref)
        logged = trainer._metrics["train"]
        assert policy_chosen.mean().item() == pytest.approx(logged["logps/chosen"][-1], abs=1e-4)
        assert ours.chosen_rewards.mean().item() == pytest.approx(logged["rewards/chosen"][-1], abs=1e-5)
        assert ours.rejected_rewards.mean().item() == pytest.approx(logged["rewards/rejected"][-1], abs=1e-5)
        assert abs(theirs - LOG2) > 1e-2  # policy and reference differ: the match means something


def _experimental(name):
    with warnings.catch_warnings():  # "You are importing from 'trl.experimental'"
        warnings.simplefilter("ignore")
        if name == "cpo":
            from trl.experimental.cpo import CPOConfig, CPOTrainer
            return CPOConfig, CPOTrainer
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer
        return ORPOConfig, ORPOTrainer


def _avg_logps(model, batch):
    """Per-token average completion log-probs of the chosen and rejected rows of a CPO/ORPO batch."""
    return [dpo.sequence_logps(model, batch[f"{side}_input_ids"], batch[f"{side}_attention_mask"],
                               batch[f"{side}_labels"] != -100, average=True)
            for side in ("chosen", "rejected")]


def test_simpo_equals_cpo_trainer_compute_loss(policy_and_ref, tmp_path):
    CPOConfig, CPOTrainer = _experimental("cpo")
    policy, _, tok = policy_and_ref
    args = CPOConfig(output_dir=str(tmp_path), loss_type="simpo", cpo_alpha=0.0, simpo_gamma=0.5, beta=2.0,
                     max_length=128, **profiles.CPU.trainer_kwargs())
    trainer = CPOTrainer(model=copy.deepcopy(policy), args=args, train_dataset=_pairs(), processing_class=tok)
    batch = _batch(trainer)
    with torch.no_grad():
        theirs = trainer.compute_loss(trainer.model, batch).item()
        chosen, rejected = _avg_logps(trainer.model, batch)
    ours = dpo.simpo_loss(chosen, rejected, beta=2.0, gamma=0.5)
    assert ours.loss.item() == pytest.approx(theirs, abs=1e-5)
    logged = trainer._stored_metrics["train"]
    assert chosen.mean().item() == pytest.approx(logged["logps/chosen"][-1], abs=1e-5)
    assert ours.rejected_rewards.mean().item() == pytest.approx(logged["rewards/rejected"][-1], abs=1e-5)
    # gamma / beta in reward units would be another loss
    assert abs(dpo.simpo_loss(chosen, rejected, beta=2.0, gamma=0.25).loss.item() - theirs) > 1e-3


def test_orpo_term_equals_orpo_trainer(policy_and_ref, tmp_path):
    ORPOConfig, ORPOTrainer = _experimental("orpo")
    policy, _, tok = policy_and_ref
    args = ORPOConfig(output_dir=str(tmp_path), beta=0.1, max_length=128, **profiles.CPU.trainer_kwargs())
    trainer = ORPOTrainer(model=copy.deepcopy(policy), args=args, train_dataset=_pairs(),
                          processing_class=tok)
    batch = _batch(trainer)
    with torch.no_grad():
        theirs = trainer.compute_loss(trainer.model, batch).item()
        chosen, rejected = _avg_logps(trainer.model, batch)
        # TRL's NLL: mean cross-entropy over every token of the chosen rows, the prompt included
        ids, attention = batch["chosen_input_ids"], batch["chosen_attention_mask"]
        nll = -dpo.sequence_logps(trainer.model, ids, attention, attention).sum() / attention[:, 1:].sum()
    term = dpo.orpo_odds_ratio_loss(chosen, rejected)
    assert (nll + 0.1 * term).item() == pytest.approx(theirs, abs=1e-5)
    assert term.item() == pytest.approx(-trainer._stored_metrics["train"]["log_odds_ratio"][-1], abs=1e-5)
    # and TRL's own odds-ratio function on extreme average log-probs (near 0 and very negative)
    gen = torch.Generator().manual_seed(1)
    c = -torch.rand(64, generator=gen) ** 4 * 30 - 1e-7
    r = -torch.rand(64, generator=gen) ** 4 * 30 - 1e-7
    trl_ratio = trainer.odds_ratio_loss(c, r)[0]  # beta * log sigmoid(log odds), per pair
    assert dpo.orpo_odds_ratio_loss(c, r).item() == pytest.approx(-trl_ratio.mean().item() / 0.1, abs=1e-5)


# --- the config -----------------------------------------------------------------------------------

def test_dpo_config_follows_the_profile(tmp_path):
    cfg = dpo.dpo_config(dataclasses.replace(PROFILE, seed=3), tmp_path)
    assert (cfg.max_steps, cfg.per_device_train_batch_size, cfg.learning_rate, cfg.beta) == (3, 4, 1e-4, 0.1)
    assert (cfg.max_length, cfg.seed, cfg.eval_strategy, cfg.output_dir) == (128, 3, "no", str(tmp_path))
    assert cfg.use_cpu and not cfg.bf16 and cfg.report_to == [] and cfg.logging_steps == 1
    assert cfg.loss_type == ["sigmoid"]
    assert dpo.dpo_config(PROFILE, tmp_path, loss_type="ipo", max_steps=2).loss_type == ["ipo"]
    with pytest.raises(KeyError, match="no budget for 'dpo'"):
        dpo.dpo_config(dataclasses.replace(PROFILE, budgets={}), tmp_path)
