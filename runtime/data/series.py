"""Series of different lengths as dlc holds them: one array (N, C, L), NaN after each series's last step
(the convention the engines read, runtime/numpy_engine/network.py `padded_batch`). Made from a list of
series (an .npz's `lengths`: runtime/data/files.py); checked against the model (`input CxL variable`, its shortest series)."""

from __future__ import annotations

import numpy as np


def pad(series: list[np.ndarray], steps: int | None = None) -> np.ndarray:
    """Series (C, l_k) -> (N, C, L) float32, NaN after each one's steps (L: the longest, or `steps`)."""
    longest = steps or max(s.shape[1] for s in series)
    x = np.full((len(series), series[0].shape[0], longest), np.nan, np.float32)
    for k, s in enumerate(series):
        x[k, :, :s.shape[1]] = s
    return x


def lengths(x: np.ndarray) -> np.ndarray:
    """Each series's steps: those before its padding."""
    return x.shape[2] - np.isnan(x[:, 0, :]).sum(axis=1)


def by_length(x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """A padded batch as one part per length: (which rows, those series at their own length), shortest
    first; None for a batch whose series all have every step (what a model with a fixed time axis takes)."""
    if x.ndim != 3 or not x.size or not np.isnan(x[:, 0, -1]).any():  # a shorter series is NaN at the last step
        return None
    steps = lengths(x)
    return [(steps == n, x[steps == n, :, :n]) for n in np.unique(steps)]


def is_padded(x: np.ndarray) -> bool:
    """Whether x's NaNs (if any) are only padding: per series, the same steps of every channel, all after
    its last step, and at least one step left. No inf anywhere."""
    if x.ndim != 3 or np.isinf(x).any():
        return False
    missing = np.isnan(x)
    if not missing.any():
        return True
    first = missing[:, :1, :]
    if (missing != first).any():  # a channel missing where another is not
        return False
    gaps = first[:, 0, :]
    suffix = np.cumsum(gaps[:, ::-1], axis=1)[:, ::-1] == np.arange(gaps.shape[1], 0, -1)  # all NaN from here on
    return bool((gaps == suffix).all() and not gaps[:, 0].any())


def check_against_model(graph, x: np.ndarray, name: str, error) -> None:
    """Series of different lengths need `input CxL variable`, and each as many steps as the model's ops
    need (a kernel's span): `error(message, hint)` otherwise."""
    if x.ndim != 3 or not np.isnan(x[:, 0, :]).any():
        return
    steps = lengths(x)
    shape = "x".join(map(str, graph.input_shape))
    if not graph.variable:
        raise error(f"{name} holds series of {int(steps.min())} to {int(steps.max())} steps, but the model's input "
                    f"is a fixed {shape}", f"write input {shape} variable")
    from dlc.compiler.time_axis import shortest
    need = shortest(graph)
    if steps.min() < need:
        k = int(np.argmax(steps < need))
        raise error(f"series {k} of {name} has {int(steps[k])} steps; this model's ops need at least {need}",
                    "use smaller kernels or strides, pad=same or causal, or leave the short series out")
