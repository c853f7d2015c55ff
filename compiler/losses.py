"""The loss registry: each loss is one class that declares its task, the output activation it fuses
with, its keys, and computes its value and gradient (averaged over the batch) with NumPy.

cross_entropy after a final softmax and binary_cross_entropy after a final sigmoid are fused: the
trainer stops before that activation and computes the loss from the logits with log-sum-exp
(softmax) or log(1+exp) (sigmoid), which never returns inf and whose gradient is simply (p - y) / N.
Without the matching output activation the output is taken as probabilities, clipped to [1e-7, 1 - 1e-7].
"""

from __future__ import annotations

from typing import ClassVar

from .attrs import Attr
from .lazy_numpy import lazy_numpy
from .ops.base import registrar

np = lazy_numpy(__name__)

EPS = 1e-7


class Loss:
    name: ClassVar[str]
    task: ClassVar[str] = "regression"  # classification | regression
    fuses: ClassVar[str | None] = None  # the output activation computed inside the loss, from the logits
    attrs: ClassVar[dict[str, Attr]] = {}

    def value_and_grad(self, out, y, fused: bool) -> tuple[float, object]:
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

    def value_and_grad(self, out, y, fused):
        n = out.shape[0]
        if fused:
            z = out - out.max(axis=1, keepdims=True)
            logsum = np.log(np.exp(z).sum(axis=1))
            value = float(np.mean(logsum - z[np.arange(n), y]))
            grad = np.exp(z - logsum[:, None])
            grad[np.arange(n), y] -= 1
            return value, grad / out.dtype.type(n)
        p = np.clip(out[np.arange(n), y], EPS, 1.0)
        grad = np.zeros_like(out)
        grad[np.arange(n), y] = -1.0 / (p * n)
        return float(-np.mean(np.log(p))), grad

    def probabilities(self, out, fused):
        return softmax(out) if fused else out


@register
class BinaryCrossEntropy(Loss):
    name = "binary_cross_entropy"
    task = "classification"
    fuses = "sigmoid"

    @staticmethod
    def _targets(y, out):
        if y.ndim > 1 or out.shape[1] == 1:
            return y.reshape(out.shape).astype(out.dtype)
        return np.eye(out.shape[1], dtype=out.dtype)[y]

    def value_and_grad(self, out, y, fused):
        t = self._targets(y, out)
        if fused:
            value = float(np.mean(np.logaddexp(0, out) - t * out))
            return value, ((_sigmoid(out) - t) / out.dtype.type(out.size)).astype(out.dtype)
        p = np.clip(out, EPS, 1 - EPS)
        value = float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))
        return value, ((p - t) / (p * (1 - p) * out.size)).astype(out.dtype)

    def probabilities(self, out, fused):
        return _sigmoid(out) if fused else out

    def predicted_class(self, probs):
        if probs.shape[1] == 1:
            return (probs[:, 0] > 0.5).astype(np.int64)
        return probs.argmax(axis=1)


@register
class MSE(Loss):
    name = "mse"

    def value_and_grad(self, out, y, fused):
        diff = out - y.reshape(out.shape).astype(out.dtype)
        return float(np.mean(diff * diff)), (2.0 / out.size) * diff


@register
class MAE(Loss):
    name = "mae"

    def value_and_grad(self, out, y, fused):
        diff = out - y.reshape(out.shape).astype(out.dtype)
        return float(np.mean(np.abs(diff))), (np.sign(diff) / out.size).astype(out.dtype)
