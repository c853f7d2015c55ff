"""The layers with weights: dense, conv (2-D, over images) and conv1d (over sequences)."""

from __future__ import annotations

import math

from ..attrs import Attr
from .base import Op, ParamSpec, ShapeError, fmt_shape, register
from .windows import out_size, resolve_pads, resolve_pads_1d


@register
class Dense(Op):
    name = "dense"
    kind = "layer"
    weight_layer = inline = True
    weight_out_axis = 1  # (in, out)
    doc = "fully connected: y = x W + b, W stored (in, out); over a sequence CxL, at every step (UNITSxL)"
    attrs = {
        "units": Attr("int", min=1, doc="the number of output units"),
        "bias": Attr("bool", True, doc="add a bias vector (dropped automatically before batchnorm)", searchable=False),
    }
    positional = ("units",)
    ranks = (1, 2)
    examples = [((5,), {"units": 4}), ((3,), {"units": 2, "bias": False}), ((3, 4), {"units": 2})]

    def infer(self, shape, a):
        self.check_rank(shape)
        return (a["units"],) + tuple(shape[1:])  # a sequence: the same weights at every step (Keras's Dense)

    def params(self, shape, a):
        ps = [ParamSpec("weight", (shape[0], a["units"]), shape[0], a["units"])]
        if a["bias"]:
            ps.append(ParamSpec("bias", (a["units"],), init="zeros", decay=False))
        return ps


    def to_onnx(self, g, x, p, a, shape):
        if len(shape) == 2:  # (N, C, L) -> (N, L, C) @ W (+ b) -> (N, UNITS, L)
            y = g.node("MatMul", [g.node("Transpose", [x], perm=[0, 2, 1]), p["weight"]])
            if "bias" in p:
                y = g.node("Add", [y, p["bias"]])
            return g.node("Transpose", [y], perm=[0, 2, 1])
        if "bias" in p:
            return g.node("Gemm", [x, p["weight"], p["bias"]])
        return g.node("MatMul", [x, p["weight"]])

    def flops(self, in_shape, out_shape, a):
        return 2 * in_shape[0] * math.prod(out_shape)


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


    def to_onnx(self, g, x, p, a, shape):
        _, h, w = shape
        t, l, b, r = resolve_pads(a["pad"], (h, w), a["kernel"], a["stride"])
        inputs = [x, p["weight"]] + ([p["bias"]] if "bias" in p else [])
        return g.node("Conv", inputs, kernel_shape=list(a["kernel"]), strides=list(a["stride"]), pads=[t, l, b, r])

    def flops(self, in_shape, out_shape, a):
        return 2 * in_shape[0] * math.prod(a["kernel"]) * math.prod(out_shape)


@register
class Conv1d(Op):
    name = "conv1d"
    kind = "layer"
    weight_layer = inline = True
    weight_out_axis = 0  # (O, C, k)
    doc = "1-D convolution (cross-correlation) over a sequence CxL, weights OIK"
    attrs = {
        "filters": Attr("int", min=1, doc="the number of output channels"),
        "kernel": Attr("int", 3, min=1, doc="kernel size in steps"),
        "stride": Attr("int", 1, min=1, doc="stride in steps"),
        "dilation": Attr("int", 1, min=1, doc="steps between the kernel's taps"),
        "pad": Attr("pad1d", 0, min=0, doc="zero padding: P steps each side, 'same', 'valid' or 'causal' (before only)"),
        "bias": Attr("bool", True, doc="add a per-channel bias (dropped automatically before batchnorm)", searchable=False),
    }
    positional = ("filters",)
    ranks = (2,)
    examples = [((2, 9), {"filters": 3, "kernel": 3, "stride": 1, "dilation": 1, "pad": 1}),
                ((3, 10), {"filters": 2, "kernel": 4, "stride": 2, "dilation": 1, "pad": "same"}),
                ((2, 11), {"filters": 2, "kernel": 3, "stride": 1, "dilation": 2, "pad": "causal"}),
                ((1, 7), {"filters": 2, "kernel": 2, "stride": 3, "dilation": 1, "pad": 0, "bias": False})]

    def _pads(self, shape, a) -> tuple[int, int]:
        return resolve_pads_1d(a["pad"], shape[1], a["kernel"], a["stride"], a["dilation"])

    def infer(self, shape, a):
        self.check_rank(shape)
        length = shape[1]
        before, after = self._pads(shape, a)
        span = (a["kernel"] - 1) * a["dilation"] + 1
        if length + before + after < span:
            raise ShapeError(f"kernel {a['kernel']}" + (f" dilated by {a['dilation']}" if a["dilation"] > 1 else "")
                             + f" spans {span} steps, more than the {'padded ' if before + after else ''}input's "
                             f"{length + before + after}", "use a smaller kernel, pad=same, or remove a pooling layer above")
        return (a["filters"], out_size(length, span, a["stride"], before, after))

    def check_steps(self, shape, a) -> None:
        if a["pad"] == "same" and a["stride"] > 1:  # ceil(L/stride) outputs: the padding before follows L
            raise ShapeError("conv1d pad=same with a stride over a variable-length sequence pads each length "
                             "differently, so a series would not give what it gives alone",
                             "write pad=causal, pad=valid or a number of steps, or stride=1")

    def params(self, shape, a):
        c, k, o = shape[0], a["kernel"], a["filters"]
        ps = [ParamSpec("weight", (o, c, k), c * k, o * k)]
        if a["bias"]:
            ps.append(ParamSpec("bias", (o,), init="zeros", decay=False))
        return ps

    def to_onnx(self, g, x, p, a, shape):
        before, after = self._pads(shape, a)
        inputs = [x, p["weight"]] + ([p["bias"]] if "bias" in p else [])
        return g.node("Conv", inputs, kernel_shape=[a["kernel"]], strides=[a["stride"]], dilations=[a["dilation"]],
                      pads=[before, after])

    def flops(self, in_shape, out_shape, a):
        return 2 * in_shape[0] * a["kernel"] * math.prod(out_shape)
