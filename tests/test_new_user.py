"""What a new user hit (issue 20): each a test that failed before its fix."""

import subprocess
import sys

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
    from dlc.runtime.tools.search import search
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


def test_api_predict_takes_an_array_of_samples(digits_run):
    from sklearn.datasets import load_digits
    x = load_digits().data[:7]
    r = dlc.predict(digits_run, x)
    assert r["output"].shape == (7, 10) and len(r["class_name"]) == 7
    assert np.array_equal(r["class_index"], dlc.predict(digits_run, x.astype("float64").tolist())["class_index"])
    with pytest.raises(dlc.DLError, match=r"an array of samples is numeric with one row per sample; got <U1"):
        dlc.predict(digits_run, np.array([["a"]]))


def test_every_cli_option_has_its_api_parameter():
    """The CLI is a thin layer over dlc.api: an option the API lacks would make the two drift."""
    import inspect

    from dlc import api
    from dlc.cli_parser import build_parser
    renamed = {"set": "overrides", "output": "out", "specs": "specs", "spec": "spec", "run": "run",
               "model": "model_or_run", "quiet": "progress"}
    cli_only = {"func", "debug", "command", "json", "strict", "show", "vary", "resume_from", "help"}
    verbs = {"check": api.check, "train": api.train, "eval": api.evaluate, "export": api.export,
             "predict": api.predict, "diagnose": api.diagnose, "compare": api.compare, "search": api.search,
             "fmt": api.fmt}
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name, parser in sub.choices.items():
        if name == "lsp":  # a server for editors, not a verb of the API
            continue
        params = set(inspect.signature(verbs[name]).parameters)
        for action in parser._actions:
            dest = renamed.get(action.dest, action.dest)
            if action.dest in cli_only or dest in params:
                continue
            if name == "export" and dest == "out":
                dest = "path"
            if name == "check" and dest == "specs":
                dest = "spec"
            assert dest in params, f"dlc {name} --{action.dest} has no parameter in dlc.api.{verbs[name].__name__}"


def test_api_search_takes_the_samplers_and_shared_studies(tmp_path):
    spec = tmp_path / "s.dl"
    spec.write_text("model m {\n input 2\n dense 3 softmax\n}\ndata spiral n=90\n"
                    "optimizer adam lr=loguniform(1e-3, 1e-1)\ntrain epochs=1 batch=30 seed=0 validation=0.3\n")
    r = dlc.search(spec, 3, jobs=1, sampler="tpe", prune=True, storage=f"sqlite:///{tmp_path / 'st.db'}",
                   study="mine", out=tmp_path / "s")
    assert len(r.trials) == 3 and r.study == "mine" and r.storage.endswith("st.db")


# ---- messages ------------------------------------------------------------------------------

def test_predict_on_a_spec_says_it_is_a_spec(tmp_path, capsys):
    spec = _write(tmp_path, "model m {\n input 2\n dense 3 softmax\n}\ndata spiral\n")
    assert main(["predict", str(spec), "spiral"]) == 2
    err = capsys.readouterr().err
    assert f"error: {spec} is a spec, not a run folder: it has no trained weights" in err
    assert f"hint: train it first (dlc train {spec} -o runs/NAME)" in err


def test_an_unknown_csv_label_column_gets_a_did_you_mean_not_every_column(tmp_path, capsys):
    names = [f"pixel{i}" for i in range(784)] + ["digit"]
    (tmp_path / "wide.csv").write_text(",".join(names) + "\n" + ",".join(["0"] * 784) + ",1\n")
    spec = _write(tmp_path, "model m {\n input 784\n dense 2 softmax\n}\ndata \"wide.csv\" label=digits\n")
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "wide.csv has no column 'digits'; did you mean 'digit'?" in err and len(err) < 600


@pytest.mark.parametrize("text, message, hint", [
    ("block basic(c, stride) {\n dense c relu\n}\nmodel m {\n input 4\n basic 16\n dense 3 softmax\n}\ndata iris\n",
     "error: block basic needs stride", "hint: block basic(c, stride) has no default for stride: write e.g. "
                                        "basic 16 stride=..."),
    ("model m {\n input 1x8x8\n residual {\n flatten\n dense 4\n }\n dense 10 softmax\n}\ndata digits\n",
     "error: the residual body changes the shape from 1x8x8 to 4, so x + body(x) is undefined",
     "hint: no projection shortcut maps 1x8x8 to 4: keep the body's output of the input's kind (1x8x8), "
     "and flatten after the residual"),
])
def test_hints_name_a_fix_that_works(tmp_path, capsys, text, message, hint):
    assert main(["check", str(_write(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    assert message in err and hint in err


@pytest.mark.parametrize("text, count", [
    ("model m {\n input 1x8x8\n conv 4 kernel=3\n flaten\n dense 10 softmax\n}\ndata digits\n", 1),
    ("model m {\n input 4\n parallel concat {\n branch { dense 2 } branch { dense 3 }\n }\n dense 3 softmax\n}\n"
     "data iris\n", 1),
])
def test_one_mistake_is_one_error(tmp_path, capsys, text, count):
    assert main(["check", str(_write(tmp_path, text))]) == 2
    assert capsys.readouterr().err.count("error:") == count


def test_an_error_on_a_line_set_rewrote_names_set_and_what_the_file_says(tmp_path, capsys):
    spec = _write(tmp_path, "model m {\n input 2\n dense 3 softmax\n}\ndata spiral\noptimizer adam lr=0.01\n")
    assert main(["check", str(spec), "--set", "optimizer.lr=-1"]) == 2
    err = capsys.readouterr().err
    assert "s.dl:6:19: error: lr=-1 is out of range: lr must be > 0" in err
    assert "note: this line is as --set optimizer.lr=-1 made it; the file says: optimizer adam lr=0.01" in err


def test_given_data_takes_flat_samples_for_any_image_model_and_names_the_shape(tmp_path, capsys):
    from sklearn.datasets import load_digits
    spec = _write(tmp_path, "model m {\n input 1x8x8\n conv 4 kernel=3 relu\n flatten\n dense 10 softmax\n}\n"
                            "data digits\ntrain epochs=1 seed=0\n")
    run = tmp_path / "run"
    assert main(["train", str(spec), "-q", "-o", str(run)]) == 0
    d = load_digits()
    np.savez(tmp_path / "flat.npz", x=d.data[:20].astype("float32"), y=d.target[:20])
    assert main(["predict", str(run), str(tmp_path / "flat.npz")]) == 0
    assert dlc.predict(run, d.data[:3])["output"].shape == (3, 10)
    np.savez(tmp_path / "odd.npz", x=np.zeros((5, 3), "float32"))
    assert main(["predict", str(run), str(tmp_path / "odd.npz")]) == 2
    err = capsys.readouterr().err
    assert "odd.npz samples are 3 but the model's input is 1x8x8" in err
    assert "hint: give samples of 1x8x8 or flat ones of 64 values" in err and "data line" not in err


def test_a_headerless_csv_says_which_column_became_the_label(tmp_path, capsys):
    rows = "\n".join(",".join(["0.5"] * 64) for _ in range(20)) + "\n"
    (tmp_path / "f.csv").write_text(rows)
    spec = _write(tmp_path, 'model m {\n input 64\n dense 2 softmax\n}\ndata "f.csv"\n')
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "f.csv samples are 63 but the model's input is 64" in err
    assert "hint: the CSV's last column was read as the label (the default), leaving 63 features" in err


def test_set_reaches_block_arguments_and_lines_of_a_block_used_once(tmp_path, capsys):
    from conftest import ROOT
    spec = dlc.compile_file(ROOT / "specs/resnet_digits.dl", overrides=["basic4.c=32", "basic3.c=32"])
    assert "basic 32 stride=2 shortcut=project" in spec.source.text  # set where it is written: the same value
    wide = dlc.compile_file(ROOT / "specs/resnet_digits.dl", overrides=["basic3.c=48", "basic4.c=48"])
    assert wide.graph.node("basic4.residual1.conv2").out_shape == (48, 4, 4)
    assert "basic 48 stride=2 shortcut=project" in wide.source.text and "    basic 48\n" in wide.source.text
    assert main(["check", str(ROOT / "specs/resnet_digits.dl"), "--set", "basic3.width=1"]) == 2
    err = capsys.readouterr().err
    assert "error: --set basic3.width=1: block basic has no parameter 'width'" in err
    assert "hint: its parameters: c, stride, shortcut" in err
    once = _write(tmp_path, "block b(c) {\n dense c relu\n}\nmodel m {\n input 4\n b 8\n dense 3 softmax\n}\n"
                            "data iris\n")
    s = dlc.compile_file(once, overrides=["b1.dense1.dropout=0.3", "b1.c=16"])
    assert s.graph.node("b1.dense1").attrs["units"] == 16
    assert [n.attrs["p"] for n in s.graph.nodes if n.op == "dropout"] == [0.3]


def test_a_value_may_be_written_as_a_ratio(tmp_path, capsys):
    spec = dlc.compile("model m {\n input 64\n dense 10 rrelu lower=1/8 upper=1/3\n dense 10 softmax\n}\n"
                       "data digits scale=1/255\n")
    assert spec["data"]["scale"] == 1 / 255
    assert spec.graph.node("rrelu1").attrs["lower"] == 1 / 8
    bad = _write(tmp_path, "model m {\n input 64\n dense 10 softmax\n}\ndata digits scale=1/0\n")
    assert main(["check", str(bad)]) == 2
    assert "s.dl:5:19: error: scale=1/0 divides by zero" in capsys.readouterr().err


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


def test_predict_warns_for_a_copy_of_the_training_file(tmp_path, capsys):
    """The same bytes under another name are the same data (the run's record holds their sha256)."""
    import shutil
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(60, 4)).astype("float32"), y=np.arange(60) % 3)
    spec = _write(tmp_path, 'model m {\n input 4\n dense 3 softmax\n}\ndata "d.npz"\ntrain epochs=1\n')
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run")]) == 0
    shutil.copy(tmp_path / "d.npz", tmp_path / "copy.npz")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "copy.npz")]) == 0
    assert "copy.npz is the data this model was trained on" in capsys.readouterr().err
