"""Each loss of the registry (compiler/losses.py) lowered to torch: its value, averaged over the batch,
with the same conventions as its NumPy formula (autograd gives the gradient, equal to NumPy's).

`f(out, y, fused, class_weight) -> scalar tensor`: `class_weight` (None, or a weight per class)
multiplies each sample's loss by its class's weight, still divided by N; `fused` when the model stops before the output activation the
loss computes itself (log-sum-exp from the logits). Unfused probabilities are clipped to
[EPS, 1 - EPS] with the gradient passed through, as the NumPy formula's gradient is taken at the
clipped value. tests/runtime/test_torch_engine.py walks the loss registry.
"""

from __future__ import annotations

import torch

from dlc.compiler.losses import EPS
from dlc.runtime.torch_engine.ops import table_of

LOSS_LOWERINGS: dict = {}
lowering = table_of(LOSS_LOWERINGS)


def _clip(p: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """p clipped in value; the gradient taken as if at the clipped value (as NumPy's formula is)."""
    return p + (p.clamp(lo, hi) - p).detach()


@lowering("cross_entropy")
def cross_entropy(out, y, fused, class_weight=None):
    if fused and class_weight is None:  # torch's fused log-softmax + NLL: log-sum-exp(z) - z[y], averaged
        return torch.nn.functional.cross_entropy(out, y)
    if fused:  # weighted, divided by N (torch's weight= would divide by the sum of the weights)
        per_sample = torch.nn.functional.cross_entropy(out, y, reduction="none")
    else:
        per_sample = -torch.log(_clip(out.gather(1, y.view(-1, 1))[:, 0], EPS, 1.0))
    return torch.mean(per_sample if class_weight is None else per_sample * class_weight[y])


def _targets(y, out):
    if y.ndim > 1 or out.shape[1] == 1:
        return y.reshape(out.shape).to(out.dtype)
    return torch.nn.functional.one_hot(y, out.shape[1]).to(out.dtype)


@lowering("binary_cross_entropy")
def binary_cross_entropy(out, y, fused, class_weight=None):
    t = _targets(y, out)
    if fused:
        per_unit = torch.logaddexp(torch.zeros_like(out), out) - t * out
    else:
        p = _clip(out, EPS, 1 - EPS)
        per_unit = -(t * torch.log(p) + (1 - t) * torch.log(1 - p))
    if class_weight is not None:  # one output unit: each sample weighted by its label's class
        per_unit = per_unit * class_weight[y.long()].reshape(out.shape)
    return torch.mean(per_unit)


@lowering("mse")
def mse(out, y, fused, class_weight=None):
    d = out - y.reshape(out.shape).to(out.dtype)
    return torch.mean(d * d)


@lowering("mae")
def mae(out, y, fused, class_weight=None):
    return torch.mean(torch.abs(out - y.reshape(out.shape).to(out.dtype)))
