"""LoRA from scratch: a low-rank update added to a frozen linear layer.

Introduced in chapter 3 ("Parameter-efficient fine-tuning"). A LoRA layer keeps the pretrained
weight `W` frozen and learns a rank-`r` correction:

    y = x Wᵀ + b + (α / r) · x Aᵀ Bᵀ,   A ∈ R^{r × in},  B ∈ R^{out × r}

`B` starts at zero, so a freshly wrapped model computes exactly what the base model computes, and
training moves it away from there. `A` and `B` have the same shapes and initialisation as peft's
``lora_A``/``lora_B`` weights, so `copy_peft_weights` can load a peft adapter into our layers and
the two forwards can be compared number for number.

Functions:

* `apply_lora`: replace the named linear layers of a model with `LoRALinear` and freeze the rest;
* `lora_layers`: the `LoRALinear` modules of a model, by name;
* `copy_peft_weights`: copy a peft LoRA adapter's A/B matrices into our layers;
* `merge_lora`: fold every update into its base weight and put plain `nn.Linear` layers back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")


class LoRALinear(nn.Module):
    """A frozen `nn.Linear` plus a trainable low-rank update, ``W + (alpha / r) · B A``.

    Args:
        base: the linear layer to adapt. Its weight and bias are frozen (``requires_grad=False``).
        r: rank of the update (a positive integer, at most ``min(in_features, out_features)``).
        alpha: scaling numerator; the update is multiplied by ``alpha / r``. Defaults to `r`
            (scaling 1).
        dropout: dropout probability applied to the input of the low-rank path during training.

    Attributes:
        lora_A: `nn.Parameter` of shape ``(r, in_features)``, Kaiming-uniform initialised (as peft).
        lora_B: `nn.Parameter` of shape ``(out_features, r)``, zero-initialised.
        scaling: ``alpha / r``.
        merged: whether the update is currently folded into ``base.weight``.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float | None = None, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if not isinstance(r, int) or isinstance(r, bool) or r < 1:
            raise ValueError(f"rank r must be a positive integer, got {r!r}")
        if r > min(base.in_features, base.out_features):
            raise ValueError(f"rank r={r} exceeds min(in_features, out_features) = "
                             f"{min(base.in_features, base.out_features)}")
        alpha = float(r if alpha is None else alpha)
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, dtype=w.dtype, device=w.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, dtype=w.dtype, device=w.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # the default nn.Linear init, as peft does
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> torch.Tensor:
        """The update ``(alpha / r) · B A``, shaped like ``base.weight``."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.merged:
            return out
        return out + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """Add the update into ``base.weight`` (the forward then costs one matmul)."""
        if self.merged:
            raise RuntimeError("this LoRA layer is already merged")
        self.base.weight += self.delta_weight().to(self.base.weight.dtype)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the update from ``base.weight`` again."""
        if not self.merged:
            raise RuntimeError("this LoRA layer is not merged")
        self.base.weight -= self.delta_weight().to(self.base.weight.dtype)
        self.merged = False

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, r={self.r}, alpha={self.alpha:g}, merged={self.merged}"


def apply_lora(model: nn.Module, r: int, alpha: float | None = None, target_modules: Iterable[str] = ALL_LINEAR,
               dropout: float = 0.0) -> list[str]:
    """Wrap every `nn.Linear` whose name ends with one of `target_modules` in a `LoRALinear`.

    All parameters of `model` are frozen first, so afterwards only the LoRA matrices train. The
    model is changed in place.

    Args:
        model: any `nn.Module`, e.g. a transformers `LlamaForCausalLM`.
        r: LoRA rank.
        alpha: LoRA alpha (scaling ``alpha / r``); defaults to `r`.
        target_modules: suffixes of the module names to adapt, as in peft's ``LoraConfig``
            (e.g. ``("q_proj", "v_proj")``).
        dropout: LoRA dropout.

    Returns:
        The names of the wrapped modules, in model order.

    Raises:
        ValueError: if `target_modules` is empty or matches no `nn.Linear` in `model`.
    """
    targets = tuple(target_modules) if not isinstance(target_modules, str) else (target_modules,)
    if not targets:
        raise ValueError("target_modules is empty")
    names = [name for name, m in model.named_modules()
             if isinstance(m, nn.Linear) and not isinstance(m, LoRALinear) and name.split(".")[-1] in targets]
    if not names:
        raise ValueError(f"no nn.Linear module of the model is named like {targets}")
    for p in model.parameters():
        p.requires_grad_(False)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), r=r, alpha=alpha, dropout=dropout))
    return names


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """The `LoRALinear` modules of `model`, keyed by module name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


@torch.no_grad()
def copy_peft_weights(model: nn.Module, peft_model: nn.Module, adapter_name: str = "default") -> int:
    """Copy the A/B matrices of a peft LoRA adapter into `model`'s `LoRALinear` layers.

    `model` must hold the same base model as `peft_model`, wrapped with `apply_lora` on the same
    target modules and rank. Module ``x.y.q_proj`` of `model` is matched with the module whose name
    ends with ``.x.y.q_proj`` in `peft_model` (peft prefixes ``base_model.model.``).

    Returns:
        The number of layers copied.

    Raises:
        ValueError: if `model` has no LoRA layers, a layer has no peft counterpart for
            `adapter_name`, or ranks or scalings differ.
    """
    ours = lora_layers(model)
    if not ours:
        raise ValueError("model has no LoRALinear layers; call apply_lora first")
    theirs = {name: m for name, m in peft_model.named_modules()
              if hasattr(m, "lora_A") and isinstance(getattr(m, "lora_A"), nn.ModuleDict)}
    for name, layer in ours.items():
        match = [m for n, m in theirs.items() if n == name or n.endswith("." + name)]
        if len(match) != 1 or adapter_name not in match[0].lora_A:
            raise ValueError(f"no peft LoRA layer with adapter {adapter_name!r} matches {name!r}")
        peft_layer = match[0]
        a, b = peft_layer.lora_A[adapter_name].weight, peft_layer.lora_B[adapter_name].weight
        if a.shape != layer.lora_A.shape or b.shape != layer.lora_B.shape:
            raise ValueError(f"{name}: peft rank {a.shape[0]} differs from ours ({layer.r})")
        if not math.isclose(peft_layer.scaling[adapter_name], layer.scaling, rel_tol=1e-6):
            raise ValueError(f"{name}: peft scaling {peft_layer.scaling[adapter_name]} differs from ours ({layer.scaling})")
        layer.lora_A.copy_(a)
        layer.lora_B.copy_(b)
    return len(ours)


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA update into its base weight and replace each `LoRALinear` by its base layer.

    The result is an ordinary model (like peft's ``merge_and_unload``): same outputs, no extra
    matmuls at inference, no LoRA parameters. Changes `model` in place and returns it. The
    restored linear layers stay frozen; call ``requires_grad_(True)`` to train them again.
    """
    for name, layer in lora_layers(model).items():
        if not layer.merged:
            layer.merge()
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer.base)
    return model
