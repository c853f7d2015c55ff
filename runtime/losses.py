"""Losses with their gradients, averaged over the batch.

cross_entropy after a final softmax and binary_cross_entropy after a final sigmoid are
fused: the trainer stops before that activation and computes the loss from the logits
with log-sum-exp (softmax) or log(1+exp) (sigmoid), which never returns inf and whose
gradient is simply (p - y) / N. Without the matching output activation the output is
taken as probabilities, clipped to [1e-7, 1 - 1e-7].
"""

from __future__ import annotations

import numpy as np

EPS = 1e-7


def fused_activation(loss: str) -> str | None:
    return {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(loss)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _bce_targets(y, out):
    return (y.reshape(out.shape) if y.ndim > 1 or out.shape[1] == 1 else np.eye(out.shape[1], dtype=out.dtype)[y]).astype(out.dtype)


def loss_and_grad(loss: str, out: np.ndarray, y: np.ndarray, fused: bool) -> tuple[float, np.ndarray]:
    n = out.shape[0]
    if loss == "cross_entropy":
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
    if loss == "binary_cross_entropy":
        t = _bce_targets(y, out)
        if fused:
            value = float(np.mean(np.logaddexp(0, out) - t * out))
            sig = 0.5 * (1 + np.tanh(0.5 * out))
            return value, ((sig - t) / out.dtype.type(out.size)).astype(out.dtype)
        p = np.clip(out, EPS, 1 - EPS)
        value = float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))
        return value, ((p - t) / (p * (1 - p) * out.size)).astype(out.dtype)
    t = y.reshape(out.shape).astype(out.dtype)
    diff = out - t
    if loss == "mse":
        return float(np.mean(diff * diff)), (2.0 / out.size) * diff
    if loss == "mae":
        return float(np.mean(np.abs(diff))), (np.sign(diff) / out.size).astype(out.dtype)
    raise ValueError(f"unknown loss {loss}")


def probabilities(loss: str, out: np.ndarray, fused: bool) -> np.ndarray:
    """Outputs as the model's users see them: probabilities for classification losses."""
    if fused and loss == "cross_entropy":
        return softmax(out)
    if fused and loss == "binary_cross_entropy":
        return 0.5 * (1 + np.tanh(0.5 * out))
    return out


def predicted_class(loss: str, probs: np.ndarray) -> np.ndarray:
    if loss == "binary_cross_entropy" and probs.shape[1] == 1:
        return (probs[:, 0] > 0.5).astype(np.int64)
    return probs.argmax(axis=1)
