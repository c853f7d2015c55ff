"""The optimizer registry: each optimizer is one class that declares its keys (typed, with defaults
and ranges), its usual learning-rate range (the linter warns 10x beyond it), the state it keeps per
parameter, and its update rule (in place, allocating nothing per step).

An update rule is written once for every engine: it works on the engine's arrays through `xp`, a
namespace of five array functions (`multiply`, `divide`, `sqrt` with `out=`, `zeros_like`, `copy`)
and the in-place operators; the NumPy engine passes `NUMPY_OPS`, the torch engine its torch ones.

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


class ArrayOps:
    """The array functions an update rule may call, bound to one array library."""

    def __init__(self, multiply, divide, sqrt, zeros_like, copy):
        self.multiply, self.divide, self.sqrt, self.zeros_like, self.copy = multiply, divide, sqrt, zeros_like, copy


class _NumpyOps(ArrayOps):
    """ArrayOps of NumPy, looked up on first use (the compiler loads without importing NumPy)."""

    def __init__(self):
        pass

    def __getattr__(self, name):
        if name not in ("multiply", "divide", "sqrt", "zeros_like", "copy"):
            raise AttributeError(name)
        fn = getattr(np, name)
        setattr(self, name, fn)
        return fn


NUMPY_OPS = _NumpyOps()


class OptimizerRule:
    name: ClassVar[str]
    attrs: ClassVar[dict[str, Attr]] = {}
    lr_range: ClassVar[tuple[float, float]] = (1e-5, 1e-2)
    state: ClassVar[tuple[str, ...]] = ()  # per-parameter buffers, the names in optimizer state (dense1.weight.m)
    # False: the rule never sees a gradient; it implements `evolve` (the genetic algorithm) instead of `update`
    uses_gradients: ClassVar[bool] = True
    max_weights: ClassVar[int | None] = None  # the linter warns above this many weights (a search in weight space)

    def state_copies(self, hp: dict) -> int:
        """How many arrays the size of the weights the state holds (for the memory estimate)."""
        return len(self.state)

    def state_shape(self, role: str, shape: tuple[int, ...], hp: dict) -> tuple[int, ...]:
        """The shape of a parameter's state buffer `role` (checkpoints are checked against it)."""
        return tuple(shape)

    def roles(self, hp: dict) -> tuple[str, ...]:
        """The buffers every trained parameter holds after a step with these settings (a checkpoint
        must hold exactly these: one missing would be re-created as zeros, and resume be inexact)."""
        return self.state

    def update(self, w, g, state: dict, tmp, lr: float, hp: dict, t: int, decayed: bool,
               xp: ArrayOps = NUMPY_OPS) -> None:
        """One step for one parameter, in place: `state` holds its buffers by role (created here on
        first use), `tmp` is a scratch array like w, `t` the step count (1 on the first step), `xp`
        the array functions of the engine's library."""
        raise NotImplementedError

    @staticmethod
    def buffer(state: dict, role: str, like, xp: ArrayOps = NUMPY_OPS):
        b = state.get(role)
        if b is None:
            b = state[role] = xp.zeros_like(like)
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

    def roles(self, hp):
        return self.state if hp["momentum"] else ()

    def update(self, w, g, state, tmp, lr, hp, t, decayed, xp=NUMPY_OPS):
        mu = hp["momentum"]
        if mu:
            buf = state.get("momentum")
            if buf is None:
                buf = state["momentum"] = xp.copy(g)
            else:
                buf *= mu
                buf += g
            if hp["nesterov"]:
                xp.multiply(buf, mu, out=tmp)
                tmp += g
                update = tmp
            else:
                update = buf
        else:
            update = g
        xp.multiply(update, lr, out=tmp)
        w -= tmp


@register
class Adagrad(OptimizerRule):
    name = "adagrad"
    attrs = {"lr": Attr("float", 0.01, min=0, min_open=True), "eps": Attr("float", 1e-10, min=0, min_open=True)}
    lr_range = (1e-4, 1.0)
    state = ("sum_sq",)

    def update(self, w, g, state, tmp, lr, hp, t, decayed, xp=NUMPY_OPS):
        acc = self.buffer(state, "sum_sq", w, xp)
        xp.multiply(g, g, out=tmp)
        acc += tmp
        xp.sqrt(acc, out=tmp)
        tmp += hp["eps"]
        xp.divide(g, tmp, out=tmp)
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

    def roles(self, hp):
        return self.state if hp["momentum"] else ("sq_avg",)

    def update(self, w, g, state, tmp, lr, hp, t, decayed, xp=NUMPY_OPS):
        v = self.buffer(state, "sq_avg", w, xp)
        v *= hp["rho"]
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - hp["rho"]
        v += tmp
        xp.sqrt(v, out=tmp)
        tmp += hp["eps"]
        xp.divide(g, tmp, out=tmp)
        if hp["momentum"]:
            buf = self.buffer(state, "momentum", w, xp)
            buf *= hp["momentum"]
            buf += tmp
            xp.multiply(buf, lr, out=tmp)
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

    def update(self, w, g, state, tmp, lr, hp, t, decayed, xp=NUMPY_OPS):
        b1, b2 = hp["beta1"], hp["beta2"]
        m = self.buffer(state, "m", w, xp)
        v = self.buffer(state, "v", w, xp)
        m *= b1
        xp.multiply(g, 1 - b1, out=tmp)
        m += tmp
        v *= b2
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v += tmp
        c1 = 1 - b1 ** t
        c2 = 1 - b2 ** t
        # w -= (lr / c1) * m / (sqrt(v / c2) + eps)
        xp.multiply(v, 1 / c2, out=tmp)
        xp.sqrt(tmp, out=tmp)
        tmp += hp["eps"]
        xp.divide(m, tmp, out=tmp)
        tmp *= lr / c1
        w -= tmp


@register
class AdamW(Adam):
    name = "adamw"
    attrs = dict(Adam.attrs, weight_decay=Attr("float", 0.01, min=0, doc="decoupled decay per step, times lr"))

    def update(self, w, g, state, tmp, lr, hp, t, decayed, xp=NUMPY_OPS):
        if decayed and hp["weight_decay"]:
            w *= 1 - lr * hp["weight_decay"]
        super().update(w, g, state, tmp, lr, hp, t, decayed, xp)


@register
class Genetic(OptimizerRule):
    """A genetic algorithm in weight space: no gradients. Each training batch is one generation: every
    individual of the population (a full set of weights) is scored by its loss on the batch (plus the
    l1/l2 penalty); the `elite` best pass unchanged; each other child takes, gene by gene, a parent's
    value from two parents chosen by tournaments of `tournament` (the second parent's with probability
    `crossover`), then each gene mutates with probability `mutation_rate` by Gaussian noise of standard
    deviation `lr` (so schedules anneal the mutation scale). The model's weights are the best
    individual's after each generation. The population is optimizer state: checkpoints and resume keep it.
    """

    name = "genetic"
    attrs = {"lr": Attr("float", 0.05, min=0, min_open=True, doc="the mutation scale (noise standard deviation)"),
             "population": Attr("int", 50, min=2, max=10_000, doc="individuals per generation"),
             "mutation_rate": Attr("float", 0.1, min=0, max=1, doc="the probability that a gene mutates"),
             "crossover": Attr("float", 0.5, min=0, max=1, doc="the probability a gene comes from the second parent"),
             "elite": Attr("int", 2, min=1, doc="the best individuals kept unchanged each generation"),
             "tournament": Attr("int", 3, min=1, doc="individuals drawn per tournament to pick a parent")}
    lr_range = (1e-3, 1.0)
    state = ("population",)
    uses_gradients = False
    max_weights = 10_000

    def state_shape(self, role, shape, hp):
        return (hp["population"],) + tuple(shape)

    def state_copies(self, hp: dict) -> int:
        population = hp.get("population", 50)
        return 2 * population if isinstance(population, int) else 100  # the population and the next one
