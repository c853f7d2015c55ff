"""ONNX: every op of the registry and every spec in specs/ exported, checked (full_check) and run
through onnxruntime; outputs match the NumPy runtime's inference outputs to 1e-5 (float32)."""


import numpy as np
import onnx
import pytest

import dlc
from dlc.compiler.diagnostics import Span
from dlc.compiler.inits import InitSpec
from dlc.compiler.ir import Buffer, Graph, Layer, Node, Param
from dlc.compiler.onnx_export import IR_VERSION, OPSET, graph_to_onnx
from dlc.compiler.ops import REGISTRY
from dlc.runtime.numpy_engine.layouts import Context
from dlc.runtime.numpy_engine.kernels import KERNELS
from dlc.runtime.tools.export import build, real_inputs
from dlc.runtime.tools.onnx_runner import OnnxModel
from dlc.runtime.trainer import train

from opcheck import cases, make_input, make_params

from conftest import ROOT  # noqa: E402
CASES = list(cases())


def single_op_graph(op, shape, a):
    span = Span(1, 1)
    node = Node(f"{op.name}1", op.name, a, tuple(shape), op.infer(tuple(shape), a), span, 0)
    for s in op.params(shape, a):
        node.params[s.role] = Param(f"{node.name}.{s.role}", s.role, s.shape, InitSpec("zeros"))
    for role, (bshape, fill) in op.buffers(shape, a).items():
        node.buffers[role] = Buffer(f"{node.name}.{role}", role, bshape, fill)
    return Graph("op", tuple(shape), [node], [Layer(0, op.name, span, op.name, [node.name])], input_dtype=op.reads)


def test_every_op_has_an_onnx_lowering():
    missing = [op.name for op in REGISTRY if type(op).to_onnx is type(op).__mro__[-2].to_onnx]
    assert not missing


def merge_graph(op, shapes, a):
    """input -> one dense (or 1x1 conv, or kernel-1 conv1d) per path giving that path's shape -> the merge op."""
    span = Span(1, 1)
    first = tuple(shapes[0])
    nodes, names = [], []
    for k, shape in enumerate(shapes, 1):
        kind, attrs = {1: ("dense", {"units": shape[0]}), 2: ("conv1d", {"filters": shape[0], "kernel": 1}),
                       3: ("conv", {"filters": shape[0], "kernel": (1, 1)})}[len(shape)]
        lin = REGISTRY[kind]
        la = {**lin.defaults(), **attrs}
        node = Node(f"{kind}{k}", kind, la, first, lin.infer(first, la), span, 0, inputs=("input",))
        for s in lin.params(first, la):
            node.params[s.role] = Param(f"{node.name}.{s.role}", s.role, s.shape, InitSpec("normal", {"std": 0.5}),
                                        s.fan_in, s.fan_out)
        nodes.append(node)
        names.append(node.name)
    out = op.infer([tuple(s) for s in shapes], a)
    nodes.append(Node(f"{op.name}1", op.name, a, tuple(shapes[0]), out, span, 0, inputs=tuple(names),
                      in_shapes=tuple(map(tuple, shapes))))
    return Graph("merge", first, nodes, [Layer(0, op.name, span, op.name, [n.name for n in nodes])])


@pytest.mark.parametrize("case", [c for c in CASES if c[1].arity is None], ids=lambda c: c[0])
def test_merge_onnx_matches_numpy(case):
    """A merge op in a graph of paths: onnxruntime against the NumPy interpreter (fan-out and merge)."""
    from dlc.runtime.numpy_engine.network import Network, init_params
    _, op, shapes, a = case
    graph = merge_graph(op, shapes, a)
    values = init_params(graph, seed=4)
    x = np.random.default_rng(3).normal(0, 1, (5,) + tuple(shapes[0])).astype(np.float32)
    ref = Network(graph, values).predict(x)
    got = OnnxModel(graph_to_onnx(graph, values)).run(x)["output"]
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", [c for c in CASES if c[1].arity == 1], ids=lambda c: c[0])
def test_op_onnx_matches_numpy(case):
    _, op, shape, a = case
    rng = np.random.default_rng(3)
    graph = single_op_graph(op, shape, a)
    p = make_params(op, shape, a, rng, np.float32)
    node = graph.nodes[0]
    values = {f"{node.name}.{k}": v for k, v in p.items()}
    x = make_input(op, shape, 5, rng, np.float32, a=a)
    ref, _ = op.forward(x, {k: v.copy() for k, v in p.items()}, a, Context(training=False))
    for keep_bn in (True, False):
        model = graph_to_onnx(graph, values, keep_bn=keep_bn)
        assert model.ir_version == IR_VERSION and model.opset_import[0].version == OPSET
        got = OnnxModel(model).run(x)["output"]
        np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5, err_msg=f"{op.name} keep_bn={keep_bn}")


SPECS = sorted(ROOT.glob("specs/*.dl"))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_exports_and_matches(path, tmp_path):
    spec = dlc.compile_file(path, overrides=["train.epochs=1"])
    if spec.ranges:  # fix search ranges at their nominal values
        text = spec.source.text
        for _, r in spec.ranges:
            text = text.replace(r.text, f"{r.nominal():g}")
        spec = dlc.compile(text, str(path))
        assert not spec.ranges
    result = train(spec, out=tmp_path / "run", progress=False, max_steps=3)
    model = result.model
    if model.encoder is not None:  # a text model: string in, each test text alone (export's own check)
        from dlc.runtime.tools.export import compare_texts, verification_texts
        texts = verification_texts(model)
        assert compare_texts(model, build(model), texts[:40] + texts[-4:]) < 1e-5
        return
    x = real_inputs(model, 64)
    ref = model.predict_proba(x)
    for keep_bn in (False, True):
        onnx_model = build(model, keep_bn=keep_bn)
        onnx.checker.check_model(onnx_model, full_check=True)
        got = OnnxModel(onnx_model).run(x)["output"]
        np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)
        kinds = {n.op_type for n in onnx_model.graph.node}
        assert "Dropout" not in kinds
        if not keep_bn and any(n.op == "batchnorm" for n in spec.graph.nodes):
            # every batchnorm that follows a layer declaring its weight's output axis (dense, conv, conv1d) is folded
            prev = {n.name: spec.graph.nodes[i - 1].op for i, n in enumerate(spec.graph.nodes) if i}
            unfoldable = sum(1 for n in spec.graph.nodes if n.op == "batchnorm"
                             and (n.name not in prev or REGISTRY[prev[n.name]].weight_out_axis is None))
            assert sum(1 for n in onnx_model.graph.node if n.op_type == "BatchNormalization") == unfoldable


def test_dynamic_batch_metadata_and_names(tmp_path):
    spec = dlc.compile_file(ROOT / "specs/digits_mlp.dl", overrides=["train.epochs=1"])
    model = train(spec, out=tmp_path / "r", progress=False, max_steps=2).model
    m = build(model, keep_bn=True)
    dim = m.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param == "N"
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["spec"] == spec.source.text and "dlc_version" in meta and '"0"' in meta["classes"]
    inits = {i.name for i in m.graph.initializer}
    assert {"dense1.weight", "batchnorm1.running_mean", "preprocess.mul"} <= inits
    runner = OnnxModel(m)
    x = real_inputs(model, 300)
    for n in (1, 7, 300):
        out = runner.run(x[:n])
        assert out["output"].shape == (n, 10) and out["label"].shape == (n,)


def test_export_cli_refuses_a_disagreeing_model(tmp_path, monkeypatch, capsys):
    from dlc.cli import main
    from dlc.runtime.tools import export as export_mod
    spec_path = tmp_path / "s.dl"
    spec_path.write_text((ROOT / "specs/spiral.dl").read_text().replace("epochs=300", "epochs=2"))
    assert main(["train", str(spec_path), "-q", "-o", str(tmp_path / "run")]) == 0
    assert main(["export", str(tmp_path / "run"), "-o", str(tmp_path / "ok.onnx")]) == 0
    assert "max abs difference" in capsys.readouterr().out
    real_predict = export_mod.Model.predict_proba
    monkeypatch.setattr(export_mod.Model, "predict_proba", lambda self, x: real_predict(self, x) + 1e-3)
    assert main(["export", str(tmp_path / "run"), "-o", str(tmp_path / "bad.onnx")]) == 2
    assert "disagrees with the NumPy runtime" in capsys.readouterr().err
    assert not (tmp_path / "bad.onnx").exists()


def test_predict_onnx_and_run_agree(tmp_path, capsys):
    from dlc.cli import main
    spec_path = tmp_path / "s.dl"
    spec_path.write_text((ROOT / "specs/spiral.dl").read_text().replace("epochs=300", "epochs=30"))
    main(["train", str(spec_path), "-q", "-o", str(tmp_path / "run")])
    main(["export", str(tmp_path / "run"), "-o", str(tmp_path / "m.onnx")])
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m.onnx"), "spiral", "-o", str(tmp_path / "a.npz")]) == 0
    assert main(["predict", str(tmp_path / "run"), "spiral", "-o", str(tmp_path / "b.npz")]) == 0
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    np.testing.assert_allclose(a["output"], b["output"], atol=1e-5)
    assert (a["class_index"] == b["class_index"]).all()


# --- conventions whose ONNX semantics differ from common framework defaults --------------------

def _run_single(op_name, shape, attrs, x, params=None):
    op = KERNELS[op_name]
    a = dict(op.defaults(), **attrs)
    graph = single_op_graph(op, shape, a)
    values = {f"{op_name}1.{k}": v for k, v in (params or {}).items()}
    ref, _ = op.forward(x, {k: v.copy() for k, v in (params or {}).items()}, a, Context(training=False))
    got = OnnxModel(graph_to_onnx(graph, values, keep_bn=True)).run(x)["output"]
    return ref, got


def test_avgpool_with_padding_does_not_count_padded_cells():
    x = np.ones((1, 1, 3, 3), np.float32)
    ref, got = _run_single("avgpool", (1, 3, 3), {"kernel": (3, 3), "stride": (1, 1), "pad": (1, 1)}, x)
    np.testing.assert_allclose(ref, 1.0)  # counting padded cells would give 4/9 in the corner
    np.testing.assert_allclose(got, ref)


def test_maxpool_ties_send_gradient_to_first_max():
    op = KERNELS["maxpool"]
    a = dict(op.defaults(), kernel=(2, 2))
    x = np.ones((1, 1, 2, 2), np.float32)
    y, cache = op.forward(x, {}, a, Context())
    dx, _ = op.backward(np.ones_like(y), cache, {}, a)
    assert dx.ravel().tolist() == [1, 0, 0, 0]
    ref, got = _run_single("maxpool", (1, 2, 2), {"kernel": (2, 2)}, x)
    np.testing.assert_allclose(got, ref)


@pytest.mark.parametrize("k, s, pad, hw", [(2, 2, 0, 6), (3, 2, 1, 7), (3, 1, 1, 6), (2, 1, 0, 6)])
def test_maxpool_matches_a_per_window_reference_with_ties(k, s, pad, hw):
    """Overlapping, padded and tiled windows, on data full of ties (relu zeros, small integers)."""
    op = KERNELS["maxpool"]
    a = dict(op.defaults(), kernel=(k, k), stride=(s, s), pad=(pad, pad))
    rng = np.random.default_rng(k * 10 + s)
    x = np.maximum(rng.integers(-2, 3, (2, 3, hw, hw)), 0).astype(np.float32)
    dy_shape = (2, 3) + op.infer((3, hw, hw), a)[1:]
    dy = rng.normal(size=dy_shape).astype(np.float32)
    y, cache = op.forward(x, {}, a, Context())
    dx, _ = op.backward(dy, cache, {}, a)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    ref_y, ref_dx = np.zeros(dy_shape, np.float32), np.zeros_like(xp)
    for n, c, i, j in np.ndindex(*dy_shape):  # the reference may loop: it is a test
        win = xp[n, c, i * s:i * s + k, j * s:j * s + k]
        r, q = np.unravel_index(np.argmax(win), win.shape)  # first maximum, row-major
        ref_y[n, c, i, j] = win[r, q]
        ref_dx[n, c, i * s + r, j * s + q] += dy[n, c, i, j]
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_allclose(dx, ref_dx[:, :, pad:pad + hw, pad:pad + hw], atol=1e-6)


def test_batchnorm_momentum_and_unbiased_running_variance():
    op = KERNELS["batchnorm"]
    x = np.array([[0.0], [2.0]], np.float32)  # mean 1, biased var 1, unbiased var 2
    p = {"gamma": np.ones(1, np.float32), "beta": np.zeros(1, np.float32),
         "running_mean": np.zeros(1, np.float32), "running_var": np.ones(1, np.float32)}
    y, _ = op.forward(x, p, dict(op.defaults()), Context(training=True))
    np.testing.assert_allclose(y.ravel(), [-1, 1], atol=1e-4)  # normalized with the biased variance
    assert p["running_mean"][0] == pytest.approx(0.1)  # 0.9 kept
    assert p["running_var"][0] == pytest.approx(0.9 * 1 + 0.1 * 2)
    ref, got = _run_single("batchnorm", (1,), {}, x, p)
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_leaky_relu_default_slope_and_lrn_odd_size():
    assert REGISTRY["leaky_relu"].defaults()["alpha"] == 0.01
    x = np.array([[-1.0, 2.0]], np.float32)
    ref, got = _run_single("leaky_relu", (2,), {}, x)
    np.testing.assert_allclose(ref, [[-0.01, 2.0]])
    np.testing.assert_allclose(got, ref)
    from dlc.compiler.ops import ShapeError
    with pytest.raises(ShapeError, match="odd"):
        REGISTRY["lrn"].infer((4, 2, 2), dict(REGISTRY["lrn"].defaults(), size=4))
    x = np.random.default_rng(0).normal(size=(2, 7, 3, 3)).astype(np.float32)
    ref, got = _run_single("lrn", (7, 3, 3), {"size": 5, "alpha": 0.5, "bias": 2.0}, x)
    np.testing.assert_allclose(got, ref, atol=1e-5)
