"""The ops that join paths: add (residual paths, parallel sums) and concat (parallel paths side by side).

A merge op takes several inputs (`arity = None`): its shape rule gets the list of the inputs'
shapes, its forward the list of arrays, and its backward returns one gradient per input.
They are not written as lines: `residual { ... }` and `parallel add|concat { branch { ... } ... }`
place them.
"""

from __future__ import annotations

import math

from .base import Op, ShapeError, fmt_shape, register


class Merge(Op):
    kind = "merge"
    arity = None  # two or more inputs

    def check_inputs(self, shapes):
        if len(shapes) < 2:
            raise ShapeError(f"{self.name} joins two or more paths, got {len(shapes)}")
        ranks = {len(s) for s in shapes}
        if len(ranks) > 1:
            raise ShapeError(f"{self.name} joins paths of different kinds: "
                             + ", ".join(fmt_shape(s) for s in shapes),
                             "give every path the same kind of output: all images or all feature vectors")


@register
class Add(Merge):
    name = "add"
    doc = "the elementwise sum of its inputs, which have one shape (a residual path: x + body(x))"
    examples = [([(4,), (4,)], {}), ([(2, 5), (2, 5)], {}), ([(2, 3, 3), (2, 3, 3), (2, 3, 3)], {})]

    def infer(self, shapes, a):
        self.check_inputs(shapes)
        if len(set(map(tuple, shapes))) > 1:
            raise ShapeError("add needs one shape on every path, got " + ", ".join(fmt_shape(s) for s in shapes))
        return tuple(shapes[0])


    def to_onnx(self, g, xs, p, a, shapes):
        return g.node("Add" if len(xs) == 2 else "Sum", list(xs))

    def flops(self, in_shapes, out_shape, a):
        return (len(in_shapes) - 1) * math.prod(out_shape)


@register
class Concat(Merge):
    name = "concat"
    doc = "its inputs side by side: feature vectors end to end, images channel by channel (same height and width)"
    examples = [([(3,), (5,)], {}), ([(2, 5), (3, 5)], {}), ([(2, 3, 4), (1, 3, 4), (3, 3, 4)], {})]

    def infer(self, shapes, a):
        self.check_inputs(shapes)
        if len(shapes[0]) == 3 and len({tuple(s[1:]) for s in shapes}) > 1:
            raise ShapeError("concat needs images of one height and width, got " + ", ".join(fmt_shape(s) for s in shapes),
                             "give the paths the same strides and pad=same")
        return (sum(s[0] for s in shapes),) + tuple(shapes[0][1:])


    def to_onnx(self, g, xs, p, a, shapes):
        return g.node("Concat", list(xs), axis=1)

    def flops(self, in_shapes, out_shape, a):
        return 0
