"""Optimizers, learning-rate schedules, gradient clipping, weight decay and max-norm.

Conventions (docs/conventions.md):
- sgd momentum as PyTorch: buf = momentum * buf + g (buf starts at g); nesterov uses g + momentum * buf.
- adam as PyTorch: eps added to sqrt(v_hat) after bias correction.
- adamw decays decoupled: w -= lr * weight_decay * w, before the adam step, weights only.
- l2 adds (l2/2) * sum(w^2) to the loss, so l2 * w to the gradient; l1 adds l1 * sum|w|.
  Only weights are decayed (dense/conv weights); biases, batchnorm gamma/beta and prelu slopes are not.
- max_norm caps each unit's incoming weight vector (a dense column, a conv filter) after every step.
- schedules change the learning rate once per epoch; warmup ramps it linearly over the first epochs.
"""

from __future__ import annotations

import math

import numpy as np

from dlc.compiler.ir import Graph


class Optimizer:
    def __init__(self, kind: str, hp: dict, params: dict[str, np.ndarray]):
        self.kind = kind
        self.hp = hp
        self.params = params
        self.state: dict[str, np.ndarray] = {}
        self._tmp: dict[str, np.ndarray] = {}
        self.t = 0

    def _buf(self, key, like):
        b = self.state.get(key)
        if b is None:
            b = self.state[key] = np.zeros_like(like)
        return b

    def _scratch(self, name, like):
        """A reusable temporary per parameter: updates run in place, allocating nothing per step."""
        buf = self._tmp.get(name)
        if buf is None or buf.shape != like.shape or buf.dtype != like.dtype:
            buf = self._tmp[name] = np.empty_like(like)
        return buf

    def step(self, grads: dict[str, np.ndarray], lr: float, decoupled: set[str] = frozenset()) -> None:
        self.t += 1
        hp, kind = self.hp, self.kind
        for name, g in grads.items():
            w = self.params[name]
            tmp = self._scratch(name, w)
            if kind == "sgd":
                mu = hp["momentum"]
                if mu:
                    buf = self.state.get(f"{name}.momentum")
                    if buf is None:
                        buf = self.state[f"{name}.momentum"] = g.copy()
                    else:
                        buf *= mu
                        buf += g
                    if hp["nesterov"]:
                        np.multiply(buf, mu, out=tmp)
                        tmp += g
                        update = tmp
                    else:
                        update = buf
                else:
                    update = g
                np.multiply(update, lr, out=tmp)
                w -= tmp
            elif kind == "adagrad":
                acc = self._buf(f"{name}.sum_sq", w)
                np.multiply(g, g, out=tmp)
                acc += tmp
                np.sqrt(acc, out=tmp)
                tmp += hp["eps"]
                np.divide(g, tmp, out=tmp)
                tmp *= lr
                w -= tmp
            elif kind == "rmsprop":
                v = self._buf(f"{name}.sq_avg", w)
                v *= hp["rho"]
                np.multiply(g, g, out=tmp)
                tmp *= 1 - hp["rho"]
                v += tmp
                np.sqrt(v, out=tmp)
                tmp += hp["eps"]
                np.divide(g, tmp, out=tmp)
                if hp["momentum"]:
                    buf = self._buf(f"{name}.momentum", w)
                    buf *= hp["momentum"]
                    buf += tmp
                    np.multiply(buf, lr, out=tmp)
                else:
                    tmp *= lr
                w -= tmp
            else:  # adam, adamw
                if kind == "adamw" and name in decoupled and hp["weight_decay"]:
                    w *= 1 - lr * hp["weight_decay"]
                b1, b2 = hp["beta1"], hp["beta2"]
                m = self._buf(f"{name}.m", w)
                v = self._buf(f"{name}.v", w)
                m *= b1
                np.multiply(g, 1 - b1, out=tmp)
                m += tmp
                v *= b2
                np.multiply(g, g, out=tmp)
                tmp *= 1 - b2
                v += tmp
                c1 = 1 - b1 ** self.t
                c2 = 1 - b2 ** self.t
                # w -= (lr / c1) * m / (sqrt(v / c2) + eps)
                np.multiply(v, 1 / c2, out=tmp)
                np.sqrt(tmp, out=tmp)
                tmp += hp["eps"]
                np.divide(m, tmp, out=tmp)
                tmp *= lr / c1
                w -= tmp

    def state_dict(self) -> dict[str, np.ndarray]:
        return dict(self.state, __t__=np.array(self.t))

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.t = int(state.get("__t__", 0))
        self.state = {k: np.array(v) for k, v in state.items() if k != "__t__"}


def learning_rate(base: float, schedule: str, hp: dict, epoch: int, epochs: int) -> float:
    """The learning rate for 0-based `epoch`."""
    warmup = hp.get("warmup", 0)
    if warmup and epoch < warmup:
        return base * (epoch + 1) / (warmup + 1)
    e = epoch - warmup
    span = max(epochs - warmup, 1)
    if schedule == "step":
        return base * hp["gamma"] ** (e // hp["every"])
    if schedule == "exponential":
        return base * hp["gamma"] ** e
    if schedule == "cosine":
        lo = hp["min_lr"]
        return lo + (base - lo) * 0.5 * (1 + math.cos(math.pi * e / span))
    return base


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
        for p in graph.params():
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
