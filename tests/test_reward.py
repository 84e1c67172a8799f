"""Chapter 4's reward modelling: the Bradley-Terry loss against TRL's `RewardTrainer`, scoring, the stage.

Fast: everything runs on the tiny base model with a fresh score head, never on the SFT stage.
"""

import dataclasses
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from posttrain_utils.runtime import models
from posttrain_utils import reward
from posttrain_utils.exercises import ch04_reward
from posttrain_utils.runtime import checkpoints, paths, profiles


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    """A `RewardTrainer` on the tiny base model (new score head) and 16 real tone/length pairs."""
    from trl import RewardTrainer

    model, tok = models.load_reward_model(paths.TINY_BASE_DIR, profiles.CPU)
    args = reward.reward_config(profiles.CPU, tmp_path_factory.mktemp("rm"))
    trainer = RewardTrainer(model=model, args=args, processing_class=tok,
                            train_dataset=reward.preference_dataset().select(range(16)))
    assert len(trainer.train_dataset) == 16  # none dropped for length: row i is preference_dataset()[i]
    return trainer


def _examples(trainer, n=8, margins=None):
    examples = [dict(trainer.train_dataset[i]) for i in range(n)]
    for example, margin in zip(examples, margins or []):
        example["margin"] = margin
    return examples


def _forward(trainer, batch):
    """Chosen and rejected rewards from one forward pass of the trainer's model on a collated batch."""
    with torch.no_grad():
        logits = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return torch.chunk(logits.squeeze(-1), 2)


# --- the Bradley-Terry loss -------------------------------------------------------------------------

def test_bt_loss_hand_computed():
    loss = reward.bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0]))
    assert loss.item() == pytest.approx((math.log1p(math.exp(-1.0)) + math.log(2.0)) / 2, abs=1e-7)
    one, two = torch.tensor([1.0]), torch.tensor([2.0])
    with_margin = reward.bradley_terry_loss(two, one, margin=one)
    assert with_margin.item() == pytest.approx(math.log(2.0), abs=1e-7)  # gap 1 - margin 1 = 0
    assert reward.bradley_terry_loss(torch.tensor([2.0]), torch.tensor([1.0]), margin=1.0).item() == \
        pytest.approx(math.log(2.0), abs=1e-7)


def test_bt_loss_equals_the_naive_formula_on_small_values():
    gen = torch.Generator().manual_seed(0)
    chosen, rejected = torch.randn(50, generator=gen), torch.randn(50, generator=gen)
    naive = -torch.log(torch.sigmoid(chosen - rejected)).mean()
    assert reward.bradley_terry_loss(chosen, rejected).item() == pytest.approx(naive.item(), abs=1e-6)


def test_bt_loss_is_stable_for_large_gaps():
    chosen, rejected = torch.tensor([-100.0, -1000.0, 1000.0]), torch.zeros(3)
    assert torch.isinf(-torch.log(torch.sigmoid(chosen - rejected)).mean())  # the naive formula overflows
    loss = reward.bradley_terry_loss(chosen, rejected)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(1100.0 / 3, rel=1e-6)


def test_bt_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        reward.bradley_terry_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="margin"):
        reward.bradley_terry_loss(torch.zeros(3), torch.zeros(3), margin=torch.zeros(2))
    with pytest.raises(ValueError, match="empty"):
        reward.bradley_terry_loss(torch.zeros(0), torch.zeros(0))


@pytest.mark.parametrize("margins", [None, [0.5, 0.0, 1.0, 2.0, 0.1, 0.0, 3.0, 0.7]])
def test_bt_loss_equals_reward_trainer_compute_loss(trainer, margins):
    batch = trainer.data_collator(_examples(trainer, margins=margins))
    assert ("margin" in batch) == (margins is not None)
    with torch.no_grad():
        theirs = trainer.compute_loss(trainer.model, dict(batch)).item()
    chosen, rejected = _forward(trainer, batch)
    ours = reward.bradley_terry_loss(chosen, rejected, margin=batch.get("margin")).item()
    assert ours == pytest.approx(theirs, abs=1e-5)
    assert abs(reward.bradley_terry_loss(chosen, rejected, margin=torch.ones(8)).item() - theirs) > 1e-3


# --- scoring ----------------------------------------------------------------------------------------

def test_score_matches_the_trainers_forward_pass(trainer):
    chosen, rejected = _forward(trainer, trainer.data_collator(_examples(trainer)))
    records = reward.preference_dataset().select(range(8))  # the trainer rewrote its own copy's columns
    prompts = [r["prompt"] for r in records]
    for rewards, field in ((chosen, "chosen"), (rejected, "rejected")):
        replies = [r[field][0]["content"] for r in records]
        ours = reward.score(trainer.model, trainer.processing_class, prompts, replies, batch_size=3)
        assert np.allclose(ours, rewards.tolist(), atol=1e-5), (field, ours, rewards.tolist())
    assert max(chosen.tolist()) - min(chosen.tolist()) > 1e-3  # the rewards differ: the match means something
    assert trainer.model.training  # score restores the mode it found


def test_score_validates_its_inputs(trainer):
    model, tok = trainer.model, trainer.processing_class
    with pytest.raises(ValueError, match="2 prompts but 1 replies"):
        reward.score(model, tok, [[{"role": "user", "content": "a"}]] * 2, ["b"])
    with pytest.raises(TypeError, match="not a conversation"):
        reward.score(model, tok, ["a plain string"], ["b"])
    with pytest.raises(ValueError, match="one label"):
        reward.score(SimpleNamespace(config=SimpleNamespace(num_labels=2)), tok, [], [])


class LengthRM(torch.nn.Module):
    """A stand-in reward model whose reward is the number of tokens: easy to predict by hand."""

    config = SimpleNamespace(num_labels=1)

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(logits=attention_mask.sum(-1, keepdim=True).float())


def test_pair_accuracy_on_hand_made_records(trainer):
    tok = trainer.processing_class
    prompt = [{"role": "user", "content": "What is 2 + 3?"}]
    pairs = [("2 + 3 is 5. Hope this helps.", "5."), ("5.", "2 + 3 is 5, obviously, you know."),
             ("Five.", "Five."), ("It is 5. Happy to help!", "5")]
    records = [{"prompt": prompt, "chosen": [{"role": "assistant", "content": c}],
                "rejected": [{"role": "assistant", "content": r}]} for c, r in pairs]

    def n_tokens(reply):
        turns = prompt + [{"role": "assistant", "content": reply}]
        return len(tok.apply_chat_template(turns, tokenize=True, return_dict=True)["input_ids"])

    accuracy, margins = reward.pair_accuracy(LengthRM(), tok, records, batch_size=2)
    assert margins == [float(n_tokens(c) - n_tokens(r)) for c, r in pairs]
    assert margins[2] == 0.0 and accuracy == 0.5  # a tie counts as wrong
    with pytest.raises(ValueError, match="no records"):
        reward.pair_accuracy(LengthRM(), tok, [])
    with pytest.raises(ValueError, match="one assistant turn"):
        reward.pair_accuracy(LengthRM(), tok, [{**records[0], "chosen": records[0]["chosen"] * 2}])


# --- data, config, loader, calibration --------------------------------------------------------------

def test_preference_dataset_has_tone_and_length_pairs_only():
    raw = [json.loads(line) for line in (paths.DATA_DIR / "preference_train.jsonl").read_text().splitlines()]
    key = lambda r: json.dumps([r["prompt"], r["chosen"], r["rejected"]])  # noqa: E731
    ds = reward.preference_dataset()
    assert ds.column_names == ["prompt", "chosen", "rejected"]
    assert len(ds) == sum(r["aspect"] in ("tone", "length") for r in raw) > 0
    ours = {key(r) for r in ds}
    assert not ours & {key(r) for r in raw if r["aspect"] not in reward.ASPECTS}
    assert ours == {key(r) for r in raw if r["aspect"] in ("tone", "length")}
    assert set(reward.ASPECTS) == {"tone", "length"}
    with pytest.raises(ValueError, match="choose from"):
        reward.preference_records(aspects=("helpfulness",))
    with pytest.raises(TypeError, match="not a string"):
        reward.preference_records(aspects="tone")


def test_reward_config_follows_the_profile(tmp_path):
    short = dataclasses.replace(profiles.CPU, seed=3, budgets={**profiles.CPU.budgets, "reward": dict(
        max_steps=7, per_device_train_batch_size=5, learning_rate=3e-4)})
    cfg = reward.reward_config(short, tmp_path)
    assert (cfg.max_steps, cfg.per_device_train_batch_size, cfg.learning_rate) == (7, 5, 3e-4)
    assert (cfg.max_length, cfg.seed, cfg.eval_strategy, cfg.output_dir) == (128, 3, "no", str(tmp_path))
    assert cfg.use_cpu and not cfg.bf16 and cfg.report_to == [] and cfg.logging_steps == 1
    assert reward.reward_config(short, tmp_path, max_steps=2).max_steps == 2


def test_load_reward_model_seeds_its_new_head_and_leaves_the_rng_alone():
    def head(seed, caller_seed):
        torch.manual_seed(caller_seed)  # the caller's random state must not matter
        before = torch.get_rng_state()
        profile = dataclasses.replace(profiles.CPU, seed=seed)
        model, tok = models.load_reward_model(paths.TINY_BASE_DIR, profile)
        assert torch.equal(torch.get_rng_state(), before)
        assert model.config.num_labels == 1 and model.config.pad_token_id == tok.pad_token_id is not None
        assert type(model).__name__.endswith("ForSequenceClassification")
        return model.score.weight.detach().clone()

    first = head(0, caller_seed=11)
    assert torch.equal(first, head(0, caller_seed=12))
    assert not torch.equal(first, head(1, caller_seed=11))


def test_calibration_bins_hand_computed():
    predicted, observed = reward.calibration_bins([0.0, 2.0], n_bins=2)
    s2 = 1 / (1 + math.exp(-2.0))  # predictions: 0.5 (1), s2 (1); reversed: 0.5 (0), 1 - s2 (0)
    assert np.allclose(predicted, [1 - s2, (0.5 + s2 + 0.5) / 3]) and np.allclose(observed, [0.0, 2 / 3])
    predicted, observed = reward.calibration_bins([0.0], n_bins=4)
    assert np.isnan(predicted[[0, 1, 3]]).all() and predicted[2] == 0.5 and observed[2] == 0.5
    with pytest.raises(ValueError, match="non-empty"):
        reward.calibration_bins([], 3)
    with pytest.raises(ValueError, match="n_bins"):
        reward.calibration_bins([1.0], 0)


# --- the stage --------------------------------------------------------------------------------------

def test_reward_stage_is_registered_with_a_budget_in_both_profiles():
    stage = checkpoints.STAGES["reward"]
    assert (stage.module, stage.upstream, stage.data_files, stage.budget, stage.loader) == (
        "posttrain_utils.reward.bradley_terry", ("sft",), reward.DATA_FILES, "reward", "load_reward_model")
    assert callable(getattr(models, stage.loader)) and checkpoints.STAGES["sft"].loader == "load_model"
    for profile in (profiles.CPU, profiles.GPU):
        budget = profile.budget("reward")
        assert min(budget[k] for k in ("max_steps", "per_device_train_batch_size", "learning_rate")) > 0

    def one_step(stage):
        budgets = {**profiles.CPU.budgets, stage: {**profiles.CPU.budgets[stage], "max_steps": 1}}
        return dataclasses.replace(profiles.CPU, budgets=budgets)

    prints = [checkpoints.fingerprint("reward", profiles.CPU), checkpoints.fingerprint("sft", profiles.CPU),
              checkpoints.fingerprint("reward", one_step("sft")),
              checkpoints.fingerprint("reward", one_step("reward"))]
    assert len(set(prints)) == 4  # its own budget and its upstream's both change the reward stage


def test_get_loads_each_stage_with_its_loader(monkeypatch):
    monkeypatch.setattr(checkpoints, "path", lambda name, profile=None: paths.TINY_BASE_DIR)
    rm, _ = checkpoints.get("reward", profiles.CPU)
    lm, _ = checkpoints.get("sft", profiles.CPU)
    assert rm.config.num_labels == 1 and type(rm).__name__.endswith("ForSequenceClassification")
    assert type(lm).__name__.endswith("ForCausalLM")


def test_train_moves_the_model_and_returns_a_reward_model(tmp_path):
    short = dataclasses.replace(profiles.CPU, budgets={**profiles.CPU.budgets, "reward": dict(
        max_steps=2, per_device_train_batch_size=4, learning_rate=1e-3)})
    fresh, _ = models.load_reward_model(paths.TINY_BASE_DIR, short)
    model, tok = reward.train(short, tmp_path / "run", paths.TINY_BASE_DIR)
    assert model.config.num_labels == 1 and tok.pad_token_id == model.config.pad_token_id
    assert (model.score.weight - fresh.score.weight).abs().max().item() > 1e-5


# --- the exercise checkers, both ways ---------------------------------------------------------------

def test_check_bt_loss_both_ways():
    assert ch04_reward.check_bt_loss(reward.bradley_terry_loss)
    assert not ch04_reward.check_bt_loss(lambda c, r: torch.tensor(0.6931))  # a constant
    assert not ch04_reward.check_bt_loss(lambda c, r: -torch.log(torch.sigmoid(c - r)).mean())  # unstable
    logsigmoid = torch.nn.functional.logsigmoid
    assert not ch04_reward.check_bt_loss(lambda c, r: -logsigmoid(c - r).sum())  # a sum
    assert not ch04_reward.check_bt_loss(lambda c, r: -logsigmoid(r - c).mean())  # swapped
    assert not ch04_reward.check_bt_loss(lambda c, r: 1 / 0)  # an error is a verdict, not a crash


def test_check_margin_loss_both_ways():
    assert ch04_reward.check_margin_loss(lambda c, r, m: reward.bradley_terry_loss(c, r, margin=m))
    assert not ch04_reward.check_margin_loss(lambda c, r, m: reward.bradley_terry_loss(c, r))  # ignores m
    assert not ch04_reward.check_margin_loss(lambda c, r, m: reward.bradley_terry_loss(c, r, margin=-m))
    assert not ch04_reward.check_margin_loss(lambda c, r, m: torch.tensor(1.0))


def test_check_calibration_bins_both_ways():
    margins = np.random.default_rng(1).normal(1.0, 1.5, 100).tolist()
    assert ch04_reward.check_calibration_bins(reward.calibration_bins, margins)

    def one_order_only(m, n_bins):  # every pair once, as (chosen, rejected): observed is then 0 or 1 by bin
        p = 1 / (1 + np.exp(-np.asarray(m)))
        idx = np.minimum((p * n_bins).astype(int), n_bins - 1)
        counts = np.bincount(idx, minlength=n_bins)
        with np.errstate(invalid="ignore"):
            return (np.bincount(idx, p, n_bins) / counts,
                    np.bincount(idx, (np.asarray(m) > 0).astype(float), n_bins) / counts)

    assert not ch04_reward.check_calibration_bins(one_order_only, margins)
    assert not ch04_reward.check_calibration_bins(lambda m, n: (np.full(n, 0.5), np.full(n, 0.5)), margins)


def test_check_best_of_n_both_ways():
    from posttrain_utils.reward import overoptimization

    assert ch04_reward.check_best_of_n(overoptimization.best_of_n)
    assert not ch04_reward.check_best_of_n(lambda proxy, gold, n: (max(proxy), gold[proxy.index(max(proxy))]))
    assert not ch04_reward.check_best_of_n(lambda proxy, gold, n: (0.0, 0.0))
