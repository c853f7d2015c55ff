"""Lowering, shapes, inits and the IR, through the Python API."""

import pytest

import dlc
from dlc.compiler.diagnostics import DLError
from conftest import ROOT


def compile_model(body, tail=""):
    return dlc.compile("model m {\n" + body + "\n}\n" + tail)


def ops(spec):
    return [n.op for n in spec.graph.nodes]


def test_canonical_order_whatever_the_written_order():
    a = compile_model("input 8\ndense 4 dropout=0.5 relu batchnorm\ndense 2 softmax")
    b = compile_model("input 8\ndense 4 batchnorm relu dropout=0.5\ndense 2 softmax")
    assert ops(a) == ops(b) == ["dense", "batchnorm", "relu", "dropout", "dense", "softmax"]


def test_standalone_lines_keep_written_order_and_lint_bn_after_relu():
    s = compile_model("input 8\ndense 4\nrelu\nbatchnorm\ndense 2 softmax")
    assert ops(s) == ["dense", "relu", "batchnorm", "dense", "softmax"]
    assert [w.code for w in s.warnings] == ["DL101"]


def test_repeat_and_init_defaults():
    s = compile_model("input 8\ninit he_uniform\nrepeat 3 { dense 4 relu }\ninit xavier_normal\ndense 2 softmax")
    dense = [n for n in s.graph.nodes if n.op == "dense"]
    assert len(dense) == 4
    assert [d.params["weight"].init.name for d in dense] == ["he_uniform"] * 3 + ["xavier_normal"]
    assert [d.name for d in dense] == ["dense1", "dense2", "dense3", "dense4"]


def test_per_layer_init_overrides_and_auto_init():
    s = compile_model("input 8\ndense 4 tanh\ndense 4 relu init=normal(0.1)\ndense 2 softmax")
    w = [n.params["weight"].init for n in s.graph.nodes if n.op == "dense"]
    assert (w[0].name, w[0].auto) == ("xavier_uniform", True)
    assert (w[1].name, w[1].args) == ("normal", {"std": 0.1})


def test_keep_is_the_other_spelling_of_dropout():
    s = compile_model("input 8\ndense 4 relu keep=0.8\ndense 2 softmax")
    d = next(n for n in s.graph.nodes if n.op == "dropout")
    assert d.attrs["p"] == pytest.approx(0.2)
    s = compile_model("input 8\ndense 4 relu\ndropout keep=0.75\ndense 2 softmax")
    assert next(n for n in s.graph.nodes if n.op == "dropout").attrs["p"] == pytest.approx(0.25)


def test_conv_shapes_same_padding_and_stride():
    s = compile_model("input 3x32x32\nconv 8 kernel=3 pad=same\nconv 16 kernel=3 stride=2 pad=same\n"
                      "maxpool 2\nflatten\ndense 10 softmax")
    assert [n.out_shape for n in s.graph.nodes if n.op in ("conv", "maxpool", "flatten")] == \
        [(8, 32, 32), (16, 16, 16), (16, 8, 8), (1024,)]


def test_bias_dropped_before_batchnorm_unless_asked():
    s = compile_model("input 8\ndense 4 batchnorm relu\ndense 2 softmax")
    assert "bias" not in s.graph.nodes[0].params
    s = compile_model("input 8\ndense 4 bias=true batchnorm relu\ndense 2 softmax")
    assert "bias" in s.graph.nodes[0].params
    assert "DL107" in [w.code for w in s.warnings]


def test_param_names_and_buffers():
    s = compile_model("input 1x8x8\nconv 4 kernel=3 batchnorm prelu\nflatten\ndense 2 softmax")
    names = [p.name for p in s.graph.params()]
    assert names == ["conv1.weight", "batchnorm1.gamma", "batchnorm1.beta", "prelu1.slope", "dense1.weight", "dense1.bias"]
    assert [b.name for b in s.graph.buffers()] == ["batchnorm1.running_mean", "batchnorm1.running_var"]
    assert s.graph.node("conv1").params["weight"].shape == (4, 1, 3, 3)


def test_several_errors_are_all_reported():
    with pytest.raises(DLError) as e:
        compile_model("input 8\ndense 4 rleu\ndense 4 relu dropout=2\nconvv 3\ndense 2 softmax")
    msgs = [d.message for d in e.value.diagnostics]
    assert len(msgs) == 3
    assert "unknown activation 'rleu'" in msgs[0] and "dropout=2" in msgs[1] and "unknown layer 'convv'" in msgs[2]


def test_search_ranges_are_kept_and_nominal_used_for_shapes():
    s = compile_model("input 8\ndense relu units=choice(4, 16) dropout=choice(0.1, 0.5)\ndense 2 softmax",
                      "optimizer adam lr=loguniform(1e-4, 1e-2)")
    assert {k for k, _ in s.ranges} == {"dense1.units", "dense1.dropout", "optimizer.lr"}
    dense1 = s.graph.node("dense1")
    assert dense1.out_shape == (4,) and s.graph.node("dense2").params["weight"].shape == (4, 2)  # choice: the first
    assert s.graph.node("dropout1").attrs["p"].nominal() == 0.1


@pytest.mark.parametrize("tail, message", [
    ("optimizer sgd momentum=1.5", "momentum=1.5 is out of range"),
    ("train batch=0", "batch=0 is out of range"),
    ("train epochs=2.5", "epochs expects a whole number"),
    ("schedule cosin", "unknown schedule 'cosin'"),
    ("regularize l2=-1", "l2=-1 is out of range"),
    ("loss mse\nloss mae", "loss is given twice"),
    ("dense 3", "'dense' belongs inside the model block"),
    ("data", "data needs a source"),
    ("trian epochs=3", "unknown statement 'trian'"),
])
def test_statement_errors(tail, message):
    with pytest.raises(DLError) as e:
        compile_model("input 8\ndense 2 softmax", tail)
    assert message in str(e.value)


def test_repeat_zero_and_inline_activation_errors():
    with pytest.raises(DLError, match="repeat count must be at least 1"):
        compile_model("input 8\nrepeat 0 { dense 4 relu }\ndense 2 softmax")
    with pytest.raises(DLError, match="two activations on one line"):
        compile_model("input 8\ndense 4 relu tanh\ndense 2 softmax")
    with pytest.raises(DLError, match="belongs to an activation"):
        compile_model("input 8\ndense 4 alpha=0.1\ndense 2 softmax")


def test_check_path_does_not_import_numpy():
    """`dlc check` stays fast: compiling every example spec never loads NumPy."""
    import subprocess
    import sys

    specs = sorted(str(p) for p in (ROOT / "specs").glob("*.dl"))
    code = ("import sys, dlc\n"
            f"for f in {specs!r}: dlc.compile_file(f)\n"
            "print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_lazy_numpy_rebinds_to_the_real_module():
    import numpy

    from dlc.compiler.ops import activations as base

    base.np.float32  # first use (or a no-op if already loaded)
    assert base.np is numpy


def test_what_an_op_is_is_declared_on_its_class():
    from dlc.compiler.ops import REGISTRY
    for op in REGISTRY:
        if op.kind == "activation":
            assert op.init_family in ("he", "xavier", "lecun"), op.name
        if op.weight_layer:
            assert op.weight_out_axis is not None and op.inline, op.name
    assert [op.name for op in REGISTRY if op.weight_layer] == ["dense", "conv", "conv1d"]
    assert sorted(op.name for op in REGISTRY if op.saturating) == ["sigmoid", "tanh"]


def test_global_pooling_makes_a_feature_vector_and_max_ties_go_to_the_first():
    import numpy as np
    from dlc.runtime.numpy_engine.layouts import Context
    s = compile_model("input 3x4x4\nconv 8 kernel=3 pad=same relu\nglobalavgpool\ndense 2 softmax")
    assert s.graph.node("globalavgpool1").out_shape == (8,)
    from dlc.runtime.numpy_engine.kernels import KERNELS
    op = KERNELS["globalmaxpool"]
    x = np.zeros((1, 1, 2, 2))
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = 1.0  # two maxima
    y, cache = op.forward(x, {}, {}, Context())
    dx, _ = op.backward(np.ones((1, 1)), cache, {}, {})
    assert y[0, 0] == 1.0 and dx[0, 0].tolist() == [[0.0, 1.0], [0.0, 0.0]]
    with pytest.raises(DLError, match="globalavgpool expects a sequence CxL or an image CxHxW, but its input is 8"):
        compile_model("input 8\nglobalavgpool\ndense 2 softmax")
