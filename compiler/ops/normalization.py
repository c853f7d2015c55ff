"""Normalization and noise: batchnorm, lrn, dropout.

Batchnorm convention (pinned by tests, written in docs/conventions.md):
- training normalizes with the batch mean and the biased variance (divide by N, or N*H*W);
- running statistics: `running = momentum * running + (1 - momentum) * batch`, so
  momentum=0.9 keeps 90 % (the ONNX/Keras sense; PyTorch's momentum=0.1 is the same rule);
- the running variance stores the unbiased batch variance (N/(N-1)), as PyTorch does;
- inference uses the running statistics; eps defaults to 1e-5.
"""

from __future__ import annotations

import math

from ..lazy_numpy import lazy_numpy

from ..attrs import Attr
from .base import CHWN, NCHW, Op, ParamSpec, ShapeError, channel_axes, channel_axis, per_channel, register

np = lazy_numpy(__name__)


def _rows(x, layout):
    """x as a (C, M) matrix whose rows are the channels, when that is a view: CHWN images; None otherwise."""
    if x.ndim == 4 and layout == CHWN:
        return x.reshape(x.shape[0], -1)
    return None


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
    examples = [((4,), {"momentum": 0.9, "eps": 1e-5}), ((3, 3, 3), {"momentum": 0.9, "eps": 1e-5})]

    def params(self, shape, a):
        c = shape[0]
        return [ParamSpec("gamma", (c,), init="ones", decay=False), ParamSpec("beta", (c,), init="zeros", decay=False)]

    def buffers(self, shape, a):
        return {"running_mean": ((shape[0],), 0.0), "running_var": ((shape[0],), 1.0)}

    layouts = (NCHW, CHWN)

    def forward(self, x, p, a, ctx):
        # As a (C, M) matrix -- M the samples (and pixels) of a channel -- in CHWN and for vectors (as
        # (F, N) transposed): per-channel sums run along rows; products of two passes are einsum
        # reductions (no temporary). NCHW images go through the axis form.
        lay = ctx.layout
        c = x.shape[channel_axis(x.ndim, lay)]
        rows = _rows(x, lay)
        if ctx.training:
            count = x.size // c
            mean = (rows.sum(axis=1) / count if rows is not None else x.mean(axis=channel_axes(x, lay))).astype(x.dtype)
            xc = x - per_channel(mean, x.ndim, lay)
            rc = _rows(xc, lay)
            var = (np.einsum("ij,ij->i", rc, rc) / count if rc is not None
                   else np.mean(xc * xc, axis=channel_axes(x, lay))).astype(x.dtype)
            m = a["momentum"]
            rm, rv = p["running_mean"], p["running_var"]
            rm *= m
            rm += (1 - m) * mean
            rv *= m
            rv += (1 - m) * var * (count / max(count - 1, 1))
        else:
            var = p["running_var"]
            xc = x - per_channel(p["running_mean"], x.ndim, lay)
        inv_std = (1.0 / np.sqrt(var + a["eps"])).astype(x.dtype)
        y = xc * per_channel(p["gamma"] * inv_std, x.ndim, lay)
        y += per_channel(p["beta"], x.ndim, lay)
        return y, (xc, inv_std, ctx.training, lay)

    def backward(self, dy, cache, p, a):
        xc, inv_std, training, lay = cache
        nd = dy.ndim
        rows_dy, rows_xc = _rows(dy, lay), _rows(xc, lay)
        if rows_dy is not None:
            dbeta = rows_dy.sum(axis=1)
            dxc = np.einsum("ij,ij->i", rows_dy, rows_xc)  # sum(dy * xc) per channel
        else:
            axes = channel_axes(dy, lay)
            dbeta, dxc = dy.sum(axis=axes), np.sum(dy * xc, axis=axes)
        grads = {"gamma": (dxc * inv_std).astype(dy.dtype), "beta": dbeta}
        scale = p["gamma"] * inv_std
        if not training:
            return dy * per_channel(scale, nd, lay), grads
        count = dy.size // dy.shape[channel_axis(nd, lay)]
        # dx = gamma inv_std (dy - mean(dy) - xhat mean(dy xhat)), xhat = xc inv_std
        dx = dy - per_channel(dbeta / count, nd, lay)
        dx -= xc * per_channel(dxc * inv_std * inv_std / count, nd, lay)
        dx *= per_channel(scale, nd, lay)
        return dx, grads

    def to_onnx(self, g, x, p, a, shape):
        return g.node("BatchNormalization", [x, p["gamma"], p["beta"], p["running_mean"], p["running_var"]],
                      epsilon=float(a["eps"]))


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

    @staticmethod
    def _window_sum(v, size):
        half = (size - 1) // 2
        c = v.shape[1]
        padded = np.zeros((v.shape[0], c + size, *v.shape[2:]), dtype=v.dtype)
        np.cumsum(v, axis=1, out=padded[:, half + 1:half + 1 + c])
        padded[:, half + 1 + c:] = padded[:, half + c:half + c + 1]
        return padded[:, size:size + c] - padded[:, :c]

    def forward(self, x, p, a, ctx):
        n = a["size"]
        s = a["bias"] + (a["alpha"] / n) * self._window_sum(x * x, n)
        y = x * s ** -a["beta"]
        return y, (x, s)

    def backward(self, dy, cache, p, a):
        x, s = cache
        n, beta = a["size"], a["beta"]
        inner = self._window_sum(dy * x * s ** (-beta - 1), n)
        return dy * s ** -beta - (2 * a["alpha"] * beta / n) * x * inner, {}

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
    layouts = (NCHW, CHWN)  # elementwise
    examples = [((6,), {"p": 0.5}), ((2, 3, 3), {"p": 0.25})]

    def forward(self, x, p, a, ctx):
        if not ctx.training or a["p"] == 0:
            return x, None
        keep = 1.0 - a["p"]
        mask = (ctx.rng.random(x.shape, dtype=np.float32) < keep).astype(x.dtype) * x.dtype.type(1.0 / keep)
        return x * mask, mask

    def backward(self, dy, mask, p, a):
        return (dy if mask is None else dy * mask), {}

    def to_onnx(self, g, x, p, a, shape):
        return x  # identity at inference

    def flops(self, in_shape, out_shape, a):
        return 0
