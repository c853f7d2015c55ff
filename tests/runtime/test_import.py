"""dlc import: ONNX files as run folders -- dlc's own exports back as written, foreign chains layer by
layer, everything else a refusal naming the node."""

import warnings

import numpy as np
import pytest

from conftest import ROOT
from dlc.cli import main

torch = pytest.importorskip("torch")


def _torch_onnx(net, shape, path):
    net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(*shape), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    return path


def _spread_batchnorm(net):
    """Batchnorm statistics and affine parameters that are not the identity (what a trained net has)."""
    torch.manual_seed(1)
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-1, 1)
    return net


def _foreign():
    nn = torch.nn
    torch.manual_seed(0)
    return {
        "mlp": (nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10)), (1, 64),
                ["input 64", "dense 32 relu", "dense 10"]),
        "lenet": (nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5),
                                nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120),
                                nn.LeakyReLU(0.1), nn.Linear(120, 10), nn.Softmax(dim=1)), (1, 1, 28, 28),
                  ["input 1x28x28", "conv 6 kernel=5 pad=2 tanh", "avgpool 2", "conv 16 kernel=5 relu", "maxpool 2",
                   "flatten", "dense 120 leaky_relu alpha=0.1", "dense 10 softmax"]),
        "gap_cnn": (nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ELU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(8, 4)), (1, 3, 16, 16),
                    ["input 3x16x16", "conv 8 kernel=3 pad=1 relu", "conv 8 kernel=3 stride=2 pad=1 elu",
                     "globalavgpool", "dense 4"]),
        "conv1d": (nn.Sequential(nn.Conv1d(2, 8, 5, padding=2), nn.BatchNorm1d(8), nn.ReLU(), nn.Conv1d(8, 8, 3, dilation=2),
                                 nn.Sigmoid(), nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(8, 3)), (1, 2, 24),
                   None),
    }


@pytest.mark.parametrize("name", ["mlp", "lenet", "gap_cnn", "conv1d"])
def test_a_foreign_chain_imports_as_readable_lines_with_the_sources_outputs(tmp_path, capsys, name):
    net, shape, lines = _foreign()[name]
    src = _torch_onnx(_spread_batchnorm(net), shape, tmp_path / f"{name}.onnx")
    code = main(["import", str(src), "-o", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    if name == "conv1d":  # AdaptiveMaxPool1d exports as GlobalMaxPool over the steps
        assert code == 0, err
    else:
        assert code == 0, err
        text = (tmp_path / "run" / "spec.dl").read_text()
        assert [line.strip() for line in text.splitlines()[2:-1]] == lines
    difference = float(out.split("max abs difference ")[1].rstrip(")\n"))
    assert difference <= 1e-5
    # the run is a run: predict with it and export it again, verified
    from dlc.runtime.tools.onnx_runner import OnnxModel
    x = np.random.default_rng(3).normal(0, 1, (8,) + shape[1:]).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "x.npz"), "-o", str(tmp_path / "p.npz")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "p.npz")["output"], OnnxModel.load(src).run(x)["y"], atol=1e-5)
    assert main(["export", str(tmp_path / "run"), "-o", str(tmp_path / "again.onnx")]) == 0


def test_an_imported_torch_model_fine_tunes_with_its_first_layer_frozen(tmp_path):
    net, shape, _ = _foreign()["mlp"]
    src = _torch_onnx(net, shape, tmp_path / "mlp.onnx")
    assert main(["import", str(src), "-o", str(tmp_path / "torch_mlp")]) == 0
    (tmp_path / "ft.dl").write_text('model ft {\n    input 64\n    dense 32 relu frozen\n    dense 10 softmax\n}\n'
                                    f'init from "{tmp_path / "torch_mlp"}"\ndata digits scale=1/16\n'
                                    "optimizer adam lr=3e-3\ntrain epochs=10 seed=0\n")
    assert main(["train", str(tmp_path / "ft.dl"), "-q", "-o", str(tmp_path / "ft")]) == 0
    before, after = np.load(tmp_path / "torch_mlp" / "weights.npz"), np.load(tmp_path / "ft" / "weights.npz")
    assert np.array_equal(before["dense1.weight"], after["dense1.weight"])
    assert not np.array_equal(before["dense2.weight"], after["dense2.weight"])


def test_an_unsupported_op_is_a_refusal_naming_the_node(tmp_path, capsys):
    class Recurrent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(3, 4, batch_first=True)

        def forward(self, x):
            return self.lstm(x)[0][:, -1]

    src = _torch_onnx(Recurrent(), (1, 5, 3), tmp_path / "lstm.onnx")
    assert main(["import", str(src), "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "lstm.onnx: node '" in err and "(LSTM, opset 20) is not supported" in err
    assert not (tmp_path / "run").exists()


class _Basic(torch.nn.Module):
    """torchvision's BasicBlock: two 3x3 convs with batchnorm, a 1x1 projection shortcut when the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        nn = torch.nn
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.short = None if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
        return torch.relu(y + (x if self.short is None else self.short(x)))


class _Inception(torch.nn.Module):
    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.a, self.c = nn.Conv2d(1, 4, 1), nn.Conv2d(1, 4, 5, padding=2)
        self.b = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12 * 4 * 4, 10))

    def forward(self, x):
        return self.head(torch.cat([self.a(x), self.b(x), self.c(x)], 1))


def test_a_resnet_with_projection_shortcuts_and_an_inception_block_import_as_groups(tmp_path, capsys):
    nn = torch.nn
    torch.manual_seed(0)
    resnet = nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), _Basic(8, 8, 1),
                           _Basic(8, 16, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    for name, net, want in [("resnet", resnet, ["residual {", "} relu", "parallel add {",
                                                 "branch { conv 16 kernel=1 stride=2 }"]),
                            ("inception", _Inception(), ["parallel concat {", "branch { conv 4 kernel=1 }",
                                                         "branch { conv 4 kernel=3 pad=1 relu }", "} relu"])]:
        src = _torch_onnx(_spread_batchnorm(net), (1, 1, 8, 8), tmp_path / f"{name}.onnx")
        assert main(["import", str(src), "-o", str(tmp_path / name)]) == 0
        out = capsys.readouterr().out
        assert float(out.split("max abs difference ")[1].rstrip(")\n")) <= 1e-5
        lines = [line.strip() for line in (tmp_path / name / "spec.dl").read_text().splitlines()]
        assert all(w in lines for w in want), lines


def test_paths_that_meet_in_an_op_dlc_lacks_are_refused_not_half_imported(tmp_path, capsys):
    class Gated(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.b(x * torch.sigmoid(self.a(x)))

    src = _torch_onnx(Gated(), (1, 4), tmp_path / "gated.onnx")
    assert main(["import", str(src), "-o", str(tmp_path / "run")]) == 2
    assert "(Mul, opset 20) is not supported" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def _onnx_file(path, node, inits, in_shape, out_shape):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *out_shape])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("make, message", [
    (lambda h: (h.make_node("Gemm", ["x", "w", "b"], ["y"], alpha=2.0), {"w": np.ones((3, 2), np.float32),
                                                                         "b": np.zeros(2, np.float32)}, [3], [2]),
     "(Gemm, opset 17) is not supported: Gemm with transA, alpha or beta other than 0, 1, 1"),
    (lambda h: (h.make_node("Conv", ["x", "w"], ["y"], pads=[0, 0, 1, 1]), {"w": np.ones((2, 1, 3, 3), np.float32)},
                [1, 6, 6], [2, 5, 5]), "asymmetric pads [0, 0, 1, 1]"),
    (lambda h: (h.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], ceil_mode=1), {}, [1, 5, 5], [1, 3, 3]),
     "ceil_mode=1"),
    (lambda h: (h.make_node("Conv", ["x", "w"], ["y"], group=2), {"w": np.ones((2, 1, 3, 3), np.float32)},
                [2, 6, 6], [2, 4, 4]), "a grouped convolution (group=2)"),
    (lambda h: (h.make_node("Conv", ["x", "w"], ["y"], dilations=[2, 2]), {"w": np.ones((2, 1, 3, 3), np.float32)},
                [1, 8, 8], [2, 4, 4]), "a dilated 2-D convolution (dilations [2, 2])"),
    (lambda h: (h.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER"), {"w": np.ones((2, 1, 3, 3), np.float32)},
                [1, 6, 6], [2, 6, 6]), "auto_pad (export with explicit pads)"),
    (lambda h: (h.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1),
                {}, [1, 6, 6], [1, 6, 6]), "count_include_pad=1 with padding"),
    (lambda h: (h.make_node("Softmax", ["x"], ["y"], axis=0), {}, [4], [4]), "softmax over axis 0"),
    (lambda h: (h.make_node("MatMul", ["x", "w"], ["y"]), {"w": np.ones((6, 2), np.float32)}, [1, 2, 3], [1, 2, 2]),
     "a dense layer over an image (dlc flattens first)"),
])
def test_attributes_that_change_the_maths_are_refused(tmp_path, capsys, make, message):
    from onnx import helper
    node, inits, in_shape, out_shape = make(helper)
    src = _onnx_file(tmp_path / "m.onnx", node, inits, in_shape, out_shape)
    assert main(["import", str(src), "-o", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err


def test_a_file_that_is_not_onnx_is_refused(tmp_path, capsys):
    (tmp_path / "m.onnx").write_text("not a model")
    assert main(["import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "run")]) == 2
    assert "m.onnx: not an ONNX model" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "run")]) == 2
    assert "no such ONNX file" in capsys.readouterr().err


# (text models are refused by import: tests/runtime/test_text_runs.py)
SPECS = [p for p in sorted((ROOT / "specs").glob("*.dl")) if "choice(" not in p.read_text() and
         " tokens" not in p.read_text()]


@pytest.mark.slow
@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_dlcs_own_export_of_every_spec_round_trips(tmp_path, path):
    if "japanese" in path.stem or "gunpoint" in path.stem or "italy" in path.stem or "motions" in path.stem:
        pytest.importorskip("sktime")
    from dlc.formatting import format_spec
    from dlc.runtime.tools.onnx_runner import OnnxModel
    assert main(["train", str(path), "-q", "-o", str(tmp_path / "run"), "--set", "train.epochs=1"]) == 0
    assert main(["export", str(tmp_path / "run"), "-o", str(tmp_path / "a.onnx")]) == 0
    assert main(["import", str(tmp_path / "a.onnx"), "-o", str(tmp_path / "back")]) == 0
    assert (tmp_path / "back" / "spec.dl").read_text() == format_spec((tmp_path / "run" / "spec.dl").read_text())
    assert main(["export", str(tmp_path / "back"), "-o", str(tmp_path / "b.onnx")]) == 0
    a, b = OnnxModel.load(tmp_path / "a.onnx"), OnnxModel.load(tmp_path / "b.onnx")
    from dlc.runtime.runs import load_run
    from dlc.runtime.tools.export import real_inputs
    x = real_inputs(load_run(tmp_path / "run"), 64)
    np.testing.assert_allclose(b.run(x)["output"], a.run(x)["output"], atol=1e-6, rtol=1e-6)


def test_a_resnet18_architecture_imports_with_its_stems_floor_mode_pool(tmp_path, capsys):
    # torchvision's ResNet-18 layout (random weights): a 7x7 stride-2 stem, maxpool 3/2/1 -- which drops the
    # last row of an even size, torch's floor mode, written `floor` -- and four stages of two BasicBlocks
    nn = torch.nn
    torch.manual_seed(0)
    stages, c = [], 16
    for i, width in enumerate((16, 32, 64, 128)):  # ResNet-18's 64..512, narrowed 4x to keep the test fast
        stages += [_Basic(c, width, 1 if i == 0 else 2), _Basic(width, width, 1)]
        c = width
    net = nn.Sequential(nn.Conv2d(3, 16, 7, 2, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
                        *stages, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))
    src = _torch_onnx(_spread_batchnorm(net), (1, 3, 64, 64), tmp_path / "resnet18.onnx")
    assert main(["import", str(src), "-o", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert float(out.split("max abs difference ")[1].rstrip(")\n")) <= 1e-5
    lines = [line.strip() for line in (tmp_path / "run" / "spec.dl").read_text().splitlines()]
    assert "maxpool 3 stride=2 pad=1 floor" in lines
    # the repeated BasicBlocks, identity and projection, written once each as a block with its width
    assert lines.count("residual {") == 1 and lines.count("parallel add {") == 1
    assert [line for line in lines if line.startswith(("residual1 ", "parallel1 "))] == [
        "residual1 c=16", "residual1 c=16", "parallel1 c=32", "residual1 c=32", "parallel1 c=64", "residual1 c=64",
        "parallel1 c=128", "residual1 c=128"]


def test_what_dlc_refuses_to_write_is_refused_naming_the_line_it_would_be(tmp_path, capsys):
    # a model whose output is an image: ONNX computes it, a dlc spec must end in a vector
    src = _torch_onnx(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), (1, 1, 6, 6), tmp_path / "seg.onnx")
    assert main(["import", str(src), "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "seg.onnx: dlc cannot describe it: the model's output is an image 2x4x4" in err
    assert "(the line it reads as: conv 2 kernel=3); nothing written" in err
    assert not (tmp_path / "run").exists()


def test_groups_that_repeat_with_other_numbers_become_one_block_only_when_it_is_shorter():
    from dlc.runtime.tools.onnx_blocks import with_blocks
    group = ["residual {", "    conv C kernel=3 stride=S pad=1 relu", "    conv C kernel=3 pad=1", "} relu"]
    lines = ["conv 8 kernel=3"] + [g.replace("C", str(c)).replace("S", str(s))
                                   for c, s in ((8, 1), (8, 1), (16, 2)) for g in group]
    blocks, body = with_blocks(lines)
    assert blocks == ["block residual1(c, stride) {", "    residual {", "        conv c kernel=3 stride=stride pad=1 relu",
                      "        conv c kernel=3 pad=1", "    } relu", "}"]
    assert body == ["conv 8 kernel=3", "residual1 c=8 stride=1", "residual1 c=8 stride=1", "residual1 c=16 stride=2"]
    two_lines = ["parallel add {", "    branch { conv 4 kernel=1 }", "}"]
    assert with_blocks(two_lines * 2) == ([], two_lines * 2)  # a 3-line group twice: a block saves nothing


def test_a_model_without_one_fixed_input_and_one_output_is_refused(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "L"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "L"])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", "L"])
    for name, graph, message in [
            ("free.onnx", helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
             "input 'x' has per-sample dimensions [None]: dlc needs them fixed"),
            ("two.onnx", helper.make_graph([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Relu", ["x"], ["z"])],
                                           "g", [x], [y, z]),
             "1 inputs and 2 outputs: dlc imports a model with one input and one output")]:
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / name))
        assert main(["import", str(tmp_path / name), "-o", str(tmp_path / "run")]) == 2
        assert message in capsys.readouterr().err


def test_import_needs_at_least_one_input_to_compare_on(tmp_path, capsys):
    net, shape, _ = _foreign()["mlp"]
    src = _torch_onnx(net, shape, tmp_path / "mlp.onnx")
    assert main(["import", str(src), "-o", str(tmp_path / "run"), "--samples", "0"]) == 2
    assert "--samples 0: the import is verified on at least 1 input" in capsys.readouterr().err
