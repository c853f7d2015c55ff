"""dlc compare and train --vary: same split and seed, one table, one plot; model-wide overrides."""

import csv
import json

import pytest

import dlc
from dlc.cli import main
from dlc.compiler.diagnostics import DLError
from dlc.compiler.overrides import apply_overrides
from dlc.runtime.tools.compare import compare, split_values, variants

from conftest import ROOT

EXP = ROOT / "specs/experiments"
SHORT = ["train.epochs=3"]


def test_compare_trains_each_spec_and_writes_table_and_plot(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", str(EXP / "init_zeros.dl"), str(EXP / "init_he.dl"), "-o", str(out), "-q",
                 "--set", "train.epochs=5"])
    assert code == 0
    text = capsys.readouterr().out
    assert "init_zeros" in text and "init_he" in text and "gap pts" in text and "macro F1%" in text
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [r["run"] for r in rows] == ["init_zeros", "init_he"]
    zeros, he = (float(r["val_acc"]) for r in rows)
    assert zeros < 0.2 < 0.8 < he  # zero init stays at chance; he init learns
    assert (out / "compare.png").stat().st_size > 10_000
    for r in rows:  # every run is a full run folder; the macro F1 is its test report's
        assert (out / r["run"] / "weights.npz").exists() and (out / r["run"] / "metrics.json").exists()
        report = json.loads((out / r["run"] / "metrics.json").read_text())["test_report"]
        assert float(r["test_f1"]) == report["macro"]["f1"]


def test_compare_uses_one_split_and_the_first_seed(tmp_path):
    a = dlc.compile_file(EXP / "init_he.dl", overrides=SHORT)
    b = dlc.compile_file(EXP / "init_he.dl", overrides=[*SHORT, "train.seed=7"])
    result = compare([a, b], labels=["a", "b"], out=tmp_path / "c", progress=False)
    assert any("seed 7 replaced by 0" in n for n in result.notes)
    ra, rb = result.rows
    assert ra["val_loss"] == rb["val_loss"] and ra["train_loss"] == rb["train_loss"]  # same spec, same seed: same run
    saved = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert saved["seed"] == 0 and len(saved["runs"]) == 2
    c = dlc.compile_file(EXP / "init_he.dl", overrides=[*SHORT, "train.validation=0.3"])
    specs = [a, c]
    result = compare(specs, labels=["a", "c"], out=tmp_path / "d", progress=False)
    assert any("validation=0.3 ignored" in n for n in result.notes)
    assert specs[1] is c  # the caller's list is left as it was


def test_compare_rejects_different_data(tmp_path):
    a = dlc.compile_file(EXP / "init_he.dl", overrides=SHORT)
    b = dlc.compile_file(ROOT / "specs/spiral.dl", overrides=SHORT)
    with pytest.raises(DLError, match="different data"):
        compare([a, b], out=tmp_path / "x", progress=False)
    with pytest.raises(DLError, match="at least two"):
        compare([a], out=tmp_path / "y", progress=False)


def test_diverged_run_is_a_row_not_a_crash(tmp_path):
    plain = dlc.compile_file(EXP / "high_lr_plain.dl", overrides=SHORT)
    bn = dlc.compile_file(EXP / "high_lr_batchnorm.dl", overrides=SHORT)
    result = compare([plain, bn], out=tmp_path / "bn", progress=False)
    assert [r["status"] for r in result.rows] == ["diverged", "ok"]
    assert "diverged" in result.render()
    # diverging later: the epochs before it are kept and drawn
    late = ["optimizer.lr=0.1", "train.epochs=8"]
    plain = dlc.compile_file(EXP / "high_lr_plain.dl", overrides=late)
    bn = dlc.compile_file(EXP / "high_lr_batchnorm.dl", overrides=late)
    result = compare([plain, bn], out=tmp_path / "late", progress=False)
    assert result.rows[0]["status"] == "diverged" and result.rows[0]["epochs"] >= 1
    assert len(result.histories["high_lr_plain"]) == result.rows[0]["epochs"]


def test_train_vary_every_combination(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["train", str(ROOT / "specs/spiral.dl"), "--vary", "model.activation=tanh,relu",
                 "--vary", "optimizer.lr=0.01,0.003", "--set", "train.epochs=2", "-o", str(out), "-q"]) == 0
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [r["run"] for r in rows] == ["activation=tanh,lr=0.01", "activation=tanh,lr=0.003",
                                        "activation=relu,lr=0.01", "activation=relu,lr=0.003"]
    assert "relu" in (out / "activation-relu_lr-0.01" / "spec.dl").read_text()


def test_vary_errors(capsys):
    assert main(["train", str(ROOT / "specs/spiral.dl"), "--vary", "model.activation"]) == 2
    assert "expected KEY=v1,v2" in capsys.readouterr().err
    assert main(["train", str(ROOT / "specs/spiral.dl"), "--vary", "model.activation=relu,nope"]) == 2
    assert "'nope' is not an activation" in capsys.readouterr().err
    assert main(["train", str(ROOT / "specs/spiral.dl"), "--vary", "model.activation=tanh,relu", "--resume"]) == 2


def test_split_values_and_variants():
    assert split_values("a, b,choice(1, 2)") == ["a", "b", "choice(1, 2)"]
    assert variants(["x.y=1,2"]) == [("y=1", ["x.y=1"]), ("y=2", ["x.y=2"])]


DIGITS = (ROOT / "specs/digits_mlp.dl").read_text()


def test_model_activation_keeps_the_output_layer():
    text = apply_overrides(DIGITS, "d.dl", ["model.activation=tanh"])
    spec = dlc.compile(text)
    acts = [n.op for n in spec.graph.nodes if n.op in ("tanh", "relu", "softmax")]
    assert acts == ["tanh", "tanh", "softmax"]


def test_model_init_replaces_or_inserts_the_default():
    spec = dlc.compile(apply_overrides(DIGITS, "d.dl", ["model.init=xavier_normal"]))
    assert {p.init.name for p in spec.graph.params() if p.role == "weight"} == {"xavier_normal"}
    spiral = (ROOT / "specs/spiral.dl").read_text()
    text = apply_overrides(spiral, "s.dl", ["model.init=zeros"])
    assert "    init zeros\n" in text
    assert {p.init.name for p in dlc.compile(text, lint=False).graph.params() if p.role == "weight"} == {"zeros"}


def test_model_dropout_changes_hidden_rates_only():
    spec = dlc.compile(apply_overrides(DIGITS, "d.dl", ["model.dropout=0.1"]))
    rates = [n.attrs["p"] for n in spec.graph.nodes if n.op == "dropout"]
    assert rates == [0.2, 0.1, 0.1]  # the input dropout (first) is kept


def test_model_override_errors():
    spiral = (ROOT / "specs/spiral.dl").read_text()
    with pytest.raises(DLError, match="no dropout to vary"):
        apply_overrides(spiral, "s.dl", ["model.dropout=0.5"])
    with pytest.raises(DLError, match="unknown model key 'width'"):
        apply_overrides(spiral, "s.dl", ["model.width=3"])
    with pytest.raises(DLError, match="no hidden activation to replace"):
        apply_overrides("model m {\n    input 4\n    dense 3 softmax\n}\n", "m.dl", ["model.activation=tanh"])
    with pytest.raises(DLError, match="the model has no input line"):
        apply_overrides("model m {\n    dense 3 softmax\n}\n", "m.dl", ["model.init=zeros"])
    with pytest.raises(DLError, match="the spec has no model block"):
        apply_overrides("data iris\n", "m.dl", ["model.init=zeros"])


@pytest.mark.slow
@pytest.mark.parametrize("a, b, effect", [
    ("deep_sigmoid", "deep_relu", "accuracy"),
    ("init_zeros", "init_he", "accuracy"),
    ("high_lr_plain", "high_lr_batchnorm", "diverges"),
    ("dropout_none", "dropout_half", "gap"),
])
def test_experiment_pairs_show_their_effect(tmp_path, a, b, effect):
    specs = [dlc.compile_file(EXP / f"{name}.dl") for name in (a, b)]
    ra, rb = compare(specs, out=tmp_path / "c", progress=False).rows
    if effect == "accuracy":
        assert ra["test_acc"] < 0.2 and rb["test_acc"] > 0.9
    elif effect == "diverges":
        assert ra["status"] == "diverged" and rb["test_acc"] > 0.9
    else:
        assert ra["gap"] > 0.1 and rb["gap"] < ra["gap"] / 2 and rb["val_loss"] < ra["val_loss"] / 2


def test_python_api_has_the_cli_verbs(tmp_path):
    run = dlc.train(ROOT / "specs/spiral.dl", out=tmp_path / "run")
    assert run.metrics["train"]["accuracy"] > 0.9
    report = dlc.export(run, tmp_path / "spiral.onnx")
    assert report.max_abs_diff < 1e-4 and (tmp_path / "spiral.onnx").exists()
    assert dlc.evaluate(run)["splits"]["train"]["n"] == 300
    assert dlc.predict(tmp_path / "spiral.onnx", "spiral")["n"] == 300
    assert dlc.diagnose(ROOT / "specs/iris_search.dl", plot=False).checks
    with pytest.raises(AttributeError):
        dlc.nonexistent_verb


def test_ctrl_c_stops_the_comparison_and_keeps_what_ran(tmp_path, monkeypatch, capsys):
    from dlc.runtime.tools import compare as compare_module
    from dlc.runtime.trainer import train as real_train

    def train_then_interrupt(spec, **kw):
        r = real_train(spec, **kw)
        r.interrupted = True  # as the trainer reports a Ctrl-C during the first run
        return r

    monkeypatch.setattr(compare_module, "train", train_then_interrupt)
    out = tmp_path / "ctrl_c"
    code = main(["compare", str(EXP / "init_zeros.dl"), str(EXP / "init_he.dl"), "-o", str(out), "-q",
                 "--set", "train.epochs=2"])
    assert code == 130
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [r["status"] for r in rows] == ["interrupted"]


def test_vary_a_run_folder_uses_its_spec(tmp_path):
    run = dlc.train(dlc.compile_file(ROOT / "specs/spiral.dl", overrides=["train.epochs=2"]), out=tmp_path / "r")
    out = tmp_path / "v"
    assert main(["train", str(run.run_dir), "--vary", "optimizer.lr=0.1,0.01", "-o", str(out), "-q"]) == 0
    assert "epochs=2" in (out / "lr-0.1" / "spec.dl").read_text()


def test_an_mlp_and_a_cnn_compare_on_one_file_shaped_for_each(tmp_path, capsys):
    """Same source and split, different input shaping (reshape=) is the same experiment (issue 26, item 6)."""
    import numpy as np
    from sklearn.datasets import load_digits
    d = load_digits()
    np.savez(tmp_path / "d.npz", x=d.data.astype(np.float32), y=d.target)
    (tmp_path / "mlp.dl").write_text('model mlp {\n input 64\n dense 32 relu\n dense 10 softmax\n}\n'
                                     'data "d.npz" test=0.2 scale=1/16\ntrain epochs=2 seed=0\n')
    (tmp_path / "cnn.dl").write_text('model cnn {\n input 1x8x8\n conv 4 kernel=3 pad=same relu\n flatten\n'
                                     ' dense 10 softmax\n}\ndata "d.npz" test=0.2 scale=1/16 reshape=1x8x8\n'
                                     'train epochs=2 seed=0\n')
    out = tmp_path / "cmp"
    assert main(["compare", str(tmp_path / "mlp.dl"), str(tmp_path / "cnn.dl"), "-o", str(out), "-q"]) == 0
    assert "the same samples and split, shaped by its own data line (reshape=" in capsys.readouterr().out
    samples = [json.loads((out / r / "metrics.json").read_text())["samples"] for r in ("mlp", "cnn")]
    assert samples[0] == samples[1]  # the same split
    (tmp_path / "other.dl").write_text((tmp_path / "cnn.dl").read_text().replace("scale=1/16", "standardize"))
    with pytest.raises(DLError, match="a comparison needs the same data line"):
        compare([dlc.compile_file(tmp_path / "mlp.dl"), dlc.compile_file(tmp_path / "other.dl")], out=tmp_path / "x")
