"""Each op of the registry (compiler/ops/) lowered to torch: a forward function by op name, with the
same conventions as the op's NumPy forward (docs/conventions.md); autograd gives the backward.

A lowering is `f(x, p, a, ctx) -> y`: `x` a tensor (a list for a merge), `p` the node's parameters
and buffers by role, `a` its attributes, `ctx` the training flag, the noise generator and the
node's per-sample input shape. tests/runtime/test_torch_engine.py walks the op registry: an op without a
lowering here, or whose forward or gradients differ from NumPy's, fails.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from dlc.compiler.ops import REGISTRY
from dlc.compiler.ops.windows import resolve_pads, resolve_pads_1d

def table_of(table: dict):
    """`@lowering(name)` for `table`: puts the decorated function there under the name."""
    def lowering(name):
        def put(fn):
            table[name] = fn
            return fn
        return put
    return lowering


LOWERINGS: dict = {}
lowering = table_of(LOWERINGS)


@dataclass
class Ctx:
    training: bool
    generator: torch.Generator | None
    in_shape: Any  # the input's per-sample shape (a list of them for a merge)
    moments: object = None  # batchnorm's statistics over every process (torchrun), or None: this batch's
    # a variable-length batch: the node's (first) input's valid steps per series (N,) and mask (N, 1, L)
    lengths: Any = None
    mask: Any = None


def _channel(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """A (C,) vector shaped to broadcast against (N, C) or (N, C, H, W)."""
    return v if ndim == 2 else v.view(1, -1, *([1] * (ndim - 2)))


def _pads(a, shape, kernel=None, stride=None):
    k = kernel or a["kernel"]
    s = stride or a.get("stride") or k
    return k, s, resolve_pads(a["pad"], shape[1:], k, s)


# ---- layers ------------------------------------------------------------------------------------
@lowering("dense")
def dense(x, p, a, ctx):
    if x.dim() == 3:  # a sequence (N, C, L): every step's features
        y = x.transpose(1, 2) @ p["weight"]
        return (y + p["bias"] if "bias" in p else y).transpose(1, 2)
    return torch.addmm(p["bias"], x, p["weight"]) if "bias" in p else x @ p["weight"]


@lowering("conv")
def conv(x, p, a, ctx):
    k, s, (t, l, b, r) = _pads(a, ctx.in_shape, a["kernel"], a["stride"])
    if (t, l) == (b, r):
        return F.conv2d(x, p["weight"], p.get("bias"), stride=s, padding=(t, l))
    return F.conv2d(F.pad(x, (l, r, t, b)), p["weight"], p.get("bias"), stride=s)  # pad=same, odd total


@lowering("conv1d")
def conv1d(x, p, a, ctx):
    before, after = resolve_pads_1d(a["pad"], ctx.in_shape[1], a["kernel"], a["stride"], a["dilation"])
    if before or after:
        x = F.pad(x, (before, after))
    return F.conv1d(x, p["weight"], p.get("bias"), stride=a["stride"], dilation=a["dilation"])


def _over_steps(pool):
    """A pooling lowering that also takes sequences (N, C, L): pooled as the images (N, C, 1, L)."""
    def lowered(x, p, a, ctx):
        if x.ndim != 3:
            return pool(x, p, a, ctx)
        image, view = REGISTRY[pool.__name__].image_view(ctx.in_shape, a)
        return pool(x.unsqueeze(2), p, view, dataclasses.replace(ctx, in_shape=image)).squeeze(2)
    return lowered


def _recurrent(kernel, x, p, a, ctx, with_cell: bool):
    """torch's own kernel with dlc's weights (the same gate orders; dlc's one bias as b_ih, b_hh zero), both
    directions under `bidirectional` (torch concatenates them along the features, forward first). A
    variable-length batch runs packed (torch's packed sequences): each series's own steps, each direction's
    last step its own."""
    directions = ("", "_reverse") if a["bidirectional"] else ("",)
    h0 = x.new_zeros((len(directions), x.shape[0], a["units"]))
    params = [t for d in directions for t in (p["weight" + d], p["recurrent" + d], p["bias" + d],
                                              torch.zeros_like(p["bias" + d]))]
    hx = (h0, h0) if with_cell else h0
    steps = x.permute(2, 0, 1)
    if ctx.lengths is not None:
        from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
        packed = pack_padded_sequence(steps, ctx.lengths.cpu(), enforce_sorted=False)
        out = kernel(packed.data, packed.batch_sizes, hx, params, True, 1, 0.0, ctx.training, a["bidirectional"])
        if a["sequences"]:
            y = PackedSequence(out[0], packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
            return pad_packed_sequence(y, total_length=steps.shape[0])[0].permute(1, 2, 0)
        return torch.cat(list(out[1].index_select(1, packed.unsorted_indices)), dim=1)
    out = kernel(steps, hx, params, True, 1, 0.0, ctx.training, a["bidirectional"], False)
    y, h_n = out[0], out[1]
    if a["sequences"]:
        return y.permute(1, 2, 0)  # (L, N, D*H) -> (N, D*H, L)
    return torch.cat(list(h_n), dim=1)  # each direction's last step: (N, D*H)


@lowering("lstm")
def lstm(x, p, a, ctx):
    return _recurrent(torch._VF.lstm, x, p, a, ctx, with_cell=True)


@lowering("gru")
def gru(x, p, a, ctx):
    return _recurrent(torch._VF.gru, x, p, a, ctx, with_cell=False)


@lowering("maxpool")
@_over_steps
def maxpool(x, p, a, ctx):
    k, s, (t, l, b, r) = _pads(a, ctx.in_shape)
    if t or l or b or r:
        x = F.pad(x, (l, r, t, b), value=float("-inf"))
    return F.max_pool2d(x, k, s)


@lowering("avgpool")
@_over_steps
def avgpool(x, p, a, ctx):
    """The mean of each window's cells inside the image (padding not counted), as the NumPy op and
    ONNX count_include_pad=0: window sums over window counts, for any (also asymmetric) padding."""
    k, s, (t, l, b, r) = _pads(a, ctx.in_shape)
    if not (t or l or b or r):
        return F.avg_pool2d(x, k, s)
    sums = F.avg_pool2d(F.pad(x, (l, r, t, b)), k, s, divisor_override=1)
    ones = F.pad(torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype, device=x.device), (l, r, t, b))
    return sums / F.avg_pool2d(ones, k, s, divisor_override=1)


@lowering("flatten")
def flatten(x, p, a, ctx):
    return x.reshape(x.shape[0], -1)


@lowering("globalavgpool")
def globalavgpool(x, p, a, ctx):
    if ctx.mask is not None:  # each series's mean over its own steps
        return (x * ctx.mask).sum(dim=2) / ctx.lengths.to(x.dtype)[:, None]
    return x.mean(dim=tuple(range(2, x.ndim)))


@lowering("globalmaxpool")
def globalmaxpool(x, p, a, ctx):
    if ctx.mask is not None:  # the padded steps never win
        x = x.masked_fill(~ctx.mask, float("-inf"))
    return x.flatten(2).max(dim=2).values


# ---- normalization and noise ---------------------------------------------------------------------
def moments(x: torch.Tensor, axes: tuple[int, ...], mask=None):
    """(mean, biased variance, count) per channel of one process's batch: the two-pass variance, as
    NumPy computes it (over a variable-length batch's valid steps: `mask`)."""
    if mask is not None:
        count = int(mask.sum())
        mean = (x * mask).sum(dim=axes) / count
        xc = x - _channel(mean, x.ndim)
        return mean, (xc * xc * mask).sum(dim=axes) / count, count
    mean = x.mean(dim=axes)
    xc = x - _channel(mean, x.ndim)
    return mean, (xc * xc).mean(dim=axes), x.numel() // x.shape[1]


@lowering("batchnorm")
def batchnorm(x, p, a, ctx):
    """Batch mean and biased variance in training (over every process's batch under torchrun: ctx.moments),
    running = momentum * running + (1 - momentum) * batch with the unbiased variance stored; running
    statistics at inference."""
    axes = (0, *range(2, x.ndim))
    if ctx.training and ctx.moments is None and ctx.mask is None and x.numel() > x.shape[1]:  # one process: torch's own kernel,
        # whose running-statistics rule is dlc's with torch momentum = 1 - dlc momentum (docs/conventions.md)
        return F.batch_norm(x, p["running_mean"], p["running_var"], p["gamma"], p["beta"], training=True,
                            momentum=1 - a["momentum"], eps=a["eps"])
    if ctx.training:
        mean, var, count = (ctx.moments or moments)(x, axes, ctx.mask)
        with torch.no_grad():
            m = a["momentum"]
            p["running_mean"].mul_(m).add_((1 - m) * mean.detach())
            p["running_var"].mul_(m).add_((1 - m) * var.detach() * (count / max(count - 1, 1)))
    else:
        mean, var = p["running_mean"], p["running_var"]
    inv_std = torch.rsqrt(var + a["eps"])
    return (x - _channel(mean, x.ndim)) * _channel(p["gamma"] * inv_std, x.ndim) + _channel(p["beta"], x.ndim)


@lowering("layernorm")
def layernorm(x, p, a, ctx):
    if x.ndim == 2:
        return F.layer_norm(x, (x.shape[1],), p["gamma"], p["beta"], a["eps"])
    return F.layer_norm(x.transpose(1, 2), (x.shape[1],), p["gamma"], p["beta"], a["eps"]).transpose(1, 2)


@lowering("lrn")
def lrn(x, p, a, ctx):
    return F.local_response_norm(x, a["size"], alpha=a["alpha"], beta=a["beta"], k=a["bias"])


@lowering("dropout")
def dropout(x, p, a, ctx):
    """Inverted dropout: kept with probability 1-p, scaled by 1/(1-p); identity at inference."""
    if not ctx.training or a["p"] == 0:
        return x
    keep = 1.0 - a["p"]
    u = torch.rand(x.shape, generator=ctx.generator, device=x.device, dtype=torch.float32)
    return x * ((u < keep).to(x.dtype) * (1.0 / keep))


# ---- text ------------------------------------------------------------------------------------------
@lowering("embedding")
def embedding(x, p, a, ctx):
    """Ids (N, 1, L), whole numbers (the padding read as id 0, whose row gets no gradient) -> (N, DIM, L)."""
    ids = x[:, 0, :].long()
    return (F.embedding(ids, p["weight"]) * (ids != 0)[:, :, None].to(x.dtype)).transpose(1, 2)


@lowering("position")
def position(x, p, a, ctx):
    if a["sinusoidal"]:
        from dlc.compiler.ops.text import sinusoid
        table = torch.as_tensor(sinusoid(*x.shape[1:]).astype("float32"), device=x.device).to(x.dtype)
        return x + table
    return x + p["weight"]


@lowering("attention")
def attention(x, p, a, ctx):
    """What the NumPy kernel computes (compiler/ops/text.py), in torch's operations: scores with the
    padding keys (and, causal, the later steps) at -inf, softmax, dropout on the weights in training."""
    n, c, steps = x.shape
    h = a["heads"]
    d = c // h
    b = p["bias"]  # the key bias adds q.b_k to a whole row of scores, which the softmax cancels: its gradient is
    b = torch.cat([b[:c], b[c:2 * c].detach(), b[2 * c:]])  # zero, given exactly (as the NumPy kernel does)
    qkv = x.transpose(1, 2) @ p["weight"] + b
    q, k, v = (t.reshape(n, steps, h, d).transpose(1, 2) for t in qkv.split(c, dim=2))
    scores = (q @ k.transpose(2, 3)) * (1.0 / d ** 0.5)
    allowed = None if ctx.mask is None or bool(ctx.mask.all()) else ctx.mask[:, :, None, :]  # (all full: no mask)
    if a["causal"]:
        lower = torch.ones(steps, steps, dtype=torch.bool, device=x.device).tril()[None, None]
        allowed = lower if allowed is None else allowed & lower
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if ctx.training and a["attention_dropout"] > 0:
        keep = 1.0 - a["attention_dropout"]
        u = torch.rand(weights.shape, generator=ctx.generator, device=x.device, dtype=torch.float32)
        weights = weights * ((u < keep).to(x.dtype) * (1.0 / keep))
    mixed = (weights @ v).transpose(1, 2).reshape(n, steps, c)
    return (mixed @ p["out_weight"] + p["out_bias"]).transpose(1, 2)


# ---- activations ---------------------------------------------------------------------------------
lowering("linear")(lambda x, p, a, ctx: x)
lowering("sigmoid")(lambda x, p, a, ctx: torch.sigmoid(x))
lowering("tanh")(lambda x, p, a, ctx: torch.tanh(x))
lowering("relu")(lambda x, p, a, ctx: torch.relu(x))
lowering("leaky_relu")(lambda x, p, a, ctx: F.leaky_relu(x, a["alpha"]))
lowering("elu")(lambda x, p, a, ctx: F.elu(x, a["alpha"]))
lowering("selu")(lambda x, p, a, ctx: F.selu(x))
lowering("gelu")(lambda x, p, a, ctx: F.gelu(x, approximate="tanh"))
lowering("silu")(lambda x, p, a, ctx: F.silu(x))
lowering("softplus")(lambda x, p, a, ctx: torch.logaddexp(torch.zeros_like(x), x))
lowering("softmax")(lambda x, p, a, ctx: torch.softmax(x, dim=1))


@lowering("rrelu")
def rrelu(x, p, a, ctx):
    """Negative inputs times a slope drawn from U(lower, upper) per element in training, the mean slope
    at inference."""
    if ctx.training:
        slope = torch.empty(x.shape, dtype=x.dtype, device=x.device).uniform_(a["lower"], a["upper"],
                                                                               generator=ctx.generator)
        return torch.where(x > 0, x, x * slope)
    return torch.where(x > 0, x, x * ((a["lower"] + a["upper"]) / 2))


@lowering("prelu")
def prelu(x, p, a, ctx):
    return torch.where(x > 0, x, x * _channel(p["slope"], x.ndim))


@lowering("maxout")
def maxout(x, p, a, ctx):
    k = a["k"]
    return x.view(x.shape[0], x.shape[1] // k, k, *x.shape[2:]).max(dim=2).values


# ---- merges --------------------------------------------------------------------------------------
@lowering("add")
def add(xs, p, a, ctx):
    y = xs[0]
    for x in xs[1:]:
        y = y + x
    return y


@lowering("concat")
def concat(xs, p, a, ctx):
    return torch.cat(xs, dim=1)
