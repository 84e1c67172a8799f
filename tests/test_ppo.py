"""The course's PPO (chapter 5): each formula against hand-computed numbers, masks, the trainer end to end."""

import copy
import dataclasses
import json
import math
import time

import pytest
import torch

from posttrain_utils.reward import bradley_terry
from posttrain_utils.runtime import models
from posttrain_utils import ppo
from posttrain_utils.data import load_records
from posttrain_utils.exercises import ch05_ppo
from posttrain_utils.ppo import PPOConfig, clipped_policy_loss, clipped_value_loss, gae, kl_penalty, masked_mean, token_rewards, whiten
from posttrain_utils.ppo.trainer import LOG_KEYS, PPOTrainer, ValueHead
from posttrain_utils.evaluation.rollouts import position_ids_from, sample_responses, response_logprobs, truncate_at_eos
from posttrain_utils.runtime import profiles
from posttrain_utils.runtime.paths import TINY_BASE_DIR

LOG2 = math.log(2.0)


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


# --- whiten, KL, per-token rewards ----------------------------------------------------------------

def test_whiten_by_hand_and_over_the_mask():
    values, mask = t([[2.0, 4.0, 6.0, 50.0]]), t([[1, 1, 1, 0]])  # mean 4, unbiased std 2; 50 is padding
    assert torch.allclose(whiten(values, mask), t([[-1.0, 0.0, 1.0, 0.0]]), atol=1e-6)
    assert torch.allclose(whiten(values, mask, shift_mean=False), t([[3.0, 4.0, 5.0, 0.0]]), atol=1e-6)
    x = torch.randn(6, 9, generator=torch.Generator().manual_seed(0)) * 5 + 3
    mask = (torch.arange(9) < torch.tensor([[9], [3], [5], [1], [7], [2]])).float()
    w = whiten(x, mask)
    real = w[mask.bool()]
    assert abs(real.mean().item()) < 1e-6 and abs(real.std().item() - 1) < 1e-5
    assert torch.equal(whiten(x + 1000 * (1 - mask), mask), w)  # padding changes nothing
    with pytest.raises(ValueError):
        whiten(t([[1.0, 2.0]]), t([[1, 0]]))  # one real value has no spread


def test_kl_penalty_by_hand():
    logp, ref_logp = t([[math.log(0.5), math.log(0.25)]]), t([[math.log(0.25), math.log(0.5)]])
    assert torch.allclose(kl_penalty(logp, ref_logp, "k1"), t([[LOG2, -LOG2]]))  # 0.6931, -0.6931
    # k3 = exp(r) - 1 - r, r = ref_logp - logp: 0.5 - 1 + 0.6931 = 0.1931 and 2 - 1 - 0.6931 = 0.3069
    assert torch.allclose(kl_penalty(logp, ref_logp, "k3"), t([[0.193147, 0.306853]]), atol=1e-6)
    assert torch.equal(kl_penalty(logp, logp, "k3"), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="unknown KL estimator"):
        kl_penalty(logp, ref_logp, "k2")


def test_token_rewards_by_hand():
    scores = t([2.0, -1.0])
    logp, ref_logp = t([[-1, -2, -3], [-1, -1, 0]]), t([[-1.5, -2, -2], [-2, -1, -9]])
    mask = t([[1, 1, 1], [1, 1, 0]])
    rewards, kl = token_rewards(scores, logp, ref_logp, mask, kl_coef=0.1)
    assert torch.allclose(kl, t([[0.5, 0.0, -1.0], [1.0, 0.0, 0.0]]))  # the padded 9 is not counted
    # -0.1 * KL on every real token; the score lands on the last real token
    assert torch.allclose(rewards, t([[-0.05, 0.0, 2.1], [-0.1, -1.0, 0.0]]))
    with pytest.raises(ValueError, match="one per rollout"):
        token_rewards(t([1.0]), logp, ref_logp, mask, 0.1)


# --- GAE ------------------------------------------------------------------------------------------

def test_gae_three_steps_by_hand():
    rewards, values = t([[0.0, 0.0, 1.0]]), t([[0.5, 0.4, 0.6]])
    # gamma 1, lam 0.95: delta = [0 + 0.4 - 0.5, 0 + 0.6 - 0.4, 1 + 0 - 0.6] = [-0.1, 0.2, 0.4]
    # A2 = 0.4, A1 = 0.2 + 0.95 * 0.4 = 0.58, A0 = -0.1 + 0.95 * 0.58 = 0.451; returns = A + V
    advantages, returns = gae(rewards, values, gamma=1.0, lam=0.95)
    assert torch.allclose(advantages, t([[0.451, 0.58, 0.4]]), atol=1e-6)
    assert torch.allclose(returns, t([[0.951, 0.98, 1.0]]), atol=1e-6)
    # gamma 0.9, lam 0.5: delta = [0.36 - 0.5, 0.54 - 0.4, 0.4] = [-0.14, 0.14, 0.4]
    # A2 = 0.4, A1 = 0.14 + 0.45 * 0.4 = 0.32, A0 = -0.14 + 0.45 * 0.32 = 0.004
    advantages, returns = gae(rewards, values, gamma=0.9, lam=0.5)
    assert torch.allclose(advantages, t([[0.004, 0.32, 0.4]]), atol=1e-6)
    assert torch.allclose(returns, t([[0.504, 0.72, 1.0]]), atol=1e-6)
    # lam 1, gamma 1: the return of every step is the sum of the rewards still to come
    assert torch.allclose(gae(rewards, values, 1.0, 1.0)[1], t([[1.0, 1.0, 1.0]]))


def test_gae_padding_bootstraps_zero_and_changes_nothing():
    # the response ends at t=1; the padded reward 5 and value 9 must be ignored
    rewards, values, mask = t([[0.0, 1.0, 5.0]]), t([[0.5, 0.4, 9.0]]), t([[1, 1, 0]])
    # delta1 = 1 + 0 - 0.4 = 0.6 (no bootstrap from the padding), A0 = -0.1 + 0.95 * 0.6 = 0.47
    advantages, returns = gae(rewards, values, 1.0, 0.95, mask)
    assert torch.allclose(advantages, t([[0.47, 0.6, 0.0]]), atol=1e-6)
    assert torch.allclose(returns, t([[0.97, 1.0, 0.0]]), atol=1e-6)
    g = torch.Generator().manual_seed(1)
    rewards, values = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    lengths = [8, 5, 2, 1]
    mask = (torch.arange(8) < torch.tensor(lengths)[:, None]).float()
    batched = gae(rewards, values, 1.0, 0.95, mask)
    for row, n in enumerate(lengths):  # each row alone, cut to its length
        alone = gae(rewards[row:row + 1, :n], values[row:row + 1, :n], 1.0, 0.95)
        for ours, ref in zip(batched, alone):
            assert torch.allclose(ours[row, :n], ref[0], atol=1e-6)
            assert torch.all(ours[row, n:] == 0)
    with pytest.raises(ValueError, match="ones then zeros"):
        gae(rewards[:1, :3], values[:1, :3], mask=t([[1, 0, 1]]))


# --- the clipped losses ---------------------------------------------------------------------------

def _policy_loss(ratios, advantages, mask=None, eps=0.2):
    logp_old = torch.full((1, len(ratios)), math.log(0.3))
    logp_new = (logp_old + t([ratios]).log()).requires_grad_()
    loss, clip_fraction, approx_kl = clipped_policy_loss(logp_new, logp_old, t([advantages]), eps, mask)
    loss.backward()
    return loss.item(), clip_fraction.item(), approx_kl.item(), logp_new.grad[0].tolist()


def test_clipped_policy_loss_seed_example():
    # seed 002: ratio 1.2, A 0.5 -> min(0.6, 0.6) = 0.6; ratio 1.3 -> min(0.65, 1.2 * 0.5 = 0.6) = 0.6
    assert _policy_loss([1.2], [0.5])[0] == pytest.approx(-0.6, abs=1e-6)
    loss, clip_fraction, _, grad = _policy_loss([1.3], [0.5])
    assert loss == pytest.approx(-0.6, abs=1e-6)
    assert clip_fraction == 1.0 and grad == [0.0]  # clipped: no gradient pushes the ratio further up


def test_clipped_policy_loss_negative_advantages_and_mask():
    loss, clip_fraction, _, grad = _policy_loss([0.7], [-1.0])  # max(0.7, 0.8): clipped below 1 - eps
    assert loss == pytest.approx(0.8, abs=1e-6) and clip_fraction == 1.0 and grad == [0.0]
    loss, clip_fraction, _, grad = _policy_loss([1.3], [-1.0])  # max(1.3, 1.2): the pessimistic unclipped
    assert loss == pytest.approx(1.3, abs=1e-6) and clip_fraction == 0.0
    assert grad[0] == pytest.approx(1.3, abs=1e-6)  # d(-A * ratio)/dlogp = -A * ratio
    # a batch: the two tokens above plus a padded one with a wild ratio that must change nothing
    loss, clip_fraction, approx_kl, grad = _policy_loss([1.3, 1.3, 5.0], [0.5, -1.0, 3.0],
                                                        mask=t([[1, 1, 0]]))
    assert loss == pytest.approx((-0.6 + 1.3) / 2, abs=1e-6) and clip_fraction == 0.5
    assert approx_kl == pytest.approx(0.5 * math.log(1.3) ** 2, abs=1e-6)  # 0.0344
    assert grad == pytest.approx([0.0, 0.65, 0.0], abs=1e-6)


def test_clipped_value_loss_by_hand():
    values_old, returns = t([[0.0, 0.0, 0.0, 0.0]]), t([[1.0, 1.0, 1.0, 1.0]])
    values_new = t([[0.5, 0.1, -0.5, 40.0]]).requires_grad_()
    mask = t([[1, 1, 1, 0]])
    # 0.5: (0.5-1)^2 = 0.25 vs clipped to 0.2: 0.64 -> 0.64 (clipped); 0.1: 0.81 both;
    # -0.5: 2.25 vs clipped to -0.2: 1.44 -> 2.25 (unclipped). loss = 0.5 * (0.64 + 0.81 + 2.25) / 3
    loss, clip_fraction = clipped_value_loss(values_new, values_old, returns, 0.2, mask)
    assert loss.item() == pytest.approx(0.5 * 3.7 / 3, abs=1e-6)
    assert clip_fraction.item() == pytest.approx(1 / 3)
    loss.backward()
    grad = values_new.grad[0].tolist()
    assert grad[0] == 0.0 and grad[2] == pytest.approx(0.5 * 2 * (-1.5) / 3) and grad[3] == 0.0


def test_losses_validate_shapes_and_masks():
    with pytest.raises(ValueError):
        clipped_policy_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="selects no position"):
        masked_mean(torch.ones(2, 2), torch.zeros(2, 2))


# --- the config -----------------------------------------------------------------------------------

def test_config_defaults_are_the_course_recipe_and_bad_values_raise():
    c = PPOConfig()
    recipe = (c.kl_coef, c.learning_rate, c.value_learning_rate, c.rollouts_per_iteration, c.num_ppo_epochs,
              c.num_mini_batches, c.gamma, c.lam, c.cliprange, c.vf_coef)
    assert recipe == (0.1, 2e-5, 1e-4, 64, 4, 2, 1.0, 0.95, 0.2, 0.1)
    for bad in (dict(rollouts_per_iteration=10, num_mini_batches=3), dict(cliprange=0.0), dict(lam=1.5),
                dict(kl_estimator="k2"), dict(temperature=0.0), dict(kl_coef=-0.1)):
        with pytest.raises(ValueError):
            PPOConfig(**bad)


# --- rollouts: EOS, temperature, padding, value head ----------------------------------------------

def test_truncate_at_eos_by_hand():
    responses = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8], [2, 9, 9, 9]])
    cut, mask, ended = truncate_at_eos(responses, eos_token_id=2, pad_token_id=1)
    assert cut.tolist() == [[5, 2, 1, 1], [5, 6, 7, 8], [2, 1, 1, 1]]
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]  # the EOS itself is a real token
    assert ended.tolist() == [True, False, True]


@pytest.fixture(scope="module")
def tiny():
    policy, tokenizer = models.load_model(profile=profiles.CPU, for_training=False)
    return policy, tokenizer


def _encode(tokenizer, questions):
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                           add_generation_prompt=True) for q in questions]
    tokenizer.padding_side = "left"
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def test_logprobs_are_those_sampled_at_the_temperature(tiny):
    policy, tok = tiny
    enc = _encode(tok, ["What is 2 plus 3?", "Which city is the capital of Troleis, please tell me?"])
    assert enc["attention_mask"][0, 0] == 0  # the first prompt is left-padded
    torch.manual_seed(0)
    out = policy.generate(**enc, max_new_tokens=10, do_sample=True, temperature=0.7, top_k=0, top_p=1.0,
                          output_scores=True, return_dict_in_generate=True, pad_token_id=tok.pad_token_id)
    ctx = enc["input_ids"].shape[1]
    sampled = torch.stack(out.scores, 1).log_softmax(-1).gather(-1, out.sequences[:, ctx:, None])[..., 0]
    responses, mask, _ = truncate_at_eos(out.sequences[:, ctx:], tok.eos_token_id, tok.pad_token_id)
    ids, attention = torch.cat([enc["input_ids"], responses], 1), torch.cat([enc["attention_mask"], mask], 1)
    args = (policy, ids, attention, ctx)
    with torch.no_grad():
        assert torch.allclose(response_logprobs(*args, temperature=0.7)[0][mask.bool()], sampled[mask.bool()],
                              atol=1e-4)
        assert not torch.allclose(response_logprobs(*args, temperature=1.0)[0], sampled, atol=1e-2)


def test_position_ids_start_at_the_first_real_token():
    assert position_ids_from(torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]])).tolist() == [[0, 0, 0, 1, 2],
                                                                                          [0, 1, 2, 3, 3]]


def test_value_head_from_a_classifier_gives_its_score_at_the_last_token(tiny):
    from transformers import LlamaForSequenceClassification

    _, tok = tiny
    torch.manual_seed(0)
    classifier = LlamaForSequenceClassification.from_pretrained(str(TINY_BASE_DIR), num_labels=1).eval()
    value = ValueHead.from_sequence_classifier(classifier)
    assert value.head is classifier.score  # shared: training the value model trains the classifier passed in
    enc = _encode(tok, ["What is 2 plus 3?"])
    with torch.no_grad():
        values = value(enc["input_ids"], enc["attention_mask"])
        assert values.shape == enc["input_ids"].shape
        assert torch.allclose(values[:, -1], classifier(**enc).logits[:, 0], atol=1e-5)
    with pytest.raises(TypeError):
        ValueHead.from_sequence_classifier(tiny[0])


# --- the trainer end to end -----------------------------------------------------------------------

PROMPTS = [r["prompt"] for r in load_records("prompts_train")[:64]]


def short_reply_reward(prompts, replies):
    return [1.0 if len(reply) < 40 else 0.0 for reply in replies]


def make_trainer(reward_fn=short_reply_reward, seed=0, metrics_fn=None, **overrides):
    from transformers import LlamaForSequenceClassification

    torch.manual_seed(seed)  # the value head's fresh score weights
    policy, tokenizer = models.load_model(profile=profiles.CPU)
    value_model = LlamaForSequenceClassification.from_pretrained(str(TINY_BASE_DIR), num_labels=1)
    config = PPOConfig(**{"rollouts_per_iteration": 8, "max_new_tokens": 16, "temperature": 0.7, "seed": seed,
                          **overrides})
    return PPOTrainer(config, policy, copy.deepcopy(policy), value_model, tokenizer, reward_fn, PROMPTS,
                      metrics_fn=metrics_fn)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_trainer_runs_two_iterations_end_to_end():
    start = time.perf_counter()
    trainer = make_trainer()
    policy0, ref0, value0 = _state(trainer.policy), _state(trainer.ref_policy), _state(trainer.value_model)
    history = trainer.train(2)
    assert time.perf_counter() - start < 20
    assert [entry["iteration"] for entry in history] == [1, 2] and history is trainer.history
    for entry in history:
        assert set(entry) == set(LOG_KEYS) and all(math.isfinite(v) for v in entry.values())
        assert 0 <= entry["clip_fraction"] <= 1 and entry["entropy"] > 0 and entry["response_length"] <= 16
    assert history[0]["kl"] == pytest.approx(0, abs=1e-4)  # the policy starts as the reference
    # the first batch sets the normalisation, so its normalised scores average 0 minus the EOS penalty
    first = history[0]
    assert first["reward_normalised"] == pytest.approx(-1.0 * first["no_eos_fraction"], abs=1e-5)
    assert trainer.reward_mean == pytest.approx(first["reward_raw"])
    policy1, ref1, value1 = _state(trainer.policy), _state(trainer.ref_policy), _state(trainer.value_model)
    assert any(not torch.equal(policy0[k], policy1[k]) for k in policy0)
    assert any(not torch.equal(value0[k], value1[k]) for k in value0)
    assert all(torch.equal(ref0[k], ref1[k]) for k in ref0)
    assert not any(p.requires_grad for p in trainer.ref_policy.parameters())


def test_rollout_logprobs_are_those_of_the_distribution_it_sampled_from():
    trainer = make_trainer(temperature=1.5)  # a hot temperature: a top-k cut would show in the tail
    real_generate, captured = trainer.policy.generate, {}

    def generate(**kwargs):
        out = real_generate(**kwargs, output_scores=True, return_dict_in_generate=True)
        captured["scores"] = torch.stack(out.scores, 1)  # the processed logits each token was drawn from
        return out.sequences

    trainer.policy.generate = generate
    batch = trainer.rollout()
    responses, mask = batch["query_responses"][:, batch["context_length"]:], batch["mask"].bool()
    sampled = captured["scores"].log_softmax(-1).gather(-1, responses[..., None])[..., 0]
    assert torch.allclose(batch["logp"][mask], sampled[mask], atol=1e-5)


def test_rollout_cuts_replies_at_the_first_eos_and_penalises_the_others():
    seen = []

    def constant_reward(prompts, replies):  # 0 for every reply of the first batch, 1 for the second
        seen.append(replies)
        return [float(len(seen) - 1)] * len(replies)

    trainer = make_trainer(constant_reward)
    real_generate, tok = trainer.policy.generate, trainer.tokenizer

    def generate(**kwargs):  # the base model never ends a reply: end every other one after 4 tokens
        out = real_generate(**kwargs)
        out[::2, kwargs["input_ids"].shape[1] + 3] = tok.eos_token_id
        return out

    trainer.policy.generate = generate
    batch = trainer.rollout()
    assert batch["mask"].sum(1).tolist() == [4, 16] * 4
    assert batch["stats"]["no_eos_fraction"] == 0.5
    # a constant score has no spread (std 1 is used): 0 after normalising, minus the penalty for no EOS
    assert batch["stats"]["reward_normalised"] == pytest.approx(-0.5)
    responses = batch["query_responses"][:, batch["context_length"]:]
    for row in range(0, 8, 2):  # the reward saw the text before the EOS; the tokens after it are padding
        assert seen[0][row] == tok.decode(responses[row, :3], skip_special_tokens=True).strip()
        assert (responses[row, 4:] == tok.pad_token_id).all()
    # the normalisation stays the first batch's (mean 0, std 1): 1 - 0.5 on the second batch
    assert trainer.rollout()["stats"]["reward_normalised"] == pytest.approx(0.5)


def _without_seconds(history):
    return [{k: v for k, v in entry.items() if k != "seconds"} for entry in history]


def test_trainer_is_deterministic_given_the_seed():
    first = _without_seconds(make_trainer(seed=0).train(2))
    again = make_trainer(seed=0)
    torch.manual_seed(1234)  # the global RNG plays no part: the trainer seeds from its config
    assert _without_seconds(again.train(2)) == first
    assert _without_seconds(make_trainer(seed=1).train(2)) != first


def test_micro_batches_give_the_same_iteration_up_to_rounding():
    """`micro_batch_size` only splits the passes: same rollouts, stats, losses and updated weights."""
    whole, split = make_trainer(), make_trainer(micro_batch_size=3)  # 8 rollouts, minibatches of 4
    assert split._micro_batches(4) == [slice(0, 3), slice(3, 6)] and len(whole._micro_batches(8)) == 1
    first, second = whole.train(1)[0], split.train(1)[0]
    for key in set(LOG_KEYS) - {"iteration", "seconds"}:
        assert second[key] == pytest.approx(first[key], rel=1e-4, abs=1e-6), key
    # one minibatch, no clipping: the gradients left after the step are the whole batch's
    one = dict(num_ppo_epochs=1, num_mini_batches=1, max_grad_norm=1e9)
    whole, split = make_trainer(**one), make_trainer(micro_batch_size=3, **one)
    whole.train(1), split.train(1)
    for ours, theirs in ((whole.policy, split.policy), (whole.value_model, split.value_model)):
        grads = [(p.grad, q.grad) for p, q in zip(ours.parameters(), theirs.parameters())
                 if p.grad is not None]
        assert grads and all(torch.allclose(g, h, rtol=1e-4, atol=1e-7) for g, h in grads)
    with pytest.raises(ValueError, match="micro_batch_size"):
        PPOConfig(micro_batch_size=0)


def test_trainer_validates_its_inputs():
    trainer = make_trainer()
    with pytest.raises(ValueError, match="separate"):
        PPOTrainer(trainer.config, trainer.policy, trainer.policy, trainer.value_model, trainer.tokenizer,
                   short_reply_reward, PROMPTS)
    with pytest.raises(ValueError, match="fewer than"):
        PPOTrainer(trainer.config, trainer.policy, trainer.ref_policy, trainer.value_model, trainer.tokenizer,
                   short_reply_reward, PROMPTS[:4])
    bad = make_trainer(reward_fn=lambda prompts, replies: [0.0])
    with pytest.raises(ValueError, match="finite scores"):
        bad.step()


def test_a_strong_reward_moves_the_policy():
    # reward = -length (in tens of characters), no KL penalty, a high lr: shorter replies within 5 iterations
    trainer = make_trainer(lambda prompts, replies: [-len(r) / 10 for r in replies],
                           rollouts_per_iteration=16, learning_rate=1e-3, kl_coef=0.0)
    rewards = [entry["reward_raw"] for entry in trainer.train(5)]
    assert (rewards[-1] + rewards[-2]) / 2 > rewards[0] + 1.0, rewards


# --- the stage function ---------------------------------------------------------------------------

def test_stage_train_wires_sft_reward_model_budget_and_prompts(tmp_path, monkeypatch):
    """`ppo.train` with a stand-in for the reward stage (its module is another chapter's)."""
    from transformers import LlamaForSequenceClassification

    torch.manual_seed(0)
    reward_model = LlamaForSequenceClassification.from_pretrained(str(TINY_BASE_DIR), num_labels=1)
    reward0, calls = _state(reward_model), []

    def load_reward_model(source, profile):
        assert str(source) == "reward-folder"
        return reward_model, models.load_tokenizer(TINY_BASE_DIR, profile)

    def score(model, tokenizer, prompts, replies):
        calls.append((model, prompts, replies))
        return [-len(r) / 10 for r in replies]

    monkeypatch.setattr(models, "load_reward_model", load_reward_model, raising=False)
    monkeypatch.setattr(bradley_terry, "score", score)
    budget = dict(iterations=2, rollouts_per_iteration=8, max_new_tokens=8)
    profile = dataclasses.replace(profiles.CPU, budgets={**profiles.CPU.budgets, "ppo": budget}, seed=3)
    policy, tokenizer = ppo.train(profile, tmp_path / "run", TINY_BASE_DIR, "reward-folder")
    log = json.loads((tmp_path / "run" / "log_history.json").read_text())
    assert len(log["history"]) == 2 and log["config"]["seed"] == 3 and log["config"]["max_new_tokens"] == 8
    assert len(calls) == 2 and all(model is reward_model for model, _, _ in calls)
    assert all(isinstance(p, list) and p[-1]["role"] == "user" for p in calls[0][1])  # chat prompts
    assert all(isinstance(r, str) for r in calls[0][2]) and len(calls[0][2]) == 8
    assert all(torch.equal(reward0[k], v) for k, v in reward_model.state_dict().items())  # RM not trained
    base, _ = models.load_model(TINY_BASE_DIR, profiles.CPU)
    assert any(not torch.equal(p, q) for p, q in zip(policy.parameters(), base.parameters()))
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_stage_budget_must_name_config_fields():
    profile = dataclasses.replace(profiles.CPU, budgets={"ppo": dict(iterations=1, learning_rte=1e-5)})
    with pytest.raises(ValueError, match="learning_rte"):
        ppo.ppo_config(profile)
    budgets = {"ppo": dict(iterations=2, learning_rate=3e-5)}
    profile = dataclasses.replace(profiles.CPU, budgets=budgets, seed=2)
    assert ppo.ppo_config(profile) == PPOConfig(learning_rate=3e-5, seed=2)


# --- the exercise checkers, both ways -------------------------------------------------------------

def test_check_kl_both_ways():
    assert ch05_ppo.check_kl(lambda logp, ref_logp: logp - ref_logp)
    assert ch05_ppo.check_kl(lambda logp, ref_logp: kl_penalty(logp, ref_logp, "k3"), kind="k3")
    assert not ch05_ppo.check_kl(lambda logp, ref_logp: torch.zeros_like(logp))
    assert not ch05_ppo.check_kl(lambda logp, ref_logp: ref_logp - logp)
    assert not ch05_ppo.check_kl(lambda logp, ref_logp: (logp - ref_logp).sum(-1))
    assert not ch05_ppo.check_kl(lambda logp, ref_logp: logp - ref_logp, kind="k3")


def learner_gae(rewards, values, gamma, lam, mask=None):
    """How a learner might write it: a plain loop, masking rewards and values first."""
    if mask is not None:
        rewards, values = rewards * mask, values * mask
    advantages, last = torch.zeros_like(rewards), 0.0
    for step in reversed(range(rewards.shape[1])):
        next_value = values[:, step + 1] if step + 1 < rewards.shape[1] else 0.0
        last = rewards[:, step] + gamma * next_value - values[:, step] + gamma * lam * last
        advantages[:, step] = last
    return advantages, advantages + values


def test_check_gae_both_ways():
    assert ch05_ppo.check_gae(gae)
    assert ch05_ppo.check_gae(learner_gae)
    assert not ch05_ppo.check_gae(lambda r, v, g, l, mask=None: (torch.zeros_like(r), torch.zeros_like(r)))
    assert not ch05_ppo.check_gae(lambda r, v, g, l, mask=None: gae(r, v, g, l))  # ignores the mask
    assert not ch05_ppo.check_gae(lambda r, v, g, l, mask=None: learner_gae(r, v, g, g, mask))  # lam = gamma
    assert not ch05_ppo.check_gae(lambda r, v, g, l, mask=None: (learner_gae(r, v, g, l, mask)[0], r))
    assert not ch05_ppo.check_gae(lambda r, v, g, l: gae(r, v, g, l))  # takes no mask: reported, not raised


def learner_clipped_loss(logp_new, logp_old, advantages, eps):
    ratio = torch.exp(logp_new - logp_old)
    return torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - eps, 1 + eps)).mean()


def test_check_clipped_loss_both_ways():
    assert ch05_ppo.check_clipped_loss(lambda *args: clipped_policy_loss(*args))
    assert ch05_ppo.check_clipped_loss(learner_clipped_loss)
    assert not ch05_ppo.check_clipped_loss(lambda *args: torch.tensor(-0.6))
    assert not ch05_ppo.check_clipped_loss(  # min instead of max
        lambda new, old, a, eps: torch.min(-a * (new - old).exp(),
                                           -a * (new - old).exp().clamp(1 - eps, 1 + eps)).mean())
    assert not ch05_ppo.check_clipped_loss(  # the clipped term alone
        lambda new, old, a, eps: (-a * (new - old).exp().clamp(1 - eps, 1 + eps)).mean())
    assert not ch05_ppo.check_clipped_loss(  # right value, REINFORCE-like gradient
        lambda new, old, a, eps: learner_clipped_loss(new.detach(), old, a, eps)
        + (-a * (new - new.detach())).mean())
    assert not ch05_ppo.check_clipped_loss(  # no gradient at all
        lambda new, old, a, eps: learner_clipped_loss(new, old, a, eps).detach())


def learner_token_rewards(scores, logp, ref_logp, mask, kl_coef):
    rewards = -kl_coef * (logp - ref_logp) * mask
    last = mask.sum(1).long() - 1
    rewards[torch.arange(len(last)), last] += scores
    return rewards


def test_check_token_rewards_both_ways():
    assert ch05_ppo.check_token_rewards(lambda s, lp, rl, m, b: ppo.token_rewards(s, lp, rl, m, b))
    assert ch05_ppo.check_token_rewards(learner_token_rewards)
    assert not ch05_ppo.check_token_rewards(lambda s, lp, rl, m, b: torch.zeros_like(lp))
    assert not ch05_ppo.check_token_rewards(  # the score on the last column, not the last real token
        lambda s, lp, rl, m, b: torch.cat([(-b * (lp - rl) * m)[:, :-1],
                                           (-b * (lp - rl) * m)[:, -1:] + s[:, None]], 1))
    assert not ch05_ppo.check_token_rewards(  # the score at the right place, the padding's KL kept
        lambda s, lp, rl, m, b: learner_token_rewards(s, lp, rl, m, b) - b * (lp - rl) * (1 - m))
    assert not ch05_ppo.check_token_rewards(  # the KL's sign flipped
        lambda s, lp, rl, m, b: learner_token_rewards(s, rl, lp, m, b))


def test_metrics_fn_is_logged_per_iteration_and_cannot_shadow_the_trainer_keys():
    seen = []

    def metrics(prompts, replies, ended):
        seen.append((len(prompts), len(replies), len(ended)))
        return {"short": sum(len(r.split()) < 5 for r in replies) / len(replies)}

    history = make_trainer(metrics_fn=metrics).train(1)
    assert seen == [(8, 8, 8)] and 0 <= history[0]["short"] <= 1
    with pytest.raises(ValueError, match="kl"):
        make_trainer(metrics_fn=lambda p, r, e: {"kl": 0.0}).train(1)


def test_sample_responses_is_seeded_and_cut_at_the_first_eos(tiny):
    policy, tok = tiny
    prompts = PROMPTS[:6]
    first = sample_responses(policy, tok, prompts, max_new_tokens=12, seed=3)
    again = sample_responses(policy, tok, prompts, max_new_tokens=12, seed=3)
    other = sample_responses(policy, tok, prompts, max_new_tokens=12, seed=4)
    assert torch.equal(first["query_responses"], again["query_responses"])
    assert not torch.equal(first["query_responses"], other["query_responses"])
    responses, mask = first["responses"], first["mask"]
    assert len(first["replies"]) == 6 and first["context_length"] + responses.shape[1] == \
        first["query_responses"].shape[1]
    for row, ended in zip(range(6), first["ended"]):
        eos = (responses[row] == tok.eos_token_id).nonzero()
        assert bool(ended) == (len(eos) > 0)
        if ended:  # the mask stops at the first EOS, and only padding follows it
            assert int(mask[row].sum()) == int(eos[0]) + 1
            assert (responses[row, int(eos[0]) + 1:] == tok.pad_token_id).all()


def test_drift_report_kl_is_zero_against_itself_and_positive_after_a_change(tiny):
    from transformers import LlamaForSequenceClassification

    from posttrain_utils.reward import overoptimization as oo

    policy, tok = tiny
    torch.manual_seed(0)
    rm = LlamaForSequenceClassification.from_pretrained(str(TINY_BASE_DIR), num_labels=1).eval()
    records = load_records("eval_test")[:12]
    same = oo.drift_report(policy, policy, tok, records, rm, tok, profiles.CPU, max_new_tokens=8, batch_size=5)
    assert same["kl"] == pytest.approx(0.0, abs=1e-5)
    assert {"proxy", "gold", "kl", "rude", "facts_em", "format"} <= set(same)
    changed = copy.deepcopy(policy)
    with torch.no_grad():
        changed.lm_head.weight.mul_(1.5)  # a sharper distribution: a real KL from the original
    moved = oo.drift_report(changed, policy, tok, records, rm, tok, profiles.CPU, max_new_tokens=8,
                            batch_size=5)
    assert moved["kl"] > 0.01
    again = oo.drift_report(policy, policy, tok, records, rm, tok, profiles.CPU, max_new_tokens=8, batch_size=5)
    assert again == pytest.approx(same, nan_ok=True)  # seeded: a rerun gives the same figures


def test_hack_stage_lays_its_budget_over_ppo_with_no_kl(monkeypatch):
    from posttrain_utils.ppo import stages as ppo_hack
    from posttrain_utils.runtime import checkpoints

    hacked = ppo_hack.hack_profile(profiles.CPU)
    budget = hacked.budget("ppo")
    assert budget["kl_coef"] == 0.0 and profiles.CPU.budget("ppo")["kl_coef"] > 0  # original untouched
    for key, value in profiles.CPU.budget("ppo_hack").items():
        assert budget[key] == value
    assert budget["max_new_tokens"] == profiles.CPU.budget("ppo")["max_new_tokens"]  # from ppo
    assert ppo.ppo_config(hacked).kl_coef == 0.0
    seen = {}
    monkeypatch.setattr(ppo_hack, "train", lambda profile, *args: seen.update(profile=profile, args=args) or "ok")
    assert ppo_hack.train_hack(profiles.CPU, "out", "sft", "rm") == "ok"
    assert seen["args"] == ("out", "sft", "rm") and seen["profile"].budget("ppo") == budget
    # the stage's fingerprint follows both budgets it reads
    base = checkpoints.fingerprint("ppo-hack", profiles.CPU)
    for name in ("ppo", "ppo_hack"):
        changed = {**profiles.CPU.budgets, name: {**profiles.CPU.budget(name), "learning_rate": 1.23e-4}}
        assert checkpoints.fingerprint("ppo-hack", dataclasses.replace(profiles.CPU, budgets=changed)) != base
