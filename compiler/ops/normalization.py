"""Normalization and noise: batchnorm, layernorm, lrn, dropout.

Batchnorm convention (pinned by tests, written in docs/conventions.md):
- training normalizes with the batch mean and the biased variance (divide by N, or N*H*W);
- running statistics: `running = momentum * running + (1 - momentum) * batch`, so
  momentum=0.9 keeps 90 % (the ONNX/Keras sense; PyTorch's momentum=0.1 is the same rule);
- the running variance stores the unbiased batch variance (N/(N-1)), as PyTorch does;
- inference uses the running statistics; eps defaults to 1e-5.
"""

from __future__ import annotations

import math

from ..attrs import Attr
from .base import Op, ParamSpec, ShapeError, register


@register
class BatchNorm(Op):
    name = "batchnorm"
    normalizes = True
    kind = "norm"
    doc = "batch normalization over the batch (and H, W for images), per feature/channel"
    attrs = {
        "momentum": Attr("float", 0.9, min=0, max=1, max_open=True, doc="fraction of the running statistics kept per step"),
        "eps": Attr("float", 1e-5, min=0, min_open=True, doc="added to the variance"),
    }
    examples = [((4,), {"momentum": 0.9, "eps": 1e-5}), ((3, 6), {"momentum": 0.9, "eps": 1e-5}),
                ((3, 3, 3), {"momentum": 0.9, "eps": 1e-5})]

    def params(self, shape, a):
        c = shape[0]
        return [ParamSpec("gamma", (c,), init="ones", decay=False), ParamSpec("beta", (c,), init="zeros", decay=False)]

    def buffers(self, shape, a):
        return {"running_mean": ((shape[0],), 0.0), "running_var": ((shape[0],), 1.0)}


    def to_onnx(self, g, x, p, a, shape):
        return g.node("BatchNormalization", [x, p["gamma"], p["beta"], p["running_mean"], p["running_var"]],
                      epsilon=float(a["eps"]))


@register
class LayerNorm(Op):
    """Each sample normalized over its features -- a sequence's channels at each step -- with the
    mean and the biased variance, then scaled and shifted per feature/channel (gamma, beta). No running
    statistics: training and inference compute the same. Unlike batchnorm a bias before it does not
    cancel (the mean is over features, not over the batch), so it does not declare `normalizes`."""

    name = "layernorm"
    kind = "norm"
    doc = "layer normalization over each sample's features (a sequence's channels at each step)"
    attrs = {"eps": Attr("float", 1e-5, min=0, min_open=True, doc="added to the variance")}
    ranks = (1, 2)
    examples = [((5,), {"eps": 1e-5}), ((4, 3), {"eps": 1e-5}), ((2, 4), {"eps": 1e-3})]

    def params(self, shape, a):
        c = shape[0]
        return [ParamSpec("gamma", (c,), init="ones", decay=False), ParamSpec("beta", (c,), init="zeros", decay=False)]

    def to_onnx(self, g, x, p, a, shape):
        if len(shape) == 1:
            return g.node("LayerNormalization", [x, p["gamma"], p["beta"]], axis=-1, epsilon=float(a["eps"]))
        steps_last = g.node("Transpose", [x], perm=[0, 2, 1])  # (N, L, C): the channels last, as ONNX normalizes
        y = g.node("LayerNormalization", [steps_last, p["gamma"], p["beta"]], axis=-1, epsilon=float(a["eps"]))
        return g.node("Transpose", [y], perm=[0, 2, 1])

    def flops(self, in_shape, out_shape, a):
        return 8 * math.prod(in_shape)


@register
class LRN(Op):
    name = "lrn"
    kind = "norm"
    doc = "local response normalization across channels: x / (bias + alpha/size * sum x^2)^beta"
    attrs = {
        "size": Attr("int", 5, min=1, doc="channels in the window (odd)"),
        "alpha": Attr("float", 1e-4, min=0),
        "beta": Attr("float", 0.75, min=0),
        "bias": Attr("float", 1.0, min=0, min_open=True, doc="the additive constant k (AlexNet used 2)"),
    }
    ranks = (3,)
    examples = [((5, 2, 2), {"size": 3, "alpha": 0.1, "beta": 0.75, "bias": 1.0}),
                ((2, 2, 2), {"size": 5, "alpha": 0.5, "beta": 0.75, "bias": 2.0})]

    def infer(self, shape, a):
        self.check_rank(shape)
        if a["size"] % 2 == 0:
            raise ShapeError(f"lrn size must be odd, got {a['size']}",
                             "frameworks disagree on the window of an even size and onnxruntime refuses it")
        return tuple(shape)


    def to_onnx(self, g, x, p, a, shape):
        return g.node("LRN", [x], size=int(a["size"]), alpha=float(a["alpha"]), beta=float(a["beta"]),
                      bias=float(a["bias"]))

    def flops(self, in_shape, out_shape, a):
        return math.prod(out_shape) * (a["size"] + 4)


@register
class Dropout(Op):
    name = "dropout"
    drops = True
    kind = "dropout"
    doc = "inverted dropout: drop with probability p, scale the kept by 1/(1-p); identity at inference"
    attrs = {"p": Attr("float", 0.5, min=0, max=1, max_open=True, doc="the probability of dropping a unit")}
    positional = ("p",)
    examples = [((6,), {"p": 0.5}), ((3, 4), {"p": 0.3}), ((2, 3, 3), {"p": 0.25})]


    def to_onnx(self, g, x, p, a, shape):
        return x  # identity at inference

    def flops(self, in_shape, out_shape, a):
        return 0
