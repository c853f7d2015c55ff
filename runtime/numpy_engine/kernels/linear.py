"""The NumPy engine's kernels for the ops declared in compiler/ops/linear.py: forward and backward
(and the layouts they accept), moved here unchanged from the declarations they subclass."""

from __future__ import annotations

import numpy as np

from dlc.compiler.ops import linear as ops
from dlc.runtime.numpy_engine.layouts import CHWN, NCHW
from dlc.compiler.ops.windows import out_size, resolve_pads
from dlc.runtime.numpy_engine.layouts import kernel_offsets

from .base import Kernel, kernel


def _inside(offset: int, stride: int, n_out: int, size: int):
    """For a kernel offset (already less the padding): the outputs [o0, o1) whose input cell
    o*stride + offset lies inside [0, size), and the slice of those input cells; None if none does."""
    o0 = max(0, -(offset // stride)) if offset < 0 else 0
    while o0 < n_out and o0 * stride + offset < 0:
        o0 += 1
    o1 = min(n_out, (size - 1 - offset) // stride + 1) if size - 1 - offset >= 0 else 0
    if o1 <= o0:
        return None
    start = o0 * stride + offset
    return o0, o1, slice(start, (o1 - 1) * stride + offset + 1, stride)


@kernel
class Dense(ops.Dense, Kernel):
    def forward(self, x, p, a, ctx):
        if x.ndim == 3:  # a sequence (N, C, L): every step's C features -> UNITS
            y = np.einsum("ncl,cu->nul", x, p["weight"], optimize=True)
            if "bias" in p:
                y += p["bias"][:, None]
            return y, x
        y = x @ p["weight"]
        if "bias" in p:
            y += p["bias"]
        return y, x

    def backward(self, dy, x, p, a, need_dx=True):
        if x.ndim == 3:
            grads = {"weight": np.einsum("ncl,nul->cu", x, dy, optimize=True)}
            if "bias" in p:
                grads["bias"] = dy.sum(axis=(0, 2))
            return (np.einsum("nul,cu->ncl", dy, p["weight"], optimize=True) if need_dx else None), grads
        grads = {"weight": x.T @ dy}
        if "bias" in p:
            grads["bias"] = dy.sum(axis=0)
        return (dy @ p["weight"].T if need_dx else None), grads


@kernel
class Conv(ops.Conv, Kernel):
    layouts = (NCHW, CHWN)

    preferred_layout = CHWN

    def forward(self, x, p, a, ctx):
        # im2col in a (C, H, W, N) layout, the batch innermost: each kernel offset copies (and
        # backward adds) runs of Wo*N contiguous values instead of rows of Wo. Given CHWN (the
        # runtime keeps conv stacks in it) neither the input nor the output is transposed.
        chwn = ctx.layout == CHWN
        xt = x if chwn else x.transpose(1, 2, 3, 0)
        c, h, w, n = xt.shape
        w_ = p["weight"]
        o, _, kh, kw = w_.shape
        s = a["stride"]
        t, l, b, r = pads = resolve_pads(a["pad"], (h, w), a["kernel"], s)
        if any(pads):
            padded = np.zeros((c, h + t + b, w + l + r, n), dtype=x.dtype)
            padded[:, t:t + h, l:l + w, :] = xt
            xt = padded
        else:
            xt = np.ascontiguousarray(xt)
        ho, wo = out_size(h, kh, s[0], t, b), out_size(w, kw, s[1], l, r)
        cols = np.empty((c, kh, kw, ho, wo, n), dtype=x.dtype)
        for i, j, idx in kernel_offsets((kh, kw), s, (ho, wo), spatial_axes=(1, 2)):
            cols[:, i, j] = xt[idx]
        cols = cols.reshape(c * kh * kw, ho * wo * n)
        y = w_.reshape(o, -1) @ cols  # (O, Ho*Wo*N)
        if "bias" in p:
            y += p["bias"][:, None]
        y = y.reshape(o, ho, wo, n)
        if not chwn:
            y = np.ascontiguousarray(y.transpose(3, 0, 1, 2))
        return y, (cols, xt.shape, pads, (ho, wo), chwn)

    def backward(self, dy, cache, p, a, need_dx=True):
        cols, padded_shape, (t, l, b, r), (ho, wo), chwn = cache
        w_ = p["weight"]
        o, c, kh, kw = w_.shape
        n = padded_shape[3]
        dy_t = (np.ascontiguousarray(dy) if chwn else np.ascontiguousarray(dy.transpose(1, 2, 3, 0))).reshape(o, -1)
        # cols @ dy^T, transposed: the same product as dy @ cols^T, and 1.3-1.5x faster through OpenBLAS
        # for these shapes (a long inner dimension Ho*Wo*N)
        grads = {"weight": np.ascontiguousarray((cols @ dy_t.T).T).reshape(w_.shape)}
        if "bias" in p:
            grads["bias"] = dy_t.sum(axis=1)
        if not need_dx:
            return None, grads
        dcols = (w_.reshape(o, -1).T @ dy_t).reshape(c, kh, kw, ho, wo, n)
        # col2im straight into the unpadded input: each offset adds the part of its window that
        # falls inside the image (no padded buffer to zero, add into and copy out of)
        h, w = padded_shape[1] - t - b, padded_shape[2] - l - r
        dx = np.zeros((c, h, w, n), dtype=dy.dtype)
        (sh, sw) = a["stride"]
        for i in range(kh):
            rows = _inside(i - t, sh, ho, h)
            if rows is None:
                continue
            for j in range(kw):
                cols_ = _inside(j - l, sw, wo, w)
                if cols_ is None:
                    continue
                (oy0, oy1, iy), (ox0, ox1, ix) = rows, cols_
                dx[:, iy, ix, :] += dcols[:, i, j, oy0:oy1, ox0:ox1]
        return (dx if chwn else np.ascontiguousarray(dx.transpose(3, 0, 1, 2))), grads


@kernel
class Conv1d(ops.Conv1d, Kernel):
    """im2col over the steps: the K taps of every output step gathered into (N, C*K, Lo) (K strided
    slices: a loop over the kernel's taps, never samples or steps), then one matmul."""

    def forward(self, x, p, a, ctx):
        n, c, length = x.shape
        k, s, d = a["kernel"], a["stride"], a["dilation"]
        before, after = self._pads(x.shape[1:], a)
        xp = np.pad(x, ((0, 0), (0, 0), (before, after))) if before or after else x
        lo = (xp.shape[2] - (k - 1) * d - 1) // s + 1
        cols = np.stack([xp[:, :, j * d:j * d + s * (lo - 1) + 1:s] for j in range(k)], axis=2).reshape(n, c * k, lo)
        w2 = p["weight"].reshape(p["weight"].shape[0], c * k)
        y = np.matmul(w2, cols)
        if "bias" in p:
            y += p["bias"][:, None]
        return y, (cols, x.shape, (before, after), lo)

    def backward(self, dy, cache, p, a, need_dx=True):
        cols, (n, c, length), (before, after), lo = cache
        k, s, d = a["kernel"], a["stride"], a["dilation"]
        o = p["weight"].shape[0]
        grads = {"weight": np.tensordot(dy, cols, axes=([0, 2], [0, 2])).reshape(o, c, k)}
        if "bias" in p:
            grads["bias"] = dy.sum(axis=(0, 2))
        if not need_dx:
            return None, grads
        dcols = np.matmul(p["weight"].reshape(o, c * k).T, dy).reshape(n, c, k, lo)
        dxp = np.zeros((n, c, length + before + after), dy.dtype)
        for j in range(k):  # the taps: each adds its gradient back into the steps it read
            dxp[:, :, j * d:j * d + s * (lo - 1) + 1:s] += dcols[:, :, j]
        return dxp[:, :, before:before + length], grads
