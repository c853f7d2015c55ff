"""The text ops' NumPy kernels: embedding (a gather, its gradient a scatter-add), position (an add) and
multi-head self-attention (batched matrix products over (N, H, L, d); a numerically safe softmax with the
padding keys -- and, causal, the later steps -- at -inf)."""

from __future__ import annotations

import math

import numpy as np

from dlc.compiler.ops import text as ops
from dlc.runtime.numpy_engine.kernels.base import Kernel, kernel


@kernel
class Embedding(ops.Embedding, Kernel):
    """Ids arrive as the batch holds them: (N, 1, L) floats, each a whole number (the padding, NaN in the
    batch, already read as id 0)."""

    def forward(self, x, p, a, ctx):
        ids = x[:, 0, :].astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= a["vocab"]):
            raise ValueError(f"token ids must be in [0, {a['vocab']}): got {ids.min()} .. {ids.max()}")
        vectors = p["weight"][ids] * (ids != 0)[:, :, None]  # the padding id reads zeros, whatever row 0 holds
        return vectors.transpose(0, 2, 1), ids

    def backward(self, dy, ids, p, a):
        grad = np.zeros_like(p["weight"])
        rows = dy.transpose(0, 2, 1).reshape(-1, dy.shape[1])
        flat = ids.reshape(-1)
        used = flat != 0  # the padding row learns nothing
        np.add.at(grad, flat[used], rows[used])
        return np.zeros((len(ids), 1, ids.shape[1]), dy.dtype), {"weight": grad}


@kernel
class Position(ops.Position, Kernel):
    def forward(self, x, p, a, ctx):
        return x + self.table(x.shape[1:], a, p).astype(x.dtype), None

    def backward(self, dy, cache, p, a):
        return dy, ({} if a["sinusoidal"] else {"weight": dy.sum(axis=0)})


def _split_heads(t: np.ndarray, heads: int) -> np.ndarray:
    """(N, L, C) -> (N, H, L, C/H)."""
    n, steps, c = t.shape
    return t.reshape(n, steps, heads, c // heads).transpose(0, 2, 1, 3)


def _merge_heads(t: np.ndarray) -> np.ndarray:
    """(N, H, L, d) -> (N, L, H*d)."""
    n, h, steps, d = t.shape
    return t.transpose(0, 2, 1, 3).reshape(n, steps, h * d)


def attention_allowed(mask, steps: int, causal: bool):
    """Which (query, key) pairs count, broadcast to (N, 1, L, L), or None for all: keys within each text
    (`mask` (N, 1, L), the padding mask) and, causal, not after the query."""
    allowed = None if mask is None or mask.all() else mask[:, :, None, :]  # (every text full length: no mask)
    if causal:
        lower = np.tril(np.ones((steps, steps), bool))[None, None]
        allowed = lower if allowed is None else allowed & lower
    return allowed


@kernel
class Attention(ops.Attention, Kernel):
    def forward(self, x, p, a, ctx):
        n, c, steps = x.shape
        h = a["heads"]
        xt = x.transpose(0, 2, 1)  # (N, L, C)
        qkv = xt @ p["weight"] + p["bias"]
        q, k, v = (_split_heads(t, h) for t in np.split(qkv, 3, axis=2))
        scale = x.dtype.type(1.0 / math.sqrt(c // h))
        scores = (q @ k.transpose(0, 1, 3, 2)) * scale
        allowed = attention_allowed(ctx.mask, steps, a["causal"])
        if allowed is not None:
            scores = np.where(allowed, scores, -np.inf)
        e = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights = e / e.sum(axis=-1, keepdims=True)
        drop = None
        used = weights
        if ctx.training and a["attention_dropout"] > 0:
            keep = 1.0 - a["attention_dropout"]
            drop = (ctx.rng.random(weights.shape, dtype=np.float32) < keep).astype(x.dtype) * x.dtype.type(1 / keep)
            used = weights * drop
        mixed = _merge_heads(used @ v)  # (N, L, C)
        y = mixed @ p["out_weight"] + p["out_bias"]
        return y.transpose(0, 2, 1), (xt, q, k, v, weights, drop, used, mixed, scale)

    def backward(self, dy, cache, p, a):
        xt, q, k, v, weights, drop, used, mixed, scale = cache
        h = a["heads"]
        dyt = dy.transpose(0, 2, 1)  # (N, L, C)
        grads = {"out_weight": np.einsum("nlc,nld->cd", mixed, dyt), "out_bias": dyt.sum(axis=(0, 1))}
        dmixed = _split_heads(dyt @ p["out_weight"].T, h)  # (N, H, L, d)
        dv = used.transpose(0, 1, 3, 2) @ dmixed
        dweights = dmixed @ v.transpose(0, 1, 3, 2)
        if drop is not None:
            dweights = dweights * drop
        dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True)) * scale
        dq = dscores @ k
        dk = dscores.transpose(0, 1, 3, 2) @ q
        dqkv = np.concatenate([_merge_heads(t) for t in (dq, dk, dv)], axis=2)
        grads["weight"] = np.einsum("nlc,nlk->ck", xt, dqkv)
        grads["bias"] = dqkv.sum(axis=(0, 1))
        c = xt.shape[2]
        grads["bias"][c:2 * c] = 0  # the key bias adds q.b_k to a whole row of scores, which the softmax cancels
        return (dqkv @ p["weight"].T).transpose(0, 2, 1), grads
