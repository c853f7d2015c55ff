"""The run folder: everything a training run leaves behind, each file written atomically.

    spec.dl           the spec as trained (with --set overrides applied)
    weights.npz       one array per parameter and batchnorm statistic, IR names (dense1.weight ...)
    preprocess.npz    mul, add: the input map x * mul + add fitted on the training split
    optimizer.npz     optimizer state (moments, momentum buffers, step count) for --resume
    state.json        epoch, early-stopping and random-generator state for --resume
    history.csv       one row per epoch: epoch, lr, loss, accuracy, val_loss, val_accuracy, seconds
    metrics.json      final train / validation / test metrics, classes, task, timing
    curves.png        loss and accuracy curves
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def save_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


HISTORY_FIELDS = ["epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"]


def save_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    """A CSV with a header of `fields`; missing and None values are empty cells."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if row.get(k) is None else row[k]) for k in fields})
    atomic_write_text(path, buf.getvalue())


def save_history(path: Path, history: list[dict]) -> None:
    save_csv(path, history, HISTORY_FIELDS)


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no screen needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(path: Path, fig) -> None:
    """Write a matplotlib figure as PNG, atomically, and free it."""
    plt = pyplot()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def save_curves(path: Path, histories: dict[str, list[dict]], title: str = "") -> None:
    """Loss and accuracy per epoch; several runs side by side share the axes."""
    plt = pyplot()
    has_acc = any(r.get("accuracy") is not None for h in histories.values() for r in h)
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(11 if has_acc else 6, 4), squeeze=False)
    for label, h in histories.items():
        ep = [r["epoch"] for r in h]
        line, = axes[0][0].plot(ep, [r["loss"] for r in h], label=f"{label} train")
        if any(r.get("val_loss") is not None for r in h):
            axes[0][0].plot(ep, [r.get("val_loss") for r in h], "--", color=line.get_color(), label=f"{label} validation")
        if has_acc:
            axes[0][1].plot(ep, [r.get("accuracy") for r in h], color=line.get_color(), label=f"{label} train")
            if any(r.get("val_accuracy") is not None for r in h):
                axes[0][1].plot(ep, [r.get("val_accuracy") for r in h], "--", color=line.get_color(),
                                label=f"{label} validation")
    axes[0][0].set(xlabel="epoch", ylabel="loss", title=f"{title} loss".strip())
    axes[0][0].set_yscale("log")
    axes[0][0].legend(fontsize=8)
    if has_acc:
        axes[0][1].set(xlabel="epoch", ylabel="accuracy", title=f"{title} accuracy".strip())
        axes[0][1].legend(fontsize=8)
    save_figure(path, fig)


def default_run_dir(name: str, root: Path = Path("runs")) -> Path:
    """runs/NAME, or runs/NAME-2, -3 ... when taken: a new run never overwrites an old one."""
    path = root / name
    k = 2
    while path.exists():
        path = root / f"{name}-{k}"
        k += 1
    return path
