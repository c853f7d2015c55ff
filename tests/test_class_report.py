"""dlc eval shows where a model fails: the per-class report equals scikit-learn's on the same predictions."""

import json

import numpy as np
import pytest

import dlc
from dlc.cli import main


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    spec = root / "s.dl"
    spec.write_text("model m {\n input 64\n dense 16 relu\n dense 10 softmax\n}\ndata digits standardize\n"
                    "train epochs=3 seed=0\n")
    assert main(["train", str(spec), "-q", "-o", str(root / "run")]) == 0
    return root / "run"


def test_the_per_class_report_equals_scikit_learns(digits_run):
    from sklearn.metrics import classification_report, confusion_matrix, top_k_accuracy_score

    from dlc.runtime.data.splits import prepare
    from dlc.runtime.runs import load_run
    model = load_run(digits_run)
    splits = prepare(model.spec)
    proba = model.predict_proba(splits.preprocess.invert(splits.x_test))
    pred = proba.argmax(axis=1)
    theirs = classification_report(splits.y_test, pred, output_dict=True, zero_division=0)
    ours = dlc.evaluate(digits_run, split="test", plot=False)["splits"]["test"]["report"]
    for i, row in enumerate(ours["per_class"]):
        assert row["class"] == str(i)
        for key, their_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert row[key] == pytest.approx(theirs[str(i)][their_key], abs=1e-12)
        assert row["support"] == theirs[str(i)]["support"]
    for average in ("macro", "weighted"):
        assert ours[average]["f1"] == pytest.approx(theirs[f"{average} avg"]["f1-score"], abs=1e-12)
    assert ours["confusion"] == confusion_matrix(splits.y_test, pred, labels=range(10)).tolist()
    assert ours["top_k"] == {"k": 5, "accuracy": pytest.approx(top_k_accuracy_score(splits.y_test, proba, k=5))}
    assert ours["accuracy"] == pytest.approx(theirs["accuracy"], abs=1e-12)


def test_eval_prints_the_table_writes_confusion_png_and_json(digits_run, capsys):
    assert main(["eval", str(digits_run), "--split", "test", "--top-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "precision  recall      f1  support" in out and "macro avg" in out and "weighted avg" in out
    assert "top-3 accuracy " in out and f"confusion matrix: {digits_run / 'confusion.png'}" in out
    assert (digits_run / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["eval", str(digits_run), "--split", "test", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["splits"]["test"]["report"]
    assert len(report["per_class"]) == 10 and len(report["confusion"]) == 10 and report["top_k"]["k"] == 5


def test_top_k_must_be_positive(digits_run, capsys):
    assert main(["eval", str(digits_run), "--top-k", "0"]) == 2
    assert "dlc: error: --top-k 0: k is at least 1" in capsys.readouterr().err


def test_regression_reports_mae_mse_and_r2(tmp_path, capsys):
    spec = tmp_path / "s.dl"
    spec.write_text("model m {\n input 1\n dense 16 tanh\n dense 1\n}\ndata sine n=200\nloss mse\n"
                    "train epochs=5 seed=0\n")
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run")]) == 0
    report = dlc.evaluate(tmp_path / "run", split="test", plot=False)["splits"]["test"]
    from sklearn.metrics import r2_score
    from dlc.runtime.data.splits import prepare
    from dlc.runtime.runs import load_run
    model = load_run(tmp_path / "run")
    splits = prepare(model.spec)
    out = model.predict_proba(splits.preprocess.invert(splits.x_test))
    assert report["report"]["r2"] == pytest.approx(r2_score(splits.y_test, out), abs=1e-9)
    assert report["report"]["mae"] == pytest.approx(float(np.mean(np.abs(out - splits.y_test))), rel=1e-6)
    assert main(["eval", str(tmp_path / "run"), "--split", "test"]) == 0
    assert "MAE " in capsys.readouterr().out and not (tmp_path / "run" / "confusion.png").exists()


def test_train_writes_the_test_splits_report_into_metrics(digits_run):
    metrics = json.loads((digits_run / "metrics.json").read_text())
    eval_report = dlc.evaluate(digits_run, split="test", plot=False)["splits"]["test"]["report"]
    assert metrics["test_report"] == eval_report
