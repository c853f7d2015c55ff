"""The NumPy engine's kernels for the ops declared in compiler/ops/merge.py: forward and backward
(and the layouts they accept), moved here unchanged from the declarations they subclass."""

from __future__ import annotations

import numpy as np

from dlc.compiler.ops import merge as ops
from dlc.runtime.numpy_engine.layouts import CHWN, NCHW, channel_axis

from .base import Kernel, kernel


@kernel
class Add(ops.Add, Kernel):
    layouts = (NCHW, CHWN)  # elementwise

    def forward(self, xs, p, a, ctx):
        y = xs[0] + xs[1]
        for x in xs[2:]:
            y += x
        return y, len(xs)

    def backward(self, dy, n, p, a):
        return [dy] * n, {}  # the same array: no op changes the gradient it is given


@kernel
class Concat(ops.Concat, Kernel):
    layouts = (NCHW, CHWN)

    def forward(self, xs, p, a, ctx):
        axis = channel_axis(xs[0].ndim, ctx.layout)
        return np.concatenate(xs, axis=axis), ([x.shape[axis] for x in xs], axis)

    def backward(self, dy, cache, p, a):
        sizes, axis = cache
        edges = np.cumsum(sizes)[:-1]
        return [np.ascontiguousarray(d) for d in np.split(dy, edges, axis=axis)], {}
