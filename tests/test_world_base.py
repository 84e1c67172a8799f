"""The ``world-base`` stage: the gpu profile's SmolLM2 reads the tiny world before any chapter.

In a profile with a ``world_base`` budget (``gpu``) every stage trained from ``base`` starts from
``world-base`` instead, and `models.load_model()` loads it; the ``cpu`` profile's stage graph is
untouched. Trained here on the SmolLM2-shaped stand-in (``smol_like.py``) for 3 steps.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from posttrain_utils.runtime import models
from posttrain_utils.sft import recipe as sft
from posttrain_utils.tinyworld import world_base
from posttrain_utils.runtime import checkpoints, paths, profiles
from posttrain_utils.tinyworld.build_base import pack_corpus
from posttrain_utils.tinyworld.world import make_corpus
from smol_like import ENDOFTEXT, IM_END, build_smol_like, smol_profile

N_DOCS = 200
BUDGETS = {
    "world_base": dict(max_steps=3, per_device_train_batch_size=4, learning_rate=3e-3, n_docs=N_DOCS),
    "sft": dict(max_steps=2, per_device_train_batch_size=4, learning_rate=1e-3),
}


def test_cpu_graph_is_unchanged_and_gpu_starts_from_world_base(monkeypatch):
    cpu, gpu = profiles.CPU, profiles.GPU
    assert checkpoints.base_stage(cpu) == "base" and "world_base" not in cpu.budgets
    for stage in checkpoints.STAGES.values():  # cpu: every stage's upstream exactly as declared
        assert checkpoints.resolve_upstream(stage, cpu) == stage.upstream
    stages = checkpoints.STAGES
    assert checkpoints.resolve_upstream(stages["sft"], gpu) == ("world-base",)
    assert checkpoints.resolve_upstream(stages["dpo"], gpu) == ("world-base", "sft", "reward")  # ORPO's start
    assert checkpoints.resolve_upstream(stages["world-base"], gpu) == ("base",)
    assert checkpoints.resolve_upstream(stages["reward"], gpu) == ("sft",)
    assert models.base_model_source(cpu) == cpu.model_name_or_path  # load_model() unchanged on cpu
    with pytest.raises(KeyError, match="no world-base stage"):  # its base model has read the world
        checkpoints.path("world-base", cpu)
    # the cpu fingerprints are those of a graph without the world-base stage
    cpu_fingerprints = {n: checkpoints.fingerprint(n, cpu) for n in stages if n != "world-base"}
    monkeypatch.delitem(checkpoints.STAGES, "world-base")
    assert {n: checkpoints.fingerprint(n, cpu) for n in checkpoints.STAGES} == cpu_fingerprints


def test_gpu_sft_fingerprint_follows_the_world_base_recipe():
    gpu = profiles.GPU
    longer = {**gpu.budgets, "world_base": {**gpu.budgets["world_base"], "max_steps": 2000}}
    changed = dataclasses.replace(gpu, budgets=longer)
    assert checkpoints.fingerprint("world-base", changed) != checkpoints.fingerprint("world-base", gpu)
    assert checkpoints.fingerprint("sft", changed) != checkpoints.fingerprint("sft", gpu)
    assert checkpoints.fingerprint("base", changed) == checkpoints.fingerprint("base", gpu)


def _corpus_loss(model, tokenizer) -> float:
    """Mean next-token loss on documents the stage did not read (the corpus after its first N_DOCS)."""
    blocks = pack_corpus(make_corpus(2 * N_DOCS)[N_DOCS:], tokenizer, block_size=64)[:32]
    model.eval()
    with torch.no_grad():
        return model(input_ids=blocks, labels=blocks).loss.item()


def test_world_base_stage_is_trained_cached_and_feeds_sft(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    torch.set_num_threads(1)
    folder = build_smol_like(tmp_path / "smol")
    profile = smol_profile(folder, BUDGETS)
    assert checkpoints.base_stage(profile) == "world-base" and not checkpoints.is_cached("world-base", profile)

    stage = checkpoints.path("world-base", profile)
    assert checkpoints.is_cached("world-base", profile) and stage.is_relative_to(tmp_path / "cache")
    log = json.loads((checkpoints.run_dir("world-base", profile) / "log_history.json").read_text())
    assert log[-1]["step"] == 3 and math.isfinite(log[-1]["train_loss"])
    base, tokenizer = models.load_model(folder, profile)
    trained, _ = models.load_model(stage, profile)
    assert _corpus_loss(trained, tokenizer) < _corpus_loss(base, tokenizer) - 0.1  # it learned the corpus
    # load_model() without a source is the world-base stage in this profile, not the stand-in
    default, default_tok = models.load_model(profile=profile)
    weights = [dict(m.named_parameters())["model.embed_tokens.weight"] for m in (base, trained, default)]
    assert torch.equal(weights[1], weights[2]) and not torch.equal(weights[0], weights[1])
    assert default_tok.eos_token == IM_END
    # the corpus is packed with SmolLM2's document separator, never the chat end of turn
    blocks = world_base.corpus_blocks(default_tok, 20, 64)
    assert (blocks == default_tok.convert_tokens_to_ids(ENDOFTEXT)).any()
    assert not (blocks == default_tok.convert_tokens_to_ids(IM_END)).any()

    def no_retraining(*args):
        raise AssertionError("world-base was trained again")

    stamp = (stage / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(world_base, "train", no_retraining)
    assert checkpoints.path("world-base", profile) == stage
    assert (stage / "model.safetensors").stat().st_mtime_ns == stamp

    started_from = []
    sft_train = sft.train

    def spy(profile_, output_dir, base_dir):
        started_from.append(base_dir)
        return sft_train(profile_, output_dir, base_dir)

    monkeypatch.setattr(sft, "train", spy)
    checkpoints.path("sft", profile)  # trains sft from the cached world-base, which is not retrained
    assert started_from == [stage] and checkpoints.is_cached("sft", profile)
    assert checkpoints.fingerprint("sft", profile) != checkpoints.fingerprint(
        "sft", smol_profile(folder, {"sft": BUDGETS["sft"]}))  # upstream: world-base, not base


@pytest.mark.parametrize("profile", [profiles.CPU, profiles.GPU], ids=["cpu", "gpu"])
def test_world_base_config_reads_the_budget(profile, tmp_path):
    if "world_base" not in profile.budgets:
        with pytest.raises(KeyError, match="no budget for 'world_base'"):
            world_base.world_base_config(profile, tmp_path)
        return
    args = world_base.world_base_config(profile, tmp_path, use_cpu=True, fp16=False, bf16=False)
    budget = profile.budget("world_base")
    assert (args.max_steps, args.per_device_train_batch_size, args.learning_rate) == \
        (budget["max_steps"], budget["per_device_train_batch_size"], budget["learning_rate"])
    assert args.seed == profile.seed and args.warmup_steps == budget["max_steps"] // 20
