"""A model's arrays by dlc name, as every engine and tool sees them: dlc's own init (the same spec and seed
give the same weights, whichever engine trains them), the shapes a spec expects, and the refusal of
arrays that do not fit it. Shared by the engines and the tools; no engine's code."""

from __future__ import annotations

import math

import numpy as np

from dlc.compiler.inits import INITS, InitSpec
from dlc.compiler.ir import Graph


class WeightsMismatch(Exception):
    """Weights that do not fit the spec: the message names what differs."""


def sample_init(init: InitSpec, rng: np.random.Generator, shape, fan_in: int, fan_out: int,
                dtype=np.float32) -> np.ndarray:
    """An array drawn from the init scheme's distribution at its scale for these fans (compiler/inits.py)."""
    dist = INITS[init.name].distribution
    s = init.scale(fan_in, fan_out)
    if dist == "orthogonal":  # QR of a normal matrix, signs fixed by R's diagonal (Saxe et al. 2014)
        rows, cols = shape[0], math.prod(shape[1:])
        a = rng.normal(0.0, 1.0, size=(rows, cols) if rows >= cols else (cols, rows))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        return (s * (q if rows >= cols else q.T)).reshape(shape).astype(dtype)
    if dist == "unit_forget":  # gates i, f, g, o stacked: 1 on the forget gate's quarter
        out = np.zeros(shape, dtype=dtype)
        quarter = shape[0] // 4
        out[quarter:2 * quarter] = s
        return out
    if dist == "constant":
        return np.full(shape, s, dtype=dtype)
    if dist == "normal":
        return rng.normal(0.0, s, size=shape).astype(dtype)
    if dist == "padded_normal":  # an embedding table: the padding id's row stays zero
        out = rng.normal(0.0, s, size=shape).astype(dtype)
        out[0] = 0
        return out
    return rng.uniform(-s, s, size=shape).astype(dtype)


def init_params(graph: Graph, seed: int, dtype=np.float32) -> dict[str, np.ndarray]:
    """Sample every parameter from its init scheme; buffers get their fill value.
    One generator, parameters in graph order: the same spec and seed give the same weights."""
    rng = np.random.default_rng(seed)
    values = {}
    for node in graph.nodes:
        for p in node.params.values():
            values[p.name] = sample_init(p.init, rng, p.shape, p.fan_in, p.fan_out, dtype)
        for b in node.buffers.values():
            values[b.name] = np.full(b.shape, b.fill, dtype=dtype)
    return values


def expected_shapes(graph: Graph) -> dict[str, tuple[int, ...]]:
    out = {p.name: p.shape for p in graph.params()}
    out.update({b.name: b.shape for b in graph.buffers()})
    return out


def check_weights(graph: Graph, values: dict[str, np.ndarray]) -> None:
    want = expected_shapes(graph)
    missing = sorted(set(want) - set(values))
    extra = sorted(set(values) - set(want))
    wrong = sorted(f"{k} {tuple(values[k].shape)} (spec: {want[k]})" for k in set(want) & set(values)
                   if tuple(values[k].shape) != tuple(want[k]))
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append("missing: " + ", ".join(missing))
        if extra:
            parts.append("not in the spec: " + ", ".join(extra))
        if wrong:
            parts.append("wrong shape: " + "; ".join(wrong))
        raise WeightsMismatch("the weights do not match the spec: " + " | ".join(parts))
