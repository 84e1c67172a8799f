"""Profiles: automatic choice, override, budgets, and the gpu loading route (run on CPU)."""

import dataclasses

import pytest

from posttrain_utils.runtime import profiles
from posttrain_utils.runtime.models import load_model


def test_env_override(monkeypatch):
    monkeypatch.setenv(profiles.PROFILE_ENV, "gpu")
    assert profiles.get_profile().name == "gpu"
    monkeypatch.setenv(profiles.PROFILE_ENV, "cpu")
    assert profiles.get_profile().name == "cpu"
    monkeypatch.setenv(profiles.PROFILE_ENV, "tpu")
    with pytest.raises(ValueError, match="unknown profile 'tpu'"):
        profiles.get_profile()


def test_default_without_cuda_is_cpu(monkeypatch):
    monkeypatch.delenv(profiles.PROFILE_ENV, raising=False)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert profiles.get_profile().name == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert profiles.get_profile().name == "gpu"


def test_cpu_profile_loads_and_trains_without_network():
    from trl import SFTConfig

    from posttrain_utils.runtime import netguard

    with netguard.no_network():
        model, tok = load_model(profile=profiles.CPU)
    assert next(model.parameters()).device.type == "cpu"
    args = SFTConfig(output_dir="unused", **profiles.CPU.trainer_kwargs(), **profiles.CPU.budget("sft"))
    assert args.use_cpu and not (args.bf16 or args.fp16) and args.seed == profiles.CPU.seed
    with pytest.raises(KeyError, match="no budget"):
        profiles.CPU.budget("nonexistent-chapter")


def test_gpu_precision_ignores_emulated_bf16(monkeypatch):
    """A T4 'supports' bf16 only by emulation: the gpu profile must then choose fp16."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    kwargs = profiles.GPU.trainer_kwargs()
    assert kwargs["fp16"] and not kwargs["bf16"]
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    kwargs = profiles.GPU.trainer_kwargs()
    assert kwargs["bf16"] and not kwargs["fp16"]


def test_seed_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(profiles.NO_NETWORK_ENV, raising=False)
    monkeypatch.setenv(profiles.SEED_ENV, "1")
    assert profiles.activate("cpu").trainer_kwargs()["seed"] == 1
    assert profiles.activate("cpu", seed=2).seed == 2
    monkeypatch.setenv(profiles.SEED_ENV, "one")
    with pytest.raises(ValueError, match="POSTTRAIN_SEED"):
        profiles.activate("cpu")


def test_activate_sets_offline_env(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    profiles.activate("cpu")
    import os

    import huggingface_hub

    assert os.environ["HF_HUB_OFFLINE"] == "1" and huggingface_hub.constants.HF_HUB_OFFLINE


def _chatml_checkpoint(tmp_path):
    """A local stand-in for a Hub base model: ChatML special tokens, no generation template."""
    model, tok = load_model(profile=profiles.CPU)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = None
    model.resize_token_embeddings(len(tok))
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    return tmp_path


def test_gpu_route_loads_a_local_directory(tmp_path):
    """The gpu profile's loader, minus CUDA: same function, ChatML template installed."""
    gpu_on_cpu = dataclasses.replace(profiles.GPU, model_name_or_path=str(_chatml_checkpoint(tmp_path)),
                                     device="cpu")
    # named explicitly: without a source the gpu profile loads its world-base stage (test_world_base.py)
    model, tok = load_model(gpu_on_cpu.model_name_or_path, gpu_on_cpu)
    assert tok.eos_token == "<|im_end|>" and tok.pad_token != tok.eos_token
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
                                   tokenize=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n"
    enc = tok.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
                                  return_dict=True, return_assistant_tokens_mask=True)
    assert 0 < sum(enc["assistant_masks"]) < len(enc["input_ids"])
    assert model.generation_config.eos_token_id == tok.eos_token_id


def test_offline_profile_refuses_hub_ids():
    hub = dataclasses.replace(profiles.CPU, model_name_or_path="HuggingFaceTB/SmolLM2-135M")
    with pytest.raises(FileNotFoundError, match="offline"):
        load_model(profile=hub)


def test_placebo_zeroes_every_step_count_and_nothing_else(monkeypatch):
    """`make placebo`: every budget's step counts are 0, transformers is told 0 epochs, the stages
    are cached apart, and the normal profile is untouched (its figures cannot change)."""
    from posttrain_utils.runtime import graph

    normal = profiles.CPU
    placebo = dataclasses.replace(normal, placebo=True)
    for name, budget in normal.budgets.items():
        zeroed = placebo.budget(name)
        assert all(zeroed[k] == 0 for k in profiles.STEP_KEYS if k in budget), name
        assert {k: v for k, v in zeroed.items() if k not in profiles.STEP_KEYS} == \
            {k: v for k, v in budget.items() if k not in profiles.STEP_KEYS}, name
        assert normal.budget(name) == budget  # the normal run's budget as written
    assert placebo.steps(12) == 0 and normal.steps(12) == 12
    assert placebo.trainer_kwargs()["num_train_epochs"] == 0
    assert "num_train_epochs" not in normal.trainer_kwargs()
    assert graph.cache_dir(placebo).name == "cpu-seed0-placebo" and graph.cache_dir(normal).name == "cpu-seed0"
    assert graph.fingerprint("sft", placebo) != graph.fingerprint("sft", normal)
    monkeypatch.setenv(profiles.PLACEBO_ENV, "1")
    assert profiles.activate("cpu").placebo
    monkeypatch.setenv(profiles.PLACEBO_ENV, "0")
    assert not profiles.activate("cpu").placebo
    monkeypatch.setenv(profiles.PLACEBO_ENV, "yes")
    with pytest.raises(ValueError, match="POSTTRAIN_PLACEBO='yes'"):
        profiles.activate("cpu")


def test_placebo_sft_trains_zero_steps(tmp_path):
    """A trainer built from a placebo profile's budget leaves the model's weights unchanged."""
    import torch

    from posttrain_utils.data import load_dataset
    from posttrain_utils.sft import recipe

    placebo = dataclasses.replace(profiles.CPU, placebo=True)
    model, tokenizer = load_model(placebo.model_name_or_path, placebo)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = load_dataset("sft_train", columns=["messages"]).select(range(32))
    trainer = recipe.sft_trainer(model, tokenizer, recipe.sft_config(placebo, tmp_path, eval_strategy="no"), data)
    trainer.train()
    assert trainer.state.global_step == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
