"""A trained model ready for inference: what eval, predict and export read a run into, whichever engine
trained it (its forward is the reference engine's, runtime/numpy_engine/network.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlc.compiler.spec import Spec
from dlc.runtime.data.splits import Preprocess
from dlc.runtime.losses import probabilities
from dlc.runtime.numpy_engine.network import Network
from dlc.runtime.scores import is_fused, outputs_upto, scores


@dataclass
class Model:
    """A graph with values, ready for inference: the NumPy runtime's view of a trained model."""

    spec: Spec
    values: dict[str, np.ndarray]
    preprocess: Preprocess
    classes: list[str] = field(default_factory=list)
    encoder: Any = None  # a text model's tokenizer and vocabulary (runtime/data/tokenize.py), from its run folder

    def __post_init__(self):
        self.net = Network(self.spec.graph, self.values)
        self.fused = is_fused(self.spec)
        self.upto = outputs_upto(self.spec)

    def outputs(self, x_prepared: np.ndarray, batch: int | None = None) -> np.ndarray:
        """Raw outputs (logits when the loss is fused) for already-preprocessed inputs. Overflow is not
        warned about here: predict, eval and export refuse outputs that are not finite, by name."""
        with np.errstate(over="ignore", invalid="ignore"):
            return self.net.predict(x_prepared, batch, self.upto)

    def predict_proba(self, x_raw: np.ndarray) -> np.ndarray:
        """What the exported ONNX model computes: raw inputs -> the network's final outputs."""
        out = self.outputs(self.preprocess.apply(x_raw))
        with np.errstate(over="ignore", invalid="ignore"):
            return probabilities(self.spec.loss, out, self.fused)

    def evaluate(self, x_prepared, y, batch: int | None = None, out: np.ndarray | None = None) -> dict:
        """Loss and accuracy (MAE for regression); `out`: the outputs for x_prepared, when already computed."""
        if len(x_prepared) == 0:
            return {"loss": None, "accuracy": None}
        return scores(self.spec, self.outputs(x_prepared, batch) if out is None else out, y)
