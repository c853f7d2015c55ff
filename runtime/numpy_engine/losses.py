"""The runtime's view of the loss registry (compiler/losses.py): a loss by its name in the spec."""

from __future__ import annotations

import numpy as np

from dlc.compiler.losses import LOSSES


def fused_activation(loss: str) -> str | None:
    return LOSSES[loss].fuses


def loss_and_grad(loss: str, out: np.ndarray, y: np.ndarray, fused: bool,
                  class_weight: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    return LOSSES[loss].value_and_grad(out, y, fused, class_weight)


def probabilities(loss: str, out: np.ndarray, fused: bool) -> np.ndarray:
    return LOSSES[loss].probabilities(out, fused)


def predicted_class(loss: str, probs: np.ndarray) -> np.ndarray:
    return LOSSES[loss].predicted_class(probs)
