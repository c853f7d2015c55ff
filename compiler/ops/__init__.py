"""The op registry: every op is defined once, with its shape rule, parameters,
NumPy forward/backward and ONNX lowering (see base.py)."""

from .base import REGISTRY, Context, Op, ParamSpec, ShapeError, fmt_shape
from . import linear, pooling, normalization, activations, merge  # noqa: F401  (register the ops)

ACTIVATIONS = REGISTRY.names("activation")

__all__ = ["REGISTRY", "Context", "Op", "ParamSpec", "ShapeError", "fmt_shape", "ACTIVATIONS"]
