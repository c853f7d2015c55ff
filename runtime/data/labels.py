"""Class labels as stored (whole numbers, strings, one-hot rows) read into class indices and names: one
rule for every data source (arrays, CSV, image lists)."""

from __future__ import annotations

from dlc.compiler.lazy_numpy import lazy_numpy
from dlc.runtime.data.files import DataError, is_number

np = lazy_numpy(__name__)  # imported by datasets.py, which `dlc check` reads without NumPy


def class_labels(name: str, y):
    """(int64 class indices, class names) from labels as stored.

    Whole numbers (ints, or floats like 3.0, or CSV cells like "3") are class indices: class k is
    "k", so the labels 0..K-1 of a K-way output keep their meaning. Strings are class names, in
    sorted order. A one-hot (N, K) array is accepted: each row must hold exactly one 1. NaN,
    fractional, negative or empty labels are refused with the sample that holds them."""
    if y.ndim == 2 and y.shape[1] > 1:
        ok = np.all((y == 0) | (y == 1), axis=1) & (np.sum(y == 1, axis=1) == 1)
        if not np.all(ok):
            i = int(np.argmin(ok))
            raise DataError(f"{name}: labels are a {y.shape[0]}x{y.shape[1]} array but not one-hot: sample {i} "
                            f"holds {np.array2string(y[i], threshold=8)}; give class indices (N,) or one-hot rows")
        y = y.argmax(axis=1)
    y = y.reshape(-1) if y.ndim == 2 else y
    if y.ndim != 1:
        raise DataError(f"{name}: labels must be one per sample, got an array of shape {'x'.join(map(str, y.shape))}")
    if y.dtype.kind in "US":
        text = np.char.strip(y.astype(str))
        empty = (text == "") | (np.char.lower(text) == "nan")
        if np.any(empty):
            i = int(np.argmax(empty))
            raise DataError(f"{name}: sample {i} has {'an empty' if text[i] == '' else 'a NaN'} label")
        if all(_is_int_text(t) for t in np.unique(text)):
            y = text.astype(np.int64)
        elif all(is_number(t) for t in np.unique(text)):
            y = text.astype(np.float64)
        else:
            labels, idx = np.unique(text, return_inverse=True)
            return idx.astype(np.int64), [str(c) for c in labels]
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y)
        if np.any(bad):
            i = int(np.argmax(bad))
            raise DataError(f"{name}: sample {i} has the label {y[i]}; {int(bad.sum())} label(s) are NaN or inf")
        frac = y != np.round(y)
        if np.any(frac):
            i = int(np.argmax(frac))
            raise DataError(f"{name}: sample {i} has the label {y[i]:g}; class labels are whole numbers or names",
                            )
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise DataError(f"{name}: labels of type {y.dtype} are not class labels")
    if np.any(y < 0):
        i = int(np.argmax(y < 0))
        raise DataError(f"{name}: sample {i} has the label {int(y[i])}; class indices start at 0")
    k = int(y.max()) + 1
    return y.astype(np.int64), [str(i) for i in range(k)]


def _is_int_text(t: str) -> bool:
    return t.lstrip("+-").isdigit()
