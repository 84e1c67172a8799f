"""Checkers for the chapter 3 ("Parameter-efficient fine-tuning") exercises. Each prints a verdict and returns a bool."""

from __future__ import annotations

from collections.abc import Iterable

from ..runtime.notebook import feedback


def _adapted_layers(model, target_modules: Iterable[str]):
    """Linear-like modules (plain, peft-wrapped or ours) whose name ends with one of `target_modules`."""
    targets = set(target_modules)
    return [m for name, m in model.named_modules()
            if name.split(".")[-1] in targets and hasattr(m, "in_features") and hasattr(m, "out_features")]


def check_lora_param_count(answer: int, model, r: int, target_modules: Iterable[str]) -> bool:
    """Exercise peft-ex1: the number of parameters LoRA of rank `r` adds on `target_modules` of `model`.

    Args:
        answer: the learner's count.
        model: the model (plain, or already wrapped by peft) whose layers are adapted.
        r: the LoRA rank.
        target_modules: module-name suffixes, as in ``LoraConfig(target_modules=...)``.
    """
    layers = _adapted_layers(model, target_modules)
    if not layers:
        return feedback("peft-ex1", False, f"the model has no layers named like {sorted(set(target_modules))}")
    true = sum(r * (m.in_features + m.out_features) for m in layers)
    return feedback("peft-ex1", int(answer) == true,
                    f"{answer} is not it: each adapted layer adds A (r x in) and B (out x r), "
                    f"and there are {len(layers)} adapted layers")


def check_manual_merge(merged_weight, peft_model, module_name: str, adapter_name: str = "default") -> bool:
    """Exercise peft-ex2: ``W + (alpha / r) B A`` for one LoRA layer of `peft_model`, computed by hand.

    Args:
        merged_weight: the learner's merged weight tensor, shaped like the base weight.
        peft_model: a peft model with a LoRA adapter (not merged).
        module_name: a module name ending in the adapted layer, e.g. ``"layers.0.self_attn.q_proj"``.
        adapter_name: the adapter to merge.
    """
    import torch

    matches = [m for n, m in peft_model.named_modules()
               if (n == module_name or n.endswith("." + module_name)) and hasattr(m, "lora_A")
               and adapter_name in getattr(m, "lora_A", {})]
    if len(matches) != 1:
        return feedback("peft-ex2", False, f"no single LoRA layer named like {module_name!r} with adapter {adapter_name!r}")
    layer = matches[0]
    with torch.no_grad():
        true = layer.base_layer.weight + (layer.lora_B[adapter_name].weight @ layer.lora_A[adapter_name].weight
                                          ) * layer.scaling[adapter_name]
    merged_weight = torch.as_tensor(merged_weight).detach().to(true.dtype)
    ok = merged_weight.shape == true.shape and torch.allclose(merged_weight, true, atol=1e-6, rtol=0)
    return feedback("peft-ex2", ok, "use base_layer.weight + (lora_B.weight @ lora_A.weight) * scaling, "
                    "with the adapter's scaling alpha / r (dict keyed by adapter name)")


def check_nf4_error(answer: float, fp32_weight, quantized_linear) -> bool:
    """Exercise peft-ex3: the mean absolute error of a 4-bit NF4 layer's weight against the fp32 original.

    Args:
        answer: the learner's mean |dequantised - fp32|.
        fp32_weight: the original full-precision weight.
        quantized_linear: the bitsandbytes ``Linear4bit`` that holds the same weight in NF4.
    """
    import bitsandbytes.functional as bnbf
    import torch

    weight = quantized_linear.weight
    if getattr(weight.quant_state, "packing_format_for_cpu", False):
        # On CPUs with AVX-512 BF16, bitsandbytes repacks a 4-bit weight into a CPU-only layout the
        # first time the layer runs inference; dequantize_4bit does not read that layout.
        return feedback("peft-ex3", False, "this layer has already run inference on the CPU, and "
                        "bitsandbytes repacked its weight into a layout dequantize_4bit cannot read: "
                        "load a fresh 4-bit model and dequantise its layer before using it")
    with torch.no_grad():
        restored = bnbf.dequantize_4bit(weight.data, weight.quant_state).float()
        true = (restored - fp32_weight.detach().float().to(restored.device)).abs().mean().item()
    ok = abs(float(answer) - true) <= 1e-6 + 1e-3 * true
    return feedback("peft-ex3", ok, f"{float(answer):.5f} is not it: dequantise with "
                    "bitsandbytes.functional.dequantize_4bit(weight.data, weight.quant_state), then average "
                    "the absolute difference to the fp32 weight")
