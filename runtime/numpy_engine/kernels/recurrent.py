"""The NumPy engine's kernels for the ops declared in compiler/ops/recurrent.py: the LSTM's and the GRU's
forward and backward through time, each a loop over the steps (inherent in a recurrence) vectorised over the batch."""

from __future__ import annotations

import numpy as np

from dlc.compiler.ops import recurrent as ops

from .base import Kernel, kernel


def _sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


@kernel
class LSTM(ops.LSTM, Kernel):
    def forward(self, x, p, a, ctx):
        n, _, steps = x.shape
        h_units = a["units"]
        w, r = p["weight"], p["recurrent"]
        xs = np.ascontiguousarray(x.transpose(2, 0, 1))  # (L, N, C)
        xw = xs @ w.T + p["bias"]  # every step's input part at once: (L, N, 4H)
        h = np.zeros((n, h_units), x.dtype)
        c = np.zeros((n, h_units), x.dtype)
        hs, gates, cs, tanh_cs = [], [], [], []
        for t in range(steps):
            z = xw[t] + h @ r.T
            i, f, o = (_sigmoid(z[:, k * h_units:(k + 1) * h_units]) for k in (0, 1, 3))
            g = np.tanh(z[:, 2 * h_units:3 * h_units])
            hs.append(h)  # h_(t-1): what R multiplied
            cs.append(c)  # c_(t-1)
            c = f * c + i * g
            tanh_c = np.tanh(c)
            h = o * tanh_c
            gates.append((i, f, g, o))
            tanh_cs.append(tanh_c)
        hs.append(h)
        out = np.stack(hs[1:], axis=2) if a["sequences"] else h  # (N, H, L) or (N, H)
        return out, (xs, hs, cs, gates, tanh_cs)

    def backward(self, dy, cache, p, a):
        xs, hs, cs, gates, tanh_cs = cache
        steps = xs.shape[0]
        w, r = p["weight"], p["recurrent"]
        dh_next = np.zeros_like(hs[0])
        dc_next = np.zeros_like(cs[0])
        dz_all = np.empty((steps,) + (hs[0].shape[0], 4 * hs[0].shape[1]), dy.dtype)
        dr = np.zeros_like(r)
        for t in reversed(range(steps)):
            i, f, g, o = gates[t]
            dh = dh_next + (dy[:, :, t] if a["sequences"] else (dy if t == steps - 1 else 0.0))
            tanh_c = tanh_cs[t]
            dc = dc_next + dh * o * (1 - tanh_c * tanh_c)
            dz = np.concatenate([dc * g * i * (1 - i), dc * cs[t] * f * (1 - f), dc * i * (1 - g * g),
                                 dh * tanh_c * o * (1 - o)], axis=1)
            dz_all[t] = dz
            dr += dz.T @ hs[t]
            dh_next = dz @ r
            dc_next = dc * f
        grads = {"weight": np.einsum("lnk,lnc->kc", dz_all, xs), "recurrent": dr, "bias": dz_all.sum(axis=(0, 1))}
        dx = (dz_all @ w).transpose(1, 2, 0)  # (L, N, C) -> (N, C, L)
        return np.ascontiguousarray(dx), grads


@kernel
class GRU(ops.GRU, Kernel):
    def forward(self, x, p, a, ctx):
        n, _, steps = x.shape
        h_units = a["units"]
        r_w = p["recurrent"]
        xs = np.ascontiguousarray(x.transpose(2, 0, 1))  # (L, N, C)
        xw = xs @ p["weight"].T + p["bias"]  # (L, N, 3H): r, z, n
        h = np.zeros((n, h_units), x.dtype)
        hs, caches = [h], []
        for t in range(steps):
            hr = h @ r_w.T
            r = _sigmoid(xw[t, :, :h_units] + hr[:, :h_units])
            z = _sigmoid(xw[t, :, h_units:2 * h_units] + hr[:, h_units:2 * h_units])
            cand = np.tanh(xw[t, :, 2 * h_units:] + r * hr[:, 2 * h_units:])
            h = (1 - z) * cand + z * h
            caches.append((r, z, cand, hr[:, 2 * h_units:]))
            hs.append(h)
        out = np.stack(hs[1:], axis=2) if a["sequences"] else h
        return out, (xs, hs, caches)

    def backward(self, dy, cache, p, a):
        xs, hs, caches = cache
        steps = xs.shape[0]
        w, r_w = p["weight"], p["recurrent"]
        dh_next = np.zeros_like(hs[0])
        dxw = np.empty((steps,) + (hs[0].shape[0], 3 * hs[0].shape[1]), dy.dtype)
        dr_w = np.zeros_like(r_w)
        for t in reversed(range(steps)):
            r, z, cand, hr_n = caches[t]
            dh = dh_next + (dy[:, :, t] if a["sequences"] else (dy if t == steps - 1 else 0.0))
            da_n = dh * (1 - z) * (1 - cand * cand)
            da_z = dh * (hs[t] - cand) * z * (1 - z)
            da_r = da_n * hr_n * r * (1 - r)
            dxw[t] = np.concatenate([da_r, da_z, da_n], axis=1)
            dhr = np.concatenate([da_r, da_z, da_n * r], axis=1)  # what reached h_(t-1) @ R.T
            dr_w += dhr.T @ hs[t]
            dh_next = dh * z + dhr @ r_w
        grads = {"weight": np.einsum("lnk,lnc->kc", dxw, xs), "recurrent": dr_w, "bias": dxw.sum(axis=(0, 1))}
        return np.ascontiguousarray((dxw @ w).transpose(1, 2, 0)), grads
