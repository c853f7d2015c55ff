"""The optimizer registry: each optimizer is one class that declares its keys (typed, with defaults
and ranges), its usual learning-rate range (the linter warns 10x beyond it), the state it keeps per
parameter, and its update rule (NumPy, in place, allocating nothing per step).

Conventions (docs/conventions.md):
- sgd momentum as PyTorch: buf = momentum * buf + g (buf starts at g); nesterov uses g + momentum * buf.
- adam as PyTorch: eps added to sqrt(v_hat) after bias correction.
- adamw decays decoupled: w -= lr * weight_decay * w, before the adam step, weights only.
"""

from __future__ import annotations

from typing import ClassVar

from .attrs import Attr
from .lazy_numpy import lazy_numpy
from .ops.base import registrar

np = lazy_numpy(__name__)

CLIP = {
    "clip_norm": Attr("float", None, min=0, min_open=True, doc="rescale the global gradient norm to at most this"),
    "clip_value": Attr("float", None, min=0, min_open=True, doc="clip every gradient entry to [-v, v]"),
}


class OptimizerRule:
    name: ClassVar[str]
    attrs: ClassVar[dict[str, Attr]] = {}
    lr_range: ClassVar[tuple[float, float]] = (1e-5, 1e-2)
    state: ClassVar[tuple[str, ...]] = ()  # per-parameter buffers, the names in optimizer state (dense1.weight.m)

    def update(self, w, g, state: dict, tmp, lr: float, hp: dict, t: int, decayed: bool) -> None:
        """One step for one parameter, in place: `state` holds its buffers by role (created here on
        first use), `tmp` is a scratch array like w, `t` the step count (1 on the first step)."""
        raise NotImplementedError

    @staticmethod
    def buffer(state: dict, role: str, like):
        b = state.get(role)
        if b is None:
            b = state[role] = np.zeros_like(like)
        return b


OPTIMIZERS: dict[str, OptimizerRule] = {}
register = registrar(OPTIMIZERS, "optimizer")


@register
class SGD(OptimizerRule):
    name = "sgd"
    attrs = {"lr": Attr("float", 0.01, min=0, min_open=True),
             "momentum": Attr("float", 0.0, min=0, max=1, max_open=True),
             "nesterov": Attr("bool", False)}
    lr_range = (1e-4, 1.0)
    state = ("momentum",)

    def update(self, w, g, state, tmp, lr, hp, t, decayed):
        mu = hp["momentum"]
        if mu:
            buf = state.get("momentum")
            if buf is None:
                buf = state["momentum"] = g.copy()
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


@register
class Adagrad(OptimizerRule):
    name = "adagrad"
    attrs = {"lr": Attr("float", 0.01, min=0, min_open=True), "eps": Attr("float", 1e-10, min=0, min_open=True)}
    lr_range = (1e-4, 1.0)
    state = ("sum_sq",)

    def update(self, w, g, state, tmp, lr, hp, t, decayed):
        acc = self.buffer(state, "sum_sq", w)
        np.multiply(g, g, out=tmp)
        acc += tmp
        np.sqrt(acc, out=tmp)
        tmp += hp["eps"]
        np.divide(g, tmp, out=tmp)
        tmp *= lr
        w -= tmp


@register
class RMSprop(OptimizerRule):
    name = "rmsprop"
    attrs = {"lr": Attr("float", 1e-3, min=0, min_open=True), "rho": Attr("float", 0.9, min=0, max=1, max_open=True),
             "eps": Attr("float", 1e-8, min=0, min_open=True),
             "momentum": Attr("float", 0.0, min=0, max=1, max_open=True)}
    lr_range = (1e-5, 1e-2)
    state = ("sq_avg", "momentum")

    def update(self, w, g, state, tmp, lr, hp, t, decayed):
        v = self.buffer(state, "sq_avg", w)
        v *= hp["rho"]
        np.multiply(g, g, out=tmp)
        tmp *= 1 - hp["rho"]
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += hp["eps"]
        np.divide(g, tmp, out=tmp)
        if hp["momentum"]:
            buf = self.buffer(state, "momentum", w)
            buf *= hp["momentum"]
            buf += tmp
            np.multiply(buf, lr, out=tmp)
        else:
            tmp *= lr
        w -= tmp


@register
class Adam(OptimizerRule):
    name = "adam"
    attrs = {"lr": Attr("float", 1e-3, min=0, min_open=True), "beta1": Attr("float", 0.9, min=0, max=1, max_open=True),
             "beta2": Attr("float", 0.999, min=0, max=1, max_open=True),
             "eps": Attr("float", 1e-8, min=0, min_open=True)}
    lr_range = (1e-5, 1e-2)
    state = ("m", "v")

    def update(self, w, g, state, tmp, lr, hp, t, decayed):
        b1, b2 = hp["beta1"], hp["beta2"]
        m = self.buffer(state, "m", w)
        v = self.buffer(state, "v", w)
        m *= b1
        np.multiply(g, 1 - b1, out=tmp)
        m += tmp
        v *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v += tmp
        c1 = 1 - b1 ** t
        c2 = 1 - b2 ** t
        # w -= (lr / c1) * m / (sqrt(v / c2) + eps)
        np.multiply(v, 1 / c2, out=tmp)
        np.sqrt(tmp, out=tmp)
        tmp += hp["eps"]
        np.divide(m, tmp, out=tmp)
        tmp *= lr / c1
        w -= tmp


@register
class AdamW(Adam):
    name = "adamw"
    attrs = dict(Adam.attrs, weight_decay=Attr("float", 0.01, min=0, doc="decoupled decay per step, times lr"))

    def update(self, w, g, state, tmp, lr, hp, t, decayed):
        if decayed and hp["weight_decay"]:
            w *= 1 - lr * hp["weight_decay"]
        super().update(w, g, state, tmp, lr, hp, t, decayed)
