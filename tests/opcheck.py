"""Helpers shared by the registry-walking tests: build an op's params and run it."""

from __future__ import annotations

import numpy as np

from dlc.compiler.ops import REGISTRY  # noqa: F401
from dlc.runtime.numpy_engine.layouts import Context
from dlc.runtime.numpy_engine.kernels import KERNELS


def full_attrs(op, attrs):
    a = op.defaults()
    a.update(attrs)
    return a


def make_params(op, shape, a, rng, dtype=np.float64):
    p = {}
    for spec in op.params(shape, a):
        if spec.role == "slope":
            p[spec.role] = rng.uniform(0.1, 0.5, spec.shape).astype(dtype)
        elif spec.role == "gamma":
            p[spec.role] = rng.uniform(0.5, 1.5, spec.shape).astype(dtype)
        else:
            p[spec.role] = rng.normal(0, 0.5, spec.shape).astype(dtype)
    for name, (bshape, _) in op.buffers(shape, a).items():
        p[name] = (rng.uniform(0.5, 1.5, bshape) if name.endswith("var") else rng.normal(0, 0.3, bshape)).astype(dtype)
    return p


def cases():
    """Every op's examples, on its NumPy kernel (the declaration with forward/backward: KERNELS)."""
    for op in KERNELS.values():
        for i, (shape, attrs) in enumerate(op.examples):
            yield pytest_id(op.name, i), op, shape, full_attrs(op, attrs)


def pytest_id(name, i):
    return f"{name}-{i}"


def run_forward(op, x, p, a, training, seed=0):
    ctx = Context(training=training, rng=np.random.default_rng(seed))
    buffers_copy = {k: v.copy() for k, v in p.items()}
    return op.forward(x, buffers_copy, a, ctx)


def make_input(op, shape, n, rng, dtype=np.float64, a=None):
    """A batch for the op: one array, or one per input for a merge (add, concat)."""
    if op.arity is None:
        return [rng.normal(0, 1, (n,) + tuple(s)).astype(dtype) for s in shape]
    if op.reads == "int64":  # token ids (the batch holds them as whole numbers), the padding id 0 among them
        ids = rng.integers(0, (a or op.defaults()).get("vocab", 2), (n,) + tuple(shape))
        ids.flat[0] = 0
        return ids.astype(dtype)
    return rng.normal(0, 1, (n,) + tuple(shape)).astype(dtype)


def first_shape(op, shape):
    """The shape parameters are laid out for: a merge's first input's."""
    return tuple(shape[0]) if op.arity is None else tuple(shape)


def infer(op, shape, a):
    return op.infer([tuple(s) for s in shape] if op.arity is None else tuple(shape), a)
