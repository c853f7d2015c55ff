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

from typing import ClassVar

from ..attrs import Attr
from ..lazy_numpy import lazy_numpy
from .base import Op, ParamSpec, register

np = lazy_numpy(__name__)

GATES = 4  # i, f, g, o


def _steps_in(g, x):
    """(N, C, L) -> (L, N, C): ONNX's recurrent layout 0."""
    return g.node("Transpose", [x], perm=[2, 0, 1])


def _onnx_params(g, p, h: int, gates: int, order: tuple[int, ...], bidirectional: bool):
    """W, R, B as ONNX's recurrent ops take them: a leading axis of directions, the gate blocks in ONNX's
    order, B the input bias then a zero recurrent bias."""
    rows = g.ints(np.concatenate([np.arange(k * h, (k + 1) * h) for k in order]))
    zeros = g.initializer(g.fresh("zeros"), np.zeros(gates * h, np.float32))

    def stacked(role, with_zeros=False):
        parts = []
        for suffix in ("", "_reverse") if bidirectional else ("",):
            v = g.node("Gather", [p[role + suffix], rows], axis=0)
            if with_zeros:
                v = g.node("Concat", [v, zeros], axis=0)
            parts.append(g.node("Unsqueeze", [v, g.ints([0])]))
        return parts[0] if len(parts) == 1 else g.node("Concat", parts, axis=0)

    return stacked("weight"), stacked("recurrent"), stacked("bias", with_zeros=True)


def _steps_out(g, y, y_h, sequences: bool, channels: int):
    """Y (L, D, N, H) -> (N, D*H, L) for every step (L as it comes: a variable-length input's time axis
    is dynamic), or Y_h (D, N, H) -> (N, D*H) for the last (the forward direction's channels first)."""
    if sequences:
        return g.node("Reshape", [g.node("Transpose", [y], perm=[2, 1, 3, 0]), g.ints([0, channels, -1])])
    return g.node("Reshape", [g.node("Transpose", [y_h], perm=[1, 0, 2]), g.ints([0, -1])])


@register
class LSTM(Op):
    name = "lstm"
    kind = "layer"
    recurrent = True
    inline = True  # its line may carry dropout= (torch's dropout between stacked layers), layernorm, batchnorm
    doc = "long short-term memory over a sequence CxL: UNITS hidden channels, the last step's (or every step's)"
    attrs = {
        "units": Attr("int", min=1, doc="hidden channels"),
        "sequences": Attr("bool", False, searchable=False,
                          doc="every step's output (a sequence UNITSxL) instead of the last one (a vector)"),
        "bidirectional": Attr("bool", False, searchable=False,
                              doc="a second layer over the reversed steps, its output concatenated: 2*UNITS channels"),
    }
    positional = ("units",)
    ranks = (2,)
    examples = [((3, 5), {"units": 4, "sequences": False, "bidirectional": False}),
                ((2, 4), {"units": 3, "sequences": True, "bidirectional": False}),
                ((2, 4), {"units": 3, "sequences": False, "bidirectional": True}),
                ((3, 3), {"units": 2, "sequences": True, "bidirectional": True})]
    gates: ClassVar[int] = GATES
    pointwise: ClassVar[int] = 10  # per hidden unit and step: the gates' nonlinearities and the cell update
    bias_init: ClassVar[str] = "unit_forget"

    def infer(self, shape, a):
        self.check_rank(shape)
        units = a["units"] * (2 if a["bidirectional"] else 1)
        return (units, shape[1]) if a["sequences"] else (units,)

    def params(self, shape, a):
        c, h, k = shape[0], a["units"], self.gates
        return [spec for suffix in (("", "_reverse") if a["bidirectional"] else ("",)) for spec in (
            ParamSpec("weight" + suffix, (k * h, c), c, k * h, init="xavier_uniform"),
            ParamSpec("recurrent" + suffix, (k * h, h), h, k * h, init="orthogonal"),
            ParamSpec("bias" + suffix, (k * h,), init=self.bias_init, decay=False))]

    def to_onnx(self, g, x, p, a, shape):
        h = a["units"]
        w, r, b = _onnx_params(g, p, h, self.gates, (0, 3, 1, 2), a["bidirectional"])  # ONNX: i, o, f, c; dlc: i, f, g, o
        y, y_h = g.node_outputs("LSTM", [_steps_in(g, x), w, r, b], 2, hidden_size=h,
                                direction="bidirectional" if a["bidirectional"] else "forward")
        return _steps_out(g, y, y_h, a["sequences"], self.infer(shape, a)[0])

    def flops(self, in_shape, out_shape, a):
        c, steps, h = in_shape[0], in_shape[1], a["units"]
        return (2 if a["bidirectional"] else 1) * steps * (2 * self.gates * h * (c + h) + self.pointwise * h)


@register
class GRU(LSTM):
    name = "gru"
    doc = "gated recurrent unit over a sequence CxL: UNITS hidden channels, the last step's (or every step's)"
    gates = 3  # r, z, n
    pointwise = 8
    bias_init = "zeros"

    def to_onnx(self, g, x, p, a, shape):
        h = a["units"]
        w, r, b = _onnx_params(g, p, h, self.gates, (1, 0, 2), a["bidirectional"])  # ONNX: z, r, h; dlc (and torch): r, z, n
        y, y_h = g.node_outputs("GRU", [_steps_in(g, x), w, r, b], 2, hidden_size=h, linear_before_reset=1,
                                direction="bidirectional" if a["bidirectional"] else "forward")
        return _steps_out(g, y, y_h, a["sequences"], self.infer(shape, a)[0])
