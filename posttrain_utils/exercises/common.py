"""Helpers the tensor-exercise checkers share (chapters 5 and 6): a tolerant comparison, and a call
that turns a learner's exception into a value the checker can report instead of crashing."""

from __future__ import annotations

import torch

ATOL = 1e-5


def close(theirs, ours, atol: float = ATOL) -> bool:
    """Whether `theirs` (anything `torch.as_tensor` takes) equals tensor `ours` in shape and value."""
    theirs = torch.as_tensor(theirs).detach().to(ours.dtype)
    return theirs.shape == ours.shape and torch.allclose(theirs, ours.detach(), atol=atol, rtol=1e-4)


def call(fn, *args, **kwargs):
    """`fn(*args, **kwargs)`, or the exception it raised (the checker reports it instead of crashing)."""
    try:
        return fn(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 (any learner bug becomes a hint)
        return error



def gradient_hint(theirs, ours, theirs_in, ours_in, no_gradient: str, wrong_gradient: str) -> str | None:
    """Back-propagate the learner's loss and ours; a hint if their gradient is missing or differs.

    Args:
        theirs, ours: scalar losses, computed from `theirs_in` and from `ours_in`.
        theirs_in, ours_in: leaf tensors holding the same values, with ``requires_grad=True``.
        no_gradient: the hint when the learner's loss has no gradient at all.
        wrong_gradient: the hint when its gradient with respect to `theirs_in` is not ours.

    Returns:
        ``None`` when the gradients agree, else the hint.
    """
    if not theirs.requires_grad:
        return no_gradient
    ours.backward()
    theirs.backward()
    return None if theirs_in.grad is not None and close(theirs_in.grad, ours_in.grad) else wrong_gradient
