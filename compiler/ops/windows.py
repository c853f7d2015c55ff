"""Window geometry for conv and pooling (output sizes, padding), and the window gather and
scatter avgpool uses. Loops run over kernel offsets (kh*kw iterations), never over samples or pixels.
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


def pad_image(x: np.ndarray, pads, value=0.0) -> np.ndarray:
    t, l, b, r = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def windows(xp: np.ndarray, kernel, stride) -> np.ndarray:
    """(N, C, Hp, Wp) -> view (N, C, Ho, Wo, kh, kw)."""
    v = np.lib.stride_tricks.sliding_window_view(xp, kernel, axis=(2, 3))
    return v[:, :, ::stride[0], ::stride[1]]


def scatter_windows(dwin: np.ndarray, padded_shape, stride, pads, dtype) -> np.ndarray:
    """Adjoint of `windows`: sum window gradients (N, C, Ho, Wo, kh, kw) into the input, unpadded."""
    n, c, ho, wo, kh, kw = dwin.shape
    sh, sw = stride
    dxp = np.zeros(padded_shape, dtype=dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + sh * ho:sh, j:j + sw * wo:sw] += dwin[:, :, :, :, i, j]
    t, l, b, r = pads
    return dxp[:, :, t:padded_shape[2] - b, l:padded_shape[3] - r]
