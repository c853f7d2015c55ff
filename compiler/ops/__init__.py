"""The op registry: every op is declared once, with its shape rule, parameters, facts and ONNX lowering
(see base.py); each engine implements it (runtime/numpy_engine/kernels/, runtime/torch_engine/ops.py)."""

from .base import REGISTRY, Op, ParamSpec, ShapeError, fmt_shape
from . import linear, pooling, normalization, activations, merge, recurrent, text  # noqa: F401  (register the ops)

ACTIVATIONS = REGISTRY.names("activation")

__all__ = ["REGISTRY", "Op", "ParamSpec", "ShapeError", "fmt_shape", "ACTIVATIONS"]
