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


LORA_TRAINING_TOLERANCE = 1e-4  # peft-ex4: largest |learner loss - peft loss| at any step


def _lora_factors(module, r: int, in_features: int, out_features: int):
    """The trainable ``(A, B)`` of one wrapped layer: the parameters shaped ``(r, in)`` and ``(out, r)``."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    a = [p for p in trainable if tuple(p.shape) == (r, in_features)]
    b = [p for p in trainable if tuple(p.shape) == (out_features, r)]
    return (a[0], b[0]) if len(a) == 1 and len(b) == 1 else None


def check_lora_training(add_lora, base_model, batches, r: int = 4, alpha: float = 8,
                        target_modules: Iterable[str] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                         "up_proj", "down_proj"),
                        lr: float = 5e-3, steps: int = 5) -> bool:
    """Exercise peft-ex4: a LoRA written from scratch trains exactly like peft's.

    Wraps one deep copy of `base_model` with the learner's ``add_lora(model, r, alpha,
    target_modules)`` and another with peft's ``get_peft_model`` (same rank, alpha and targets,
    no dropout). It finds each adapted layer's trainable ``A`` (shaped ``r x in``) and ``B``
    (``out x r``) in the learner's model, requires ``B`` to start at zero and copies the learner's
    ``A`` into peft's ``lora_A`` (so any random initialisation is compared fairly). Then it trains
    both with the same loop (`ch02_sft.reference_train`: AdamW on the trainable parameters, the SFT
    loss, one batch per step) and requires the same number of trainable parameters, losses equal
    at every step within `LORA_TRAINING_TOLERANCE`, and a loss that falls. `base_model` is left
    untouched.

    Args:
        add_lora: the learner's function; wraps the target ``nn.Linear`` layers of the model it is
            given, freezes everything else and returns the model.
        base_model: the plain causal LM to adapt.
        batches: collated batches (``input_ids``, ``attention_mask``, ``labels``).
        r, alpha, target_modules: the LoRA settings (scaling ``alpha / r``).
        lr, steps: the training run both models get.
    """
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    from .ch02_sft import reference_train

    if not batches:
        raise ValueError("no batches to train on")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    targets = tuple(target_modules)
    device = next(base_model.parameters()).device
    batches = [{k: b[k].to(device) for k in ("input_ids", "attention_mask", "labels")} for b in batches]
    peft_model = get_peft_model(copy.deepcopy(base_model), LoraConfig(
        r=r, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0, task_type="CAUSAL_LM"))
    try:
        theirs = add_lora(copy.deepcopy(base_model), r, alpha, targets)
        n_theirs = sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    except (AttributeError, RuntimeError, TypeError, ValueError) as e:
        return feedback("peft-ex4", False, f"calling add_lora failed: {e}")
    n_peft = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    if n_theirs != n_peft:
        return feedback("peft-ex4", False, f"your model trains {n_theirs:,} parameters, peft's {n_peft:,}: "
                        + ("freeze every base weight (requires_grad_(False))" if n_theirs > n_peft else
                           f"wrap every nn.Linear named like {list(targets)} with r x in and out x r factors"))
    layers = {n.removeprefix("base_model.model."): m for n, m in peft_model.named_modules()
              if isinstance(getattr(m, "lora_A", None), torch.nn.ModuleDict)}
    with torch.no_grad():
        for name, layer in layers.items():
            base = layer.base_layer
            try:
                factors = _lora_factors(theirs.get_submodule(name), r, base.in_features, base.out_features)
            except AttributeError:
                factors = None
            if factors is None:
                return feedback("peft-ex4", False, f"{name}: expected one trainable A ({r} x {base.in_features}) "
                                f"and one trainable B ({base.out_features} x {r}) in the module at this name")
            a, b = factors
            if b.abs().max() != 0:
                return feedback("peft-ex4", False, f"{name}: B must start at zero, so that the wrapped model "
                                "computes what the base model computes")
            layer.lora_A["default"].weight.copy_(a)
    try:
        theirs_losses = reference_train(theirs, batches, lr, steps)
    except (RuntimeError, TypeError, ValueError) as e:
        return feedback("peft-ex4", False, f"training your model failed: {e}")
    peft_losses = reference_train(peft_model, batches, lr, steps)
    gap = max(abs(a - b) for a, b in zip(theirs_losses, peft_losses))
    ok = gap <= LORA_TRAINING_TOLERANCE and theirs_losses[-1] < theirs_losses[0]
    return feedback("peft-ex4", ok, f"losses {[round(v, 4) for v in theirs_losses]}, peft's "
                    f"{[round(v, 4) for v in peft_losses]} (largest gap {gap:.1e}, allowed "
                    f"{LORA_TRAINING_TOLERANCE:g}; the loss must fall): add (alpha / r) * x A^T B^T to the "
                    "frozen layer's output")
