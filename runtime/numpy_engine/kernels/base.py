"""What every NumPy kernel has (`Kernel`), and the table they register in (`KERNELS`)."""

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

