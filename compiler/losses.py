"""The loss registry: each loss is one class that declares its task, the output activation it fuses
with, its keys, and computes its value and gradient (averaged over the batch) with NumPy.

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
    export): its task, the output activation it fuses with (and expects), the form of its labels,
    the loss expected before training, and its NumPy value and gradient."""

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

    def value_and_grad(self, out, y, fused: bool, class_weight=None) -> tuple[float, object]:
        """The loss averaged over the batch and its gradient; `class_weight` (classification: one weight
        per class, or None) multiplies each sample's loss by its class's weight (still divided by N)."""
        raise NotImplementedError

    def probabilities(self, out, fused: bool):
        """Outputs as the model's users see them (probabilities for classification)."""
        return out

    def predicted_class(self, probs):
        return probs.argmax(axis=1)


LOSSES: dict[str, Loss] = {}
register = registrar(LOSSES, "loss")


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


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

    def value_and_grad(self, out, y, fused, class_weight=None):
        n = out.shape[0]
        w = None if class_weight is None else np.asarray(class_weight, dtype=out.dtype)[y]  # per sample
        if fused:
            z = out - out.max(axis=1, keepdims=True)
            logsum = np.log(np.exp(z).sum(axis=1))
            per_sample = logsum - z[np.arange(n), y]
            grad = np.exp(z - logsum[:, None])
            grad[np.arange(n), y] -= 1
            if w is not None:
                per_sample = per_sample * w
                grad *= w[:, None]
            return float(np.mean(per_sample)), grad / out.dtype.type(n)
        p = np.clip(out[np.arange(n), y], EPS, 1.0)
        grad = np.zeros_like(out)
        grad[np.arange(n), y] = -(1.0 if w is None else w) / (p * n)
        return float(-np.mean(np.log(p) * (1.0 if w is None else w))), grad

    def probabilities(self, out, fused):
        return softmax(out) if fused else out


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

    @staticmethod
    def _targets(y, out):
        if y.ndim > 1 or out.shape[1] == 1:
            return y.reshape(out.shape).astype(out.dtype)
        return np.eye(out.shape[1], dtype=out.dtype)[y]

    def value_and_grad(self, out, y, fused, class_weight=None):
        t = self._targets(y, out)
        # one output unit: each sample weighted by its label's class (the spec refuses weights otherwise)
        w = 1.0 if class_weight is None else np.asarray(class_weight, dtype=out.dtype)[y.astype(np.int64)].reshape(out.shape)
        if fused:
            value = float(np.mean((np.logaddexp(0, out) - t * out) * w))
            return value, (w * (_sigmoid(out) - t) / out.dtype.type(out.size)).astype(out.dtype)
        p = np.clip(out, EPS, 1 - EPS)
        value = float(-np.mean(w * (t * np.log(p) + (1 - t) * np.log(1 - p))))
        return value, (w * (p - t) / (p * (1 - p) * out.size)).astype(out.dtype)

    def probabilities(self, out, fused):
        return _sigmoid(out) if fused else out

    def predicted_class(self, probs):
        if probs.shape[1] == 1:
            return (probs[:, 0] > 0.5).astype(np.int64)
        return probs.argmax(axis=1)


@register
class MSE(Loss):
    name = "mse"
    doc = "mean squared error"

    def expected_initial_loss(self, units, y):
        yf = np.asarray(y, dtype=np.float64)
        return float(np.mean(yf * yf)), "mean(y^2), the loss of predicting 0"

    def value_and_grad(self, out, y, fused, class_weight=None):
        diff = out - y.reshape(out.shape).astype(out.dtype)
        return float(np.mean(diff * diff)), (2.0 / out.size) * diff


@register
class MAE(Loss):
    name = "mae"
    doc = "mean absolute error"

    def expected_initial_loss(self, units, y):
        return float(np.mean(np.abs(np.asarray(y, dtype=np.float64)))), "mean|y|, the loss of predicting 0"

    def value_and_grad(self, out, y, fused, class_weight=None):
        diff = out - y.reshape(out.shape).astype(out.dtype)
        return float(np.mean(np.abs(diff))), (np.sign(diff) / out.size).astype(out.dtype)
