"""Recurrent layers over a sequence CxL: lstm and gru.

The LSTM is torch's and the literature's (Hochreiter & Schmidhuber 1997 with a forget gate, Gers et al.
2000): gates stacked i, f, g, o in the weight's rows, `z = W x_t + R h_(t-1) + b`, i, f, o = sigmoid,
g = tanh, `c_t = f * c_(t-1) + i * g`, `h_t = o * tanh(c_t)`, h_0 = c_0 = 0. One bias (torch's two
add up to it). Inits as Keras's: W xavier_uniform, R orthogonal, b 1 on the forget gate (unit_forget).
The GRU is torch's (Cho et al. 2014, the reset gate applied after R's product: ONNX's
linear_before_reset=1): gates r, z, n, `n = tanh(W_n x_t + b_n + r * (R_n h_(t-1)))`,
`h_t = (1 - z) * n + z * h_(t-1)`; W xavier_uniform, R orthogonal, b zeros.
docs/conventions.md writes the formulas; ONNX's gate orders (i, o, f, c; z, r, h) are taken care of in to_onnx.
"""

from __future__ import annotations

from ..attrs import Attr
from ..lazy_numpy import lazy_numpy
from .base import Op, ParamSpec, register

np = lazy_numpy(__name__)

GATES = 4  # i, f, g, o


def _steps_in(g, x):
    """(N, C, L) -> (L, N, C): ONNX's recurrent layout 0."""
    return g.node("Transpose", [x], perm=[2, 0, 1])


def _onnx_params(g, p, h: int, gates: int, order: tuple[int, ...]):
    """W, R, B as ONNX's recurrent ops take them: one direction, the gate blocks in ONNX's order, B the
    input bias then a zero recurrent bias."""
    rows = g.ints(np.concatenate([np.arange(k * h, (k + 1) * h) for k in order]))
    w = g.node("Unsqueeze", [g.node("Gather", [p["weight"], rows], axis=0), g.ints([0])])
    r = g.node("Unsqueeze", [g.node("Gather", [p["recurrent"], rows], axis=0), g.ints([0])])
    zeros = g.initializer(g.fresh("zeros"), np.zeros(gates * h, np.float32))
    b = g.node("Unsqueeze", [g.node("Concat", [g.node("Gather", [p["bias"], rows], axis=0), zeros], axis=0),
                             g.ints([0])])
    return w, r, b


def _steps_out(g, y, y_h, sequences: bool):
    """Y (L, 1, N, H) -> (N, H, L) for every step, or Y_h (1, N, H) -> (N, H) for the last."""
    if sequences:
        return g.node("Transpose", [g.node("Squeeze", [y, g.ints([1])])], perm=[1, 2, 0])
    return g.node("Squeeze", [y_h, g.ints([0])])


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
        w, r, b = _onnx_params(g, p, h, GATES, (0, 3, 1, 2))  # ONNX stacks i, o, f, c; dlc (and torch) i, f, g, o
        y, y_h = g.node_outputs("LSTM", [_steps_in(g, x), w, r, b], 2, hidden_size=h)
        return _steps_out(g, y, y_h, a["sequences"])

    def flops(self, in_shape, out_shape, a):
        c, steps, h = in_shape[0], in_shape[1], a["units"]
        return steps * (2 * GATES * h * (c + h) + 10 * h)


@register
class GRU(LSTM):
    name = "gru"
    doc = "gated recurrent unit over a sequence CxL: UNITS hidden channels, the last step's (or every step's)"

    def params(self, shape, a):
        c, h = shape[0], a["units"]
        return [ParamSpec("weight", (3 * h, c), c, 3 * h, init="xavier_uniform"),
                ParamSpec("recurrent", (3 * h, h), h, 3 * h, init="orthogonal"),
                ParamSpec("bias", (3 * h,), init="zeros", decay=False)]

    def to_onnx(self, g, x, p, a, shape):
        h = a["units"]
        w, r, b = _onnx_params(g, p, h, 3, (1, 0, 2))  # ONNX stacks z, r, h; dlc (and torch) r, z, n
        y, y_h = g.node_outputs("GRU", [_steps_in(g, x), w, r, b], 2, hidden_size=h, linear_before_reset=1)
        return _steps_out(g, y, y_h, a["sequences"])

    def flops(self, in_shape, out_shape, a):
        c, steps, h = in_shape[0], in_shape[1], a["units"]
        return steps * (2 * 3 * h * (c + h) + 8 * h)
