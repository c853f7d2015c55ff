"""The NumPy engine's kernels: one class per op, subclassing the op's declaration in compiler/ops/ (its
attributes, shape rule, parameters and facts) and adding what only this engine needs -- `forward`
(-> the output and what backward needs), `backward` (-> the input's gradient and the parameters'), and
the image layouts they accept (NCHW, and CHWN where a kernel is fastest in it: ctx.layout says which it
is given). `KERNELS[op name]` is what runtime/numpy_engine/network.py runs; tests/contracts/test_registries.py
fails for an op without one, as tests/runtime/test_torch_engine.py does for the torch engine's lowerings."""

from .base import KERNELS, Kernel, kernel
from . import activations, linear, merge, normalization, pooling, recurrent, text  # noqa: F401  (register the kernels)

__all__ = ["KERNELS", "Kernel", "kernel"]
