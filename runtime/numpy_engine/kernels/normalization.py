"""The NumPy engine's kernels for the ops declared in compiler/ops/normalization.py: forward and backward
(and the layouts they accept), moved here unchanged from the declarations they subclass."""

from __future__ import annotations

import numpy as np

from dlc.compiler.ops import normalization as ops
from dlc.runtime.numpy_engine.layouts import CHWN, NCHW, channel_axes, channel_axis, per_channel

from .base import Kernel, kernel


def _rows(x, layout):
    """x as a (C, M) matrix whose rows are the channels, when that is a view: CHWN images; None otherwise."""
    if x.ndim == 4 and layout == CHWN:
        return x.reshape(x.shape[0], -1)
    return None


@kernel
class LayerNorm(ops.LayerNorm, Kernel):
    """Statistics over axis 1 (the features, or a sequence's channels at each step), per sample."""

    def forward(self, x, p, a, ctx):
        mean = x.mean(axis=1, keepdims=True)
        xc = x - mean
        inv_std = (1.0 / np.sqrt((xc * xc).mean(axis=1, keepdims=True) + a["eps"])).astype(x.dtype)
        xhat = xc * inv_std
        return xhat * per_channel(p["gamma"], x.ndim) + per_channel(p["beta"], x.ndim), (xhat, inv_std)

    def backward(self, dy, cache, p, a):
        xhat, inv_std = cache
        c = xhat.shape[1]
        over = (0,) if dy.ndim == 2 else (0, 2)
        grads = {"gamma": (dy * xhat).sum(axis=over), "beta": dy.sum(axis=over)}
        g = dy * per_channel(p["gamma"], dy.ndim)
        dx = inv_std / c * (c * g - g.sum(axis=1, keepdims=True) - xhat * (g * xhat).sum(axis=1, keepdims=True))
        return dx.astype(dy.dtype), grads


@kernel
class BatchNorm(ops.BatchNorm, Kernel):
    layouts = (NCHW, CHWN)

    def forward(self, x, p, a, ctx):
        # As a (C, M) matrix -- M the samples (and pixels) of a channel -- in CHWN and for vectors (as
        # (F, N) transposed): per-channel sums run along rows; products of two passes are einsum
        # reductions (no temporary). NCHW images go through the axis form.
        lay = ctx.layout
        c = x.shape[channel_axis(x.ndim, lay)]
        rows = _rows(x, lay)
        count = x.size // c
        if ctx.training and ctx.mask is not None:  # a variable-length batch: the valid steps' statistics
            count = int(ctx.mask.sum())
            mean = ((x * ctx.mask).sum(axis=(0, 2)) / count).astype(x.dtype)
            xc = x - per_channel(mean, x.ndim, lay)
            var = ((xc * xc * ctx.mask).sum(axis=(0, 2)) / count).astype(x.dtype)
        elif ctx.training:
            mean = (rows.sum(axis=1) / count if rows is not None else x.mean(axis=channel_axes(x, lay))).astype(x.dtype)
            xc = x - per_channel(mean, x.ndim, lay)
            rc = _rows(xc, lay)
            var = (np.einsum("ij,ij->i", rc, rc) / count if rc is not None
                   else np.mean(xc * xc, axis=channel_axes(x, lay))).astype(x.dtype)
        if ctx.training:
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
        return y, (xc, inv_std, ctx.training, lay, count)

    def backward(self, dy, cache, p, a):
        xc, inv_std, training, lay, count = cache  # (dy is 0 at a variable-length batch's padded steps)
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
        # dx = gamma inv_std (dy - mean(dy) - xhat mean(dy xhat)), xhat = xc inv_std
        dx = dy - per_channel(dbeta / count, nd, lay)
        dx -= xc * per_channel(dxc * inv_std * inv_std / count, nd, lay)
        dx *= per_channel(scale, nd, lay)
        return dx, grads


@kernel
class LRN(ops.LRN, Kernel):
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


@kernel
class Dropout(ops.Dropout, Kernel):
    layouts = (NCHW, CHWN)  # elementwise

    def forward(self, x, p, a, ctx):
        if not ctx.training or a["p"] == 0:
            return x, None
        keep = 1.0 - a["p"]
        mask = (ctx.rng.random(x.shape, dtype=np.float32) < keep).astype(x.dtype) * x.dtype.type(1.0 / keep)
        return x * mask, mask

    def backward(self, dy, mask, p, a):
        return (dy if mask is None else dy * mask), {}
