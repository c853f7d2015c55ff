"""Walks the op registry: every op has examples, its forward obeys its shape rule,
and its backward matches central finite differences in float64 (relative error < 1e-6)."""

import numpy as np
import pytest

from dlc.compiler.ops import REGISTRY

from opcheck import cases, first_shape, infer, make_input, make_params, run_forward

CASES = list(cases())


def test_every_op_has_examples():
    missing = [op.name for op in REGISTRY if not op.examples]
    assert not missing, f"ops without gradient-check examples: {missing}"


def rel_error(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12)


@pytest.mark.parametrize("training", [True, False], ids=["train", "infer"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_gradient_matches_finite_differences(case, training):
    _, op, shape, a = case
    rng = np.random.default_rng(1)
    n = 3
    x = make_input(op, shape, n, rng, a=a)
    p = make_params(op, first_shape(op, shape), a, rng)
    y, cache = run_forward(op, x, p, a, training)
    assert y.shape == (n,) + infer(op, shape, a)
    assert y.dtype == np.float64
    r = rng.normal(0, 1, y.shape)
    r_before = r.copy()
    dx, grads = op.backward(r, cache, {k: v.copy() for k, v in p.items()}, a)
    np.testing.assert_array_equal(r, r_before, err_msg=f"{op.name} backward changed the gradient it was given")
    xs, dxs = (x, dx) if op.arity is None else ([x], [dx])
    assert [d.shape for d in dxs] == [v.shape for v in xs]
    trainable = {s.role for s in op.params(first_shape(op, shape), a)}
    assert set(grads) == trainable

    def loss(x_, p_):
        return float(np.sum(run_forward(op, x_, p_, a, training)[0] * r))

    eps = 1e-6
    targets = [(f"x{k}", v, d) for k, (v, d) in enumerate(zip(xs, dxs)) if op.reads != "int64"] \
        + [(role, p[role], grads[role]) for role in sorted(trainable)]
    for label, arr, analytic in targets:
        numeric = np.zeros_like(arr)
        it = np.nditer(arr, flags=["multi_index"])
        for _ in it:
            i = it.multi_index
            old = arr[i]
            arr[i] = old + eps
            up = loss(x, p)
            arr[i] = old - eps
            down = loss(x, p)
            arr[i] = old
            numeric[i] = (up - down) / (2 * eps)
        err = rel_error(np.asarray(analytic), numeric)
        assert err < 1e-6, f"{op.name} d{label}: relative error {err:.2e}"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_forward_keeps_float32(case):
    _, op, shape, a = case
    rng = np.random.default_rng(0)
    x = make_input(op, shape, 2, rng, np.float32, a=a)
    p = make_params(op, first_shape(op, shape), a, rng, np.float32)
    for training in (True, False):
        y, cache = run_forward(op, x, p, a, training)
        assert y.dtype == np.float32, f"{op.name} forward returned {y.dtype}"
        dx, grads = op.backward(np.ones_like(y), cache, p, a)
        for d in (dx if op.arity is None else [dx]):
            assert d.dtype == np.float32, f"{op.name} backward returned {d.dtype}"
        for k, g in grads.items():
            assert g.dtype == np.float32, f"{op.name} d{k} is {g.dtype}"


def _chwn(x):
    return np.ascontiguousarray(x.transpose(1, 2, 3, 0)) if x.ndim == 4 else x


def _nchw(x):
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)) if x.ndim == 4 else x


LAYOUT_CASES = [c for c in CASES if "CHWN" in c[1].layouts
                and len(c[2][0] if c[1].arity is None else c[2]) == 3]


def test_the_layout_walk_covers_the_conv_stack_ops():
    assert {c[1].name for c in LAYOUT_CASES} >= {"conv", "maxpool", "avgpool", "batchnorm", "relu", "flatten",
                                                 "globalavgpool", "globalmaxpool", "concat", "add", "dropout"}


@pytest.mark.parametrize("training", [True, False], ids=["train", "infer"])
@pytest.mark.parametrize("case", LAYOUT_CASES, ids=[c[0] for c in LAYOUT_CASES])
def test_chwn_layout_matches_nchw(case, training):
    """An op run on CHWN images (how the runtime keeps conv stacks) gives the NCHW results, transposed."""
    from dlc.runtime.numpy_engine.layouts import Context
    _, op, shape, a = case
    rng = np.random.default_rng(5)
    x = make_input(op, shape, 3, rng, a=a)
    p = make_params(op, first_shape(op, shape), a, rng)
    ref, cache = op.forward(x, {k: v.copy() for k, v in p.items()}, a,
                            Context(training=training, rng=np.random.default_rng(0)))
    r = rng.normal(0, 1, ref.shape)
    dref, gref = op.backward(r, cache, {k: v.copy() for k, v in p.items()}, a)
    xc = [_chwn(v) for v in x] if op.arity is None else _chwn(x)
    got, cache = op.forward(xc, {k: v.copy() for k, v in p.items()}, a,
                            Context(training=training, rng=np.random.default_rng(0), layout="CHWN"))
    if op.name in ("dropout", "rrelu") and training:
        return  # the random mask is drawn in the array's own order: the same law, other draws
    np.testing.assert_allclose(_nchw(got), ref, rtol=1e-10, atol=1e-12)
    dgot, ggot = op.backward(_chwn(r), cache, {k: v.copy() for k, v in p.items()}, a)
    for d, dr in zip(dgot if op.arity is None else [dgot], dref if op.arity is None else [dref]):
        np.testing.assert_allclose(_nchw(d), dr, rtol=1e-10, atol=1e-12)
    for k in gref:
        np.testing.assert_allclose(ggot[k], gref[k], rtol=1e-10, atol=1e-12)
