"""dlc export --int8: onnxruntime's static QDQ quantization, measured against the float model on the test
split before anything is written, refused past --max-drop."""

import json

import numpy as np
import pytest

from dlc.cli import main

SMALL_CNN = """model cnn {
    input 1x8x8
    conv 8 kernel=3 pad=same batchnorm relu
    maxpool 2
    conv 16 kernel=3 pad=same relu
    flatten
    dense 32 relu
    dense 10 softmax
}
data digits test=0.2 scale=0.0625
optimizer adam lr=3e-3
train epochs=8 batch=64 seed=0
"""


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    (root / "cnn.dl").write_text(SMALL_CNN)
    assert main(["train", str(root / "cnn.dl"), "-q", "-o", str(root / "run")]) == 0
    return root


def test_an_int8_export_keeps_the_accuracy_and_predict_reads_it(cnn_run, capsys):
    capsys.readouterr()
    assert main(["export", str(cnn_run / "run"), "-o", str(cnn_run / "m8.onnx"), "--int8"]) == 0
    out = capsys.readouterr().out
    import re
    floats, int8 = map(float, re.search(r"accuracy float ([\d.]+)%, int8 ([\d.]+)%", out).groups())
    assert floats - int8 <= 1.0 and "top-1 agreement" in out and "latency per sample, batch 64" in out
    import onnx
    model = onnx.load(str(cnn_run / "m8.onnx"))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in model.graph.node}
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["quantization"].startswith("int8 static QDQ") and json.loads(meta["classes"])[:2] == ["0", "1"]
    from dlc.runtime.data.datasets import load
    from dlc.runtime.tools.onnx_runner import OnnxModel
    x = load("digits", {}, None, 0).x  # raw: the model holds its scale=
    direct = OnnxModel.load(cnn_run / "m8.onnx").run(x.reshape(-1, 1, 8, 8).astype(np.float32))["label"]
    assert main(["predict", str(cnn_run / "m8.onnx"), "digits", "-o", str(cnn_run / "p.npz")]) == 0
    assert np.array_equal(np.load(cnn_run / "p.npz")["class_index"], direct)


def test_an_int8_model_that_loses_too_much_is_refused_with_the_layers_to_blame(cnn_run, capsys, monkeypatch):
    from dlc.runtime.tools import quantize
    real = quantize._score
    calls = {"n": 0}

    def collapsing(task, out, y):  # the float model scores as it does; every int8 try scores 0
        calls["n"] += 1
        return real(task, out, y) if calls["n"] == 1 else 0.0

    monkeypatch.setattr(quantize, "_score", collapsing)
    assert main(["export", str(cnn_run / "run"), "-o", str(cnn_run / "bad.onnx"), "--int8"]) == 2
    err = capsys.readouterr().err
    assert "the int8 model loses too much accuracy on the test split" in err and "nothing written" in err
    assert "Signal-to-quantization-noise per layer, worst first" in err
    assert err.count(",", err.index("left in float:"), err.index(". Signal")) == quantize.MAX_FALLBACKS - 1
    assert not (cnn_run / "bad.onnx").exists()
    import dlc  # the layers are named as the spec's nodes (the exported graph's node names)
    nodes = {n.name for n in dlc.compile(SMALL_CNN).graph.nodes}
    blamed = [part.split(" ")[0] for part in err.split("worst first: ")[1].split("\n")[0].split("; ")]
    assert blamed and set(blamed) <= nodes, blamed


@pytest.mark.parametrize("args, message", [
    (["--samples", "0"], "--samples 0: int8 calibration needs at least 1 training input"),
    (["--max-drop", "-1"], "--max-drop -1: the points int8 may lose cannot be negative"),
])
def test_bad_int8_options_are_refused(cnn_run, capsys, args, message):
    assert main(["export", str(cnn_run / "run"), "-o", str(cnn_run / "x.onnx"), "--int8", *args]) == 2
    assert message in capsys.readouterr().err


def test_an_unknown_calibration_is_refused_by_the_parser(cnn_run, capsys):
    with pytest.raises(SystemExit) as e:
        main(["export", str(cnn_run / "run"), "-o", str(cnn_run / "x.onnx"), "--int8", "--calibration", "mse"])
    assert e.value.code == 2 and "invalid choice: 'mse'" in capsys.readouterr().err


def test_eval_scores_the_int8_file_as_its_export_report_did(cnn_run, capsys):
    import re
    assert main(["export", str(cnn_run / "run"), "-o", str(cnn_run / "e8.onnx"), "--int8"]) == 0
    reported = float(re.search(r"int8 ([\d.]+)%", capsys.readouterr().out).group(1))
    assert main(["eval", str(cnn_run / "e8.onnx"), "--split", "test"]) == 0
    scored = float(re.search(r"test: n=\d+ loss [\d.]+ accuracy ([\d.]+)%", capsys.readouterr().out).group(1))
    assert scored == reported


def test_eval_of_an_onnx_file_dlc_did_not_write_says_to_import_it(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "f.onnx"))
    assert main(["eval", str(tmp_path / "f.onnx"), "digits"]) == 2
    assert "was not written by dlc export" in capsys.readouterr().err


def test_check_serving_reports_the_float_and_int8_files_sizes_and_latencies(tmp_path, capsys):
    (tmp_path / "cnn.dl").write_text(SMALL_CNN)
    assert main(["check", str(tmp_path / "cnn.dl"), "--serving", "--json"]) == 0
    cost = json.loads(capsys.readouterr().out)["serving"]
    assert cost["int8"]["bytes"] < cost["float"]["bytes"]
    assert all(cost[k][f"ms_batch_{b}"] > 0 for k in ("float", "int8") for b in (1, 64))


def test_an_unknown_calibration_is_refused_by_the_api_too(cnn_run):
    import dlc
    with pytest.raises(dlc.DLError) as e:
        dlc.export(cnn_run / "run", cnn_run / "x.onnx", int8=True, calibration="mse")
    assert "--calibration mse: expected one of minmax, entropy, percentile" in e.value.format()


def test_a_regression_int8_model_is_judged_by_its_mae(tmp_path, capsys):
    from conftest import ROOT
    assert main(["train", str(ROOT / "specs" / "sine_regression.dl"), "-q", "-o", str(tmp_path / "run")]) == 0
    assert main(["export", str(tmp_path / "run"), "-o", str(tmp_path / "s8.onnx"), "--int8", "--max-drop", "0"]) == 2
    err = capsys.readouterr().err
    assert "the int8 model loses too much MAE on the test split" in err and "(allowed: 0% more); nothing written" in err
