"""The NumPy engine's kernels: one class per op, subclassing the op's declaration in compiler/ops/ (its
attributes, shape rule, parameters and facts) and adding what only this engine needs -- `forward`
(-> the output and what backward needs), `backward` (-> the input's gradient and the parameters'), and
the image layouts they accept (NCHW, and CHWN where a kernel is fastest in it: ctx.layout says which it
is given). `KERNELS[op name]` is what runtime/numpy_engine/network.py runs; tests/test_registries.py
fails for an op without one, as tests/test_torch_engine.py does for the torch engine's lowerings."""

from __future__ import annotations

from typing import ClassVar

from dlc.compiler.ops.base import registrar
from dlc.runtime.numpy_engine.layouts import NCHW

KERNELS: dict = {}
kernel = registrar(KERNELS, "kernel")


class Kernel:
    """What every kernel has, unless it says otherwise (the last base of each kernel class)."""

    # The image layouts its forward/backward accept; an op that never looks at axes accepts both.
    layouts: ClassVar[tuple[str, ...]] = (NCHW,)
    preferred_layout: ClassVar[str | None] = None  # the layout it is fastest in (conv: CHWN); None: its input's

    def forward(self, x, p, a, ctx):
        raise NotImplementedError(f"{self.name} has no NumPy forward")

    def backward(self, dy, cache, p, a):
        raise NotImplementedError(f"{self.name} has no NumPy backward")


from . import activations, linear, merge, normalization, pooling  # noqa: E402,F401  (register the kernels)
