"""What a new user hit (issue 20): each a test that failed before its fix."""

import numpy as np
import pytest

import dlc
from dlc.cli import main


def _write(tmp_path, text, name="s.dl"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.fixture
def npz(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(60, 2)).astype("float32"), y=np.arange(60) % 3)
    return tmp_path / "d.npz"


@pytest.mark.parametrize("key, value", [("n", "1000"), ("noise", "5.0"), ("classes", "3")])
def test_a_key_a_file_source_does_not_use_is_a_located_error(tmp_path, capsys, npz, key, value):
    spec = _write(tmp_path, 'model m {\n input 2\n dense 3 softmax\n}\ndata "d.npz"\n')
    assert main(["check", str(spec), "--set", f"data.{key}={value}"]) == 2
    err = capsys.readouterr().err
    assert f"s.dl:5:14: error: the file d.npz does not use {key}=" in err
    assert f"hint: {key}= is for the synthetic sets that take it (" in err


@pytest.mark.parametrize("data, key, message", [
    ("xor", "classes=3", "the built-in set xor does not use classes="),
    ("digits", "n=100", "the built-in set digits does not use n="),
    ("spiral", "label=y", "the built-in set spiral does not use label="),
    ('"d.npz"', "labels=\"l.idx\"", "the file d.npz does not use labels="),
])
def test_keys_are_checked_against_the_source(tmp_path, capsys, npz, data, key, message):
    out = "10" if data == "digits" else "2" if data == "xor" else "3"
    inp = "64" if data == "digits" else "2"
    spec = _write(tmp_path, f"model m {{\n input {inp}\n dense {out} softmax\n}}\ndata {data} {key}\n")
    assert main(["check", str(spec)]) == 2
    assert f"error: {message}" in capsys.readouterr().err


def test_a_range_in_a_positional_value_is_a_search_range(tmp_path, capsys):
    from dlc.runtime.search import search
    text = ("block b(c) {\n dense c relu\n}\nmodel m {\n input 2\n dense choice(4, 8) relu\n b choice(5, 6)\n"
            " dense 3 softmax\n}\ndata spiral n=90\ntrain epochs=1 batch=30 seed=0 validation=0.3\n")
    spec = dlc.compile(text, str(tmp_path / "s.dl"))
    assert [(k, r.text) for k, r in spec.ranges] == [("dense1.units", "choice(4, 8)"), ("b1.dense1.units",
                                                                                       "choice(5, 6)")]
    path = _write(tmp_path, text)
    assert main(["train", str(path), "-q", "-o", str(tmp_path / "run")]) == 2
    assert "error: dense1.units is a search range (choice(4, 8)); train needs one value" in capsys.readouterr().err
    result = search(spec, 4, fine=0, jobs=1, out=tmp_path / "s", progress=False)
    widths = {(dlc.compile(t.text).graph.node("dense1").attrs["units"],
               dlc.compile(t.text).graph.node("b1.dense1").attrs["units"]) for t in result.trials}
    assert all(t.status == "ok" for t in result.trials) and widths <= {(4, 5), (4, 6), (8, 5), (8, 6)}
    assert len(widths) > 1


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


def test_a_training_split_of_one_class_is_refused(tmp_path, capsys):
    np.savez(tmp_path / "one.npz", x=np.random.default_rng(0).normal(size=(40, 2)).astype("float32"),
             y=np.zeros(40, np.int64))
    spec = _write(tmp_path, 'model m {\n input 2\n dense 2 softmax\n}\ndata "one.npz"\ntrain epochs=1\n')
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "s.dl:5:6: error: the training split holds one class only ('0', 28 samples): a classifier learns " \
           "nothing from it and would score 100 %" in err
