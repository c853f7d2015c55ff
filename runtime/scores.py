"""Loss and accuracy of a model's outputs, whichever engine computed them (NumPy, with the loss
registry's formulas: compiler/losses.py), and whether the loss fuses the output activation."""

from __future__ import annotations

import numpy as np

from dlc.compiler.spec import Spec
from dlc.runtime.losses import fused_activation, loss_and_grad, predicted_class, probabilities


def is_fused(spec: Spec) -> bool:
    """The loss computes the final activation itself, from the logits (cross_entropy after softmax,
    binary_cross_entropy after sigmoid): models stop before that node while training."""
    act = fused_activation(spec.loss)
    nodes = spec.graph.nodes
    # the loss takes the activation's input: the node before it, which the last node reads alone
    return act is not None and nodes[-1].op == act and len(nodes) > 1 and nodes[-1].inputs == (nodes[-2].name,)


def outputs_upto(spec: Spec) -> int | None:
    """How many nodes a model runs for its training outputs: all but a fused final activation."""
    return len(spec.graph.nodes) - 1 if is_fused(spec) else None


def correct(spec: Spec, out: np.ndarray, y: np.ndarray) -> int:
    """How many samples of a batch the outputs classify right."""
    return int(np.sum(predicted_class(spec.loss, probabilities(spec.loss, out, is_fused(spec))) == y))


def scores(spec: Spec, out: np.ndarray, y: np.ndarray) -> dict:
    """{"loss", "accuracy"} (and "mae" for regression) of outputs against labels. Overflow is not warned
    about: a loss that is not finite is reported by name where it matters."""
    if len(out) == 0:
        return {"loss": None, "accuracy": None}
    fused = is_fused(spec)
    with np.errstate(over="ignore", invalid="ignore"):
        loss, _ = loss_and_grad(spec.loss, out, y, fused)
        result: dict[str, float | None] = {"loss": loss}
        if spec.task == "classification":
            result["accuracy"] = correct(spec, out, y) / len(y)
        else:
            result["accuracy"] = None
            result["mae"] = float(np.mean(np.abs(out - y.reshape(out.shape))))
    return result
