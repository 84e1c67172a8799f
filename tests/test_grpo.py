"""Chapter 8's GRPO: the verifiers on adversarial replies, the advantage and the loss by hand and
against TRL 1.16's `GRPOTrainer._compute_loss`, the task's prompt sets and the `GRPOConfig` recipe.

The TRL cross-check runs the trainer's own `_compute_loss` on a stand-in trainer (no model: its
per-token log-probs are given), with one process, no gradient accumulation and β = 0, so only the
clipped surrogate and the loss type's aggregation are compared.
"""

import dataclasses
import math
import re
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from posttrain_utils import grpo
from posttrain_utils.data import load_records
from posttrain_utils.grpo import tasks as grpo_tasks
from posttrain_utils.runtime.profiles import CPU
from posttrain_utils.tinyworld import world

Q = "What is 3 plus 4?"


def strict(reply, answer="7", question=Q):
    return grpo.strict_reward([question], [reply], [answer])[0]


def lenient(reply, answer="7", question=Q):
    return grpo.lenient_reward([question], [reply], [answer])[0]


# --- the verifiers --------------------------------------------------------------------------------

@pytest.mark.parametrize("reply", ["7", "The answer is 7.", "3 plus 4 is 7.", "4 + 3 = 7", "It is seven.",
                                   "7. Yes, 7!"])
def test_strict_reward_accepts_one_committed_answer(reply):
    assert strict(reply) == 1.0


@pytest.mark.parametrize("reply", ["7 8 9", "It is 7, or maybe 8.", "", "8", "It is not 7.", "3 and 4.",
                                   "It is 7. Actually no, 8.", "77", "17", "seventeen",
                                   "2 plus 5 is 7.", " ".join(map(str, range(19)))])
def test_strict_reward_rejects_adversarial_replies(reply):
    assert strict(reply) == 0.0


@pytest.mark.parametrize("reply", ["abc7def", "7th"])
def test_strict_reward_rejects_a_number_inside_a_word(reply):
    assert strict(reply) == 0.0


def test_rewards_take_chat_messages_and_string_prompts():
    prompts = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": Q}], Q]
    completions = [[{"role": "assistant", "content": "3 plus 4 is 7."}], [{"role": "assistant",
                                                                            "content": "7 8 9"}]]
    assert grpo.strict_reward(prompts, completions, ["7", "7"], trainer_state=None) == [1.0, 0.0]
    assert grpo.lenient_reward(prompts, completions, ["7", "7"], completion_ids=[[1], [2]]) == [1.0, 1.0]
    assert grpo.reply_text("7") == "7" and grpo.question_text(prompts[0]) == Q
    with pytest.raises(TypeError):
        grpo.reply_text(7)
    with pytest.raises(ValueError, match="no user turn"):
        grpo.question_text([{"role": "system", "content": "hi"}])


def test_the_echo_depends_on_the_question():
    assert strict("0 plus 7 is 7.", question="What is 0 plus 7?") == 1.0
    assert strict("3 plus 4 is 7.", question="What is 2 plus 5?") == 0.0  # other numbers: candidates


@pytest.mark.parametrize("reward", [grpo.strict_reward, grpo.lenient_reward])
def test_rewards_reject_mismatched_lengths(reward):
    with pytest.raises(ValueError, match="expected one of each"):
        reward([Q, Q], ["7"], ["7", "7"])
    with pytest.raises(ValueError):
        reward([Q], ["7"], [])


def test_lenient_reward_is_hackable():
    assert lenient("7 8 9") == 1.0 and lenient("It is 7, or maybe 8.") == 1.0  # the flaw
    assert lenient(" ".join(map(str, range(19)))) == 1.0 and lenient("It is not 7.") == 1.0
    assert lenient("") == 0.0 and lenient("8") == 0.0 and lenient("77") == 0.0


def test_lenient_reward_rejects_a_number_inside_a_word():
    assert lenient("abc7def") == 0.0


# --- advantages -----------------------------------------------------------------------------------

def test_group_advantages_by_hand():
    rewards = [1.0, 0.0, 0.0, 1.0, 2.0, 0.0, 1.0, 1.0]
    std1, std2 = math.sqrt(1 / 3), math.sqrt(2 / 3)  # unbiased: sum of squares / (4 - 1)
    expected = [0.5 / (std1 + 1e-4) * s for s in (1, -1, -1, 1)] + [x / (std2 + 1e-4) for x in (1, -1, 0, 0)]
    assert grpo.group_advantages(rewards, 4).tolist() == pytest.approx(expected, rel=1e-6)
    assert grpo.group_advantages(rewards, 4, scale=False).tolist() == pytest.approx(
        [0.5, -0.5, -0.5, 0.5, 1.0, -1.0, 0.0, 0.0])
    assert grpo.group_advantages(torch.tensor([[3.0, 1.0]]), 2).tolist() == pytest.approx(
        [1 / (math.sqrt(2) + 1e-4), -1 / (math.sqrt(2) + 1e-4)])


def test_group_advantages_match_trls_formula():
    from trl.trainer.utils import nanstd

    rewards = torch.randn(24, generator=torch.Generator().manual_seed(0))
    grouped = rewards.view(-1, 8)
    mean = grouped.mean(1).repeat_interleave(8)
    std = nanstd(grouped, dim=1).repeat_interleave(8)
    assert torch.allclose(grpo.group_advantages(rewards, 8), (rewards - mean) / (std + 1e-4), atol=1e-6)


@pytest.mark.parametrize("scale", [True, False])
def test_zero_spread_groups_give_zero_advantages(scale):
    advantages = grpo.group_advantages([1.0] * 4 + [0.0] * 4 + [0.3] * 4, 4, scale=scale)
    assert advantages.tolist() == [0.0] * 12


@pytest.mark.parametrize("rewards, group_size", [([1.0, 0.0], 1), ([1.0, 0.0], 0), ([1.0, 0.0, 1.0], 2),
                                                 ([], 2), ([1.0] * 4, 2.0)])
def test_group_advantages_errors(rewards, group_size):
    with pytest.raises(ValueError):
        grpo.group_advantages(rewards, group_size)
    with pytest.raises(ValueError):
        grpo.zero_spread_fraction(rewards, group_size)


def test_zero_spread_fraction_by_hand():
    rewards = [1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0.5, 0.5, 0.5, 0.25]
    assert grpo.zero_spread_fraction(rewards, 4) == 0.5
    # pairs: (1,1) (1,1) (0,1) (0,0) (0,0) (0,0) (.5,.5) (.5,.25)
    assert grpo.zero_spread_fraction(rewards, 2) == 6 / 8


# --- token weights and the loss -------------------------------------------------------------------

def test_token_weights_by_hand():
    assert grpo.token_weights([2, 4], "grpo") == pytest.approx([1 / 4, 1 / 8])
    assert grpo.token_weights([2, 4], "dr_grpo", max_completion_length=5) == pytest.approx([1 / 10, 1 / 10])
    assert grpo.token_weights([2, 4], "dapo") == pytest.approx([1 / 6, 1 / 6])
    assert grpo.token_weights([3], "dr_grpo", max_completion_length=3) == [1 / 3]


@pytest.mark.parametrize("lengths, loss_type, length", [([], "dapo", None), ([2, 0], "grpo", None),
                                                        ([2, 4], "dr_grpo", None), ([2, 4], "dr_grpo", 3),
                                                        ([2, 4], "bnpo", None)])
def test_token_weights_errors(lengths, loss_type, length):
    with pytest.raises(ValueError):
        grpo.token_weights(lengths, loss_type, max_completion_length=length)


def batch(seed=0, n=6, width=7):
    """Random right-padded log-probs (junk on the padding), one completion full width, one 1 token."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (n, 1), generator=generator)
    lengths[0], lengths[1] = width, 1
    mask = (torch.arange(width) < lengths).float()
    old = -3 * torch.rand(n, width, generator=generator)
    logps = old + 0.5 * torch.randn(n, width, generator=generator)
    return logps, old, torch.randn(n, generator=generator), mask


@pytest.mark.parametrize("loss_type, length", [("grpo", None), ("dr_grpo", 7), ("dr_grpo", 10),
                                               ("dapo", None)])
def test_loss_at_ratio_one_is_the_weighted_advantage(loss_type, length):
    _, old, advantages, mask = batch()
    logps = old.clone().requires_grad_()
    lengths = mask.sum(1).long().tolist()
    weights = torch.tensor(grpo.token_weights(lengths, loss_type, max_completion_length=length))
    loss = grpo.grpo_loss(logps, old, advantages, mask, loss_type, max_completion_length=length)
    assert loss.item() == pytest.approx(-(advantages * weights * mask.sum(1)).sum().item(), abs=1e-6)
    loss.backward()  # each real token's gradient: -advantage * weight; padding: 0
    assert torch.allclose(logps.grad, -(advantages * weights)[:, None] * mask, atol=1e-7)


def test_dr_grpo_defaults_to_the_padded_width():
    logps, old, advantages, mask = batch(1)
    assert grpo.grpo_loss(logps, old, advantages, mask, "dr_grpo") == grpo.grpo_loss(
        logps, old, advantages, mask, "dr_grpo", max_completion_length=7)


@pytest.mark.parametrize("ratio, advantage, clipped", [(1.5, 1.0, True), (1.5, -1.0, False),
                                                       (0.5, -1.0, True), (0.5, 1.0, False),
                                                       (1.1, 1.0, False), (0.9, -1.0, False)])
def test_clipping_zeroes_the_gradient_only_where_the_clip_binds(ratio, advantage, clipped):
    old = torch.tensor([[-1.0, -2.0]])
    logps = (old + torch.tensor([[math.log(ratio), 0.0]])).requires_grad_()
    loss = grpo.grpo_loss(logps, old, torch.tensor([advantage]), torch.ones(1, 2), "dapo", epsilon=0.2)
    loss.backward()
    assert (logps.grad[0, 0].item() == 0.0) == clipped
    assert logps.grad[0, 1].item() == pytest.approx(-advantage / 2)  # ratio 1: never clipped
    bound = min(ratio, 1.2) if advantage > 0 else max(ratio, 0.8)
    assert loss.item() == pytest.approx(-(bound + 1.0) * advantage / 2, rel=1e-6)


def test_padding_changes_nothing():
    logps, old, advantages, mask = batch(2)
    junk = 5 * torch.rand(logps.shape) * (1 - mask)
    for loss_type in grpo.LOSS_TYPES:
        assert torch.isclose(grpo.grpo_loss(logps + junk, old - junk, advantages, mask, loss_type),
                             grpo.grpo_loss(logps, old, advantages, mask, loss_type))


def test_loss_rejects_mismatched_shapes():
    logps, old, advantages, mask = batch()
    with pytest.raises(ValueError, match="shapes differ"):
        grpo.grpo_loss(logps, old[:, :-1], advantages, mask)
    with pytest.raises(ValueError, match="shapes differ"):
        grpo.grpo_loss(logps, old, advantages[:-1], mask)
    with pytest.raises(ValueError, match="shapes differ"):
        grpo.grpo_loss(logps, old, advantages, mask[:-1])
    with pytest.raises(ValueError, match="unknown loss_type"):
        grpo.grpo_loss(logps, old, advantages, mask, "bnpo")


class _Accelerator:
    num_processes, sync_gradients = 1, True

    def gather(self, x):
        return x

    gather_for_metrics = gather

    def reduce(self, x, reduction="sum"):
        return x


def trl_loss(logps, old, advantages, mask, loss_type, epsilon=0.2, max_completion_length=None):
    """`GRPOTrainer._compute_loss` of TRL 1.16 on a stand-in trainer whose policy returns `logps`."""
    from trl.trainer.grpo_trainer import GRPOTrainer

    n, width = logps.shape
    trainer = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *args, **kwargs: (logps, torch.zeros_like(logps), None),
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, importance_sampling_level="token",
        beta=0.0, loss_type=loss_type, epsilon_low=epsilon, epsilon_high=epsilon,
        args=SimpleNamespace(delta=None, use_bias_correction_kl=False, steps_per_generation=1),
        use_vllm=False, vllm_importance_sampling_correction=False, model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1, accelerator=_Accelerator(),
        max_completion_length=max_completion_length or width, aux_loss_enabled=False,
        _entropy_bonus_enabled=False, _metrics={"train": defaultdict(list)})
    ids = torch.zeros(n, 1, dtype=torch.long)
    inputs = dict(prompt_ids=ids, prompt_mask=torch.ones_like(ids),
                  completion_ids=torch.zeros_like(mask.long()), completion_mask=mask.long(),
                  advantages=advantages, old_per_token_logps=old, num_items_in_batch=mask.sum())
    return GRPOTrainer._compute_loss(trainer, None, inputs)


@pytest.mark.parametrize("loss_type, epsilon, length", [("grpo", 0.2, None), ("dr_grpo", 0.2, None),
                                                        ("dr_grpo", 0.1, 12), ("dapo", 0.2, None),
                                                        ("dapo", 0.3, None), ("grpo", 0.1, None)])
def test_loss_agrees_with_trl(loss_type, epsilon, length):
    logps, old, advantages, mask = batch(3, n=8, width=9)
    ours_in, trl_in = logps.clone().requires_grad_(), logps.clone().requires_grad_()
    ours = grpo.grpo_loss(ours_in, old, advantages, mask, loss_type, epsilon, max_completion_length=length)
    theirs = trl_loss(trl_in, old, advantages, mask, loss_type, epsilon, max_completion_length=length)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    ours.backward()
    theirs.backward()
    assert torch.allclose(ours_in.grad, trl_in.grad, atol=1e-7)


# --- the task --------------------------------------------------------------------------------------

def numbers(record):
    return tuple(int(t) for t in re.findall(r"\d+", record["prompt"][-1]["content"]))


def test_train_prompts():
    records, held = grpo_tasks.train_prompts(), world.heldout_sums()
    assert len(records) == 70 * 7 == 490 and len(grpo_tasks.TRAIN_TEMPLATES) == 7
    assert {numbers(r) for r in records}.isdisjoint(held)
    assert len({numbers(r) for r in records}) == 70
    assert all(r["answer"] == str(sum(numbers(r))) and r["wording"] == "trained" for r in records)
    assert all(len(r["prompt"]) == 1 and r["prompt"][0]["role"] == "user" for r in records)
    assert grpo_tasks.train_prompts(0) == records and grpo_tasks.train_prompts(1) != records
    assert sorted(map(str, grpo_tasks.train_prompts(1))) == sorted(map(str, records))  # only shuffled


def test_heldout_prompts():
    records, held = grpo_tasks.heldout_prompts(), world.heldout_sums()
    dev = grpo_tasks.heldout_prompts("dev")
    assert len(records) == 16 * 8 and len(dev) == 14 * 8
    test_sums, dev_sums = {numbers(r) for r in records}, {numbers(r) for r in dev}
    assert test_sums | dev_sums == held and not test_sums & dev_sums
    # the same sums as the test half of the shipped eval files
    shipped = {tuple(int(x) for x in re.findall(r"\d", r["prompt"][0]["content"]))
               for r in load_records("eval_test") if r["task"] == "sum"}
    assert shipped == test_sums
    assert sum(r["wording"] == "held-out" for r in records) == 16
    # a + b and b + a on one side only
    assert not {tuple(sorted(s)) for s in test_sums} & {tuple(sorted(s)) for s in dev_sums}
    assert all(r["answer"] == str(sum(numbers(r))) for r in records)
    questions = {r["prompt"][-1]["content"] for r in records}
    assert len(questions) == 128
    assert questions.isdisjoint(r["prompt"][-1]["content"] for r in grpo_tasks.train_prompts())
    with pytest.raises(ValueError, match="dev"):
        grpo_tasks.heldout_prompts("heldout")


def test_new_templates_are_no_held_out_wording():
    reserved = [*world.UNSEEN_SUM_QUESTIONS, world.HELDOUT_SUM_QUESTION,
                *(t for templates in world.UNSEEN_QUESTION_TEMPLATES.values() for t in templates)]
    for new in grpo_tasks.NEW_TEMPLATES:
        for old in reserved:
            assert old != new and old not in new, (new, old)
    assert world.HELDOUT_SUM_QUESTION not in grpo_tasks.TRAIN_TEMPLATES
    assert grpo_tasks.HELDOUT_TEMPLATE == world.HELDOUT_SUM_QUESTION


def test_reward_log_records_a_batch():
    messages = lambda role, text: [{"role": role, "content": text}]  # noqa: E731
    groups = [("What is 3 plus 4?", "7", ["7", "3 plus 4 is 7.", "7 8 9", "8"]),
              ("What is 2 plus 2?", "4", ["1 2 3 4", "4 4", "It is 4, or 5.", "4"])]
    prompts = [messages("user", q) for q, _, replies in groups for _ in replies]
    completions = [messages("assistant", r) for _, _, replies in groups for r in replies]
    answers = [a for _, a, replies in groups for _ in replies]
    lengths = [1, 5, 3, 1, 4, 2, 5, 1]
    log = grpo_tasks.RewardLog(grpo.lenient_reward, group_size=4)
    assert log.__name__ == "lenient_reward"
    ids = [[0] * n for n in lengths]
    rewards = log(prompts, completions, answers, completion_ids=ids, trainer_state=None)
    assert rewards == grpo.lenient_reward(prompts, completions, answers) == [1, 1, 1, 0, 1, 1, 1, 1]
    (row,) = log.rows
    assert row["reward"] == 7 / 8 and row["strict_accuracy"] == 0.5  # strict: 1 1 0 0 | 0 1 0 1
    assert row["zero_spread"] == 0.5  # of the rewards optimised: the second group is all 1
    assert row["length"] == sum(lengths) / 8
    assert row["length_correct"] == (1 + 5 + 2 + 1) / 4 and row["length_incorrect"] == (3 + 1 + 4 + 5) / 4
    assert row["question"] == "What is 3 plus 4?"
    log(prompts[:4], completions[:4], answers[:4])  # no completion_ids: lengths in words
    assert len(log.rows) == 2 and log.rows[1]["length_correct"] == (1 + 5) / 2


def test_reward_log_counts_numbers_next_to_punctuation():
    log = grpo_tasks.RewardLog(grpo.lenient_reward, group_size=4)
    log([Q] * 4, ["It is 7, or maybe 8.", "7, 8, 9.", "3 plus 4 is 7.", "7 8 9"], ["7"] * 4)
    assert log.rows[0]["numbers_per_reply"] == (2 + 3 + 3 + 3) / 4


# --- the config -----------------------------------------------------------------------------------

PROFILE = CPU if "grpo" in CPU.budgets else dataclasses.replace(CPU, budgets={**CPU.budgets, "grpo": dict(
    max_steps=2, prompts_per_step=2, num_generations=4, learning_rate=1e-4, max_completion_length=16)})


@pytest.mark.parametrize("loss_type, scale", [("dr_grpo", "none"), ("grpo", "group"), ("dapo", "group")])
def test_grpo_config_follows_the_profile(tmp_path, loss_type, scale):
    budget = PROFILE.budget("grpo")
    cfg = grpo.grpo_config(PROFILE, tmp_path / "run", loss_type=loss_type)
    assert cfg.loss_type == loss_type and cfg.scale_rewards == scale
    assert cfg.num_generations == budget["num_generations"]
    assert cfg.per_device_train_batch_size == budget["prompts_per_step"] * budget["num_generations"]
    assert (cfg.max_steps, cfg.learning_rate) == (budget["max_steps"], budget["learning_rate"])
    assert cfg.max_completion_length == budget["max_completion_length"]
    assert cfg.beta == 0.0 and cfg.temperature == 1.0 and cfg.logging_steps == 1
    assert cfg.output_dir == str(tmp_path / "run") and cfg.seed == PROFILE.seed and cfg.use_cpu
    assert PROFILE.budget("grpo") == budget  # the profile's budget is not consumed


def test_grpo_config_overrides_and_errors(tmp_path):
    assert grpo.grpo_config(PROFILE, tmp_path, beta=0.04, max_steps=1).beta == 0.04
    with pytest.raises(ValueError, match="unknown loss_type"):
        grpo.grpo_config(PROFILE, tmp_path, loss_type="bnpo")
    with pytest.raises(KeyError):
        grpo.grpo_config(dataclasses.replace(PROFILE, budgets={}), tmp_path)
