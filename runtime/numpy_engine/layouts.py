"""The NumPy engine's arrays: the image layouts its kernels take, the per-call context, the per-channel
helpers batchnorm and the channel-wise ops share, and the window loops of conv and pooling (kh*kw
iterations over strided slices, never samples or pixels)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Image layouts. NCHW is the IR's and ONNX's. CHWN (the batch innermost) is what conv's im2col
# wants: the NumPy runtime keeps a conv stack's images in CHWN between the ops that declare it
# (a kernel's `layouts`), so no conv transposes its input and output each step (network.py).
NCHW, CHWN = "NCHW", "CHWN"


@dataclass
class Context:
    """Per-call runtime context: training flag, the random generator (dropout, rrelu), and the layout
    of the image arrays the op is given (one of the op's `layouts`; vectors are always (N, F))."""

    training: bool = False
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    layout: str = NCHW
    # a variable-length batch (input CxL variable): the op's (first) input's valid steps per series (N,)
    # and its mask (N, 1, L), True on them; None for a fixed length or a vector input
    lengths: np.ndarray | None = None
    mask: np.ndarray | None = None


def channel_axes(x: np.ndarray, layout: str = NCHW) -> tuple[int, ...]:
    """Axes reduced for per-channel statistics: (0,) for vectors, (0, 2, 3) for NCHW images, (1, 2, 3) for CHWN."""
    if x.ndim == 2:
        return (0,)
    if x.ndim == 3:  # sequences (N, C, L): per channel over the batch and the steps
        return (0, 2)
    return (0, 2, 3) if layout == NCHW else (1, 2, 3)


def channel_axis(ndim: int, layout: str = NCHW) -> int:
    return 0 if ndim == 4 and layout == CHWN else 1


def per_channel(v: np.ndarray, ndim: int, layout: str = NCHW) -> np.ndarray:
    """Reshape a (C,) vector to broadcast against (N, C), (N, C, H, W) or (C, H, W, N)."""
    if ndim == 2:
        return v
    if ndim == 3:
        return v.reshape(1, -1, 1)
    return v.reshape(1, -1, 1, 1) if layout == NCHW else v.reshape(-1, 1, 1, 1)


def to_layout(x: np.ndarray, src: str, dst: str) -> np.ndarray:
    """An image batch moved from one layout to the other (a contiguous copy); vectors are unchanged."""
    if x.ndim != 4 or src == dst:
        return x
    return np.ascontiguousarray(x.transpose(1, 2, 3, 0) if dst == CHWN else x.transpose(3, 0, 1, 2))


def pad_image(x: np.ndarray, pads, value=0.0, axes=(2, 3)) -> np.ndarray:
    """x padded along its two spatial axes ((2, 3) in NCHW, (1, 2) in CHWN)."""
    t, l, b, r = pads
    if not any(pads):
        return x
    widths = [(0, 0)] * 4
    widths[axes[0]], widths[axes[1]] = (t, b), (l, r)
    return np.pad(x, widths, constant_values=value)


def kernel_offsets(kernel, stride, out_hw, spatial_axes=(2, 3), ndim=4):
    """For each kernel offset (i, j), row-major, the index of the input cells it reads for every
    output cell: a strided slice along the two spatial axes (full slices elsewhere). Conv and
    pooling loop over these kh*kw offsets instead of gathering windows."""
    (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out_hw
    for i in range(kh):
        for j in range(kw):
            idx = [slice(None)] * ndim
            idx[spatial_axes[0]] = slice(i, i + sh * (ho - 1) + 1, sh)
            idx[spatial_axes[1]] = slice(j, j + sw * (wo - 1) + 1, sw)
            yield i, j, tuple(idx)
