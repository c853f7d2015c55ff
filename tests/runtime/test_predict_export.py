"""predict and export: named arrays, labels the model never saw, warnings for the training data, and no
model exported that computes NaN."""

import subprocess
import sys

import numpy as np
import pytest
from dlc.runtime import run_folder as rf

import dlc
from dlc.cli import main


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    spec = root / "s.dl"
    spec.write_text("model m {\n input 64\n dense 10 softmax\n}\ndata digits\ntrain epochs=2 seed=0\n")
    assert main(["train", str(spec), "-q", "-o", str(root / "run")]) == 0
    return root / "run"


def test_export_verified_on_zero_inputs_is_refused(digits_run, tmp_path, capsys):
    assert main(["export", str(digits_run), "-o", str(tmp_path / "m.onnx"), "--samples", "0"]) == 2
    assert "dlc: error: --samples 0: the export is verified on at least 1 real input" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("command", ["predict", "eval"])
def test_labels_the_model_never_saw_are_refused_by_predict_as_by_eval(digits_run, tmp_path, capsys, command):
    from sklearn.datasets import load_digits
    d = load_digits()
    y = d.target.copy()
    y[:5] = 12  # a label beyond the model's ten classes
    np.savez(tmp_path / "bad.npz", x=d.data.astype("float32"), y=y)
    assert main([command, str(digits_run), str(tmp_path / "bad.npz")]) == 2
    assert f"error: {tmp_path / 'bad.npz'} has labels the model never saw: 12" in capsys.readouterr().err


def test_predict_scores_named_labels_by_the_models_classes(digits_run, tmp_path, capsys):
    from sklearn.datasets import load_digits
    d = load_digits()
    np.savez(tmp_path / "ok.npz", x=d.data.astype("float32"), y=d.target)
    assert main(["predict", str(digits_run), str(tmp_path / "ok.npz")]) == 0
    out = capsys.readouterr().out
    acc = float(out.split("accuracy against the data's labels ")[1].split("%")[0])
    assert main(["eval", str(digits_run), str(tmp_path / "ok.npz")]) == 0
    assert f"accuracy {acc:.2f}%" in capsys.readouterr().out


def test_api_predict_takes_an_array_of_samples(digits_run):
    from sklearn.datasets import load_digits
    x = load_digits().data[:7]
    r = dlc.predict(digits_run, x)
    assert r["output"].shape == (7, 10) and len(r["class_name"]) == 7
    assert np.array_equal(r["class_index"], dlc.predict(digits_run, x.astype("float64").tolist())["class_index"])
    with pytest.raises(dlc.DLError, match=r"texts are for a text model \(input L tokens\); this model's input is 64"):
        dlc.predict(digits_run, np.array([["a"]]))
    with pytest.raises(dlc.DLError, match=r"an array of samples is numeric with one row per sample; got object"):
        dlc.predict(digits_run, np.array([[None]]))


def test_predict_on_a_spec_says_it_is_a_spec(spec_file, tmp_path, capsys):
    spec = spec_file("model m {\n input 2\n dense 3 softmax\n}\ndata spiral\n")
    assert main(["predict", str(spec), "spiral"]) == 2
    err = capsys.readouterr().err
    assert f"error: {spec} is a spec, not a run folder: it has no trained weights" in err
    assert f"hint: train it first (dlc train {spec} -o runs/NAME)" in err


# ---- predict's arrays are named and documented; scoring the training data is said (issue 26, item 5) ----
def test_predict_writes_named_arrays_and_warns_when_scoring_the_training_data(digits_run, tmp_path, capsys):
    from sklearn.datasets import load_digits
    d = load_digits()
    np.savez(tmp_path / "held_out.npz", x=d.data[:50], y=d.target[:50])
    assert main(["predict", str(digits_run), "digits", "-o", str(tmp_path / "out.npz")]) == 0
    out, err = capsys.readouterr()
    assert "(all 1,797 samples of digits)" in out
    assert "warning: digits is the data this model was trained on: its training samples are among those scored" in err
    saved = np.load(tmp_path / "out.npz")
    assert sorted(saved.files) == ["class_index", "class_name", "output"]
    assert np.array_equal(saved["class_index"], saved["output"].argmax(1))
    assert saved["class_name"].dtype.kind == "U" and saved["class_name"][0] == str(saved["class_index"][0])
    assert main(["predict", str(digits_run), str(tmp_path / "held_out.npz")]) == 0
    out, err = capsys.readouterr()
    assert "(all 50 samples of" in out and "warning" not in err
    help_text = subprocess.run([sys.executable, "-m", "dlc", "predict", "--help"], capture_output=True, text=True).stdout
    assert "class_index" in help_text and "class_name" in help_text


def test_predict_warns_for_a_copy_of_the_training_file(spec_file, tmp_path, capsys):
    """The same bytes under another name are the same data (the run's record holds their sha256)."""
    import shutil
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(60, 4)).astype("float32"), y=np.arange(60) % 3)
    spec = spec_file('model m {\n input 4\n dense 3 softmax\n}\ndata "d.npz"\ntrain epochs=1\n')
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run")]) == 0
    shutil.copy(tmp_path / "d.npz", tmp_path / "copy.npz")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "copy.npz")]) == 0
    assert "copy.npz is the data this model was trained on" in capsys.readouterr().err


def test_weights_holding_nan_are_refused_by_predict_and_export(spiral_run, tmp_path, capsys):
    import shutil
    run = shutil.copytree(spiral_run, tmp_path / "run")
    w = rf.load_npz(run / "weights.npz")
    key = sorted(w)[0]
    w[key] = w[key] * np.nan
    rf.save_npz(run / "weights.npz", w)
    capsys.readouterr()
    assert main(["export", str(run), "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert f"weights.npz (the trained weights): array '{key}' holds {w[key].size} NaN or inf value(s)" in err
    assert not (tmp_path / "m.onnx").exists()
    assert main(["predict", str(run), "spiral"]) == 2
    assert "holds" in capsys.readouterr().err


def test_export_refuses_a_model_that_computes_nan(spiral_run, monkeypatch):
    from dlc.compiler.diagnostics import DLError
    from dlc.runtime.runs import load_run
    from dlc.runtime.tools import export

    model = load_run(spiral_run)
    onnx_model = export.build(model)
    x = export.real_inputs(model, 8)
    x[0, 0] = np.nan  # NaN in, NaN out on both sides: 'nan > tol' must not let it through
    with pytest.raises(DLError, match=r"the model computes NaN or inf for \d+ of \d+ input\(s\) of the run's own data; nothing written"):
        export.compare(model, onnx_model, x)
