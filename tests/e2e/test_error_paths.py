"""The remaining refusals, each with its exact message: run files, labels, targets, data for eval/predict."""

import json

import numpy as np
import pytest

import dlc
from dlc.cli import main
from dlc.compiler.diagnostics import DLError
from dlc.runtime import run_folder as rf
from dlc.runtime.data.datasets import DataError
from dlc.runtime.data.labels import class_labels
from conftest import ROOT


def test_load_npz_refusals(tmp_path):
    with pytest.raises(DLError, match=f"{tmp_path} is a folder, not an .npz file"):
        rf.load_npz(tmp_path)
    with pytest.raises(DLError, match="no such file: "):
        rf.load_npz(tmp_path / "none.npz")
    np.save(tmp_path / "a.npy", np.zeros(3))
    (tmp_path / "a.npz").write_bytes((tmp_path / "a.npy").read_bytes())
    with pytest.raises(DLError, match="a.npz is a single .npy array, not an .npz archive"):
        rf.load_npz(tmp_path / "a.npz")
    np.savez(tmp_path / "s.npz", s=np.array(["a", "b"]))
    with pytest.raises(DLError, match="array 's' has dtype <U1; only numeric arrays are read"):
        rf.load_npz(tmp_path / "s.npz")


def test_damaged_json_and_data_record(tmp_path, capsys):
    (tmp_path / "m.json").write_text("[1, 2]")
    with pytest.raises(DLError, match="m.json is damaged: expected a JSON object"):
        rf.load_json(tmp_path / "m.json")
    run = tmp_path / "run"
    assert main(["train", str(ROOT / "specs/spiral.dl"),
                 "-q", "-o", str(run), "--set", "train.epochs=1"]) == 0
    (run / "data.json").write_text(json.dumps({"files": {"x.csv": {"path": 3}}}))
    capsys.readouterr()
    assert main(["eval", str(run)]) == 2
    assert f"{run / 'data.json'} is damaged: expected" in capsys.readouterr().err


@pytest.mark.parametrize("y, message", [
    (np.array([[[0]], [[1]]]), "labels must be one per sample, got an array of shape 2x1x1"),
    (np.array(["a", ""]), "sample 1 has an empty label"),
    (np.array(["a", "NaN"]), "sample 1 has a NaN label"),
    (np.array([1 + 2j, 0j]), "labels of type complex128 are not class labels"),
])
def test_class_label_refusals(y, message):
    with pytest.raises(DataError, match=message):
        class_labels("d.npz", y)


def test_class_labels_from_text():
    assert class_labels("d", np.array(["2", "0", "10"]))[1] == [str(i) for i in range(11)]  # numbers, not names
    y, classes = class_labels("d", np.array(["cat", "dog", "cat"]))
    assert classes == ["cat", "dog"] and y.tolist() == [0, 1, 0]


def _spec(tmp_path, out, extra="", loss=""):
    p = tmp_path / "s.dl"
    p.write_text(f'model m {{\n input 2\n dense 4 relu\n dense {out}\n}}\ndata "d.npz"{extra}\n{loss}train epochs=1\n')
    return p


def test_label_and_target_fit_refusals(tmp_path, capsys):
    x = np.zeros((20, 2), np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.array(["a", "b", "c", "d"] * 5))
    spec = _spec(tmp_path, "3 softmax")
    assert main(["check", str(spec)]) == 2
    assert "d.npz has 4 classes but the model outputs 3 values" in capsys.readouterr().err
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(20) % 3)
    spec = _spec(tmp_path, "1 sigmoid", loss="loss binary_cross_entropy\n")
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "r")]) == 2
    assert "binary_cross_entropy with 1 output needs labels 0 and 1; d.npz has 3 classes" in capsys.readouterr().err
    np.savez(tmp_path / "d.npz", x=x, y=np.array(["1.5x"] * 20))
    spec = _spec(tmp_path, "2", loss="loss mse\n")
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "r2")]) == 2
    assert "d.npz: regression targets must be numbers, got <U4" in capsys.readouterr().err
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros((20, 3)))
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "r3")]) == 2
    assert "d.npz has 3 target column(s) but the model outputs 2" in capsys.readouterr().err


def test_eval_and_predict_refuse_data_that_does_not_fit_the_model(tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.array(["a", "b"] * 20))
    spec = _spec(tmp_path, "2 softmax")
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run")]) == 0
    np.savez(tmp_path / "other.npz", x=x, y=np.array(["a", "z"] * 20))
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), str(tmp_path / "other.npz")]) == 2
    assert capsys.readouterr().err.startswith(f"{tmp_path / 'other.npz'}: error: {tmp_path / 'other.npz'} has "
                                              "labels the model never saw: z")
    np.savez(tmp_path / "reg.npz", x=x, y=x[:, :1] + 0.25)  # regression targets for a classifier
    assert main(["eval", str(tmp_path / "run"), str(tmp_path / "reg.npz")]) == 2
    assert "reg.npz: sample 0 has the label 0.37573; class labels are whole numbers or names" in \
        capsys.readouterr().err
    assert main(["eval", str(tmp_path / "run"), "sine"]) == 2
    assert "sine samples are 1 but the model's input is 2" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "run"), str(tmp_path / "missing.npz")]) == 2
    assert f"no such data file: {tmp_path / 'missing.npz'}" in capsys.readouterr().err


def test_predict_refuses_a_folder_named_onnx(tmp_path, capsys):
    (tmp_path / "m.onnx").mkdir()
    assert main(["predict", str(tmp_path / "m.onnx"), "iris"]) == 2
    assert f"{tmp_path / 'm.onnx'} is a folder, not an .onnx file" in capsys.readouterr().err


def test_compile_refuses_text_over_the_size_limit():
    from dlc.compiler import spec as spec_module
    with pytest.raises(DLError, match="the spec is 10,000,001 characters; a spec is at most 10,000,000"):
        dlc.compile("#" * (spec_module.MAX_SPEC_BYTES + 1))
