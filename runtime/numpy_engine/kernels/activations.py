"""The NumPy engine's kernels for the ops declared in compiler/ops/activations.py: forward and backward
(and the layouts they accept), moved here unchanged from the declarations they subclass."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from dlc.compiler.ops import activations as ops
from dlc.runtime.numpy_engine.layouts import CHWN, NCHW, channel_axes, per_channel

from .base import Kernel, kernel


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class _ElementwiseKernel:
    """The NumPy kernel shared by the ops of compiler/ops/activations.py's Elementwise."""

    layouts: ClassVar[tuple[str, ...]] = (NCHW, CHWN)  # y = f(x) elementwise: any layout

    def f(self, x, a):
        raise NotImplementedError

    def df(self, x, y, a):
        raise NotImplementedError

    def forward(self, x, p, a, ctx):
        y = self.f(x, a)
        return y, (x, y)

    def backward(self, dy, cache, p, a):
        x, y = cache
        return dy * self.df(x, y, a), {}


@kernel
class Linear(_ElementwiseKernel, ops.Linear, Kernel):
    def forward(self, x, p, a, ctx):
        return x, None

    def backward(self, dy, cache, p, a):
        return dy, {}


@kernel
class Sigmoid(_ElementwiseKernel, ops.Sigmoid, Kernel):
    def f(self, x, a):
        return _sigmoid(x)

    def df(self, x, y, a):
        return y * (1 - y)


@kernel
class Tanh(_ElementwiseKernel, ops.Tanh, Kernel):
    def f(self, x, a):
        return np.tanh(x)

    def df(self, x, y, a):
        return 1 - y * y


@kernel
class ReLU(_ElementwiseKernel, ops.ReLU, Kernel):
    def forward(self, x, p, a, ctx):
        y = np.maximum(x, 0)
        return y, y

    def backward(self, dy, y, p, a):
        return dy * (y > 0), {}


@kernel
class LeakyReLU(_ElementwiseKernel, ops.LeakyReLU, Kernel):
    def f(self, x, a):
        return np.where(x > 0, x, x * x.dtype.type(a["alpha"]))

    def df(self, x, y, a):
        return np.where(x > 0, 1, a["alpha"]).astype(x.dtype)


@kernel
class RReLU(_ElementwiseKernel, ops.RReLU, Kernel):
    def forward(self, x, p, a, ctx):
        if ctx.training:
            slope = ctx.rng.uniform(a["lower"], a["upper"], size=x.shape).astype(x.dtype)
        else:
            slope = x.dtype.type((a["lower"] + a["upper"]) / 2)
        scale = np.where(x > 0, x.dtype.type(1), slope)
        return x * scale, scale

    def backward(self, dy, scale, p, a):
        return dy * scale, {}


@kernel
class ELU(_ElementwiseKernel, ops.ELU, Kernel):
    def f(self, x, a):
        return np.where(x > 0, x, a["alpha"] * np.expm1(np.minimum(x, 0))).astype(x.dtype)

    def df(self, x, y, a):
        return np.where(x > 0, 1, y + a["alpha"]).astype(x.dtype)


@kernel
class SELU(_ElementwiseKernel, ops.SELU, Kernel):
    def f(self, x, a):
        return (self.SCALE * np.where(x > 0, x, self.ALPHA * np.expm1(np.minimum(x, 0)))).astype(x.dtype)

    def df(self, x, y, a):
        return np.where(x > 0, self.SCALE, y + self.SCALE * self.ALPHA).astype(x.dtype)


@kernel
class GELU(_ElementwiseKernel, ops.GELU, Kernel):
    def f(self, x, a):
        return 0.5 * x * (1 + np.tanh(self.C * (x + 0.044715 * x ** 3)))

    def df(self, x, y, a):
        t = np.tanh(self.C * (x + 0.044715 * x ** 3))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * self.C * (1 + 3 * 0.044715 * x * x)


@kernel
class SiLU(_ElementwiseKernel, ops.SiLU, Kernel):
    def f(self, x, a):
        return x * _sigmoid(x)

    def df(self, x, y, a):
        s = _sigmoid(x)
        return s * (1 + x * (1 - s))


@kernel
class Softplus(_ElementwiseKernel, ops.Softplus, Kernel):
    def f(self, x, a):
        return np.logaddexp(0, x).astype(x.dtype)

    def df(self, x, y, a):
        return _sigmoid(x)


@kernel
class Softmax(ops.Softmax, Kernel):
    def forward(self, x, p, a, ctx):
        z = x - x.max(axis=1, keepdims=True)
        e = np.exp(z)
        y = e / e.sum(axis=1, keepdims=True)
        return y, y

    def backward(self, dy, y, p, a):
        return y * (dy - np.sum(dy * y, axis=1, keepdims=True)), {}


@kernel
class PReLU(ops.PReLU, Kernel):
    layouts = (NCHW, CHWN)

    def forward(self, x, p, a, ctx):
        slope = per_channel(p["slope"], x.ndim, ctx.layout)
        return np.where(x > 0, x, x * slope), (x, ctx.layout)

    def backward(self, dy, cache, p, a):
        x, lay = cache
        neg = x <= 0
        slope = per_channel(p["slope"], x.ndim, lay)
        dslope = np.sum(np.where(neg, dy * x, 0), axis=channel_axes(x, lay))
        return np.where(neg, dy * slope, dy), {"slope": dslope}


@kernel
class Maxout(ops.Maxout, Kernel):
    def forward(self, x, p, a, ctx):
        k = a["k"]
        g = x.reshape(x.shape[0], x.shape[1] // k, k, *x.shape[2:])
        arg = g.argmax(axis=2)
        y = np.take_along_axis(g, arg[:, :, None], axis=2)[:, :, 0]
        return y, (arg, x.shape)

    def backward(self, dy, cache, p, a):
        arg, shape = cache
        k = a["k"]
        dg = np.zeros((shape[0], shape[1] // k, k, *shape[2:]), dtype=dy.dtype)
        np.put_along_axis(dg, arg[:, :, None], dy[:, :, None], axis=2)
        return dg.reshape(shape), {}
