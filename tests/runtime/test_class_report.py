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
    assert report["report"]["r2"] == pytest.approx(r2_score(splits.y_test, out), rel=1e-6)  # (sklearn sums float32 inputs in float32; dlc in float64)
    assert report["report"]["mae"] == pytest.approx(float(np.mean(np.abs(out - splits.y_test))), rel=1e-6)
    assert main(["eval", str(tmp_path / "run"), "--split", "test"]) == 0
    assert "MAE " in capsys.readouterr().out and not (tmp_path / "run" / "confusion.png").exists()


def test_train_writes_the_test_splits_report_into_metrics(digits_run):
    metrics = json.loads((digits_run / "metrics.json").read_text())
    eval_report = dlc.evaluate(digits_run, split="test", plot=False)["splits"]["test"]["report"]
    assert metrics["test_report"] == eval_report


@pytest.mark.parametrize("seed", range(12))
def test_every_figure_equals_sklearn_metrics_on_random_and_edge_cases(seed):
    """The report is computed with NumPy (sklearn.metrics costs 0.9 s to import); sklearn is the oracle:
    random predictions, classes never predicted or never present, ties in the scores, a sigmoid output."""
    from sklearn.metrics import (confusion_matrix, mean_absolute_error, mean_squared_error,
                                 precision_recall_fscore_support, r2_score, top_k_accuracy_score)

    from dlc.runtime.tools.class_report import classification_report, regression_report
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 60)), int(rng.integers(2, 9))
    present = rng.integers(1, k + 1)
    y = rng.integers(0, present, n)  # some classes may have no sample
    proba = rng.random((n, k)).round(1)  # ties
    if seed % 4 == 0:
        proba = rng.random((n, 1))  # one sigmoid output
        y = rng.integers(0, 2, n)
    ours = classification_report(y, proba, [str(i) for i in range(max(k, 2))], top_k=3 if k > 3 else None)
    labels = list(range(len(ours["classes"])))
    pred = (proba[:, 0] >= 0.5).astype(int) if proba.shape[1] == 1 else proba.argmax(1)
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    assert [row["precision"] for row in ours["per_class"]] == pytest.approx(p, abs=1e-12)
    assert [row["recall"] for row in ours["per_class"]] == pytest.approx(r, abs=1e-12)
    assert [row["f1"] for row in ours["per_class"]] == pytest.approx(f, abs=1e-12)
    assert [row["support"] for row in ours["per_class"]] == list(s)
    for average in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(y, pred, labels=labels, average=average, zero_division=0)
        assert (ours[average]["precision"], ours[average]["recall"], ours[average]["f1"]) == \
            pytest.approx((ap, ar, af), abs=1e-12)
    assert ours["confusion"] == confusion_matrix(y, pred, labels=labels).tolist()
    if "top_k" in ours:
        assert ours["top_k"]["accuracy"] == pytest.approx(top_k_accuracy_score(y, proba, k=3, labels=labels), abs=1e-12)
    targets, outputs = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    if seed % 3 == 0:
        targets[:, 1] = 1.0  # a constant target column
        outputs[:, 1] = 1.0 if seed % 2 else 0.5
    reg = regression_report(targets, outputs)
    assert reg["mae"] == pytest.approx(mean_absolute_error(targets, outputs), abs=1e-12)
    assert reg["mse"] == pytest.approx(mean_squared_error(targets, outputs), abs=1e-12)
    if n > 1:
        assert reg["r2"] == pytest.approx(r2_score(targets, outputs), abs=1e-12)
