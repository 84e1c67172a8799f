"""The stage graph: budgets, fingerprints that chain downstream, and deterministic stages."""

import dataclasses

import pytest
import torch

from posttrain_utils import sft
from posttrain_utils.runtime.models import load_model
from posttrain_utils.runtime import checkpoints, graph, paths, profiles

TINY = {"max_steps": 3, "per_device_train_batch_size": 4, "learning_rate": 1e-3}


def _short(profile):
    """`profile` with a 3-step SFT budget, so a stage trains in seconds."""
    return dataclasses.replace(profile, budgets={**profile.budgets, "sft": TINY})


def test_every_trained_stage_has_a_budget_in_both_profiles():
    """Every stage a profile trains has its budget there; ``world-base`` only where it is used (gpu)."""
    trained = [s for s in checkpoints.STAGES.values() if s.module is not None]
    assert trained, "the graph has no trained stage"
    for stage in trained:
        names = stage.budget if isinstance(stage.budget, tuple) else (stage.budget,)
        for profile in (profiles.CPU, profiles.GPU):
            if stage.name == checkpoints.WORLD_BASE and checkpoints.base_stage(profile) == "base":
                continue  # a profile whose base model has read the tiny world already (cpu)
            budgets = [profile.budget(name) for name in names]  # each exists; overlays may be partial
            assert budgets[0].get("max_steps", budgets[0].get("iterations", 0)) > 0, (stage.name, profile.name)
            for up in checkpoints.resolve_upstream(stage, profile):
                assert up in checkpoints.STAGES, f"{stage.name}: unknown upstream stage {up!r}"
    assert checkpoints.base_stage(profiles.GPU) == checkpoints.WORLD_BASE


def test_fingerprint_covers_budget_seed_precision_data_and_upstream(monkeypatch, tmp_path):
    cpu = profiles.CPU
    base = checkpoints.fingerprint("sft", cpu)
    assert checkpoints.fingerprint("sft", cpu) == base  # stable
    assert checkpoints.fingerprint("sft", _short(cpu)) != base  # budget
    assert checkpoints.fingerprint("sft", dataclasses.replace(cpu, seed=1)) != base  # seed
    assert checkpoints.fingerprint("sft", dataclasses.replace(cpu, dtype="bfloat16")) != base  # precision
    # a downstream stage changes when its upstream recipe changes
    monkeypatch.setitem(checkpoints.STAGES, "demo", checkpoints.Stage(
        "demo", module="posttrain_utils.lora", upstream=("sft",), budget="peft"))
    assert checkpoints.fingerprint("demo", _short(cpu)) != checkpoints.fingerprint("demo", cpu)
    # data: a copy of the data folder with one line changed
    data = tmp_path / "data"
    data.mkdir()
    for f in graph.DATA_DIR.glob("*.jsonl"):
        (data / f.name).write_bytes(f.read_bytes())
    lines = (data / "sft_train.jsonl").read_text().splitlines()
    (data / "sft_train.jsonl").write_text("\n".join(lines[1:] + lines[:1]) + "\n")
    monkeypatch.setattr(graph, "DATA_DIR", data)
    assert checkpoints.fingerprint("sft", cpu) != base


def test_data_change_invalidates_downstream(monkeypatch, tmp_path):
    monkeypatch.setitem(checkpoints.STAGES, "demo", checkpoints.Stage(
        "demo", module="posttrain_utils.lora", upstream=("sft",), budget="peft"))
    before = checkpoints.fingerprint("demo", profiles.CPU)
    data = tmp_path / "data"
    data.mkdir()
    for f in graph.DATA_DIR.glob("*.jsonl"):
        (data / f.name).write_bytes(f.read_bytes())
    (data / "sft_heldout.jsonl").write_text((data / "sft_heldout.jsonl").read_text().replace("a", "b", 1))
    monkeypatch.setattr(graph, "DATA_DIR", data)
    assert checkpoints.fingerprint("demo", profiles.CPU) != before


def test_stage_is_trained_once_cached_and_equals_a_chapter_style_run(monkeypatch, tmp_path):
    """A stage trained on a fresh clone equals what a chapter gets by training the recipe itself."""
    from trl import SFTTrainer

    from posttrain_utils.data import load_dataset
    from posttrain_utils.runtime.notebook import quiet

    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    profile = _short(profiles.CPU)
    assert not checkpoints.is_cached("sft", profile)
    stage_model, _ = checkpoints.get("sft", profile)
    assert checkpoints.is_cached("sft", profile)
    folder = checkpoints.path("sft", profile)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    checkpoints.get("sft", profile)  # cached: not retrained
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert not list(folder.parent.glob("*.tmp"))

    profiles.seed_everything(profile.seed)  # the chapter's way: the same recipe, by hand
    model, tok = load_model(profile=profile)
    trainer = SFTTrainer(model=model, args=sft.sft_config(profile, tmp_path / "run"), processing_class=tok,
                         train_dataset=load_dataset("sft_train", columns=["messages"]),
                         eval_dataset=load_dataset("sft_heldout", columns=["messages"]))
    quiet(trainer).train()
    ours = dict(trainer.model.named_parameters())
    diff = max((p.detach() - ours[n].detach()).abs().max().item() for n, p in stage_model.named_parameters())
    assert diff == 0.0
    base, _ = load_model(profile=profile)
    moved = max((p - ours[n].detach()).abs().max().item() for n, p in base.named_parameters())
    assert moved > 1e-4  # it did train


def test_stage_folders_are_per_profile_and_seed(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path))
    seed1 = dataclasses.replace(profiles.CPU, seed=1)
    assert checkpoints.cache_dir(profiles.CPU) != checkpoints.cache_dir(seed1)
    assert checkpoints.run_dir("sft", seed1).is_relative_to(tmp_path)
    with pytest.raises(KeyError, match="unknown stage"):
        checkpoints.path("nope", profiles.CPU)


def test_helpers_use_the_active_profile_and_never_guess(monkeypatch):
    monkeypatch.setattr(profiles, "_ACTIVE", None)
    with pytest.raises(RuntimeError, match="no active profile"):
        checkpoints.cache_dir()
    monkeypatch.setenv(profiles.SEED_ENV, "2")
    monkeypatch.delenv(profiles.NO_NETWORK_ENV, raising=False)
    active = profiles.activate("cpu")
    assert active.seed == 2 and profiles.current() is active
    monkeypatch.setenv(profiles.PROFILE_ENV, "gpu")  # a later change of the environment is ignored
    assert checkpoints.cache_dir().name == "cpu-seed2"
    assert torch.initial_seed() == 2
