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

from dlc.compiler.ir import Graph
from dlc.compiler.optimizers import OPTIMIZERS


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

    def step(self, grads: dict[str, np.ndarray], lr: float, decoupled: set[str] = frozenset()) -> None:
        self.t += 1
        for name, g in grads.items():
            w = self.params[name]
            self.rule.update(w, g, self.state.setdefault(name, {}), self._scratch(name, w), lr, self.hp, self.t,
                             name in decoupled)

    def evolve(self, fitness, rng: np.random.Generator, lr: float, names) -> float:
        """A gradient-free step (the genetic algorithm) over the parameters `names`: returns the best loss."""
        self.t += 1
        return self.rule.evolve({n: self.params[n] for n in names}, self.state, fitness, rng, lr, self.hp)

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


class Regularizer:
    """l1/l2 penalties (global, per-layer overrides) and max-norm constraints."""

    def __init__(self, graph: Graph, l1: float, l2: float, max_norm: float | None):
        self.terms = []  # (name, l1, l2)
        self.max_norm = []  # (name, limit, axes)
        self.decayed: set[str] = set()
        for p in graph.trained_params():  # a frozen weight is neither decayed nor constrained
            if not p.decay:
                continue
            self.decayed.add(p.name)
            pl1 = p.l1 if p.l1 is not None else l1
            pl2 = p.l2 if p.l2 is not None else l2
            if pl1 or pl2:
                self.terms.append((p.name, pl1, pl2))
            limit = p.max_norm if p.max_norm is not None else max_norm
            if limit:
                axes = (0,) if len(p.shape) == 2 else tuple(range(1, len(p.shape)))
                self.max_norm.append((p.name, limit, axes))

    def penalty_and_grads(self, params, grads) -> float:
        total = 0.0
        for name, l1, l2 in self.terms:
            w = params[name]
            g = grads[name]
            if l2:
                total += 0.5 * l2 * float(np.vdot(w, w))
                g += l2 * w
            if l1:
                total += l1 * float(np.abs(w).sum())
                g += l1 * np.sign(w)
        return total

    def penalty(self, params) -> float:
        total = 0.0
        for name, l1, l2 in self.terms:
            w = params[name]
            total += 0.5 * l2 * float(np.vdot(w, w)) + l1 * float(np.abs(w).sum())
        return total

    def constrain(self, params) -> None:
        for name, limit, axes in self.max_norm:
            w = params[name]
            norms = np.sqrt(np.sum(w * w, axis=axes, keepdims=True))
            w *= np.minimum(1.0, limit / np.maximum(norms, 1e-12)).astype(w.dtype)
