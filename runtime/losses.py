"""Each loss of the registry (compiler/losses.py) computed with NumPy: its value averaged over the batch
and its gradient (the NumPy engine's training loss), the probabilities users see and the class they
predict (every engine's scores, eval and predict). A table by loss name, as the torch engine's
lowerings are (runtime/torch_engine/losses.py); tests/contracts/test_registries.py fails for a loss without one.

cross_entropy after a final softmax and binary_cross_entropy after a final sigmoid are fused: the
trainer stops before that activation and the loss is computed from the logits with log-sum-exp
(softmax) or log(1+exp) (sigmoid), which never returns inf and whose gradient is simply (p - y) / N.
Without the matching output activation the output is taken as probabilities, clipped to [EPS, 1 - EPS].
"""

from __future__ import annotations

import numpy as np

from dlc.compiler.losses import EPS, LOSSES
from dlc.compiler.ops.base import registrar

FORMULAS: dict = {}
formula = registrar(FORMULAS, "loss formula")


class Formula:
    """A loss's NumPy value and gradient; the probabilities and classes its outputs mean."""

    name: str

    def value_and_grad(self, out: np.ndarray, y: np.ndarray, fused: bool,
                       class_weight: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """The loss averaged over the batch and its gradient; `class_weight` (classification: one weight
        per class, or None) multiplies each sample's loss by its class's weight (still divided by N)."""
        raise NotImplementedError

    def probabilities(self, out: np.ndarray, fused: bool) -> np.ndarray:
        """Outputs as the model's users see them (probabilities for classification)."""
        return out

    def predicted_class(self, probs: np.ndarray) -> np.ndarray:
        return probs.argmax(axis=1)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * z))


@formula
class CrossEntropy(Formula):
    name = "cross_entropy"

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


@formula
class BinaryCrossEntropy(Formula):
    name = "binary_cross_entropy"

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


@formula
class MSE(Formula):
    name = "mse"

    def value_and_grad(self, out, y, fused, class_weight=None):
        diff = out - y.reshape(out.shape).astype(out.dtype)
        return float(np.mean(diff * diff)), (2.0 / out.size) * diff


@formula
class MAE(Formula):
    name = "mae"

    def value_and_grad(self, out, y, fused, class_weight=None):
        diff = out - y.reshape(out.shape).astype(out.dtype)
        return float(np.mean(np.abs(diff))), (np.sign(diff) / out.size).astype(out.dtype)


def fused_activation(loss: str) -> str | None:
    return LOSSES[loss].fuses


def loss_and_grad(loss: str, out: np.ndarray, y: np.ndarray, fused: bool,
                  class_weight: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    return FORMULAS[loss].value_and_grad(out, y, fused, class_weight)


def probabilities(loss: str, out: np.ndarray, fused: bool) -> np.ndarray:
    return FORMULAS[loss].probabilities(out, fused)


def predicted_class(loss: str, probs: np.ndarray) -> np.ndarray:
    return FORMULAS[loss].predicted_class(probs)
