"""The learning-rate schedule registry: each schedule is one class that declares its keys and its
formula (as documented in docs/language.md), and gives the rate of an epoch. Every schedule takes
`warmup=W`: the first W epochs ramp linearly to the base rate, then the schedule runs over the
remaining epochs. The rate changes once per epoch, on every engine alike (the trainer loop asks it).
"""

from __future__ import annotations

import math
from typing import ClassVar

from .attrs import Attr
from .ops.base import registrar

WARMUP = Attr("int", 0, min=0, doc="epochs of linear warm-up")


class Schedule:
    name: ClassVar[str]
    attrs: ClassVar[dict[str, Attr]] = {}
    formula: ClassVar[str] = ""  # the rate after warm-up, for k = e - W of S = max(E - W, 1) epochs

    def rate(self, base: float, hp: dict, k: int, span: int) -> float:
        raise NotImplementedError


SCHEDULES: dict[str, Schedule] = {}
register = registrar(SCHEDULES, "schedule")


@register
class Constant(Schedule):
    name = "constant"
    formula = "lr"

    def rate(self, base, hp, k, span):
        return base


@register
class Step(Schedule):
    name = "step"
    attrs = {"every": Attr("int", 10, min=1, doc="epochs between drops"),
             "gamma": Attr("float", 0.1, min=0, min_open=True, doc="factor per drop")}
    formula = "lr·gamma^⌊k/every⌋"

    def rate(self, base, hp, k, span):
        return base * hp["gamma"] ** (k // hp["every"])


@register
class Exponential(Schedule):
    name = "exponential"
    attrs = {"gamma": Attr("float", 0.95, min=0, min_open=True, doc="factor per epoch")}
    formula = "lr·gamma^k"

    def rate(self, base, hp, k, span):
        return base * hp["gamma"] ** k


@register
class Cosine(Schedule):
    name = "cosine"
    attrs = {"min_lr": Attr("float", 0.0, min=0, doc="the rate at the last epoch")}
    formula = "min_lr + (lr − min_lr)·(1 + cos(π·k/S))/2"

    def rate(self, base, hp, k, span):
        lo = hp["min_lr"]
        return lo + (base - lo) * 0.5 * (1 + math.cos(math.pi * k / span))


def schedule_keys(name: str) -> dict[str, Attr]:
    """A schedule's keys as the schedule line takes them: its own and warmup."""
    return dict(SCHEDULES[name].attrs, warmup=WARMUP)


def learning_rate(base: float, schedule: str, hp: dict, epoch: int, epochs: int) -> float:
    """The learning rate for 0-based `epoch` of `epochs`: during warm-up (e < W) lr·(e+1)/(W+1), then
    the schedule's formula with k = e − W of S = max(E − W, 1) epochs."""
    warmup = hp.get("warmup", 0)
    if warmup and epoch < warmup:
        return base * (epoch + 1) / (warmup + 1)
    return SCHEDULES[schedule].rate(base, hp, epoch - warmup, max(epochs - warmup, 1))
