"""The ``gpu`` profile's code path, run here on the CPU with a tiny stand-in for SmolLM2-135M.

The ``gpu`` profile loads ``HuggingFaceTB/SmolLM2-135M`` from the Hub, which no test may download.
What makes it differ from the ``cpu`` profile's tiny base model is its *shape*: grouped-query
attention (9 query heads share 3 key/value heads), tied embeddings, and a ChatML tokenizer
(``<|im_start|>`` / ``<|im_end|>``) whose saved EOS is ``<|endoftext|>`` and whose chat template has
no generation markers, so that `models.load_tokenizer` has to give it the course's conventions.
The fixture below builds a random model and tokenizer of that shape in a few hundred
milliseconds (``smol_like.py``), and a profile that is `profiles.GPU` with the model, the device
and the budgets swapped (2-3 steps per stage; no ``world_base`` budget, so the base model is the
stand-in itself: ``test_world_base.py`` covers that stage). Every chapter's code path then runs
through it: loading, generation and scoring (chapter 0), the chat template's loss mask
(chapter 1), the SFT stage and chapter 2's collator batch, LoRA from scratch and with peft
(chapter 3), the reward model (chapter 4), PPO (chapter 5), every preference method of chapter 6,
CAI (chapter 7), GRPO (chapter 8), and chapter 9's stages (filtered SFT, LoRA, QLoRA on a 4-bit
base, the contaminated SFT model, the DPO family), judges, perplexity and report-card row.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from posttrain_utils import cai, evaluation, grpo, lora, ppo, reward, sft
from posttrain_utils.cai import pipeline as cai_pipeline
from posttrain_utils.evaluation import contamination, judges, perplexity, report_card, winrate
from posttrain_utils.evaluation.report_card import rows as rc_rows, scoring as rc_scoring
from posttrain_utils.dpo import family as dpo_family, stages as dpo_stages
from posttrain_utils.grpo import stages as grpo_stages, tasks as grpo_tasks
from posttrain_utils.runtime import models
from posttrain_utils.lora import adapters
from posttrain_utils.sft import filtered as sft_variants
from posttrain_utils.data import load_dataset, load_records
from posttrain_utils.exercises import ch00_intro, ch01_formats, ch02_sft, ch03_peft
from posttrain_utils.runtime import checkpoints, profiles
from posttrain_utils.tinyworld import world
from smol_like import ENDOFTEXT, IM_END, IM_START, build_smol_like, smol_profile
from test_exercises_intro import reference_greedy

TINY_BUDGETS = {
    "sft": dict(max_steps=3, per_device_train_batch_size=4, learning_rate=1e-3),
    "peft": dict(max_steps=2, per_device_train_batch_size=4, learning_rate=5e-3),
    "peft_sweep": dict(max_steps=2, per_device_train_batch_size=4, learning_rate=5e-3),
    "reward": dict(max_steps=2, per_device_train_batch_size=4, learning_rate=1e-3),
    "ppo": dict(iterations=1, rollouts_per_iteration=4, num_mini_batches=2, num_ppo_epochs=1,
                max_new_tokens=8, learning_rate=1e-5, value_learning_rate=1e-5, kl_coef=0.05,
                micro_batch_size=1),  # as profiles.GPU's ppo budget: passes smaller than a minibatch
    "dpo": dict(max_steps=2, per_device_train_batch_size=4, learning_rate=1e-4, beta=0.1),
    "orpo": dict(learning_rate=1e-3),
    "sl_cai": dict(max_steps=2, per_device_train_batch_size=4, learning_rate=1e-3),
    "rl_cai": dict(max_steps=2, per_device_train_batch_size=4, learning_rate=1e-4),
    "grpo": dict(max_steps=2, prompts_per_step=2, num_generations=4, learning_rate=1e-4,
                 max_completion_length=8),
    "contamination": dict(max_steps=2, per_device_train_batch_size=4, learning_rate=1e-3),
}


@pytest.fixture(scope="module")
def smol(tmp_path_factory):
    """`(folder, profile)`: the SmolLM2-shaped model on disk and the ``gpu`` profile pointed at it."""
    folder = build_smol_like(tmp_path_factory.mktemp("smol") / "base")
    profile = smol_profile(folder, TINY_BUDGETS)
    torch.set_num_threads(1)
    return folder, profile


@pytest.fixture(scope="module")
def base(smol):
    _, profile = smol
    return models.load_model(profile=profile, for_training=False)


@pytest.fixture(scope="module")
def heldout():
    """Six test records: two fact questions, two sums and two harmful requests."""
    records = load_records("eval_test")
    facts = [r for r in records if r["task"] not in ("sum", "harmful")][:2]
    return facts + [r for r in records if r["task"] == "sum"][:2] + [r for r in records if r["task"] == "harmful"][:2]


@pytest.fixture(scope="module")
def sft_stage(smol, tmp_path_factory):
    """The ``sft`` stage trained through `sft.train` on the stand-in, saved like a cached stage."""
    folder, profile = smol
    model, tokenizer = sft.train(profile, tmp_path_factory.mktemp("sft-run"), folder)
    out = tmp_path_factory.mktemp("sft")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out, model


@pytest.fixture(scope="module")
def reward_stage(smol, sft_stage, tmp_path_factory):
    _, profile = smol
    model, tokenizer = reward.train(profile, tmp_path_factory.mktemp("reward-run"), sft_stage[0])
    out = tmp_path_factory.mktemp("reward")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out, model, tokenizer


def _im_end_id(tokenizer):
    return tokenizer.convert_tokens_to_ids(IM_END)


def test_profile_is_the_gpu_one_with_a_cpu_device(smol):
    _, profile = smol
    assert profile.name == "gpu" and profile.device == "cpu"
    kwargs = profile.trainer_kwargs()
    assert kwargs["use_cpu"] and not kwargs["bf16"] and not kwargs["fp16"]


def test_cuda_bf16_is_native_only(monkeypatch):
    """On a T4 (bf16 only by emulation) the ``gpu`` profile trains in fp16, not in slow emulated bf16."""
    asked = []

    def t4_bf16(including_emulation=True):  # a T4: bf16 "supported" only when emulation counts
        asked.append(including_emulation)
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", t4_bf16)
    kwargs = profiles.GPU.trainer_kwargs()
    assert asked == [False] and not kwargs["bf16"] and kwargs["fp16"] and not kwargs["use_cpu"]


def test_load_gives_chatml_conventions(smol, base):
    """`load_model` turns SmolLM2's tokenizer into the course's: EOS = end of turn, pad apart from it."""
    model, tokenizer = base
    assert tokenizer.eos_token == IM_END and tokenizer.eos_token_id == _im_end_id(tokenizer)
    assert model.generation_config.eos_token_id == _im_end_id(tokenizer)
    assert tokenizer.pad_token_id not in (None, tokenizer.eos_token_id)
    assert "{% generation %}" in tokenizer.chat_template and tokenizer.padding_side == "left"
    assert model.config.num_key_value_heads < model.config.num_attention_heads  # really GQA
    assert model.model.embed_tokens.weight is model.lm_head.weight  # tied


def test_chapter1_loss_mask_trains_answers_and_im_end(base):
    """Chapter 1's Check on ChatML: the trained tokens are each answer plus `tokenizer.eos_token`."""
    _, tokenizer = base
    chat = [{"role": "system", "content": "You are a polite assistant."},
            {"role": "user", "content": "What is the capital of Beife?"},
            {"role": "assistant", "content": "The capital of Beife is Neidreir."},
            {"role": "user", "content": "And what is 3 plus 4?"},
            {"role": "assistant", "content": "3 plus 4 is 7."}]
    enc = tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    answers = [m["content"] + tokenizer.eos_token for m in chat if m["role"] == "assistant"]
    expected = sum(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers)
    trained = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert len(trained) == expected and tokenizer.decode(trained) == "".join(answers)
    assert trained.count(_im_end_id(tokenizer)) == 2

    def labels_for(tok, messages):  # exercise 1.3's solution
        enc = tok.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        return [t if m else -100 for t, m in zip(enc["input_ids"], enc["assistant_masks"])]

    assert ch01_formats.check_labels(labels_for, tokenizer)


def test_parameter_count_with_grouped_query_attention(base):
    """Exercise 0.1 on a GQA model: the hand count with key/value heads is right, 4 * hidden^2 is not."""
    model, _ = base
    cfg = model.config
    h, q, kv = cfg.hidden_size, cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim
    per_layer = 2 * h * q + 2 * h * kv + 3 * h * cfg.intermediate_size + 2 * h
    by_hand = cfg.vocab_size * h + cfg.num_hidden_layers * per_layer + h
    old_formula = (cfg.vocab_size * h + cfg.num_hidden_layers * (4 * h * h + 3 * h * cfg.intermediate_size + 2 * h)
                   + h)
    assert models.count_parameters(model) == (by_hand, by_hand)
    assert ch00_intro.reference_parameter_count(cfg) == by_hand
    assert ch00_intro.reference_parameter_count(cfg, shared_kv=False) == old_formula != by_hand
    assert ch00_intro.check_parameter_count(by_hand, model)
    assert not ch00_intro.check_parameter_count(old_formula, model)


def test_exercise_0_1_hint_names_grouped_query_attention(base, capsys):
    model, _ = base
    ch00_intro.check_parameter_count(ch00_intro.reference_parameter_count(model.config, shared_kv=False), model)
    assert "grouped-query attention" in capsys.readouterr().out


class _ForceToken:
    """A forward hook on ``lm_head`` that makes `token_id` the argmax at the `at`-th decoding step."""

    def __init__(self, token_id: int, at: int):
        self.token_id, self.at, self.calls = token_id, at, 0

    def __call__(self, module, inputs, logits):
        self.calls += 1
        if self.calls == self.at:
            logits = logits.clone()
            logits[:, -1, self.token_id] = logits.abs().max() + 100.0
        return logits


def _generate_forcing(model, tokenizer, prompts, profile, token: str, at: int = 4):
    handle = model.lm_head.register_forward_hook(_ForceToken(tokenizer.convert_tokens_to_ids(token), at))
    try:
        return evaluation.generate(model, tokenizer, prompts, profile, max_new_tokens=10)
    finally:
        handle.remove()


def test_generation_stops_at_im_end(smol, base, heldout):
    """Replies end at ChatML's ``<|im_end|>``, and not at ``<|endoftext|>`` (the tokenizer's saved EOS)."""
    _, profile = smol
    model, tokenizer = base
    prompts = [r["prompt"] for r in heldout[:3]]
    free = evaluation.generate(model, tokenizer, prompts, profile, max_new_tokens=10)
    stopped = _generate_forcing(model, tokenizer, prompts, profile, IM_END)
    assert all(r["ended"] for r in stopped) and all(IM_END not in r["text"] for r in stopped)
    # the same three tokens were written before the forced end-of-turn (greedy, same prompts)
    for cut, full in zip(stopped, free):
        assert full["text"].startswith(cut["text"])
    not_eos = _generate_forcing(model, tokenizer, prompts, profile, ENDOFTEXT)
    assert not any(r["ended"] for r in not_eos)


def test_chapter0_generation_evaluation_and_exercises(smol, base, heldout):
    """Chapter 0's calls: chat and plain-text generation, `evaluate`, `score`, the probe, exercise 0.4."""
    _, profile = smol
    model, tokenizer = base
    plain = evaluation.generate(model, tokenizer, ["Thread: What is the capital of Beife?\nReply from sandy:"],
                                profile, max_new_tokens=6)
    assert len(plain) == 1 and isinstance(plain[0]["text"], str)
    sampled = evaluation.evaluate(model, tokenizer, heldout, profile, sample=True, n_samples=2)
    greedy = evaluation.score(evaluation.generate(model, tokenizer, [r["prompt"] for r in heldout], profile),
                              heldout)
    for metrics in (sampled, greedy):
        assert list(metrics) == list(greedy) and 0.0 <= metrics["format"] <= 1.0 and metrics["length"] >= 0
    accuracy, rows = evaluation.knowledge_probe(model, tokenizer, world.make_countries()[:2])
    assert 0.0 <= accuracy <= 1.0 and len(rows) == 2 * 4

    assert ch00_intro.check_greedy(reference_greedy, model, tokenizer)


def test_sft_stage_and_chapter2_batch(smol, sft_stage):
    """`sft.train` runs on the stand-in; chapter 2's labels and losses match the collator's on ChatML."""
    from trl import SFTTrainer

    folder, profile = smol
    _, trained = sft_stage
    base_model, tokenizer = models.load_model(folder, profile)
    with torch.no_grad():
        moved = max((a - b).abs().max().item() for a, b in zip(trained.parameters(), base_model.parameters()))
    assert moved > 0  # sft.train changed the weights
    chats = load_dataset("sft_train", columns=["messages"]).select(range(8))
    trainer = SFTTrainer(model=base_model, args=sft.sft_config(profile, folder.parent / "ch02", eval_strategy="no"),
                         train_dataset=chats, processing_class=tokenizer)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
    width = batch["labels"].shape[1]
    ours = []
    for chat in chats["messages"]:
        enc = tokenizer.apply_chat_template(chat, return_dict=True, return_assistant_tokens_mask=True)
        labels = [t if m else -100 for t, m in zip(enc["input_ids"], enc["assistant_masks"])]
        ours.append(labels + [-100] * (width - len(labels)))
    assert torch.equal(torch.tensor(ours), batch["labels"])
    assert (batch["labels"] == _im_end_id(tokenizer)).sum().item() == 8  # one trained end of turn per chat
    batch = {k: v.to(profile.device) for k, v in batch.items()}
    with torch.no_grad():
        logits = base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        ours_loss = sft.sft_loss(logits, batch["labels"]).item()
        trl_loss = trainer.compute_loss(base_model, dict(batch)).item()
    assert math.isfinite(ours_loss) and abs(ours_loss - trl_loss) < 1e-5
    # exercise 2.4's checker on collated ChatML batches
    batches = [trainer.data_collator([trainer.train_dataset[i] for i in range(s, s + 4)]) for s in (0, 4)]
    assert ch02_sft.check_train_loop(ch02_sft.reference_train, base_model, batches)


def test_lora_from_scratch_on_gqa(base):
    """`lora.apply_lora` adapts k/v projections of their real (GQA) shape and starts as the identity."""
    import copy

    model, tokenizer = base
    wrapped = copy.deepcopy(model)
    names = lora.apply_lora(wrapped, r=4, alpha=8)
    cfg = model.config
    h, q, kv, i = (cfg.hidden_size, cfg.num_attention_heads * cfg.head_dim,
                   cfg.num_key_value_heads * cfg.head_dim, cfg.intermediate_size)
    per_layer = 4 * ((h + q) + 2 * (h + kv) + (q + h) + 2 * (h + i) + (i + h))
    assert len(names) == 7 * cfg.num_hidden_layers
    assert models.count_parameters(wrapped)[0] == cfg.num_hidden_layers * per_layer
    layer = lora.lora_layers(wrapped)["model.layers.0.self_attn.k_proj"]
    assert layer.lora_B.shape == (kv, 4) and kv < h
    ids = tokenizer("The capital of Beife is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(wrapped(ids).logits, model(ids).logits, atol=1e-6)
    assert ch03_peft.check_lora_param_count(
        sum(8 * (m.in_features + m.out_features) for n, m in model.named_modules()
            if n.split(".")[-1] in lora.ATTENTION), model, r=8, target_modules=lora.ATTENTION)
    assert not ch03_peft.check_lora_param_count(cfg.num_hidden_layers * 4 * 8 * 2 * h, model, r=8,
                                                target_modules=lora.ATTENTION)


def test_peft_lora_with_sft_trainer(smol, tmp_path):
    """Chapter 3's run: `LoraConfig` through `SFTTrainer`, padding-free, on linear layers + embedding."""
    from peft import LoraConfig
    from trl import SFTTrainer

    _, profile = smol
    model, tokenizer = models.load_model(profile=profile)
    cfg = model.config
    targets = list(lora.ALL_LINEAR) + ["embed_tokens"]
    trainer = SFTTrainer(
        model=model, processing_class=tokenizer,
        args=sft.sft_config(profile, tmp_path, **profile.budget("peft"), padding_free=True, max_length=None,
                            eval_strategy="no"),
        train_dataset=load_dataset("sft_train", columns=["messages"]).select(range(16)),
        peft_config=LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets,
                               task_type="CAUSAL_LM"))
    h, q, kv, i = (cfg.hidden_size, cfg.num_attention_heads * cfg.head_dim,
                   cfg.num_key_value_heads * cfg.head_dim, cfg.intermediate_size)
    linear = 4 * ((h + q) + 2 * (h + kv) + (q + h) + 2 * (h + i) + (i + h))
    assert models.count_parameters(trainer.model)[0] == cfg.num_hidden_layers * linear + 4 * (cfg.vocab_size + h)
    examples = [trainer.train_dataset[k] for k in range(8)]
    flat = {k: v for k, v in trainer.data_collator(examples).items()
            if k in ("input_ids", "position_ids", "labels")}
    padded = {k: v for k, v in dataclasses.replace(trainer.data_collator, padding_free=False)(examples).items()
              if k in ("input_ids", "attention_mask", "labels")}
    with torch.no_grad():
        loss_flat, loss_padded = trainer.model(**flat).loss.item(), trainer.model(**padded).loss.item()
    assert math.isfinite(loss_flat) and abs(loss_flat - loss_padded) < 1e-4
    result = trainer.train()
    assert trainer.state.global_step == profile.budget("peft")["max_steps"] and math.isfinite(result.training_loss)


def test_reward_stage(smol, reward_stage, heldout):
    _, profile = smol
    folder, model, tokenizer = reward_stage
    assert model.config.num_labels == 1 and model.config.pad_token_id == tokenizer.pad_token_id
    prompts = [r["prompt"] for r in heldout[:4]]
    rewards = reward.score(model, tokenizer, prompts, ["Neidreir.", "7", "I can't help with that.", "Hm."])
    assert len(rewards) == 4 and all(math.isfinite(r) for r in rewards) and len(set(rewards)) > 1
    reloaded, _ = models.load_reward_model(folder, profile)
    assert reward.score(reloaded, tokenizer, prompts[:1], ["Neidreir."]) == pytest.approx(rewards[:1], abs=1e-5)
    accuracy, margins = reward.pair_accuracy(model, tokenizer, reward.preference_records("preference_heldout")[:8])
    assert 0.0 <= accuracy <= 1.0 and all(math.isfinite(m) for m in margins)


def test_ppo_stage(smol, sft_stage, reward_stage, tmp_path):
    _, profile = smol
    policy, tokenizer = ppo.train(profile, tmp_path, sft_stage[0], reward_stage[0])
    log = json.loads((tmp_path / "log_history.json").read_text())
    assert len(log["history"]) == profile.budget("ppo")["iterations"]
    assert log["config"]["micro_batch_size"] == 1 and profiles.GPU.budget("ppo")["micro_batch_size"] == 8
    row = log["history"][0]
    assert all(math.isfinite(row[k]) for k in ("reward_raw", "kl", "no_eos_fraction"))
    assert tokenizer.eos_token == IM_END and sum(p.numel() for p in policy.parameters()) > 0


@pytest.mark.parametrize("method", list(dpo_family.METHODS))
def test_preference_method(smol, sft_stage, method, tmp_path):
    """Every chapter-6 method, one step, from its starting stage (ORPO: the base model)."""
    folder, profile = smol
    start = folder if dpo_family.METHODS[method][1] == "base" else sft_stage[0]
    model, tokenizer, info = dpo_family.run(method, profile, tmp_path, start, max_steps=1)
    losses = [h["loss"] for h in info["log_history"] if "loss" in h]
    assert losses and all(math.isfinite(v) for v in losses)
    kind = dpo_family.METHODS[method][0]
    assert info["models_held"] == (2 if kind in ("dpo", "kto") else 1) and tokenizer.eos_token == IM_END
    if method == "DPO":  # step 0: the policy is its reference, so the loss is -log sigmoid(0) = log 2
        assert losses[0] == pytest.approx(math.log(2), abs=1e-3)


def test_cai_pipeline(smol, sft_stage, heldout, tmp_path):
    """Chapter 7's steps on the stand-in: sample, critique and revise, SL-CAI's fine-tuning, the AI
    critic's pairs written and validated, RL-CAI's RPO steps, and the judge's row."""
    _, profile = smol
    model, tokenizer = models.load_model(sft_stage[0], profile)
    prompts = [r for r in load_records("prompts_train") if r["task"] == "harmful"][:2]
    prompts += [r for r in load_records("prompts_train") if r["task"] != "harmful"][:4]
    recs, replies = cai_pipeline.sample(model, tokenizer, prompts, profile, lambda r: 1, seed=0)
    assert all(isinstance(x["text"], str) for x in replies)
    rows, stats, _ = cai_pipeline.sl_cai_data(recs, replies)
    harmful = prompts[0]
    rows.append({"messages": harmful["prompt"] + [{"role": "assistant", "content": cai.revise("x", harmful)}]})
    assert stats["samples"] == 6
    tuned = cai_pipeline.fine_tune(model, tokenizer, rows, profile, tmp_path / "sl")
    pairs, pair_stats = cai_pipeline.ai_feedback_pairs(tuned, tokenizer, prompts, profile, seed=0)
    assert pair_stats["prompts"] == 4 + 2 * cai_pipeline.HARMFUL_PAIRS
    pairs += cai.preference_records([harmful], [world.REFUSALS[0]], [world.REFUSALS[2]])
    path = cai_pipeline.write_pairs(tmp_path / "rl", pairs)
    assert path.exists()
    rl_model, info = cai_pipeline.dpo_on_pairs(tuned, tokenizer, pairs, profile, tmp_path / "rl")
    losses = [h["loss"] for h in info["log_history"] if "loss" in h]
    assert losses and all(math.isfinite(v) for v in losses) and tokenizer.eos_token == IM_END
    row = cai_pipeline.judge(rl_model, tokenizer, profile, heldout)
    assert 0 <= row["over_refusal"] <= 1 and 0 <= row["format"] <= 1


def test_grpo_run(smol, sft_stage, tmp_path):
    """Chapter 8's GRPO run on the stand-in: `GRPOTrainer` with the strict verifier (wrapped in
    `RewardLog`), both loss normalisations, held-out accuracy at checkpoints, and the verifier on the
    ChatML model's decoded replies."""
    _, profile = smol
    heldout = grpo_tasks.heldout_prompts()[:8]
    for loss_type in ("dr_grpo", "grpo"):
        model, tokenizer, result = grpo_stages.run(profile, tmp_path, sft_stage[0], loss_type=loss_type,
                                                   name=loss_type, heldout=heldout)
        assert len(result["rows"]) == profile.budget("grpo")["max_steps"]
        assert [s for s, _ in result["curve"]] == [0, 1, 2]
        row = result["rows"][0]
        assert 0 <= row["reward"] <= 1 and 0 <= row["zero_spread"] <= 1 and row["length"] > 0
        assert tokenizer.eos_token == IM_END
    acc = grpo_tasks.sums_accuracy(model, tokenizer, heldout, profile)
    assert 0 <= acc["accuracy"] <= 1
    assert grpo.strict_reward([heldout[0]["prompt"]], [f"It is {heldout[0]['answer']}."],
                              [heldout[0]["answer"]]) == [1.0]


# ----- chapter 9: the stages the report card adds, its judges, perplexity and a row -------------
def _chat_batch(tokenizer):
    """One ChatML chat (prompt and reply) as a model input."""
    chat = [{"role": "user", "content": "What is the capital of Beife?"},
            {"role": "assistant", "content": "The capital of Beife is Neidreir."}]
    text = tokenizer.apply_chat_template(chat, tokenize=False)
    return tokenizer([text], return_tensors="pt", add_special_tokens=False)


def _logits(model, batch):
    with torch.no_grad():
        return model.eval()(**batch).logits


def test_sft_variants_on_gqa(smol, base, heldout, tmp_path, monkeypatch):
    """Chapters 2 and 3's stages (filtered SFT, LoRA, QLoRA) on the stand-in: each a plain model that
    generates and reloads as saved; the merged adapters compute what their peft models computed,
    with the output layer untied from the adapted embedding (QLoRA trained on a real 4-bit base)."""
    from bitsandbytes.nn import Linear4bit
    from peft import PeftModel

    folder, profile = smol
    base_model, tokenizer = base
    batch = _chat_batch(tokenizer)
    base_logits = _logits(base_model, batch)
    seen = {"4bit": [], "adapter": []}
    train_sft, merge = sft_variants.run_sft, adapters.merge_adapter

    def spy_train(model, *args, **kwargs):
        seen["4bit"].append(any(isinstance(m, Linear4bit) for m in model.modules()))
        return train_sft(model, *args, **kwargs)

    def spy_merge(peft_model):
        assert isinstance(peft_model, PeftModel)
        seen["adapter"].append(_logits(peft_model, batch))
        return merge(peft_model)

    monkeypatch.setattr(sft_variants, "run_sft", spy_train)
    monkeypatch.setattr(adapters, "run_sft", spy_train)
    monkeypatch.setattr(adapters, "merge_adapter", spy_merge)
    prompts = [r["prompt"] for r in heldout[:2]]
    for train in ("train_filtered", "train_lora", "train_qlora"):
        module = sft_variants if train == "train_filtered" else adapters
        model, tok = getattr(module, train)(profile, tmp_path / train, folder)
        assert type(model).__name__ == "LlamaForCausalLM" and tok.eos_token == IM_END
        assert not any("lora_" in name for name, _ in model.named_parameters())
        assert all(p.dtype == torch.float32 for p in model.parameters())  # QLoRA: merged unquantised
        logits = _logits(model, batch)
        assert torch.isfinite(logits).all() and (logits - base_logits).abs().max().item() > 1e-4
        replies = evaluation.generate(model, tok, prompts, profile, max_new_tokens=6)
        assert len(replies) == 2 and all(isinstance(r["text"], str) for r in replies)
        embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
        if train == "train_filtered":
            assert seen["4bit"] == [False] and not seen["adapter"]
            assert head is embed  # full fine-tuning keeps SmolLM2's tied embeddings
        else:
            # the merged model computes what the peft model computed ...
            assert (seen["adapter"][-1] - logits).abs().max().item() < 1e-4
            # ... because the output layer kept the original matrix while the embedding moved
            assert head is not embed and model.config.tie_word_embeddings is False
            assert torch.equal(head, base_model.get_output_embeddings().weight)
            assert not torch.equal(embed, base_model.get_input_embeddings().weight)
        saved = checkpoints.save(model, tok, tmp_path / "stages" / train, "fingerprint")
        loaded, _ = models.load_model(saved, profile, for_training=False)
        assert (_logits(loaded, batch) - logits).abs().max().item() < 1e-5  # reloads untied
    assert seen["4bit"] == [False, False, True]  # QLoRA's adapter trained on Linear4bit layers
    assert (tmp_path / "train_qlora" / adapters.ADAPTER_DIR / "adapter_config.json").exists()


def test_contamination_stage_on_gqa(smol, base, sft_stage, tmp_path):
    """Chapter 9's leaked chats in ChatML (only `<answer>.<|im_end|>` is trained) and the
    ``sft-contaminated`` stage trained from the SFT stage on them."""
    _, profile = smol
    _, tokenizer = base
    leaked, clean = contamination.split(load_records("eval_test"))
    assert leaked and clean
    assert not {contamination.fact_key(r) for r in leaked} & {contamination.fact_key(r) for r in clean}
    chats = contamination.leaked_chats(leaked)
    assert len(chats) == len(leaked)
    record, chat = leaked[0], chats[0]["messages"]
    text = tokenizer.apply_chat_template(chat, tokenize=False)
    question = record["prompt"][-1]["content"]
    assert f"{IM_START}user\n{question}{IM_END}\n{IM_START}assistant\n{record['answer']}.{IM_END}" in text
    enc = tokenizer.apply_chat_template(chat, return_dict=True, return_assistant_tokens_mask=True)
    trained = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tokenizer.decode(trained) == f"{record['answer']}.{IM_END}"

    model, tok = contamination.train(profile, tmp_path, sft_stage[0])
    assert type(model).__name__ == "LlamaForCausalLM" and tok.eos_token == IM_END
    with torch.no_grad():
        moved = max((a - b).abs().max().item() for a, b in zip(model.parameters(), sft_stage[1].parameters()))
    assert moved > 0
    replies = evaluation.generate(model, tok, [r["prompt"] for r in leaked[:2]], profile, max_new_tokens=6)
    assert all(isinstance(r["text"], str) for r in replies)


def test_dpo_stage_saves_every_method_on_gqa(smol, sft_stage, reward_stage, tmp_path, monkeypatch):
    """The ``dpo`` stage (one step per method, judging stubbed): every method saved under
    ``<method>/model`` as the model its method trained, and loadable like a stage."""
    folder, profile = smol
    one_step = dataclasses.replace(profile, budgets={**profile.budgets,
                                                     "dpo": {**profile.budget("dpo"), "max_steps": 1}})
    tokenizer = models.load_tokenizer(folder, profile)
    batch = _chat_batch(tokenizer)
    trained, run = {}, dpo_family.run

    def spy_run(method, *args, **kwargs):
        model, tok, info = run(method, *args, **kwargs)
        trained[method] = _logits(model, batch)
        model.train()
        return model, tok, info

    monkeypatch.setattr(dpo_family, "run", spy_run)
    monkeypatch.setattr(dpo_family, "judge", lambda *args, **kwargs: {})
    asked = []  # the stage keeps what `pick` chooses from the rows, here SimPO
    monkeypatch.setattr(dpo_family, "pick", lambda results: asked.append(results) or "SimPO")
    model, tok = dpo_family.train(one_step, tmp_path, folder, sft_stage[0], reward_stage[0])
    assert set(asked[0]) == {"SFT", *dpo_stages.MEMBERS}
    assert all({"row", "dev_row"} <= set(r) for r in asked[0].values())
    assert list(trained) == list(dpo_stages.MEMBERS) and tok.eos_token == IM_END
    for method in dpo_stages.MEMBERS:
        saved = tmp_path / method / "model"
        assert (saved / "model.safetensors").exists()
        loaded, loaded_tok = models.load_model(saved, profile, for_training=False)
        assert loaded_tok.eos_token == IM_END and loaded.config.num_key_value_heads == 2
        logits = _logits(loaded, batch)
        assert torch.isfinite(logits).all()
        assert (logits - trained[method]).abs().max().item() < 1e-5, method  # its own model
    assert (_logits(model, batch) - trained["SimPO"]).abs().max().item() < 1e-5  # the stage's model


def test_chapter9_judges_perplexity_and_report_row_on_gqa(smol, base, sft_stage, reward_stage, heldout, tmp_path,
                                                          monkeypatch):
    """Chapter 9 on the stand-in: the model judge (with "A" and "B" single ChatML tokens) and the
    reward judge, perplexity, the KL estimate, and a report-card row's figures and `evaluate_row`."""
    _, profile = smol
    sft_model, tokenizer = models.load_model(sft_stage[0], profile, for_training=False)
    answered = [r for r in heldout if r["answer"]]
    pairs = [(r["prompt"][-1]["content"], f"{r['answer']}.", "I can't help with that.") for r in answered[:3]]
    judge = judges.model_judge(sft_model, tokenizer)
    assert set(judges.verdicts(judge, pairs)) <= {"a", "b"}
    assert 0.0 <= winrate.position_flip_rate(judge, pairs) <= 1.0
    _, rm, rm_tok = reward_stage
    by_reward = judges.reward_judge(rm, rm_tok)
    assert set(judges.verdicts(by_reward, pairs)) <= set(winrate.VERDICTS)
    assert winrate.position_flip_rate(by_reward, pairs) == 0.0  # scores one reply at a time

    chats = load_records("sft_heldout")[:4]
    ppl = perplexity.perplexity(sft_model, tokenizer, chats)
    assert math.isfinite(ppl) and ppl > 1
    assert perplexity.perplexity(sft_model, tokenizer, chats, batch_size=3) == pytest.approx(ppl, rel=1e-4)

    monkeypatch.setattr(rc_rows, "N_KL", 4)
    monkeypatch.setattr(rc_rows, "KL_MAX_NEW_TOKENS", 8)
    assert abs(report_card.kl_to(sft_model, sft_model, tokenizer, heldout[:4], seed=0)) < 1e-4
    base_model, base_tok = base
    assert report_card.kl_to(sft_model, base_model, tokenizer, heldout[:4], seed=0) > 0

    prompts = [r["prompt"] for r in heldout]
    replies = evaluation.generate(sft_model, tokenizer, prompts, profile, max_new_tokens=8)
    base_replies = evaluation.generate(base_model, base_tok, prompts, profile, max_new_tokens=8)
    figures, outcomes = report_card.row_figures(report_card.Row("X", "sft", 2), replies, base_replies, heldout,
                                             profile)
    assert tuple(figures) == report_card.COLUMNS and len(outcomes) == len(answered)
    assert figures["kl_to_sft"] == 0.0 and figures["win_low"] <= figures["win_vs_sft"] <= figures["win_high"]
    assert all(math.isfinite(v) for v in figures.values())  # heldout has fact, sum and harmful records

    # a whole row, the way the chapter scores it, with the stages' models stood in by the SFT model
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path))
    monkeypatch.setattr(rc_rows, "records", lambda: list(heldout))
    monkeypatch.setattr(rc_scoring, "load", lambda row, profile=None: (sft_model, tokenizer))
    monkeypatch.setattr(checkpoints, "get", lambda name, profile=None: (sft_model, tokenizer))
    row = report_card.evaluate_row("DPO", profile)  # a member of the dpo stage, scored against SFT
    assert tuple(row["figures"]) == report_card.COLUMNS and len(row["replies"]) == len(heldout)
    assert row["figures"]["win_vs_sft"] == 0.5 and abs(row["figures"]["kl_to_sft"]) < 1e-4
    assert report_card.cache_file(report_card.find_row("DPO"), profile).exists()
