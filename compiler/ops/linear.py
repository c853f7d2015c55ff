"""The layers with weights: dense and conv (2-D)."""

from __future__ import annotations

import math

from ..lazy_numpy import lazy_numpy

from ..attrs import Attr
from .base import CHWN, NCHW, Op, ParamSpec, ShapeError, fmt_shape, register
from .windows import kernel_offsets, out_size, resolve_pads

np = lazy_numpy(__name__)


@register
class Dense(Op):
    name = "dense"
    kind = "layer"
    weight_layer = inline = True
    weight_out_axis = 1  # (in, out)
    doc = "fully connected: y = x W + b, W stored (in, out)"
    attrs = {
        "units": Attr("int", min=1, doc="the number of output units"),
        "bias": Attr("bool", True, doc="add a bias vector (dropped automatically before batchnorm)", searchable=False),
    }
    positional = ("units",)
    ranks = (1,)
    examples = [((5,), {"units": 4}), ((3,), {"units": 2, "bias": False})]

    def infer(self, shape, a):
        self.check_rank(shape)
        return (a["units"],)

    def params(self, shape, a):
        ps = [ParamSpec("weight", (shape[0], a["units"]), shape[0], a["units"])]
        if a["bias"]:
            ps.append(ParamSpec("bias", (a["units"],), init="zeros", decay=False))
        return ps

    def forward(self, x, p, a, ctx):
        y = x @ p["weight"]
        if "bias" in p:
            y += p["bias"]
        return y, x

    def backward(self, dy, x, p, a, need_dx=True):
        grads = {"weight": x.T @ dy}
        if "bias" in p:
            grads["bias"] = dy.sum(axis=0)
        return (dy @ p["weight"].T if need_dx else None), grads

    def to_onnx(self, g, x, p, a, shape):
        if "bias" in p:
            return g.node("Gemm", [x, p["weight"], p["bias"]])
        return g.node("MatMul", [x, p["weight"]])

    def flops(self, in_shape, out_shape, a):
        return 2 * in_shape[0] * out_shape[0]


def _inside(offset: int, stride: int, n_out: int, size: int):
    """For a kernel offset (already less the padding): the outputs [o0, o1) whose input cell
    o*stride + offset lies inside [0, size), and the slice of those input cells; None if none does."""
    o0 = max(0, -(offset // stride)) if offset < 0 else 0
    while o0 < n_out and o0 * stride + offset < 0:
        o0 += 1
    o1 = min(n_out, (size - 1 - offset) // stride + 1) if size - 1 - offset >= 0 else 0
    if o1 <= o0:
        return None
    start = o0 * stride + offset
    return o0, o1, slice(start, (o1 - 1) * stride + offset + 1, stride)


@register
class Conv(Op):
    name = "conv"
    kind = "layer"
    weight_layer = inline = True
    weight_out_axis = 0  # (O, C, kh, kw)
    doc = "2-D convolution (cross-correlation), weights OIHW"
    attrs = {
        "filters": Attr("int", min=1, doc="the number of output channels"),
        "kernel": Attr("dims", (3, 3), min=1, doc="kernel size: K or KHxKW"),
        "stride": Attr("dims", (1, 1), min=1, doc="stride: S or SHxSW"),
        "pad": Attr("pad", (0, 0), min=0, doc="zero padding: P, PHxPW, 'same' or 'valid'"),
        "bias": Attr("bool", True, doc="add a per-channel bias (dropped automatically before batchnorm)", searchable=False),
    }
    positional = ("filters",)
    ranks = (3,)
    examples = [((2, 6, 6), {"filters": 3, "kernel": (3, 3), "stride": (1, 1), "pad": (1, 1)}),
                ((2, 7, 7), {"filters": 2, "kernel": (3, 2), "stride": (2, 2), "pad": "same"}),
                ((1, 5, 5), {"filters": 2, "kernel": (2, 2), "stride": (1, 1), "pad": (0, 0), "bias": False})]

    def infer(self, shape, a):
        self.check_rank(shape)
        c, h, w = shape
        k, s = a["kernel"], a["stride"]
        t, l, b, r = resolve_pads(a["pad"], (h, w), k, s)
        if h + t + b < k[0] or w + l + r < k[1]:
            raise ShapeError(f"kernel {fmt_shape(k)} is larger than the {'padded ' if t + l + b + r else ''}input "
                             f"{h + t + b}x{w + l + r}", "use a smaller kernel, pad=same, or remove a pooling layer above")
        return (a["filters"], out_size(h, k[0], s[0], t, b), out_size(w, k[1], s[1], l, r))

    def params(self, shape, a):
        c = shape[0]
        kh, kw = a["kernel"]
        o = a["filters"]
        ps = [ParamSpec("weight", (o, c, kh, kw), c * kh * kw, o * kh * kw)]
        if a["bias"]:
            ps.append(ParamSpec("bias", (o,), init="zeros", decay=False))
        return ps

    layouts = (NCHW, CHWN)
    preferred_layout = CHWN

    def forward(self, x, p, a, ctx):
        # im2col in a (C, H, W, N) layout, the batch innermost: each kernel offset copies (and
        # backward adds) runs of Wo*N contiguous values instead of rows of Wo. Given CHWN (the
        # runtime keeps conv stacks in it) neither the input nor the output is transposed.
        chwn = ctx.layout == CHWN
        xt = x if chwn else x.transpose(1, 2, 3, 0)
        c, h, w, n = xt.shape
        w_ = p["weight"]
        o, _, kh, kw = w_.shape
        s = a["stride"]
        t, l, b, r = pads = resolve_pads(a["pad"], (h, w), a["kernel"], s)
        if any(pads):
            padded = np.zeros((c, h + t + b, w + l + r, n), dtype=x.dtype)
            padded[:, t:t + h, l:l + w, :] = xt
            xt = padded
        else:
            xt = np.ascontiguousarray(xt)
        ho, wo = out_size(h, kh, s[0], t, b), out_size(w, kw, s[1], l, r)
        cols = np.empty((c, kh, kw, ho, wo, n), dtype=x.dtype)
        for i, j, idx in kernel_offsets((kh, kw), s, (ho, wo), spatial_axes=(1, 2)):
            cols[:, i, j] = xt[idx]
        cols = cols.reshape(c * kh * kw, ho * wo * n)
        y = w_.reshape(o, -1) @ cols  # (O, Ho*Wo*N)
        if "bias" in p:
            y += p["bias"][:, None]
        y = y.reshape(o, ho, wo, n)
        if not chwn:
            y = np.ascontiguousarray(y.transpose(3, 0, 1, 2))
        return y, (cols, xt.shape, pads, (ho, wo), chwn)

    def backward(self, dy, cache, p, a, need_dx=True):
        cols, padded_shape, (t, l, b, r), (ho, wo), chwn = cache
        w_ = p["weight"]
        o, c, kh, kw = w_.shape
        n = padded_shape[3]
        dy_t = (np.ascontiguousarray(dy) if chwn else np.ascontiguousarray(dy.transpose(1, 2, 3, 0))).reshape(o, -1)
        # cols @ dy^T, transposed: the same product as dy @ cols^T, and 1.3-1.5x faster through OpenBLAS
        # for these shapes (a long inner dimension Ho*Wo*N)
        grads = {"weight": np.ascontiguousarray((cols @ dy_t.T).T).reshape(w_.shape)}
        if "bias" in p:
            grads["bias"] = dy_t.sum(axis=1)
        if not need_dx:
            return None, grads
        dcols = (w_.reshape(o, -1).T @ dy_t).reshape(c, kh, kw, ho, wo, n)
        # col2im straight into the unpadded input: each offset adds the part of its window that
        # falls inside the image (no padded buffer to zero, add into and copy out of)
        h, w = padded_shape[1] - t - b, padded_shape[2] - l - r
        dx = np.zeros((c, h, w, n), dtype=dy.dtype)
        (sh, sw) = a["stride"]
        for i in range(kh):
            rows = _inside(i - t, sh, ho, h)
            if rows is None:
                continue
            for j in range(kw):
                cols_ = _inside(j - l, sw, wo, w)
                if cols_ is None:
                    continue
                (oy0, oy1, iy), (ox0, ox1, ix) = rows, cols_
                dx[:, iy, ix, :] += dcols[:, i, j, oy0:oy1, ox0:ox1]
        return (dx if chwn else np.ascontiguousarray(dx.transpose(3, 0, 1, 2))), grads

    def to_onnx(self, g, x, p, a, shape):
        _, h, w = shape
        t, l, b, r = resolve_pads(a["pad"], (h, w), a["kernel"], a["stride"])
        inputs = [x, p["weight"]] + ([p["bias"]] if "bias" in p else [])
        return g.node("Conv", inputs, kernel_shape=list(a["kernel"]), strides=list(a["stride"]), pads=[t, l, b, r])

    def flops(self, in_shape, out_shape, a):
        return 2 * in_shape[0] * math.prod(a["kernel"]) * math.prod(out_shape)
