"""Where a model fails: per-class precision, recall, F1 and support, their macro and weighted
averages, top-k accuracy and the confusion matrix (classification); MAE, MSE and R² (regression).

The figures are scikit-learn's definitions (`sklearn.metrics` with zero_division=0: precision_recall_
fscore_support, confusion_matrix, top_k_accuracy_score, mean_absolute_error, mean_squared_error,
r2_score), computed here from the confusion matrix with NumPy: importing sklearn.metrics costs about
0.9 s, which every `dlc train` paid for its test report (bench/cold_start.py).
tests/runtime/test_class_report.py checks every figure against sklearn.metrics itself, edge cases included."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def default_top_k(n_classes: int) -> int | None:
    """Top-5 accuracy where there are more than 5 classes (as ImageNet reports it), else none."""
    return 5 if n_classes > 5 else None


def classification_report(y: np.ndarray, proba: np.ndarray, classes: list[str], top_k: int | None = None) -> dict:
    """The report of class indices `y` against the model's outputs `proba` (N, K) or (N, 1) for a sigmoid."""
    k = max(len(classes), proba.shape[1] if proba.shape[1] > 1 else 2)
    labels = list(range(k))
    names = list(classes) + [str(i) for i in range(len(classes), k)]
    pred = (proba[:, 0] >= 0.5).astype(np.int64) if proba.shape[1] == 1 else np.argmax(proba, axis=1)
    y = np.asarray(y, np.int64)
    confusion = confusion_matrix(y, pred, k)
    tp = np.diag(confusion).astype(np.float64)
    support, predicted = confusion.sum(axis=1).astype(np.float64), confusion.sum(axis=0).astype(np.float64)
    p, r = _ratio(tp, predicted), _ratio(tp, support)
    f = _ratio(2 * tp, support + predicted)  # 2PR/(P+R), as sklearn writes it: 2tp / (2tp + fp + fn)
    report = {"classes": names,
              "per_class": [{"class": names[i], "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                             "support": int(support[i])} for i in labels],
              "accuracy": float(np.mean(pred == y)),
              "confusion": confusion.tolist()}
    weights = support / support.sum() if support.sum() else np.zeros_like(support)
    report["macro"] = {"precision": float(np.mean(p)), "recall": float(np.mean(r)), "f1": float(np.mean(f))}
    report["weighted"] = {"precision": float(weights @ p), "recall": float(weights @ r), "f1": float(weights @ f)}
    if top_k and proba.shape[1] > top_k:
        ranked = np.argsort(proba, axis=1, kind="mergesort")[:, ::-1][:, :top_k]  # sklearn's order, ties too
        report["top_k"] = {"k": top_k, "accuracy": float(np.mean(np.any(ranked == y[:, None], axis=1)))}
    return report


def confusion_matrix(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts: true class down, predicted class across."""
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k)


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, 0 where b is 0 (sklearn's zero_division=0)."""
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b != 0)


def model_report(model, y: np.ndarray, out: np.ndarray, top_k: int | None = None) -> dict:
    """The report of a model's raw outputs `out` (logits when its loss is fused) against targets `y`:
    per class for a classifier (top-k: `top_k`, default default_top_k), MAE/MSE/R² for regression."""
    if model.spec.task != "classification":
        return regression_report(y, out)
    from dlc.runtime.losses import probabilities
    with np.errstate(over="ignore", invalid="ignore"):
        proba = probabilities(model.spec.loss, out, model.fused)
    k = top_k if top_k is not None else default_top_k(proba.shape[1])
    return classification_report(y, proba, model.classes, k or None)


def regression_report(y: np.ndarray, out: np.ndarray) -> dict:
    """MAE, MSE and R² averaged over the outputs (sklearn's multioutput="uniform_average"); an output whose
    targets are constant has R² 1 when predicted exactly, else 0 (sklearn's force_finite)."""
    y = np.asarray(y, np.float64).reshape(out.shape)
    out = np.asarray(out, np.float64)
    err = out - y
    report = {"mae": float(np.mean(np.mean(np.abs(err), axis=0))), "mse": float(np.mean(np.mean(err * err, axis=0))),
              "r2": None}
    if len(y) > 1:
        residual = np.sum(err * err, axis=0)
        total = np.sum((y - y.mean(axis=0)) ** 2, axis=0)
        r2 = np.where(total != 0, 1 - _ratio(residual, total), np.where(residual == 0, 1.0, 0.0))
        report["r2"] = float(np.mean(r2))
    return report


def render(report: dict) -> str:
    """The per-class table with the averages under it, as scikit-learn's classification_report lays it out."""
    if "per_class" not in report:
        r2 = "-" if report.get("r2") is None else f"{report['r2']:.4f}"
        return f"  MAE {report['mae']:.5g}  MSE {report['mse']:.5g}  R² {r2}"
    width = max([len(c) for c in report["classes"]] + [len("weighted avg")])
    lines = [f"  {'':<{width}}  precision  recall      f1  support"]
    for row in report["per_class"]:
        lines.append(f"  {row['class']:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:6.3f}  "
                     f"{row['support']:7d}")
    total = sum(row["support"] for row in report["per_class"])
    for average in ("macro", "weighted"):
        a = report[average]
        lines.append(f"  {average + ' avg':<{width}}  {a['precision']:9.3f}  {a['recall']:6.3f}  {a['f1']:6.3f}  "
                     f"{total:7d}")
    if "top_k" in report:
        lines.append(f"  top-{report['top_k']['k']} accuracy {100 * report['top_k']['accuracy']:.2f}%")
    return "\n".join(lines)


def save_confusion(path: Path, report: dict, title: str) -> None:
    """The confusion matrix as a PNG: true class down, predicted class across, counts in the cells."""
    from dlc.runtime.run_folder import new_figure, save_figure

    matrix = np.array(report["confusion"])
    names = report["classes"]
    size = min(12.0, 2.5 + 0.45 * len(names))
    fig = new_figure((size + 1, size))
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xlabel="predicted class", ylabel="true class",
           title=title)
    ax.set_xticklabels(names, rotation=90 if max(map(len, names)) > 3 else 0)
    ax.set_yticklabels(names)
    if len(names) <= 30:
        high = matrix.max() / 2 if matrix.size else 0
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if matrix[i, j] > high else "black")
    save_figure(path, fig)
