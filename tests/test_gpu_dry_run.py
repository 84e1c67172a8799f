"""``scripts/gpu_dry_run.py``: the real-size stand-in for a GPU run keeps the gpu profile's shapes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from posttrain_utils.runtime import checkpoints, profiles

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_dry_run.py"
spec = importlib.util.spec_from_file_location("gpu_dry_run", SCRIPT)
dry = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dry)


def test_budgets_keep_batch_shapes_and_take_one_step():
    budgets = dry.dry_budgets(profiles.GPU.budgets)
    assert budgets.keys() == profiles.GPU.budgets.keys()
    for name, budget in budgets.items():
        real = profiles.GPU.budgets[name]
        for key in ("per_device_train_batch_size", "rollouts_per_iteration", "num_mini_batches",
                    "prompts_per_step", "num_generations", "max_completion_length", "max_new_tokens"):
            assert budget.get(key) == real.get(key), (name, key)
        assert budget.get("max_steps", 1) == 1 and budget.get("iterations", 1) == 1
    assert budgets["ppo"]["num_ppo_epochs"] == 1 and budgets["world_base"]["n_docs"] == 2000
    assert profiles.GPU.budgets["sft"]["max_steps"] == 300  # the profile itself is left alone


def test_every_gpu_stage_in_upstream_order():
    names = [n for n in checkpoints.STAGES if n != "base"]
    assert sorted([*dry.STAGES, *dry.SAME_AS]) == sorted(names)
    for name, same in dry.SAME_AS.items():  # a left-out stage repeats measured budgets' batch shapes
        for measured in same.split(", "):
            assert measured in dry.STAGES
    gpu = profiles.GPU
    for i, name in enumerate(dry.STAGES):
        upstream = checkpoints.resolve_upstream(checkpoints.STAGES[name], gpu)
        assert all(u == "base" or dry.STAGES.index(u) < i for u in upstream), name


def test_model_has_smollm2_135m_size():
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**dry.SMOLLM2_135M))
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    attention = model.model.layers[0].self_attn
    assert attention.k_proj.out_features * 3 == attention.q_proj.out_features  # 9 heads share 3
