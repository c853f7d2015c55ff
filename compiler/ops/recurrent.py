"""Recurrent layers over a sequence CxL: lstm.

The LSTM is torch's and the literature's (Hochreiter & Schmidhuber 1997 with a forget gate, Gers et al.
2000): gates stacked i, f, g, o in the weight's rows, `z = W x_t + R h_(t-1) + b`, i, f, o = sigmoid,
g = tanh, `c_t = f * c_(t-1) + i * g`, `h_t = o * tanh(c_t)`, h_0 = c_0 = 0. One bias (torch's two
add up to it). Inits as Keras's: W xavier_uniform, R orthogonal, b 1 on the forget gate (unit_forget).
docs/conventions.md writes the formulas; ONNX's gate order (i, o, f, c) is taken care of in to_onnx.
"""

from __future__ import annotations

from ..attrs import Attr
from ..lazy_numpy import lazy_numpy
from .base import Op, ParamSpec, register

np = lazy_numpy(__name__)

GATES = 4  # i, f, g, o


@register
class LSTM(Op):
    name = "lstm"
    kind = "layer"
    recurrent = True
    doc = "long short-term memory over a sequence CxL: UNITS hidden channels, the last step's (or every step's)"
    attrs = {
        "units": Attr("int", min=1, doc="hidden channels"),
        "sequences": Attr("bool", False, searchable=False,
                          doc="every step's output (a sequence UNITSxL) instead of the last one (a vector)"),
    }
    positional = ("units",)
    ranks = (2,)
    examples = [((3, 5), {"units": 4, "sequences": False}), ((2, 4), {"units": 3, "sequences": True})]

    def infer(self, shape, a):
        self.check_rank(shape)
        return (a["units"], shape[1]) if a["sequences"] else (a["units"],)

    def params(self, shape, a):
        c, h = shape[0], a["units"]
        return [ParamSpec("weight", (GATES * h, c), c, GATES * h, init="xavier_uniform"),
                ParamSpec("recurrent", (GATES * h, h), h, GATES * h, init="orthogonal"),
                ParamSpec("bias", (GATES * h,), init="unit_forget", decay=False)]

    def to_onnx(self, g, x, p, a, shape):
        h = a["units"]
        # ONNX stacks the gates i, o, f, c; dlc (and torch) i, f, g, o
        order = g.ints(np.concatenate([np.arange(k * h, (k + 1) * h) for k in (0, 3, 1, 2)]))
        w = g.node("Unsqueeze", [g.node("Gather", [p["weight"], order], axis=0), g.ints([0])])
        r = g.node("Unsqueeze", [g.node("Gather", [p["recurrent"], order], axis=0), g.ints([0])])
        zeros = g.initializer(g.fresh("zeros"), np.zeros(GATES * h, np.float32))
        b = g.node("Unsqueeze", [g.node("Concat", [g.node("Gather", [p["bias"], order], axis=0), zeros], axis=0),
                                 g.ints([0])])
        steps_first = g.node("Transpose", [x], perm=[2, 0, 1])  # (L, N, C): ONNX's layout 0
        y, y_h = g.node_outputs("LSTM", [steps_first, w, r, b], 2, hidden_size=h)
        if a["sequences"]:  # Y (L, 1, N, H) -> (N, H, L)
            return g.node("Transpose", [g.node("Squeeze", [y, g.ints([1])])], perm=[1, 2, 0])
        return g.node("Squeeze", [y_h, g.ints([0])])  # Y_h (1, N, H) -> (N, H)

    def flops(self, in_shape, out_shape, a):
        c, steps, h = in_shape[0], in_shape[1], a["units"]
        return steps * (2 * GATES * h * (c + h) + 10 * h)
