"""Window geometry for conv and pooling: output sizes and padding (the shape rules and ONNX's pads read
them; the NumPy engine's window loops are in runtime/numpy_engine/layouts.py)."""

from __future__ import annotations

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


def resolve_pads_1d(pad, length: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """pad attr of a 1-D window (steps, 'same', 'valid' or 'causal') -> (before, after). 'same' gives
    ceil(length/stride) outputs (the odd extra step at the end, as SAME_UPPER); 'causal' pads only before,
    so output t reads inputs up to t (with stride 1, the output has the input's length)."""
    span = (kernel - 1) * dilation + 1
    if pad == "same":
        out = -(-length // stride)
        total = max((out - 1) * stride + span - length, 0)
        return total // 2, total - total // 2
    if pad == "valid":
        return 0, 0
    if pad == "causal":
        return span - 1, 0
    return pad, pad
