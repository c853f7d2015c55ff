"""Pooling and reshaping: maxpool, avgpool, flatten, globalavgpool, globalmaxpool.

Conventions (pinned by tests): maxpool gives the whole gradient of a window to its
first maximum (row-major), as PyTorch does; avgpool with padding divides by the
number of real (unpadded) cells, ONNX's default count_include_pad=0.
"""

from __future__ import annotations

import math

from ..lazy_numpy import lazy_numpy

from ..attrs import Attr
from .base import CHWN, NCHW, Op, ShapeError, fmt_shape, register
from .windows import kernel_offsets, out_size, pad_image, resolve_pads

np = lazy_numpy(__name__)

_POOL_ATTRS = {
    "kernel": Attr("dims", (2, 2), min=1, doc="window size: K or KHxKW"),
    "stride": Attr("dims", None, min=1, doc="stride (default: the kernel size)"),
    "pad": Attr("pad", (0, 0), min=0, doc="padding: P, PHxPW, 'same' or 'valid'"),
}


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


class _Pool(Op):
    kind = "layer"
    attrs = _POOL_ATTRS
    positional = ("kernel",)
    ranks = (3,)
    layouts = (NCHW, CHWN)

    @staticmethod
    def geometry(shape, a):
        k = a["kernel"]
        s = a.get("stride") or k
        pads = resolve_pads(a["pad"], shape[1:], k, s)
        return k, s, pads

    def infer(self, shape, a):
        self.check_rank(shape)
        c, h, w = shape
        k, s, (t, l, b, r) = self.geometry(shape, a)
        if max(t, b) >= k[0] or max(l, r) >= k[1]:
            raise ShapeError(f"{self.name} padding {max(t, l, b, r)} must be smaller than the kernel {fmt_shape(k)}")
        hp, wp = h + t + b, w + l + r
        if hp < k[0] or wp < k[1]:
            raise ShapeError(f"{self.name} window {fmt_shape(k)} is larger than its input {h}x{w}",
                             "use a smaller kernel or remove a pooling layer above")
        if (hp - k[0]) % s[0] or (wp - k[1]) % s[1]:
            raise ShapeError(f"{self.name} kernel={fmt_shape(k)} stride={fmt_shape(s)} does not tile the "
                             f"{'padded ' if t + l + b + r else ''}input {hp}x{wp}: the last "
                             f"{(hp - k[0]) % s[0] or (wp - k[1]) % s[1]} row(s)/column(s) would be dropped",
                             "pick a kernel and stride that divide the input, or use pad=same")
        return (c, out_size(h, k[0], s[0], t, b), out_size(w, k[1], s[1], l, r))

    def flops(self, in_shape, out_shape, a):
        return math.prod(out_shape) * math.prod(a["kernel"])

    def _onnx_attrs(self, a, shape):
        k, s, (t, l, b, r) = self.geometry(shape, a)
        return dict(kernel_shape=list(k), strides=list(s), pads=[t, l, b, r])


@register
class MaxPool(_Pool):
    name = "maxpool"
    doc = "max over each window; ties send the gradient to the first maximum"
    examples = [((2, 4, 4), {"kernel": (2, 2), "stride": None, "pad": (0, 0)}),
                ((2, 5, 5), {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1)})]

    def forward(self, x, p, a, ctx):
        # A running maximum over the kh*kw offsets: no window gather, no argmax over a copy.
        axes = _spatial(ctx.layout)
        k, s, pads = self.geometry((0, x.shape[axes[0]], x.shape[axes[1]]), a)
        xp = pad_image(x, pads, value=-np.inf, axes=axes)
        y = _fold(np.maximum, xp, k, s, axes)
        return y, (xp, y, pads, k, s, axes)

    def backward(self, dy, cache, p, a):
        xp, y, pads, k, s, axes = cache
        tiled = tuple(k) == tuple(s)  # every input cell in exactly one window: assign, no zero fill
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

    def to_onnx(self, g, x, p, a, shape):
        return g.node("MaxPool", [x], **self._onnx_attrs(a, shape))


@register
class AvgPool(_Pool):
    name = "avgpool"
    doc = "mean over each window; padded cells are not counted"
    examples = [((2, 4, 4), {"kernel": (2, 2), "stride": None, "pad": (0, 0)}),
                ((1, 5, 5), {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1)})]

    def forward(self, x, p, a, ctx):
        axes = _spatial(ctx.layout)
        hw = x.shape[axes[0]], x.shape[axes[1]]
        k, s, pads = self.geometry((0,) + hw, a)
        xp = pad_image(x, pads, axes=axes)
        ones = [1, 1, 1, 1]
        ones[axes[0]], ones[axes[1]] = hw
        counts = _fold(np.add, pad_image(np.ones(ones, dtype=x.dtype), pads, axes=axes), k, s, axes)
        y = _fold(np.add, xp, k, s, axes) / counts
        return y, (xp.shape, pads, k, s, counts, axes)

    def backward(self, dy, cache, p, a):
        padded_shape, pads, k, s, counts, axes = cache
        g = dy / counts
        dxp = np.zeros(padded_shape, dtype=dy.dtype)
        for _, _, idx in kernel_offsets(k, s, (g.shape[axes[0]], g.shape[axes[1]]), spatial_axes=axes):
            dxp[idx] += g
        return _unpad(dxp, pads, axes), {}

    def to_onnx(self, g, x, p, a, shape):
        return g.node("AveragePool", [x], count_include_pad=0, **self._onnx_attrs(a, shape))


@register
class Flatten(Op):
    name = "flatten"
    kind = "reshape"
    doc = "image CxHxW -> feature vector C*H*W (row-major, as ONNX Flatten)"
    examples = [((2, 3, 3), {})]
    layouts = (NCHW, CHWN)

    def infer(self, shape, a):
        return (math.prod(shape),)

    def forward(self, x, p, a, ctx):
        if ctx.layout == CHWN and x.ndim == 4:  # (C, H, W, N) -> (N, C*H*W) in NCHW order: a view
            return x.reshape(-1, x.shape[3]).T, (x.shape, CHWN)
        return x.reshape(x.shape[0], -1), (x.shape, NCHW)

    def backward(self, dy, cache, p, a):
        shape, layout = cache
        if layout == CHWN:
            return np.ascontiguousarray(dy.T).reshape(shape), {}
        return dy.reshape(shape), {}

    def to_onnx(self, g, x, p, a, shape):
        return g.node("Flatten", [x], axis=1)

    def flops(self, in_shape, out_shape, a):
        return 0


class _GlobalPool(Op):
    """image CxHxW -> feature vector C, one value per channel (ONNX Global*Pool, then Flatten)."""

    kind = "layer"
    ranks = (3,)
    examples = [((3, 4, 5), {}), ((2, 1, 1), {})]
    layouts = (NCHW, CHWN)
    onnx_op: str

    def infer(self, shape, a):
        self.check_rank(shape)
        return (shape[0],)

    def to_onnx(self, g, x, p, a, shape):
        return g.node("Flatten", [g.node(self.onnx_op, [x])], axis=1)

    def flops(self, in_shape, out_shape, a):
        return int(math.prod(in_shape))


@register
class GlobalAvgPool(_GlobalPool):
    name = "globalavgpool"
    doc = "image CxHxW -> feature vector C: the mean of each channel (a ResNet head)"
    onnx_op = "GlobalAveragePool"

    def forward(self, x, p, a, ctx):
        if ctx.layout == CHWN:
            return x.mean(axis=(1, 2), dtype=x.dtype).T, (x.shape, CHWN)
        return x.mean(axis=(2, 3), dtype=x.dtype), (x.shape, NCHW)

    def backward(self, dy, cache, p, a):
        shape, layout = cache
        dx = np.empty(shape, dy.dtype)
        if layout == CHWN:
            dx[...] = (dy.T / dy.dtype.type(shape[1] * shape[2]))[:, None, None, :]
        else:
            dx[...] = (dy / dy.dtype.type(shape[2] * shape[3]))[:, :, None, None]
        return dx, {}


@register
class GlobalMaxPool(_GlobalPool):
    name = "globalmaxpool"
    doc = "image CxHxW -> feature vector C: the max of each channel; ties send the gradient to the first"
    onnx_op = "GlobalMaxPool"

    def forward(self, x, p, a, ctx):
        if ctx.layout == CHWN:  # (C, H*W, N): the first maximum over the middle axis
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
        dx = np.zeros((shape[0], shape[1], shape[2] * shape[3]), dy.dtype)
        np.put_along_axis(dx, idx[:, :, None], dy[:, :, None], axis=2)
        return dx.reshape(shape), {}
