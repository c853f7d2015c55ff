"""Pooling and reshaping: maxpool, avgpool, flatten, globalavgpool, globalmaxpool.

Conventions (pinned by tests): maxpool gives the whole gradient of a window to its
first maximum (row-major), as PyTorch does; avgpool with padding divides by the
number of real (unpadded) cells, ONNX's default count_include_pad=0.
"""

from __future__ import annotations

import math

from ..attrs import Attr
from .base import Op, ShapeError, fmt_shape, register
from .windows import out_size, resolve_pads


_POOL_ATTRS = {
    "kernel": Attr("dims", (2, 2), min=1, doc="window size: K or KHxKW"),
    "stride": Attr("dims", None, min=1, doc="stride (default: the kernel size)"),
    "pad": Attr("pad", (0, 0), min=0, doc="padding: P, PHxPW, 'same' or 'valid'"),
    "floor": Attr("bool", False, searchable=False,
                  doc="leave out the cells past the last whole window (PyTorch's and ONNX's default floor mode) "
                      "instead of refusing an input the windows do not tile"),
}


class _Pool(Op):
    """A window over an image CxHxW, or over the steps of a sequence CxL (pooled as a 1xL image: one
    number each for the kernel, the stride and the padding)."""

    kind = "layer"
    attrs = _POOL_ATTRS
    positional = ("kernel",)
    ranks = (2, 3)

    def image_view(self, shape, a) -> tuple[tuple[int, ...], dict]:
        """(the image shape, the attributes) this op pools: a sequence CxL as the image Cx1xL."""
        if len(shape) != 2:
            return tuple(shape), a

        def steps(key, v):
            if v is None or isinstance(v, str):
                return v
            if v[0] != v[1]:
                raise ShapeError(f"{self.name} over a sequence takes one {key} in steps, not {fmt_shape(v)}",
                                 f"write {key}={v[1]}")
            return v[1]

        k, s, p = steps("kernel", a["kernel"]), steps("stride", a.get("stride")), steps("pad", a["pad"])
        view = dict(a, kernel=(1, k), stride=None if s is None else (1, s), pad=p if isinstance(p, str) else (0, p))
        return (shape[0], 1, shape[1]), view

    @staticmethod
    def geometry(shape, a):
        k = a["kernel"]
        s = a.get("stride") or k
        pads = resolve_pads(a["pad"], shape[1:], k, s)
        return k, s, pads

    def infer(self, shape, a):
        self.check_rank(shape)
        if len(shape) == 2:
            image, view = self.image_view(shape, a)
            c, _, steps = self.infer(image, view)
            return (c, steps)
        c, h, w = shape
        k, s, (t, l, b, r) = self.geometry(shape, a)
        if max(t, b) >= k[0] or max(l, r) >= k[1]:
            raise ShapeError(f"{self.name} padding {max(t, l, b, r)} must be smaller than the kernel {fmt_shape(k)}")
        hp, wp = h + t + b, w + l + r
        if hp < k[0] or wp < k[1]:
            raise ShapeError(f"{self.name} window {fmt_shape(k)} is larger than its input {h}x{w}",
                             "use a smaller kernel or remove a pooling layer above")
        if ((hp - k[0]) % s[0] or (wp - k[1]) % s[1]) and not a.get("floor"):
            raise ShapeError(f"{self.name} kernel={fmt_shape(k)} stride={fmt_shape(s)} does not tile the "
                             f"{'padded ' if t + l + b + r else ''}input {hp}x{wp}: the last "
                             f"{(hp - k[0]) % s[0] or (wp - k[1]) % s[1]} row(s)/column(s) would be dropped",
                             "pick a kernel and stride that divide the input, use pad=same, or write 'floor' to "
                             "leave those cells out")
        return (c, out_size(h, k[0], s[0], t, b), out_size(w, k[1], s[1], l, r))

    def check_steps(self, shape, a) -> None:
        """Over a variable-length sequence, no padding: the padded steps of a shorter series are masked
        zeros, which a max or a mean would read where the series itself has none."""
        image, view = self.image_view(shape, a)
        if any(self.geometry(image, view)[2]):
            raise ShapeError(f"{self.name} over a variable-length sequence cannot pad: a shorter series's "
                             "window would read the batch's padding", "write pad=0 (or pad=valid)")

    def steps_out(self, shape, a) -> int:
        """A shorter series of a variable-length batch: the windows that fit in it (its last partial window
        is left out, as ONNX's and torch's floor mode do; the batch's full length must tile)."""
        image, view = self.image_view(shape, a)
        k, s, _ = self.geometry(image, view)
        if shape[1] < k[1]:
            raise ShapeError(f"{self.name}'s window is longer than the series")
        return out_size(shape[1], k[1], s[1], 0, 0)

    def flops(self, in_shape, out_shape, a):
        return math.prod(out_shape) * math.prod(self.image_view(in_shape, a)[1]["kernel"])

    def _onnx_attrs(self, a, shape):
        image, view = self.image_view(shape, a)
        k, s, (t, l, b, r) = self.geometry(image, view)
        if len(shape) == 2:  # a 1-D window over the steps
            return dict(kernel_shape=[k[1]], strides=[s[1]], pads=[l, r])
        return dict(kernel_shape=list(k), strides=list(s), pads=[t, l, b, r])


@register
class MaxPool(_Pool):
    name = "maxpool"
    doc = "max over each window; ties send the gradient to the first maximum"
    examples = [((2, 4, 4), {"kernel": (2, 2), "stride": None, "pad": (0, 0)}),
                ((2, 5, 5), {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1)}),
                ((2, 8), {"kernel": (2, 2), "stride": None, "pad": (0, 0)}),
                ((3, 9), {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1)}),
                ((2, 6, 6), {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1), "floor": True}),
                ((2, 5, 5), {"kernel": (2, 2), "stride": None, "pad": (0, 0), "floor": True})]


    def to_onnx(self, g, x, p, a, shape):
        return g.node("MaxPool", [x], **self._onnx_attrs(a, shape))


@register
class AvgPool(_Pool):
    name = "avgpool"
    doc = "mean over each window; padded cells are not counted"
    examples = [((2, 4, 4), {"kernel": (2, 2), "stride": None, "pad": (0, 0)}),
                ((1, 5, 5), {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1)}),
                ((2, 7), {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1)}),
                ((1, 6, 6), {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1), "floor": True})]


    def to_onnx(self, g, x, p, a, shape):
        return g.node("AveragePool", [x], count_include_pad=0, **self._onnx_attrs(a, shape))


@register
class Flatten(Op):
    name = "flatten"
    kind = "reshape"
    doc = "image CxHxW or sequence CxL -> feature vector C*H*W or C*L (row-major, as ONNX Flatten)"
    examples = [((2, 3, 3), {}), ((3, 4), {})]
    variable_steps = False

    def infer(self, shape, a):
        return (math.prod(shape),)


    def to_onnx(self, g, x, p, a, shape):
        return g.node("Flatten", [x], axis=1)

    def flops(self, in_shape, out_shape, a):
        return 0


class _GlobalPool(Op):
    """image CxHxW or sequence CxL -> feature vector C, one value per channel (ONNX Global*Pool, then Flatten)."""

    kind = "layer"
    ranks = (2, 3)
    examples = [((3, 4, 5), {}), ((2, 1, 1), {}), ((3, 7), {})]
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
    doc = "image CxHxW or sequence CxL -> feature vector C: the mean of each channel (a ResNet or FCN head)"
    onnx_op = "GlobalAveragePool"


@register
class GlobalMaxPool(_GlobalPool):
    name = "globalmaxpool"
    doc = "image CxHxW or sequence CxL -> feature vector C: the max of each channel; ties send the gradient to the first"
    onnx_op = "GlobalMaxPool"


