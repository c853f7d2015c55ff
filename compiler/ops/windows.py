"""Window geometry for conv and pooling: output sizes, padding, and the kernel offsets their loops
run over (kh*kw iterations, never samples or pixels).
"""

from __future__ import annotations

from ..lazy_numpy import lazy_numpy

np = lazy_numpy(__name__)


def out_size(size: int, k: int, s: int, pad_begin: int, pad_end: int) -> int:
    return (size + pad_begin + pad_end - k) // s + 1


def same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    """SAME_UPPER padding: output ceil(size/s); the odd extra cell goes at the end."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def resolve_pads(pad, hw, kernel, stride) -> tuple[int, int, int, int]:
    """pad attr (int pair, 'same' or 'valid') -> (top, left, bottom, right)."""
    if pad == "same":
        t, b = same_pads(hw[0], kernel[0], stride[0])
        l, r = same_pads(hw[1], kernel[1], stride[1])
        return t, l, b, r
    if pad == "valid":
        return 0, 0, 0, 0
    return pad[0], pad[1], pad[0], pad[1]


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
