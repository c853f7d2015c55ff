"""Class weights for the training loss (`loss cross_entropy class_weight=balanced`, or one weight per
class), resolved against the training split, and the DL113 warning when the split is strongly
imbalanced and the loss is not weighted. `balanced` is scikit-learn's: n / (K · n_c)."""

from __future__ import annotations

import numpy as np

from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.compiler.lint import imbalance_warning
from dlc.compiler.spec import Spec


def class_counts(spec: Spec, y: np.ndarray, n_classes: int) -> list[int]:
    """Samples per class index of a classification split (a sigmoid's one unit: the 0/1 labels)."""
    return np.bincount(np.asarray(y, dtype=np.int64).reshape(-1), minlength=n_classes)[:n_classes].tolist()


def n_classes(spec: Spec) -> int:
    units = spec.graph.output_shape[0]
    return 2 if units == 1 else units


def class_weights(spec: Spec, y_train: np.ndarray, classes: list[str] | None = None) -> np.ndarray | None:
    """The weight of each class index for the training loss, or None (unweighted). A class with no
    training sample gets weight 0 under `balanced` (it never enters the loss anyway); weights given by
    class name leave the other classes at 1, and a name the data does not have is refused at the key."""
    if spec.task != "classification" or np.asarray(y_train).ndim > 1:
        return None
    setting = spec["loss"].get("class_weight")
    if setting is None:
        return None
    if setting and isinstance(setting[0], tuple):  # (name, weight) pairs
        k = n_classes(spec)
        names = list(classes or []) + [str(i) for i in range(len(classes or []), k)]
        unknown = [name for name, _ in setting if name not in names]
        if unknown:
            loss = spec["loss"]
            raise DLError(Diagnostic("error", f"class_weight names {', '.join(unknown)}, which the data does not have",
                                     loss.spans.get("class_weight", loss.span),
                                     "its classes: " + ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")),
                          spec.source)
        weights = np.ones(k)
        for name, w in setting:
            weights[names.index(name)] = w
        return weights
    if setting != "balanced":
        return np.asarray(setting, dtype=np.float64)
    from sklearn.utils.class_weight import compute_class_weight
    k = n_classes(spec)
    counts = np.asarray(class_counts(spec, y_train, k))
    present = np.flatnonzero(counts)
    weights = np.zeros(k)
    weights[present] = compute_class_weight("balanced", classes=present, y=np.asarray(y_train).reshape(-1))
    return weights


def imbalance(spec: Spec, y_train: np.ndarray, classes: list[str], what: str = "the training split") -> Diagnostic | None:
    """DL113 for these labels (the training split's, or a data file's), or None."""
    if spec.task != "classification" or np.asarray(y_train).ndim > 1 or not len(y_train):
        return None
    k = n_classes(spec)
    names = list(classes) + [str(i) for i in range(len(classes), k)]
    return imbalance_warning(spec, class_counts(spec, y_train, k), names, what)
