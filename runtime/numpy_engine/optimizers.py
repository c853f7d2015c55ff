"""Running optimizers (their rules are in the registry, compiler/optimizers.py), gradient clipping,
weight decay and max-norm, on NumPy arrays (schedules: compiler/schedules.py).

Conventions (docs/conventions.md):
- l2 adds (l2/2) * sum(w^2) to the loss, so l2 * w to the gradient; l1 adds l1 * sum|w|.
  Only weights are decayed (dense/conv weights); biases, batchnorm gamma/beta and prelu slopes are not.
- max_norm caps each unit's incoming weight vector (a dense column, a conv filter) after every step.
"""

from __future__ import annotations

import math

import numpy as np

from dlc.compiler.optimizers import OPTIMIZERS
from dlc.runtime.numpy_engine.evolution import GENERATIONS
from dlc.runtime.regularize import Regularizer  # noqa: F401  (shared by the engines)


class Optimizer:
    """Applies a registered optimizer's update rule (compiler/optimizers.py) to every parameter, keeping
    its per-parameter state and one scratch buffer per parameter: a step allocates nothing."""

    def __init__(self, kind: str, hp: dict, params: dict[str, np.ndarray]):
        self.kind = kind
        self.rule = OPTIMIZERS[kind]
        self.hp = hp
        self.params = params
        self.state: dict[str, dict[str, np.ndarray]] = {}  # parameter -> {role: buffer}
        self._tmp: dict[str, np.ndarray] = {}
        self.t = 0

    def _scratch(self, name, like):
        buf = self._tmp.get(name)
        if buf is None or buf.shape != like.shape or buf.dtype != like.dtype:
            buf = self._tmp[name] = np.empty_like(like)
        return buf

    def step(self, grads: dict[str, np.ndarray], lr: float, decoupled: frozenset[str] | set[str] = frozenset()) -> None:
        self.t += 1
        for name, g in grads.items():
            w = self.params[name]
            self.rule.update(w, g, self.state.setdefault(name, {}), self._scratch(name, w), lr, self.hp, self.t,
                             name in decoupled)

    def evolve(self, fitness, rng: np.random.Generator, lr: float, names) -> float:
        """A gradient-free step (the genetic algorithm) over the parameters `names`: returns the best loss."""
        self.t += 1
        return GENERATIONS[self.kind]({n: self.params[n] for n in names}, self.state, fitness, rng, lr, self.hp)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat, for an .npz: `dense1.weight.m`, ..., and the step count `__t__`."""
        flat = {f"{name}.{role}": b for name, roles in self.state.items() for role, b in roles.items()}
        return dict(flat, __t__=np.array(self.t))

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.t = int(state.get("__t__", 0))
        self.state = {}
        for key, v in state.items():
            if key != "__t__":
                name, role = key.rsplit(".", 1)
                self.state.setdefault(name, {})[role] = np.array(v)


def clip_gradients(grads: dict[str, np.ndarray], clip_norm: float | None, clip_value: float | None) -> float:
    """Clip in place: first every entry to [-clip_value, clip_value], then the global norm of the
    clipped gradients to clip_norm. Returns the global norm before any clipping."""
    norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))
    clipped = norm
    if clip_value:
        for g in grads.values():
            np.clip(g, -clip_value, clip_value, out=g)
        clipped = math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))
    if clip_norm and clipped > clip_norm:
        scale = clip_norm / (clipped + 1e-12)
        for g in grads.values():
            g *= scale
    return norm
