"""A chapter's Check as a controlled experiment: effects, guards and identities.

Introduced in chapter 0; every chapter ends with one `check` call. It takes three kinds of
condition, and the placebo run (``make placebo``, every training budget zero steps) holds each
kind to its own rule:

* **effects** are the lesson ("PPO cuts the sampled rude rate by >= 80 %"). Each must fail when
  the method does nothing, so each must fail in the placebo run.
* **guards** say that nothing broke ("format >= 95 %", "facts within 5 points of SFT's"). They
  hold whether or not the method ran: in both runs.
* **identities** say that a from-scratch piece equals the module's or the library's. They hold
  in both runs.

A condition is a bool, or better a `Bound` (`at_least`, `above`, `at_most`, `below`): a value
against a threshold, so that the seed band can show the *margin* by which each seed clears it
(``make seeds``, `runtime.seeds.band`). Every Check is recorded to ``$POSTTRAIN_FIGURES`` when
that names a file (`runtime.seeds.record`).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

KINDS = ("effect", "guard", "identity")
_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


@dataclass(frozen=True)
class Bound:
    """`value` `op` `bound`, e.g. ``Bound(0.93, ">=", 0.8)``; true when it holds.

    Its `margin` is how far `value` clears `bound` (negative when it does not), in the value's
    units: ``value - bound`` for ``>=`` and ``>``, ``bound - value`` for ``<=`` and ``<``.
    """

    value: float
    op: str
    bound: float

    def __post_init__(self):
        if self.op not in _OPS:
            raise ValueError(f"unknown comparison {self.op!r}; expected one of {sorted(_OPS)}")

    def __bool__(self) -> bool:
        return bool(_OPS[self.op](float(self.value), float(self.bound)))

    @property
    def margin(self) -> float:
        gap = float(self.value) - float(self.bound)
        return gap if self.op in (">=", ">") else -gap


def at_least(value, bound) -> Bound:
    """``value >= bound``."""
    return Bound(float(value), ">=", float(bound))


def above(value, bound) -> Bound:
    """``value > bound``."""
    return Bound(float(value), ">", float(bound))


def at_most(value, bound) -> Bound:
    """``value <= bound``."""
    return Bound(float(value), "<=", float(bound))


def below(value, bound) -> Bound:
    """``value < bound``."""
    return Bound(float(value), "<", float(bound))


def margin(condition) -> float | None:
    """A condition's margin (`Bound.margin`), ``None`` for a plain bool."""
    return condition.margin if isinstance(condition, Bound) else None


def in_placebo() -> bool:
    """Whether this process runs the placebo: the active profile's, else ``$POSTTRAIN_PLACEBO``."""
    from . import profiles

    try:
        return profiles.current().placebo
    except RuntimeError:  # no profile activated (a unit test)
        return profiles.placebo_from_env()


def kinds_of(effects: dict, guards: dict, identities: dict) -> dict[str, str]:
    """Every condition's name -> its kind; a `ValueError` when a name is used twice."""
    kinds: dict[str, str] = {}
    for kind, group in zip(KINDS, (effects, guards, identities)):
        for name in group:
            if name in kinds:
                raise ValueError(f"condition {name!r} is given twice: as {kinds[name]} and as {kind}")
            kinds[name] = kind
    return kinds


def expected(kind: str, placebo: bool) -> bool:
    """What a condition of `kind` must be: true in the real run; in the placebo, effects false."""
    return not (placebo and kind == "effect")


def check(figures: dict, effects: dict | None = None, guards: dict | None = None,
          identities: dict | None = None, enforce: bool = True) -> dict:
    """A chapter's Check: print its figures and conditions by kind, record them, and fail loudly.

    Args:
        figures: name -> number, e.g. ``{"facts_em (lora)": 0.93}``.
        effects: name -> condition (a bool or a `Bound`): the lesson; each fails untrained.
        guards: name -> condition: nothing broke; true with or without training.
        identities: name -> condition: from scratch == module == library.
        enforce: raise when a condition is not as it must be. Chapters pass
            ``profile.name == "cpu"`` where the thresholds are calibrated for the tiny world only.

    Returns:
        name -> whether the condition held.

    Raises:
        ValueError: if no condition is given, or a name is used twice.
        AssertionError: naming every condition that is not as it must be (when `enforce`): in the
            real run a condition that failed; in the placebo run an effect that held without
            training, or a guard or identity that failed.
    """
    from .seeds import record

    groups = {"effect": effects or {}, "guard": guards or {}, "identity": identities or {}}
    kinds = kinds_of(*groups.values())
    if not kinds:
        raise ValueError("a Check needs at least one condition")
    placebo = in_placebo()
    held = {name: bool(c) for group in groups.values() for name, c in group.items()}
    margins = {name: margin(c) for group in groups.values() for name, c in group.items()}
    width = max(map(len, [*figures, *kinds]))
    for name, value in figures.items():
        shown = f"{value:.4g}" if isinstance(value, float) else f"{value}"
        print(f"{name:<{width}}  {shown}")
    titles = {"effect": "effects: the lesson", "guard": "guards: nothing broke",
              "identity": "identities: from scratch == library"}
    if placebo:
        print("\nplacebo run (every training budget zero steps): every effect must FAIL")
    for kind, group in groups.items():
        if group:
            print(f"\n{titles[kind]}")
        for name in group:
            extra = "" if margins[name] is None else f"  (margin {margins[name]:+.3g})"
            print(f"{'PASS' if held[name] else 'FAIL'}  {name}{extra}")
    record(figures, held, kinds=kinds, margins=margins, placebo=placebo)
    wrong = [name for name, ok in held.items() if ok != expected(kinds[name], placebo)]
    if wrong and enforce:
        what = ("held without training, or a guard or identity failed" if placebo
                else "does not hold")
        raise AssertionError(f"the chapter's lesson {what}: {wrong}")
    return held
