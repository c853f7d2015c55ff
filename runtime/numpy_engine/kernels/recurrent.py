"""The NumPy engine's kernels for the ops declared in compiler/ops/recurrent.py: the LSTM's and the GRU's
forward and backward through time, each a loop over the steps (inherent in a recurrence) vectorised over
the batch. A direction runs on steps-first arrays (L, N, C); `bidirectional` runs a second one, with its
own weights, over the reversed steps and concatenates the two along the channels. In a variable-length
batch a series's state stops at its last valid step (`h_t = m_t h_new + (1 - m_t) h_(t-1)`, m_t its mask),
so the last step's output is each series's own; the reverse direction reverses each series's own steps."""

from __future__ import annotations

import numpy as np

from dlc.compiler.ops import recurrent as ops

from .base import Kernel, kernel


def _sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


def _lstm_forward(xs, w, r_w, b, h_units, ms=None):
    """One direction: xs (L, N, C) -> every step's h (L, N, H), and what its backward needs (ms: the
    steps' masks (L, N, 1) of a variable-length batch, or None)."""
    n = xs.shape[1]
    xw = xs @ w.T + b  # every step's input part at once: (L, N, 4H)
    h = np.zeros((n, h_units), xs.dtype)
    c = np.zeros((n, h_units), xs.dtype)
    hs, cs, gates, tanh_cs = [h], [], [], []
    for t in range(xs.shape[0]):
        z = xw[t] + h @ r_w.T
        i, f, o = (_sigmoid(z[:, k * h_units:(k + 1) * h_units]) for k in (0, 1, 3))
        g = np.tanh(z[:, 2 * h_units:3 * h_units])
        cs.append(c)  # c_(t-1)
        c_new = f * c + i * g
        tanh_c = np.tanh(c_new)
        h_new = o * tanh_c
        if ms is None:
            c, h = c_new, h_new
        else:  # past a series's last step its state is kept
            c, h = np.where(ms[t], c_new, c), np.where(ms[t], h_new, h)
        gates.append((i, f, g, o))
        tanh_cs.append(tanh_c)
        hs.append(h)
    return np.stack(hs[1:]), (xs, hs, cs, gates, tanh_cs, ms)


def _split(grad, m):
    """A state's gradient at a step of a variable-length batch: (the part through this step's update, the
    part a kept state passes to the step before, untouched, or None without a mask)."""
    return (grad, None) if m is None else (grad * m, grad * ~m)


def _lstm_backward(dhs, cache, w, r_w):
    """dhs (L, N, H): the loss's gradient at every step's h -> dxs (L, N, C), {weight, recurrent, bias}."""
    xs, hs, cs, gates, tanh_cs, ms = cache
    dh_next = np.zeros_like(hs[0])
    dc_next = np.zeros_like(hs[0])
    dz_all = np.empty(dhs.shape[:2] + (w.shape[0],), dhs.dtype)
    dr = np.zeros_like(r_w)
    for t in reversed(range(xs.shape[0])):
        i, f, g, o = gates[t]
        m = None if ms is None else ms[t]
        dh, dh_kept = _split(dh_next + dhs[t], m)
        dc_next, dc_kept = _split(dc_next, m)
        tanh_c = tanh_cs[t]
        dc = dc_next + dh * o * (1 - tanh_c * tanh_c)
        dz = np.concatenate([dc * g * i * (1 - i), dc * cs[t] * f * (1 - f), dc * i * (1 - g * g),
                             dh * tanh_c * o * (1 - o)], axis=1)
        dz_all[t] = dz
        dr += dz.T @ hs[t]
        dh_next = dz @ r_w
        dc_next = dc * f
        if m is not None:
            dh_next += dh_kept
            dc_next += dc_kept
    grads = {"weight": np.einsum("lnk,lnc->kc", dz_all, xs), "recurrent": dr, "bias": dz_all.sum(axis=(0, 1))}
    return dz_all @ w, grads


def _gru_forward(xs, w, r_w, b, h_units, ms=None):
    n = xs.shape[1]
    xw = xs @ w.T + b  # (L, N, 3H): r, z, n
    h = np.zeros((n, h_units), xs.dtype)
    hs, caches = [h], []
    for t in range(xs.shape[0]):
        hr = h @ r_w.T
        r = _sigmoid(xw[t, :, :h_units] + hr[:, :h_units])
        z = _sigmoid(xw[t, :, h_units:2 * h_units] + hr[:, h_units:2 * h_units])
        cand = np.tanh(xw[t, :, 2 * h_units:] + r * hr[:, 2 * h_units:])
        h_new = (1 - z) * cand + z * h
        h = h_new if ms is None else np.where(ms[t], h_new, h)
        caches.append((r, z, cand, hr[:, 2 * h_units:]))
        hs.append(h)
    return np.stack(hs[1:]), (xs, hs, caches, ms)


def _gru_backward(dhs, cache, w, r_w):
    xs, hs, caches, ms = cache
    dh_next = np.zeros_like(hs[0])
    dxw = np.empty(dhs.shape[:2] + (w.shape[0],), dhs.dtype)
    dr_w = np.zeros_like(r_w)
    for t in reversed(range(xs.shape[0])):
        r, z, cand, hr_n = caches[t]
        dh, dh_kept = _split(dh_next + dhs[t], None if ms is None else ms[t])
        da_n = dh * (1 - z) * (1 - cand * cand)
        da_z = dh * (hs[t] - cand) * z * (1 - z)
        da_r = da_n * hr_n * r * (1 - r)
        dxw[t] = np.concatenate([da_r, da_z, da_n], axis=1)
        dhr = np.concatenate([da_r, da_z, da_n * r], axis=1)  # what reached h_(t-1) @ R.T
        dr_w += dhr.T @ hs[t]
        dh_next = dh * z + dhr @ r_w
        if dh_kept is not None:
            dh_next += dh_kept
    grads = {"weight": np.einsum("lnk,lnc->kc", dxw, xs), "recurrent": dr_w, "bias": dxw.sum(axis=(0, 1))}
    return dxw @ w, grads


class _Recurrent:
    """The directions of a recurrent layer around its one-direction forward and backward."""

    step_forward = staticmethod(_lstm_forward)
    step_backward = staticmethod(_lstm_backward)

    def forward(self, x, p, a, ctx):
        h_units = a["units"]
        xs = np.ascontiguousarray(x.transpose(2, 0, 1))  # (L, N, C)
        rev = None if ctx.lengths is None else _reversal(ctx.lengths, xs.shape[0])
        ms = None if ctx.mask is None else np.ascontiguousarray(ctx.mask.transpose(2, 0, 1))  # (L, N, 1)
        outs, caches = [], []
        for suffix, reverse in self.directions(a):
            ys, cache = self.step_forward(_order(xs, reverse, rev), p["weight" + suffix], p["recurrent" + suffix],
                                          p["bias" + suffix], h_units, ms)
            outs.append(_order(ys, reverse, rev))  # the reverse direction's steps back in time order
            caches.append(cache)
        if a["sequences"]:
            out = np.concatenate(outs, axis=2).transpose(1, 2, 0)  # (L, N, D*H) -> (N, D*H, L)
        else:  # each direction's last step: the forward's at L, the reverse's at 0
            out = np.concatenate([outs[0][-1]] + [o[0] for o in outs[1:]], axis=1)
        return np.ascontiguousarray(out), (caches, xs.shape, rev)

    def backward(self, dy, cache, p, a):
        caches, (steps, n, _), rev = cache
        h_units = a["units"]
        dxs, grads = None, {}
        for k, ((suffix, reverse), dir_cache) in enumerate(zip(self.directions(a), caches)):
            part = slice(k * h_units, (k + 1) * h_units)
            dhs = np.zeros((steps, n, h_units), dy.dtype)
            if a["sequences"]:
                dhs[...] = dy[:, part, :].transpose(2, 0, 1)
            else:
                dhs[-1 if k == 0 else 0] = dy[:, part]
            dx, g = self.step_backward(_order(dhs, reverse, rev), dir_cache, p["weight" + suffix],
                                       p["recurrent" + suffix])
            dx = _order(dx, reverse, rev)
            dxs = dx if dxs is None else dxs + dx
            grads.update({role + suffix: v for role, v in g.items()})
        return np.ascontiguousarray(dxs.transpose(1, 2, 0)), grads

    @staticmethod
    def directions(a):
        """(parameter suffix, whether it runs over the reversed steps) per direction."""
        return [("", False), ("_reverse", True)] if a["bidirectional"] else [("", False)]


def _reversal(lengths, steps):
    """(L, N) step indices that reverse each series's own valid steps and keep its padding after them."""
    t = np.arange(steps)[:, None]
    return np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)


def _order(a, reverse: bool, rev):
    """Steps-first a (L, N, ...) in a direction's order: as it is, reversed, or each series reversed (rev)."""
    if not reverse:
        return a
    if rev is None:
        return a[::-1]
    return a[rev, np.arange(a.shape[1])[None, :]]


@kernel
class LSTM(_Recurrent, ops.LSTM, Kernel):
    pass


@kernel
class GRU(_Recurrent, ops.GRU, Kernel):
    step_forward = staticmethod(_gru_forward)
    step_backward = staticmethod(_gru_backward)
