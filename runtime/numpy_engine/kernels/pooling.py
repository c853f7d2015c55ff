"""The NumPy engine's kernels for the ops declared in compiler/ops/pooling.py: forward and backward
(and the layouts they accept), moved here unchanged from the declarations they subclass."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np

from dlc.compiler.ops import pooling as ops
from dlc.runtime.numpy_engine.layouts import CHWN, NCHW
from dlc.compiler.ops.windows import out_size
from dlc.runtime.numpy_engine.layouts import kernel_offsets, pad_image

from .base import Kernel, kernel


def _spatial(layout: str) -> tuple[int, int]:
    return (2, 3) if layout == NCHW else (1, 2)

def _fold(ufunc, xp, k, s, axes=(2, 3)):
    """ufunc folded over the kh*kw window offsets: max or sum of every window, (N, C, Ho, Wo) or (C, Ho, Wo, N)."""
    out_hw = out_size(xp.shape[axes[0]], k[0], s[0], 0, 0), out_size(xp.shape[axes[1]], k[1], s[1], 0, 0)
    out = None
    for _, _, idx in kernel_offsets(k, s, out_hw, spatial_axes=axes):
        if out is None:
            out = xp[idx].copy()
        else:
            ufunc(out, xp[idx], out=out)
    return out

def _unpad(xp, pads, axes=(2, 3)):
    t, l, b, r = pads
    idx = [slice(None)] * 4
    idx[axes[0]] = slice(t, xp.shape[axes[0]] - b)
    idx[axes[1]] = slice(l, xp.shape[axes[1]] - r)
    return xp[tuple(idx)]


class _PoolKernel:
    """The NumPy kernel shared by the ops of compiler/ops/pooling.py's _Pool. A sequence (N, C, L) is
    pooled as the images (N, C, 1, L) (`image_view`): the same loops, views in and out."""

    layouts: ClassVar[tuple[str, ...]] = (NCHW, CHWN)

    def forward(self, x, p, a, ctx):
        if x.ndim == 3:
            _, view = self.image_view(x.shape[1:], a)
            y, cache = self.forward_image(x[:, :, None, :], p, view, dataclasses.replace(ctx, layout=NCHW))
            return y[:, :, 0, :], ("sequence", view, cache)
        return self.forward_image(x, p, a, ctx)

    def backward(self, dy, cache, p, a):
        if isinstance(cache[0], str):  # ("sequence", the image view, the image cache)
            _, view, cache = cache
            dx, grads = self.backward_image(dy[:, :, None, :], cache, p, view)
            return dx[:, :, 0, :], grads
        return self.backward_image(dy, cache, p, a)


class _GlobalPoolKernel:
    """The NumPy kernel shared by the ops of compiler/ops/pooling.py's _GlobalPool."""

    layouts: ClassVar[tuple[str, ...]] = (NCHW, CHWN)


@kernel
class MaxPool(_PoolKernel, ops.MaxPool, Kernel):
    def forward_image(self, x, p, a, ctx):
        # A running maximum over the kh*kw offsets: no window gather, no argmax over a copy.
        axes = _spatial(ctx.layout)
        k, s, pads = self.geometry((0, x.shape[axes[0]], x.shape[axes[1]]), a)
        xp = pad_image(x, pads, value=-np.inf, axes=axes)
        y = _fold(np.maximum, xp, k, s, axes)
        return y, (xp, y, pads, k, s, axes)

    def backward_image(self, dy, cache, p, a):
        xp, y, pads, k, s, axes = cache
        # every input cell in exactly one window: assign, no zero fill (floor mode may leave cells out)
        tiled = tuple(k) == tuple(s) and all(y.shape[ax] * st == xp.shape[ax] for ax, st in zip(axes, s))
        dxp = (np.empty if tiled else np.zeros)(xp.shape, dtype=dy.dtype)
        pending = np.ones(y.shape, dtype=bool)  # windows whose first maximum is not found yet
        hit = np.empty(y.shape, dtype=bool)
        share = np.empty(y.shape, dtype=dy.dtype)
        for _, _, idx in kernel_offsets(k, s, (y.shape[axes[0]], y.shape[axes[1]]), spatial_axes=axes):
            np.equal(xp[idx], y, out=hit)
            np.logical_and(hit, pending, out=hit)
            np.greater(pending, hit, out=pending)  # pending and not hit
            np.multiply(dy, hit, out=share)
            if tiled:
                dxp[idx] = share
            else:
                dxp[idx] += share
        return _unpad(dxp, pads, axes), {}


@kernel
class AvgPool(_PoolKernel, ops.AvgPool, Kernel):
    def forward_image(self, x, p, a, ctx):
        axes = _spatial(ctx.layout)
        hw = x.shape[axes[0]], x.shape[axes[1]]
        k, s, pads = self.geometry((0,) + hw, a)
        xp = pad_image(x, pads, axes=axes)
        ones = [1, 1, 1, 1]
        ones[axes[0]], ones[axes[1]] = hw
        counts = _fold(np.add, pad_image(np.ones(ones, dtype=x.dtype), pads, axes=axes), k, s, axes)
        y = _fold(np.add, xp, k, s, axes) / counts
        return y, (xp.shape, pads, k, s, counts, axes)

    def backward_image(self, dy, cache, p, a):
        padded_shape, pads, k, s, counts, axes = cache
        g = dy / counts
        dxp = np.zeros(padded_shape, dtype=dy.dtype)
        for _, _, idx in kernel_offsets(k, s, (g.shape[axes[0]], g.shape[axes[1]]), spatial_axes=axes):
            dxp[idx] += g
        return _unpad(dxp, pads, axes), {}


@kernel
class Flatten(ops.Flatten, Kernel):
    layouts: ClassVar[tuple[str, ...]] = (NCHW, CHWN)

    def forward(self, x, p, a, ctx):
        if ctx.layout == CHWN and x.ndim == 4:  # (C, H, W, N) -> (N, C*H*W) in NCHW order: a view
            return x.reshape(-1, x.shape[3]).T, (x.shape, CHWN)
        return x.reshape(x.shape[0], -1), (x.shape, NCHW)

    def backward(self, dy, cache, p, a):
        shape, layout = cache
        if layout == CHWN:
            return np.ascontiguousarray(dy.T).reshape(shape), {}
        return dy.reshape(shape), {}


@kernel
class GlobalAvgPool(_GlobalPoolKernel, ops.GlobalAvgPool, Kernel):
    def forward(self, x, p, a, ctx):
        if ctx.mask is not None:  # a variable-length batch: each series's mean over its own steps
            steps = ctx.lengths.astype(x.dtype)[:, None]
            return (x * ctx.mask).sum(axis=2, dtype=x.dtype) / steps, (x.shape, ctx.mask / steps[:, :, None])
        if ctx.layout == CHWN and x.ndim == 4:
            return x.mean(axis=(1, 2), dtype=x.dtype).T, (x.shape, CHWN)
        return x.mean(axis=tuple(range(2, x.ndim)), dtype=x.dtype), (x.shape, NCHW)  # images and sequences

    def backward(self, dy, cache, p, a):
        shape, layout = cache
        if not isinstance(layout, str):  # masked: the mask over each series's steps
            return (dy[:, :, None] * layout).astype(dy.dtype), {}
        dx = np.empty(shape, dy.dtype)
        if layout == CHWN:
            dx[...] = (dy.T / dy.dtype.type(shape[1] * shape[2]))[:, None, None, :]
        else:
            positions = math.prod(shape[2:])
            dx[...] = (dy / dy.dtype.type(positions)).reshape(dy.shape + (1,) * (len(shape) - 2))
        return dx, {}


@kernel
class GlobalMaxPool(_GlobalPoolKernel, ops.GlobalMaxPool, Kernel):
    def forward(self, x, p, a, ctx):
        if ctx.mask is not None:  # a variable-length batch: the padded steps never win
            x = np.where(ctx.mask, x, -np.inf).astype(x.dtype)
        if ctx.layout == CHWN and x.ndim == 4:  # (C, H*W, N): the first maximum over the middle axis
            c, h, w, n = x.shape
            flat = x.reshape(c, h * w, n)
            idx = flat.argmax(axis=1)
            return np.take_along_axis(flat, idx[:, None, :], axis=1)[:, 0, :].T, (x.shape, idx, CHWN)
        n, c = x.shape[:2]
        flat = x.reshape(n, c, -1)
        idx = flat.argmax(axis=2)  # the first maximum, row-major
        return np.take_along_axis(flat, idx[:, :, None], axis=2)[:, :, 0], (x.shape, idx, NCHW)

    def backward(self, dy, cache, p, a):
        shape, idx, layout = cache
        if layout == CHWN:
            c, h, w, n = shape
            dx = np.zeros((c, h * w, n), dy.dtype)
            np.put_along_axis(dx, idx[:, None, :], np.ascontiguousarray(dy.T)[:, None, :], axis=1)
            return dx.reshape(shape), {}
        dx = np.zeros((shape[0], shape[1], math.prod(shape[2:])), dy.dtype)
        np.put_along_axis(dx, idx[:, :, None], dy[:, :, None], axis=2)
        return dx.reshape(shape), {}
