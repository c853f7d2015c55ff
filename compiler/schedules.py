"""The learning-rate schedule registry: each schedule is one class that declares its keys and its
formula (as documented in docs/language.md), and gives the rate of an epoch. Every schedule takes
`warmup=W`: the first W epochs ramp linearly to the base rate, then the schedule runs over the
remaining epochs. The rate changes once per epoch, on every engine alike (the trainer loop asks it).

A schedule's rate is a function of the epoch and of the monitored loss of the epochs before it (the
validation loss, or the training loss without a validation split: what early stopping watches), which
the run's history holds; so `plateau`, which reacts to it, needs no state of its own, and a resumed
run replays exactly the rates of an uninterrupted one.
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

    def rate(self, base: float, hp: dict, k: int, span: int, monitored: list[float]) -> float:
        """The rate of the k-th epoch after warm-up of `span`; `monitored`: the monitored loss of the
        epochs after warm-up completed before it (k of them)."""
        raise NotImplementedError


SCHEDULES: dict[str, Schedule] = {}
register = registrar(SCHEDULES, "schedule")


@register
class Constant(Schedule):
    name = "constant"
    formula = "lr"

    def rate(self, base, hp, k, span, monitored):
        return base


@register
class Step(Schedule):
    name = "step"
    attrs = {"every": Attr("int", 10, min=1, doc="epochs between drops"),
             "gamma": Attr("float", 0.1, min=0, min_open=True, doc="factor per drop")}
    formula = "lr·gamma^⌊k/every⌋"

    def rate(self, base, hp, k, span, monitored):
        return base * hp["gamma"] ** (k // hp["every"])


@register
class Exponential(Schedule):
    name = "exponential"
    attrs = {"gamma": Attr("float", 0.95, min=0, min_open=True, doc="factor per epoch")}
    formula = "lr·gamma^k"

    def rate(self, base, hp, k, span, monitored):
        return base * hp["gamma"] ** k


@register
class Cosine(Schedule):
    name = "cosine"
    attrs = {"min_lr": Attr("float", 0.0, min=0, doc="the rate at the last epoch")}
    formula = "min_lr + (lr − min_lr)·(1 + cos(π·k/S))/2"

    def rate(self, base, hp, k, span, monitored):
        lo = hp["min_lr"]
        return lo + (base - lo) * 0.5 * (1 + math.cos(math.pi * k / span))


@register
class MultiStep(Schedule):
    name = "multistep"
    attrs = {"milestones": Attr("epochs", (30, 60, 90), min=1, searchable=False,
                                doc="epochs (after warm-up) at which the rate is multiplied by gamma"),
             "gamma": Attr("float", 0.1, min=0, min_open=True, doc="factor per milestone")}
    formula = "lr·gamma^(milestones ≤ k)"

    def rate(self, base, hp, k, span, monitored):
        return base * hp["gamma"] ** sum(1 for m in hp["milestones"] if m <= k)


@register
class Poly(Schedule):
    name = "poly"
    attrs = {"power": Attr("float", 1.0, min=0, min_open=True, doc="1 decays linearly")}
    formula = "lr·(1 − k/S)^power"

    def rate(self, base, hp, k, span, monitored):
        return base * (1 - min(k, span) / span) ** hp["power"]


@register
class Plateau(Schedule):
    """ReduceLROnPlateau (Keras, PyTorch): after `patience` epochs in which the monitored loss did not
    improve on its best by more than `threshold` (relative), the rate is multiplied by `factor`, not
    below `min_lr`; the count starts again after each reduction."""

    name = "plateau"
    attrs = {"patience": Attr("int", 10, min=1, doc="epochs without improvement before a reduction"),
             "factor": Attr("float", 0.1, min=0, max=1, min_open=True, max_open=True, doc="factor per reduction"),
             "threshold": Attr("float", 1e-4, min=0, doc="relative improvement that counts"),
             "min_lr": Attr("float", 0.0, min=0, doc="the rate never goes below this")}
    formula = "lr·factor^(reductions so far), at least min_lr"

    def reductions(self, hp: dict, monitored: list[float]) -> int:
        best, wait, count = math.inf, 0, 0
        for value in monitored:
            improved = value < (best * (1 - hp["threshold"]) if best > 0 else best)
            if improved:
                best, wait = value, 0
            else:
                wait += 1
                if wait >= hp["patience"]:
                    count, wait = count + 1, 0
        return count

    def rate(self, base, hp, k, span, monitored):
        return max(base * hp["factor"] ** self.reductions(hp, monitored), min(hp["min_lr"], base))


def schedule_keys(name: str) -> dict[str, Attr]:
    """A schedule's keys as the schedule line takes them: its own and warmup."""
    return dict(SCHEDULES[name].attrs, warmup=WARMUP)


def learning_rate(base: float, schedule: str, hp: dict, epoch: int, epochs: int,
                  monitored: list[float] | tuple = ()) -> float:
    """The learning rate for 0-based `epoch` of `epochs`: during warm-up (e < W) lr·(e+1)/(W+1), then
    the schedule's formula with k = e − W of S = max(E − W, 1) epochs. `monitored`: the monitored loss
    of each completed epoch (the history's), for the schedules that react to it."""
    warmup = hp.get("warmup", 0)
    if warmup and epoch < warmup:
        return base * (epoch + 1) / (warmup + 1)
    return SCHEDULES[schedule].rate(base, hp, epoch - warmup, max(epochs - warmup, 1), list(monitored[warmup:epoch]))
