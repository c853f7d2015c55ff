"""The engine seam: what the trainer loop drives, and the engines by name.

An engine holds one model being trained -- its weights, its optimizer and its noise generator -- on
some device. The loop in runtime/trainer.py (epochs, shuffling, schedules and warm-up, validation,
early stop, history, checkpoints, resume, Ctrl-C) exists once and talks to an engine only through
this interface; everything crosses it as NumPy arrays keyed by dlc's names (`dense1.weight`,
`batchnorm1.running_mean`, `dense1.weight.m`), so checkpoints and run folders are the same whichever
engine wrote them.

    numpy   runtime/numpy_engine/  the reference: the IR interpreted with NumPy (the default)
    torch   runtime/torch_engine/  the IR lowered to PyTorch: GPUs, torchrun (optional extra)

Adding an engine: a subclass of `Engine` in its own package, and its line in compiler/engines.py.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np

from dlc.compiler.ir import Node
from dlc.compiler.spec import Spec

from dlc.compiler.engines import DEFAULT_ENGINE, ENGINES  # noqa: F401  (the table: compiler/engines.py)


class Engine(ABC):
    """One model being trained. `values` given at construction are the starting weights (dlc's own
    init, so every engine starts from the same numbers); the engine owns its copy from then on."""

    name: str

    @abstractmethod
    def __init__(self, spec: Spec, values: dict[str, np.ndarray], regularize: bool = True) -> None:
        """The spec's model starting from `values` (dlc's init, a run's weights or a checkpoint's, by dlc
        name); with `regularize` False, l1/l2 and max-norm are left out (diagnose's plain-loss checks).
        An engine may take more keywords after these (the torch engine: its process group)."""

    @abstractmethod
    def step_with_gradients(self, xb: np.ndarray, yb: np.ndarray, lr: float) -> tuple[float, np.ndarray, dict]:
        """`step`, also returning the gradient it applied to each trained parameter (penalties added,
        clipped), as NumPy arrays by dlc name: what dlc diagnose reads."""

    @abstractmethod
    def training_loss(self, x: np.ndarray, y: np.ndarray) -> float:
        """The plain loss (no penalties) of a training-mode forward pass, its noise drawn from a generator
        seeded 0 and the engine's own left as it was; no step is taken (dlc diagnose's initial loss)."""

    @abstractmethod
    def input_gradient(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The plain loss's gradient at the input x (inference mode: no noise, running statistics, nothing
        changed): how much each input value -- each step of a sequence -- moves the loss (dlc diagnose's
        gradient through time)."""

    @abstractmethod
    def trace(self, x: np.ndarray) -> Iterator[tuple[Node, np.ndarray]]:
        """(node, its output as a NumPy array in NCHW) for every node in graph order, in training mode
        with noise seeded 0 as `training_loss`'s (dlc diagnose's dead and saturated units)."""

    @abstractmethod
    def reseed_noise(self, seed: int) -> None:
        """Restart the noise generator (dropout, rrelu) from `seed` (dlc diagnose's overfit check)."""

    @abstractmethod
    def step(self, xb: np.ndarray, yb: np.ndarray, lr: float) -> tuple[float, np.ndarray]:
        """One optimisation step on a batch: forward, loss, backward, l1/l2, clipping (value, then
        norm), the optimizer's update, max-norm. -> (the loss with penalties, the batch's outputs).
        A step whose loss is not finite returns it and changes nothing."""

    @abstractmethod
    def outputs(self, x: np.ndarray) -> np.ndarray:
        """Inference-mode outputs (dropout off, batchnorm running statistics) for preprocessed inputs:
        logits where the loss fuses the output activation (runtime/scores.py)."""

    @abstractmethod
    def weights(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, float32, by dlc name."""

    @abstractmethod
    def load_weights(self, values: dict[str, np.ndarray]) -> None:
        """Set every parameter and buffer (values checked against the spec by the caller)."""

    @abstractmethod
    def optimizer_state(self) -> dict[str, np.ndarray]:
        """The optimizer's state, flat: `NAME.ROLE` arrays and the step count `__t__`."""

    @abstractmethod
    def load_optimizer_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Set the optimizer's state from `optimizer_state()`'s arrays (checked by the caller)."""

    @abstractmethod
    def noise_state(self):
        """The noise generator's state (dropout, rrelu) as JSON: what a checkpoint keeps."""

    @abstractmethod
    def load_noise_state(self, state) -> None:
        """Set the noise generator's state; ValueError/TypeError/KeyError when it is not one of ours."""

    class_weight: np.ndarray | None = None
    stats: dict | None = None  # per weight: [sum of grad norms, sum of |ΔW|/|W|, steps] while tracked

    def track(self) -> None:
        """From now on, steps record each weight's gradient norm and update/weight ratio (the live view)."""
        self.stats = {}

    def pop_stats(self) -> dict[str, tuple[float, float]]:
        """Per weight, (mean gradient norm, mean |ΔW|/|W|) over the steps since the last call."""
        out = {k: (g / n, r / n) for k, (g, r, n) in (self.stats or {}).items() if n}
        if self.stats is not None:
            self.stats = {}
        return out

    def _record(self, name: str, grad_norm: float, update_norm: float, weight_norm: float) -> None:
        if self.stats is None:
            return
        s = self.stats.setdefault(name, [0.0, 0.0, 0])
        s[0] += grad_norm
        s[1] += update_norm / weight_norm if weight_norm > 0 else 0.0
        s[2] += 1

    def set_class_weight(self, weights: np.ndarray | None) -> None:
        """The weight of each class in the training loss (runtime/class_weight.py), or None."""
        self.class_weight = weights

    @classmethod
    def check(cls, spec: Spec) -> None:
        """Refuse, before anything is allocated or written, what this engine cannot run here (a device
        this machine lacks); the compiler has refused what no machine can (dlc check)."""

    def close(self) -> None:
        """Training is over (also after an error): release what the engine holds beyond its arrays
        (torchrun's process group)."""

    def describe(self) -> dict:
        """What metrics.json records about the engine: its name, device, processes, versions."""
        return {"engine": self.name, "device": "cpu", "world_size": 1}


def engine_name(spec: Spec) -> str:
    return spec["train"].get("engine") or DEFAULT_ENGINE


def engine_class(spec: Spec) -> type[Engine]:
    """The class of the engine the spec's train line names (train engine=..., or --engine); importing
    the torch engine without torch installed is a DLError with the install command."""
    module, _, cls = ENGINES[engine_name(spec)].implementation.partition(":")
    return getattr(importlib.import_module(module), cls)


def make_engine(spec: Spec, values: dict[str, np.ndarray], regularize: bool = True) -> Engine:
    """The spec's engine, starting from `values`."""
    return engine_class(spec)(spec, values, regularize=regularize)


def process_rank() -> int:
    """This process's rank when a launcher (torchrun) started several, else 0: rank 0 alone writes
    the run folder and prints."""
    import os
    return int(os.environ.get("RANK", "0"))


def noise_seed(spec: Spec) -> list[int]:
    """The seed of the noise generator (dropout, rrelu); the shuffling generator is [seed, 1]."""
    return [spec["train"]["seed"], 2]


def check_pcg64_state(st) -> None:
    """A NumPy PCG64 state as bit_generator.state returns it; numbers in their ranges (NumPy takes
    an out-of-range one silently modulo 2**128, or fails deep inside)."""
    if not isinstance(st, dict) or st.get("bit_generator") != "PCG64" or not isinstance(st.get("state"), dict):
        raise ValueError("not a PCG64 state")
    inner = st["state"]
    for key in ("state", "inc"):
        v = inner.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2 ** 128:
            raise ValueError(f"'{key}' is not a 128-bit number")
    if inner["inc"] % 2 == 0:
        raise ValueError("'inc' must be odd")
    if st.get("has_uint32") not in (0, 1) or isinstance(st.get("uinteger"), bool) or \
            not isinstance(st.get("uinteger"), int) or not 0 <= st["uinteger"] < 2 ** 32:
        raise ValueError("'has_uint32' or 'uinteger' is out of range")
