"""l1/l2 penalties (global, per-layer overrides) and max-norm constraints, on a model's arrays by dlc name
(docs/conventions.md: l2 adds (l2/2)*sum(w^2) to the loss; only weights are decayed; max-norm caps each
unit's incoming weight vector after every step). Shared by the engines: the NumPy engine calls its
methods; the torch engine reads its lists (`terms`, `max_norm`, `decayed`) and applies them to tensors."""

from __future__ import annotations

import numpy as np

from dlc.compiler.ir import Graph


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
