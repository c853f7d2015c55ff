"""The loss registry: each loss is one class that declares its task, the output activation it fuses
with, the form of its labels, its keys and the loss expected before training. Its value and gradient
are computed by the runtime (runtime/losses.py, NumPy: the reference engine and every engine's scores;
runtime/torch_engine/losses.py: torch).

cross_entropy after a final softmax and binary_cross_entropy after a final sigmoid are fused: the
trainer stops before that activation and computes the loss from the logits with log-sum-exp
(softmax) or log(1+exp) (sigmoid), which never returns inf and whose gradient is simply (p - y) / N.
Without the matching output activation the output is taken as probabilities, clipped to [1e-7, 1 - 1e-7].
"""

from __future__ import annotations

import math
from typing import ClassVar

from .attrs import Attr
from .lazy_numpy import lazy_numpy
from .ops.base import registrar

np = lazy_numpy(__name__)

EPS = 1e-7


class Loss:
    """What a loss is, declared once and read everywhere else (spec checks, lint, diagnose, labels,
    export): its task, the output activation it fuses with (and expects), the form of its labels and
    the loss expected before training."""

    name: ClassVar[str]
    task: ClassVar[str] = "regression"  # classification | regression
    fuses: ClassVar[str | None] = None  # the output activation computed inside the loss, from the logits
    attrs: ClassVar[dict[str, Attr]] = {}
    # what y holds: "index" (one class of K per sample, a K-wide output), "binary" (0/1 per output unit:
    # one unit for two classes, or independent labels), "value" (real targets, one per output unit)
    labels: ClassVar[str] = "value"
    doc: ClassVar[str] = ""

    def check_output(self, activation: str | None, units: int) -> tuple[str, str] | None:
        """(problem, fix) when the model's output does not fit this loss (lint DL105), else None."""
        if activation in {r.fuses for r in LOSSES.values() if r.fuses}:
            return (f"{self.name} with a {activation} output",
                    "use cross_entropy with softmax, or a linear output for regression")
        return None

    def expected_initial_loss(self, units: int, y) -> tuple[float, str]:
        """The loss an untrained model should start near (dlc diagnose), and its formula."""
        raise NotImplementedError


LOSSES: dict[str, Loss] = {}
register = registrar(LOSSES, "loss")


@register
class CrossEntropy(Loss):
    name = "cross_entropy"
    task = "classification"
    fuses = "softmax"
    labels = "index"
    doc = "-log p(true class), averaged; from the logits (log-sum-exp) after a final softmax"
    attrs = {"class_weight": Attr("class_weight", None, searchable=False,
                                  doc="balanced (n / (K·n_c) on the training split), or one weight per class")}

    def check_output(self, activation, units):
        if activation != "softmax":
            return f"cross_entropy with a {activation or 'linear'} output", "end with dense K softmax"
        return None

    def expected_initial_loss(self, units, y):
        return math.log(units), f"ln({units})"


@register
class BinaryCrossEntropy(Loss):
    name = "binary_cross_entropy"
    task = "classification"
    fuses = "sigmoid"
    labels = "binary"
    doc = "-(t log p + (1-t) log(1-p)), averaged over samples and units; from the logits after a final sigmoid"
    attrs = {"class_weight": Attr("class_weight", None, searchable=False,
                                  doc="balanced (n / (2·n_c) on the training split), or (weight of 0, weight of 1)")}

    def check_output(self, activation, units):
        if activation != "sigmoid":
            return f"binary_cross_entropy with a {activation or 'linear'} output", "end with dense 1 sigmoid"
        if units > 1:
            return (f"binary_cross_entropy over {units} outputs",
                    "for one label of many classes use softmax + cross_entropy")
        return None

    def expected_initial_loss(self, units, y):
        return math.log(2), "ln(2)"


@register
class MSE(Loss):
    name = "mse"
    doc = "mean squared error"

    def expected_initial_loss(self, units, y):
        yf = np.asarray(y, dtype=np.float64)
        return float(np.mean(yf * yf)), "mean(y^2), the loss of predicting 0"


@register
class MAE(Loss):
    name = "mae"
    doc = "mean absolute error"

    def expected_initial_loss(self, units, y):
        return float(np.mean(np.abs(np.asarray(y, dtype=np.float64)))), "mean|y|, the loss of predicting 0"
