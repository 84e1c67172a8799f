"""The checkpoint cache: atomic saves, and stale checkpoints replaced when the recipe changes."""

from posttrain_utils import checkpoints, profiles
from posttrain_utils.models import load_model


def test_save_keeps_same_recipe_and_replaces_stale(tmp_path, monkeypatch):
    monkeypatch.setenv(checkpoints.CACHE_ENV, str(tmp_path))
    model, tok = load_model(profile=profiles.CPU)
    path = checkpoints.save_checkpoint(model, tok, "demo", profiles.CPU, recipe="A")
    assert (path / "model.safetensors").exists() and (path / "recipe.txt").read_text() == "A"
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    checkpoints.save_checkpoint(model, tok, "demo", profiles.CPU, recipe="A")
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp  # same recipe: kept
    checkpoints.save_checkpoint(model, tok, "demo", profiles.CPU, recipe="B")
    assert (path / "recipe.txt").read_text() == "B"  # other recipe: replaced
    assert not list(tmp_path.glob("**/*.tmp"))
    reloaded, _ = load_model(path, profiles.CPU)
    assert sum(p.numel() for p in reloaded.parameters()) == sum(p.numel() for p in model.parameters())


def test_sft_recipe_depends_on_budget():
    import dataclasses

    changed = dataclasses.replace(profiles.CPU, budgets={**profiles.CPU.budgets, "sft": {"max_steps": 1}})
    assert checkpoints.sft_recipe(profiles.CPU) == checkpoints.sft_recipe(profiles.CPU)
    assert checkpoints.sft_recipe(changed) != checkpoints.sft_recipe(profiles.CPU)
