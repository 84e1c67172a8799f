"""Chapter 11's exercise checkers, both ways: the reference solutions pass; constants, common
mistakes and a function that raises fail with a hint."""

import math

import torch

from posttrain_utils import scaling
from posttrain_utils.exercises import ch11_scaling

BYTES = {"params": 2, "grads": 2, "optimizer": 12}
SPLIT = {"ddp": (), "zero1": ("optimizer",), "zero2": ("grads", "optimizer"),
         "zero3": ("params", "grads", "optimizer")}


def my_per_gpu_bytes(n_params, n_gpus, strategy, split=SPLIT, rounding=math.ceil):
    out = {k: b * (rounding(n_params / n_gpus) if k in split[strategy] else n_params) for k, b in BYTES.items()}
    out["total"] = sum(out.values())
    return out


def my_state_bytes(model, optimizer):
    size = lambda t: t.numel() * t.element_size()  # noqa: E731
    params = list(model.parameters())
    out = {"params": sum(size(p) for p in params),
           "grads": sum(size(p.grad) for p in params if p.grad is not None),
           "optimizer": sum(size(v) for s in optimizer.state.values() for v in s.values()
                            if torch.is_tensor(v) and v.dim() > 0)}
    out["total"] = sum(out.values())
    return out


def test_memory_formula_both_ways(capsys):
    assert ch11_scaling.check_memory_formula(my_per_gpu_bytes)
    assert ch11_scaling.check_memory_formula(lambda n, g, s: my_per_gpu_bytes(n, g, s, rounding=lambda x: x))
    assert ch11_scaling.check_memory_formula(lambda n, g, s: scaling.per_gpu_bytes(n, g, s))
    capsys.readouterr()
    wrong = {
        "constant": (lambda n, g, s: {"params": 1, "grads": 1, "optimizer": 1, "total": 3}, "should be"),
        "zero2 keeps grads": (lambda n, g, s: my_per_gpu_bytes(
            n, g, s, split={**SPLIT, "zero2": ("optimizer",)}), "zero2 splits the grads"),
        "ddp splits": (lambda n, g, s: my_per_gpu_bytes(n, g, s, split={**SPLIT, "ddp": ("optimizer",)}),
                       "ddp does not split the optimizer"),
        "bad total": (lambda n, g, s: {**my_per_gpu_bytes(n, g, s), "total": 0}, "'total' should be"),
        "no dict": (lambda n, g, s: 16 * n, "return a dict"),
        "strings": (lambda n, g, s: dict.fromkeys(("params", "grads", "optimizer", "total"), "x"), "a number"),
        "raises": (lambda n, g, s: 1 / 0, "ZeroDivisionError"),
    }
    for name, (fn, hint) in wrong.items():
        assert not ch11_scaling.check_memory_formula(fn), name
        assert hint in capsys.readouterr().out, name


def test_state_bytes_both_ways(capsys):
    assert ch11_scaling.check_state_bytes(my_state_bytes)
    assert ch11_scaling.check_state_bytes(lambda m, o: {k: v for k, v in scaling.state_bytes(m, o).items()})
    capsys.readouterr()

    def with_steps(model, optimizer):  # counts the 0-dim step counters too
        out = my_state_bytes(model, optimizer)
        out["optimizer"] = sum(v.numel() * v.element_size() for s in optimizer.state.values() for v in s.values())
        out["total"] = out["params"] + out["grads"] + out["optimizer"]
        return out

    def grads_as_params(model, optimizer):  # assumes every weight has a gradient
        out = my_state_bytes(model, optimizer)
        out["grads"] = out["params"]
        out["total"] = sum(out[k] for k in ("params", "grads", "optimizer"))
        return out

    wrong = {
        "constant": (lambda m, o: {"params": 1, "grads": 1, "optimizer": 1, "total": 3}, "params is"),
        "step counters": (with_steps, "0-dimensional step counters"),
        "frozen grads": (grads_as_params, "with the embeddings frozen: grads"),
        "raises": (lambda m, o: 1 / 0, "ZeroDivisionError"),
    }
    for name, (fn, hint) in wrong.items():
        assert not ch11_scaling.check_state_bytes(fn), name
        assert hint in capsys.readouterr().out, name
