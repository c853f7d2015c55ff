"""Data must be right or refused: every malformed file, label or target is a located error (exit 2)."""

import json
import os
import struct

import numpy as np
import pytest

from dlc.cli import main

SPEC = """model m {{
  input {input}
  {body}
  dense {out} softmax
}}
data "{data}"{extra}
train epochs=1 seed=0
"""


def _idx(arr, kind=0x08):
    return bytes([0, 0, kind, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(">u1").tobytes()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    np.savez(d / "ok.npz", x=x, y=y)
    np.savez(d / "nan_labels.npz", x=x, y=np.where(y == 1, np.nan, 0.0))
    np.savez(d / "fraction_labels.npz", x=x, y=np.where(y == 1, 0.5, 0.0))
    np.savez(d / "negative_labels.npz", x=x, y=y - 1)
    np.savez(d / "big_labels.npz", x=x, y=y * 7)
    np.savez(d / "onehot.npz", x=x, y=np.eye(2)[y])
    np.savez(d / "not_onehot.npz", x=x, y=np.eye(2)[y] * 0.5)
    np.savez(d / "x_only.npz", x=x)
    np.savez(d / "nothing.npz")
    np.savez(d / "zero_d.npz", x=np.array(3.0), y=np.array(1))
    np.savez(d / "nan_inputs.npz", x=np.where(x > 2, np.nan, x), y=y)
    np.savez(d / "regress_nan.npz", x=x, y=np.where(y == 1, np.nan, 0.5))
    np.save(d / "single.npy", x)
    with open(d / "pickled.npz", "wb") as f:
        np.savez(f, x=x, y=np.array([{"a": 1}] * 120, dtype=object))
    (d / "empty.npz").write_bytes(b"")
    (d / "truncated.npz").write_bytes((d / "ok.npz").read_bytes()[:500])
    (d / "not_a_zip.npz").write_bytes(b"hello, world")
    (d / "ragged.csv").write_text("a,b,c,d,label\n1,2,3,4,0\n1,2,3\n")
    (d / "word.csv").write_text("a,b,c,d,label\n1,2,3,4,0\n1,2,oops,4,1\n")
    (d / "latin1.csv").write_bytes(b"a,b,c,d,label\n1,2,3,4,\xe9\n")
    (d / "empty_label.csv").write_text("a,b,c,d,label\n1,2,3,4,0\n1,2,3,4,\n")
    (d / "features.csv").write_text("a,b,c,d\n" + "".join(f"{r[0]},{r[1]},{r[2]},{r[3]}\n" for r in x[:5]))
    imgs = rng.integers(0, 255, (60, 8, 8))
    (d / "train-images-idx3-ubyte").write_bytes(_idx(imgs))
    (d / "train-labels-idx1-ubyte").write_bytes(_idx(rng.integers(0, 10, 60)))
    (d / "truncated-idx").write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    (d / "zero-dims-idx").write_bytes(bytes([0, 0, 8, 0]))
    (d / "fake.gz").write_bytes(b"hello")
    (d / "a_folder").mkdir()
    np.savez(d / "flat.npz", x=imgs.reshape(60, 64).astype(np.float32), y=rng.integers(0, 10, 60))
    return d


VECTOR = dict(input=4, body="dense 8 relu", out=2, extra="")
IMAGE = dict(input="1x8x8", body="flatten", out=10, extra=' labels="train-labels-idx1-ubyte"')

REFUSED = [
    ("nan_labels.npz", VECTOR, "nan_labels.npz: sample 0 has the label nan; 54 label(s) are NaN or inf"),
    ("fraction_labels.npz", VECTOR, "fraction_labels.npz: sample 0 has the label 0.5; class labels are whole numbers"),
    ("negative_labels.npz", VECTOR, "negative_labels.npz: sample 1 has the label -1; class indices start at 0"),
    ("big_labels.npz", VECTOR, "big_labels.npz has class label(s) 7 (first at sample 0) but the model outputs 2 "
                               "classes (labels 0 to 1)"),
    ("not_onehot.npz", VECTOR, "not_onehot.npz: labels are a 120x2 array but not one-hot: sample 0 holds"),
    ("x_only.npz", VECTOR, "x_only.npz must hold arrays 'x' and 'y'; it holds x"),
    ("nothing.npz", VECTOR, "nothing.npz must hold arrays 'x' and 'y'; it holds no arrays"),
    ("zero_d.npz", VECTOR, "zero_d.npz: 'x' is a single number (0-d array); it must hold one row per sample"),
    ("pickled.npz", VECTOR, "pickled.npz holds pickled (object) arrays: dlc never loads pickles"),
    ("empty.npz", VECTOR, "empty.npz is not a readable .npz file: BadZipFile"),
    ("truncated.npz", VECTOR, "truncated.npz is not a readable .npz file: BadZipFile"),
    ("not_a_zip.npz", VECTOR, "not_a_zip.npz is not a readable .npz file: BadZipFile"),
    ("single.npy", VECTOR, "single.npy is a single .npy array; dlc reads inputs and labels from one .npz"),
    ("ragged.csv", VECTOR, "ragged.csv: row 3 has 3 column(s), the header 5"),
    ("word.csv", VECTOR, "word.csv: row 3, column 'c': 'oops' is not a number"),
    ("latin1.csv", VECTOR, "latin1.csv:2: not UTF-8 text (byte 0xe9 at offset 22); save the CSV as UTF-8"),
    ("missing.npz", VECTOR, "no such data file: "),
    ("a_folder", VECTOR, "a_folder is a folder; dlc reads a folder as image files (one sub-folder per class), but "
                         "the model's input is 4, not an image: name a data file (.npz, .csv or IDX)"),
    ("truncated-idx", IMAGE, "truncated-idx: the IDX header is truncated (3 dimensions need 16 bytes)"),
    ("zero-dims-idx", IMAGE, "zero-dims-idx: the IDX header has 0 dimensions"),
    ("fake.gz", IMAGE, "fake.gz cannot be read: BadGzipFile: Not a gzipped file"),
    ("flat.npz", dict(IMAGE, extra=""), "flat.npz samples are 64 but the model's input is 1x8x8"),
]


@pytest.mark.parametrize("command", ["check", "train"])
@pytest.mark.parametrize("name, shape, message", REFUSED, ids=[r[0] for r in REFUSED])
def test_bad_data_is_a_located_refusal(files, tmp_path, capsys, command, name, shape, message):
    spec = tmp_path / "s.dl"
    spec.write_text(SPEC.format(data=files / name, **shape))
    args = [command, str(spec)] + (["-q", "-o", str(tmp_path / "run")] if command == "train" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{spec}:6:6: error: " in err and message in err, err
    assert "internal error" not in err


def test_nan_inputs_and_targets_name_the_data(files, tmp_path, capsys):
    spec = tmp_path / "s.dl"
    spec.write_text(SPEC.format(data=files / "nan_inputs.npz", **VECTOR))
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "a")]) == 2
    assert "nan_inputs.npz: inputs hold NaN or inf (first at sample 19)" in capsys.readouterr().err
    spec.write_text(SPEC.format(data=files / "regress_nan.npz", **VECTOR).replace("dense 2 softmax", "dense 1")
                    .replace("train ", "loss mse\ntrain "))
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "regress_nan.npz: the targets hold NaN or inf (first at sample 0)" in err
    assert "learning rate" not in err


def test_missing_labels_file_is_named(files, tmp_path, capsys):
    spec = tmp_path / "s.dl"
    spec.write_text(SPEC.format(data=files / "train-images-idx3-ubyte", **dict(IMAGE, extra=' labels="nope"')))
    assert main(["check", str(spec)]) == 2
    assert f"no such labels file: {tmp_path / 'nope'}" in capsys.readouterr().err  # relative to the spec


def test_one_hot_labels_are_accepted(files, tmp_path):
    spec = tmp_path / "s.dl"
    spec.write_text(SPEC.format(data=files / "onehot.npz", **VECTOR))
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "a")]) == 0
    spec.write_text(SPEC.format(data=files / "ok.npz", **VECTOR))
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "b")]) == 0
    a, b = (np.load(tmp_path / r / "weights.npz") for r in ("a", "b"))
    assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_the_documented_idx_form_and_relative_paths(files, tmp_path, capsys):
    spec = files / "idx.dl"  # data paths are relative to the spec's folder
    spec.write_text(SPEC.format(data="train-images-idx3-ubyte", **IMAGE))
    os.chdir(tmp_path)
    assert main(["check", str(spec)]) == 0
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run")]) == 0


def test_flat_data_feeds_a_conv_input_with_reshape(files, tmp_path):
    spec = tmp_path / "s.dl"
    spec.write_text(SPEC.format(data=files / "flat.npz", **dict(IMAGE, extra=" reshape=1x8x8")))
    assert main(["check", str(spec)]) == 0
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run")]) == 0


def test_reshape_that_does_not_fit_is_refused(files, tmp_path, capsys):
    spec = tmp_path / "s.dl"
    spec.write_text(SPEC.format(data=files / "flat.npz", **dict(IMAGE, extra=" reshape=1x7x7")))
    assert main(["check", str(spec)]) == 2
    assert "reshape=1x7x7 needs 49 values per sample; " in capsys.readouterr().err


def test_a_run_folder_is_self_contained(files, tmp_path, monkeypatch, capsys):
    d = tmp_path / "project"
    d.mkdir()
    data = d / "d.npz"
    data.write_bytes((files / "ok.npz").read_bytes())
    (d / "s.dl").write_text(SPEC.format(data="d.npz", **VECTOR).replace("epochs=1", "epochs=3"))
    monkeypatch.chdir(d)
    assert main(["train", "s.dl", "-q", "-o", str(tmp_path / "run"), "--set", "train.epochs=2"]) == 0
    record = json.loads((tmp_path / "run" / "data.json").read_text())
    assert record["files"][str(data)]["path"] == str(data.resolve())
    assert f'data "{data}"' in (tmp_path / "run" / "spec.dl").read_text()  # the run's spec trains as written
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["train", str(tmp_path / "run" / "spec.dl"), "-q", "-o", "again"]) == 0
    assert main(["eval", str(tmp_path / "run")]) == 0
    assert main(["export", str(tmp_path / "run"), "-o", "m.onnx"]) == 0
    assert main(["train", str(tmp_path / "run"), "--resume", "--set", "train.epochs=3", "-q"]) == 0
    capsys.readouterr()
    with open(data, "ab") as f:
        f.write(b"\0")  # the file changes after training
    assert main(["eval", str(tmp_path / "run")]) == 2
    assert f"{data.resolve()} changed since this run was trained (sha256 " in capsys.readouterr().err


@pytest.fixture(scope="module")
def run(files, tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    (d / "s.dl").write_text(SPEC.format(data=files / "ok.npz", **VECTOR))
    assert main(["train", str(d / "s.dl"), "-q", "-o", str(d / "run")]) == 0
    assert main(["export", str(d / "run"), "-o", str(d / "m.onnx")]) == 0
    return d


@pytest.mark.parametrize("model", ["run", "m.onnx"])
def test_predict_on_data_without_labels(files, run, capsys, model):
    capsys.readouterr()
    assert main(["predict", str(run / model), str(files / "x_only.npz"), "--show", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "row\tclass\tprobability"
    assert out[-1] == f"120 predictions ({'onnxruntime' if model == 'm.onnx' else 'numpy'})"
    assert main(["predict", str(run / model), str(files / "features.csv")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("5 predictions")


def test_predict_reports_mae_and_mse_for_regression(tmp_path, capsys):
    spec = tmp_path / "sine.dl"
    spec.write_text("model s {\n input 1\n dense 8 tanh\n dense 1\n}\ndata sine\nloss mse\ntrain epochs=2\n")
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), "sine", "--show", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "row\toutput0"
    assert out[-1].startswith("400 predictions (numpy), against the data's targets (all 400 samples of sine): MAE ")
    assert ", MSE " in out[-1]


def test_a_data_shape_error_in_predict_points_at_the_given_file(files, run, capsys):
    capsys.readouterr()
    assert main(["predict", str(run / "run"), str(files / "flat.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{files / 'flat.npz'}: error: flat.npz samples are 64 but the model's input is 4")


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"garbage bytes", "is not a loadable ONNX model"),
    ("truncated", "is not a loadable ONNX model"),
    ("no spec", "was not exported by dlc (no spec in its metadata)"),
    ("bad classes", "metadata is malformed: 'classes' is not a JSON list of names"),
    ("bad spec", "metadata does not compile"),
    ("renamed input", "a dlc model has one input 'input' and an output 'output'"),
])
def test_a_bad_onnx_file_is_refused_by_name(files, run, tmp_path, capsys, content, message):
    import onnx
    path = tmp_path / "bad.onnx"
    good = (run / "m.onnx").read_bytes()
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "truncated":
        path.write_bytes(good[:len(good) // 2])
    else:
        m = onnx.load_from_string(good)
        meta = {p.key: p for p in m.metadata_props}
        if content == "no spec":
            m.metadata_props.remove(meta["spec"])
        elif content == "bad classes":
            meta["classes"].value = "{not json"
        elif content == "bad spec":
            meta["spec"].value = ("model m {\n input 4\n repeat 1000 { repeat 1000 { repeat 1000 { dense 2 } } }\n"
                                  " dense 2 softmax\n}\n")  # would expand to 10^9 layers
        else:
            m.graph.input[0].name = "features"
            for n in m.graph.node:
                n.input[:] = ["features" if i == "input" else i for i in n.input]
        path.write_bytes(m.SerializeToString())
    capsys.readouterr()
    assert main(["predict", str(path), str(files / "ok.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: error: ") and message in err, err
    assert "internal error" not in err


def test_reshape_after_resize_of_a_built_in_image_set(tmp_path, capsys):
    spec = tmp_path / "s.dl"
    spec.write_text("model m {\n input 784\n dense 10 softmax\n}\ndata digits resize=28 reshape=784\ntrain epochs=1\n")
    assert main(["check", str(spec)]) == 0
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run")]) == 0
    spec.write_text("model m {\n input 64\n dense 10 softmax\n}\ndata digits reshape=1x8x8\n")
    assert main(["check", str(spec)]) == 2
    assert (f"{spec}:5:13: error: reshape=1x8x8 does not fit: digits samples are 64 (64 values) and the model's "
            "input is 64") in capsys.readouterr().err


# ---- check reaches train's verdict on data files (issue 26, item 1) ------------------------------------
CLASSIFIER_WITHOUT_SOFTMAX = """model m {
    input 64
    dense 16 relu
    dense 10
}
data "d.npz" test=0.2
train epochs=1 batch=64 seed=0
"""


@pytest.mark.parametrize("command", ["check", "train"])
def test_a_linear_classifier_on_class_labels_is_refused_alike_with_the_fix(tmp_path, capsys, command):
    from dlc.cli import main
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(60, 64)).astype(np.float32), y=rng.integers(0, 10, 60))
    spec = tmp_path / "s.dl"
    spec.write_text(CLASSIFIER_WITHOUT_SOFTMAX)
    args = ["check", "--strict", str(spec)] if command == "check" else ["train", str(spec), "-q", "-o",
                                                                         str(tmp_path / "r")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{spec}:6:6: error: d.npz holds class labels (10 classes) but the model ends in a 10-unit layer with " \
           "no activation and the spec has no loss line, so it would train as regression (mse)" in err
    assert "hint: end with dense 10 softmax" in err


@pytest.mark.parametrize("command", ["check", "train"])
def test_regression_targets_of_another_width_are_refused_alike(tmp_path, capsys, command):
    from dlc.cli import main
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(60, 64)).astype(np.float32), y=rng.normal(size=(60, 2)))
    spec = tmp_path / "s.dl"
    spec.write_text(CLASSIFIER_WITHOUT_SOFTMAX.replace("dense 10", "dense 3") + "loss mse\n")
    args = ["check", str(spec)] if command == "check" else ["train", str(spec), "-q", "-o", str(tmp_path / "r")]
    assert main(args) == 2
    assert "d.npz has 2 target column(s) but the model outputs 3" in capsys.readouterr().err


# ---- DL116: 8-bit inputs trained unscaled (issue 26, item 7) ------------------------------------------
@pytest.mark.parametrize("line, warned", [("", True), (" scale=1/255", False), (" standardize", False),
                                          ("  # dlc: ignore DL116", False)])
def test_8_bit_inputs_without_scaling_are_warned_of(tmp_path, capsys, line, warned):
    from dlc.cli import main
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "raw.npz", x=rng.integers(0, 256, (60, 64), dtype=np.uint8), y=np.arange(60) % 10)
    spec = tmp_path / "s.dl"
    data_line = 'data "raw.npz" test=0.2' + line
    spec.write_text(CLASSIFIER_WITHOUT_SOFTMAX.replace("dense 10\n", "dense 10 softmax\n")
                    .replace('data "d.npz" test=0.2', data_line))
    assert main(["check", "--strict", str(spec)]) == (1 if warned else 0)
    out = "".join(capsys.readouterr())
    assert (f"{spec}:6:6: warning: [DL116] raw.npz holds 8-bit values (0..255) and the data line does not scale "
            "them" in out) is warned
    if warned:
        assert "hint: add scale=1/255 to the data line" in out


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_eval_and_predict_judge_targets_as_training_does(tmp_path, capsys, command):
    """One check of regression targets (datasets.targets_refusal) for train, check, eval and predict."""
    from dlc.cli import main
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(60, 4)).astype(np.float32), y=rng.normal(size=(60, 2)))
    np.savez(tmp_path / "wide.npz", x=rng.normal(size=(9, 4)).astype(np.float32), y=rng.normal(size=(9, 3)))
    spec = tmp_path / "s.dl"
    spec.write_text('model m {\n    input 4\n    dense 2\n}\ndata "d.npz"\nloss mse\ntrain epochs=1\n')
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main([command, str(tmp_path / "run"), str(tmp_path / "wide.npz")]) == 2
    err = capsys.readouterr().err
    assert "wide.npz has 3 target column(s) but the model outputs 2" in err
    assert "hint: make the last dense layer 3 wide" in err
