"""Activations: elementwise nonlinearities, softmax, prelu (learned), rrelu, maxout.

Conventions: leaky_relu alpha defaults to 0.01 (PyTorch/ONNX); prelu slopes start at
0.25, one per channel (images) or per feature (vectors); rrelu samples its slope
uniformly in [lower, upper] per element in training and uses (lower+upper)/2 at
inference; gelu is the tanh approximation; maxout takes the max over groups of `k`
consecutive features (or channels), ties to the first.
"""

from __future__ import annotations

import math

from ..lazy_numpy import lazy_numpy

from ..attrs import Attr
from .base import Op, ParamSpec, ShapeError, register

np = lazy_numpy(__name__)




class Elementwise(Op):
    """y = f(x) with dy/dx computed from x and y. Subclasses define f, df, onnx."""

    kind = "activation"
    # relu-like activations want he init; saturating ones xavier; selu lecun.
    init_family = "xavier"
    nonlinear = True
    examples = [((7,), {}), ((2, 5), {}), ((2, 3, 3), {})]






@register
class Linear(Elementwise):
    name = "linear"
    doc = "identity"
    nonlinear = False



    def to_onnx(self, g, x, p, a, shape):
        return x

    def flops(self, in_shape, out_shape, a):
        return 0


@register
class Sigmoid(Elementwise):
    name = "sigmoid"
    doc = "1 / (1 + exp(-x))"
    saturating = True

    def saturated(self, y):
        """Outputs in the flat tails, where the gradient is under 2 % of its peak (diagnose counts them)."""
        return np.abs(y - 0.5) > 0.48



    def to_onnx(self, g, x, p, a, shape):
        return g.node("Sigmoid", [x])


@register
class Tanh(Elementwise):
    name = "tanh"
    doc = "hyperbolic tangent"
    saturating = True

    def saturated(self, y):
        """Outputs in the flat tails, where the gradient is under 8 % of its peak (diagnose counts them)."""
        return np.abs(y) > 0.96



    def to_onnx(self, g, x, p, a, shape):
        return g.node("Tanh", [x])


@register
class ReLU(Elementwise):
    name = "relu"
    doc = "max(0, x)"
    init_family = "he"
    dies = True

    def dead(self, y):
        """Per unit (a feature, or a conv channel): 0 for every sample (and pixel) of the batch."""
        return np.all(y <= 0, axis=(0, *range(2, y.ndim)))  # per feature or channel, over the batch and positions



    def to_onnx(self, g, x, p, a, shape):
        return g.node("Relu", [x])


@register
class LeakyReLU(Elementwise):
    name = "leaky_relu"
    doc = "x if x > 0 else alpha * x"
    init_family = "he"
    attrs = {"alpha": Attr("float", 0.01, min=0, doc="the negative slope")}
    positional = ("alpha",)
    examples = [((7,), {"alpha": 0.01}), ((3, 4), {"alpha": 0.2}), ((2, 3, 3), {"alpha": 0.3})]



    def to_onnx(self, g, x, p, a, shape):
        return g.node("LeakyRelu", [x], alpha=float(a["alpha"]))


@register
class RReLU(Elementwise):
    name = "rrelu"
    doc = "leaky relu with a slope drawn from U(lower, upper) in training, the mean slope at inference"
    init_family = "he"
    attrs = {"lower": Attr("float", 1 / 8, min=0), "upper": Attr("float", 1 / 3, min=0)}
    examples = [((7,), {"lower": 0.125, "upper": 1 / 3}), ((2, 5), {"lower": 0.1, "upper": 0.2}),
                ((2, 3, 3), {"lower": 0.1, "upper": 0.3})]

    def infer(self, shape, a):
        if a["lower"] > a["upper"]:
            raise ShapeError(f"rrelu lower={a['lower']:g} is above upper={a['upper']:g}")
        return super().infer(shape, a)



    def to_onnx(self, g, x, p, a, shape):
        return g.node("LeakyRelu", [x], alpha=float((a["lower"] + a["upper"]) / 2))


@register
class ELU(Elementwise):
    name = "elu"
    doc = "x if x > 0 else alpha * (exp(x) - 1)"
    init_family = "he"
    attrs = {"alpha": Attr("float", 1.0, min=0)}
    positional = ("alpha",)
    examples = [((7,), {"alpha": 1.0}), ((2, 5), {"alpha": 0.7}), ((2, 3, 3), {"alpha": 0.5})]



    def to_onnx(self, g, x, p, a, shape):
        return g.node("Elu", [x], alpha=float(a["alpha"]))


@register
class SELU(Elementwise):
    name = "selu"
    doc = "scale * elu(x, alpha) with the self-normalizing constants"
    init_family = "lecun"
    ALPHA = 1.6732632423543772
    SCALE = 1.0507009873554805



    def to_onnx(self, g, x, p, a, shape):
        return g.node("Selu", [x])


@register
class GELU(Elementwise):
    name = "gelu"
    doc = "x * Phi(x), tanh approximation"
    init_family = "he"
    C = math.sqrt(2 / math.pi)



    def to_onnx(self, g, x, p, a, shape):
        # opset 18 has no Gelu: 0.5 x (1 + tanh(c (x + 0.044715 x^3)))
        x3 = g.node("Mul", [g.node("Mul", [x, x]), x])
        inner = g.node("Mul", [g.node("Add", [x, g.node("Mul", [x3, g.scalar(0.044715)])]), g.scalar(self.C)])
        t = g.node("Add", [g.node("Tanh", [inner]), g.scalar(1.0)])
        return g.node("Mul", [g.node("Mul", [x, t]), g.scalar(0.5)])


@register
class SiLU(Elementwise):
    name = "silu"
    doc = "x * sigmoid(x) (swish)"
    init_family = "he"



    def to_onnx(self, g, x, p, a, shape):
        return g.node("Mul", [x, g.node("Sigmoid", [x])])


@register
class Softplus(Elementwise):
    name = "softplus"
    doc = "log(1 + exp(x))"
    init_family = "he"



    def to_onnx(self, g, x, p, a, shape):
        return g.node("Softplus", [x])


@register
class Softmax(Op):
    name = "softmax"
    kind = "activation"
    doc = "exp(x) / sum exp(x) over the features (numerically stable)"
    init_family = "xavier"
    nonlinear = True
    ranks = (1,)
    examples = [((5,), {})]



    def to_onnx(self, g, x, p, a, shape):
        return g.node("Softmax", [x], axis=1)


@register
class PReLU(Op):
    name = "prelu"
    kind = "activation"
    doc = "leaky relu with a learned slope per channel (images) or per feature (vectors), starting at 0.25"
    init_family = "he"
    nonlinear = True
    attrs = {"init_slope": Attr("float", 0.25, min=0, doc="the slope's initial value")}
    examples = [((6,), {"init_slope": 0.25}), ((3, 4), {"init_slope": 0.25}), ((2, 3, 3), {"init_slope": 0.25})]

    def params(self, shape, a):
        return [ParamSpec("slope", (shape[0],), init=f"constant:{a['init_slope']}", decay=False)]




    def to_onnx(self, g, x, p, a, shape):
        slope = p["slope"] if len(shape) == 1 else g.node("Reshape", [p["slope"], g.ints([shape[0]] + [1] * (len(shape) - 1))])
        return g.node("PRelu", [x, slope])


@register
class Maxout(Op):
    name = "maxout"
    kind = "activation"
    doc = "max over groups of k consecutive features (vectors) or channels (images)"
    init_family = "he"
    nonlinear = True
    attrs = {"k": Attr("int", 2, min=2, doc="pieces per output unit")}
    positional = ("k",)
    examples = [((6,), {"k": 2}), ((4, 3), {"k": 2}), ((6, 2, 2), {"k": 3})]

    def infer(self, shape, a):
        self.check_rank(shape)
        if shape[0] % a["k"]:
            raise ShapeError(f"maxout k={a['k']} does not divide the {shape[0]} "
                             f"{'features' if len(shape) == 1 else 'channels'} of its input",
                             f"make the layer before it {a['k']} x (units wanted) wide")
        return (shape[0] // a["k"],) + tuple(shape[1:])



    def to_onnx(self, g, x, p, a, shape):
        k = a["k"]
        grouped = g.node("Reshape", [x, g.ints([0, shape[0] // k, k] + list(shape[1:]))])
        return g.node("ReduceMax", [grouped, g.ints([2])], keepdims=0)

    def flops(self, in_shape, out_shape, a):
        return math.prod(in_shape)
