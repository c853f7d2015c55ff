"""Data sets: built-in synthetic sets, scikit-learn's bundled sets, and user files.

Every loader returns a `Dataset` with float32 inputs `x` (N, ...) and targets `y`:
int64 class indices for classification, float32 (N, k) for regression.
scikit-learn is imported only when one of its sets is asked for.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dlc.compiler.lazy_numpy import lazy_numpy

np = lazy_numpy(__name__)  # `dlc check` reads CATALOG and should not pay for NumPy



@dataclass
class Dataset:
    x: np.ndarray
    y: np.ndarray
    task: str  # classification | regression
    classes: list[str] = field(default_factory=list)
    name: str = ""

    @property
    def n_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    features: tuple[int, ...]  # per-sample shape as loaded; None-like () when it depends on options
    task: str
    classes: int  # 0 for regression
    doc: str
    loader: Callable
    image_shape: tuple[int, ...] | None = None


def _spiral(rng, n=300, classes=3, noise=0.2):
    per = max(n // classes, 1)
    xs, ys = [], []
    for k in range(classes):
        r = np.linspace(0.0, 1, per)
        t = np.linspace(k * 4, (k + 1) * 4, per) + rng.normal(0, noise, per)
        xs.append(np.c_[r * np.sin(t), r * np.cos(t)])
        ys.append(np.full(per, k))
    return np.concatenate(xs), np.concatenate(ys)


def _xor(rng, n=400, noise=0.1, classes=None):
    x = rng.uniform(-1, 1, (n, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    return x + rng.normal(0, noise, x.shape), y


def _moons(rng, n=400, noise=0.1, classes=None):
    from sklearn.datasets import make_moons
    return make_moons(n_samples=n, noise=noise, random_state=int(rng.integers(2**31)))


def _blobs(rng, n=400, noise=1.0, classes=3):
    from sklearn.datasets import make_blobs
    return make_blobs(n_samples=n, centers=classes, cluster_std=noise, n_features=2,
                      random_state=int(rng.integers(2**31)))


def _sine(rng, n=400, noise=0.05, classes=None):
    x = rng.uniform(-np.pi, np.pi, (n, 1))
    return x, np.sin(x) + rng.normal(0, noise, x.shape)


def _sklearn(name):
    def load(rng, **_):
        import sklearn.datasets as skd
        bunch = getattr(skd, f"load_{name}")()
        return bunch.data, bunch.target
    return load


def _synthetic(fn, defaults):
    def load(rng, n=None, noise=None, classes=None):
        kw = dict(defaults)
        kw.update({k: v for k, v in (("n", n), ("noise", noise), ("classes", classes)) if v is not None})
        return fn(rng, **kw)
    return load


CATALOG: dict[str, DatasetInfo] = {d.name: d for d in [
    DatasetInfo("spiral", (2,), "classification", 3, "3 interleaved spirals in 2-D (cs231n)",
                _synthetic(_spiral, {"n": 300, "classes": 3, "noise": 0.2})),
    DatasetInfo("xor", (2,), "classification", 2, "the XOR quadrants with noise", _synthetic(_xor, {"n": 400, "noise": 0.1})),
    DatasetInfo("moons", (2,), "classification", 2, "two interleaved half circles", _synthetic(_moons, {"n": 400, "noise": 0.1})),
    DatasetInfo("blobs", (2,), "classification", 3, "Gaussian blobs", _synthetic(_blobs, {"n": 400, "noise": 1.0, "classes": 3})),
    DatasetInfo("sine", (1,), "regression", 0, "y = sin(x) + noise on [-pi, pi]", _synthetic(_sine, {"n": 400, "noise": 0.05})),
    DatasetInfo("digits", (64,), "classification", 10, "scikit-learn's 8x8 handwritten digits (1,797)",
                _sklearn("digits"), image_shape=(1, 8, 8)),
    DatasetInfo("iris", (4,), "classification", 3, "scikit-learn's iris (150)", _sklearn("iris")),
    DatasetInfo("wine", (13,), "classification", 3, "scikit-learn's wine (178)", _sklearn("wine")),
    DatasetInfo("breast_cancer", (30,), "classification", 2, "scikit-learn's breast cancer (569)", _sklearn("breast_cancer")),
    DatasetInfo("diabetes", (10,), "regression", 0, "scikit-learn's diabetes regression (442)", _sklearn("diabetes")),
]}


class DataError(Exception):
    """A data set that cannot be read or does not fit; the CLI reports it at the data line."""


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}.get(raw[2])
    if dtype is None:
        raise DataError(f"{path}: unknown IDX element type 0x{raw[2]:02x}")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: IDX header says {dims} but the file holds {data.size} values")
    return data.reshape(dims)


def _read_csv(path: Path, label: str | None):
    import csv
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if len(rows) < 2:
        raise DataError(f"{path} has no data rows")
    header = rows[0]
    has_header = any(not _is_number(c) for c in header)
    body = rows[1:] if has_header else rows
    names = header if has_header else [str(i) for i in range(len(header))]
    if label is None:
        col = len(names) - 1
    elif label in names:
        col = names.index(label)
    elif label.lstrip("-").isdigit() and -len(names) <= int(label) < len(names):
        col = int(label) % len(names)
    else:
        raise DataError(f"{path} has no column '{label}'; its columns are: {', '.join(names)}")
    try:
        x = np.array([[float(v) for i, v in enumerate(r) if i != col] for r in body], dtype=np.float64)
    except ValueError as e:
        raise DataError(f"{path}: a feature value is not a number ({e})") from None
    y = [r[col] for r in body]
    return x, np.array(y)


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def load(source: str, options: dict, task_hint: str | None, seed: int, base_dir: Path | None = None) -> Dataset:
    """Load a built-in set by name or a user file (.npz, .csv, IDX) by path."""
    rng = np.random.default_rng(seed)
    if source in CATALOG:
        info = CATALOG[source]
        opts = {k: options.get(k) for k in ("n", "noise", "classes") if options.get(k) is not None}
        x, y = info.loader(rng, **opts)
        task = info.task
        name = source
    else:
        path = Path(source).expanduser()
        if not path.is_absolute() and base_dir is not None and not path.exists():
            path = base_dir / path
        if not path.exists():
            raise DataError(f"no such data file: {source}")
        name = path.name
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in ("x", "y") if k not in z.files]
                if missing:
                    raise DataError(f"{path} must hold arrays 'x' and 'y'; it holds {', '.join(z.files)}")
                x, y = z["x"], z["y"]
        elif path.suffix == ".csv":
            x, y = _read_csv(path, options.get("label"))
        else:
            x = _read_idx(path)
            if not options.get("labels"):
                raise DataError(f"{path} looks like IDX images; name the labels file: labels=\"...-labels-idx1-ubyte\"")
            lpath = Path(options["labels"])
            if not lpath.is_absolute() and base_dir is not None and not lpath.exists():
                lpath = base_dir / lpath
            y = _read_idx(lpath)
            if x.ndim == 3:
                x = x[:, None]
        task = task_hint or ("classification" if y.dtype.kind in "iuUSOb" else "regression")
    x = np.asarray(x)
    y = np.asarray(y)
    if len(x) != len(y):
        raise DataError(f"{name}: {len(x)} inputs but {len(y)} labels")
    if x.dtype.kind not in "fiub":
        raise DataError(f"{name}: inputs must be numeric, got {x.dtype}")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise DataError(f"{name}: inputs hold NaN or inf")
    if task == "classification":
        if y.ndim == 2 and y.shape[1] > 1:
            y = y.argmax(axis=1)
        y = y.reshape(-1)
        labels, y = np.unique(y, return_inverse=True)
        classes = [str(c) for c in labels]
        if source in CATALOG and CATALOG[source].classes and len(classes) < CATALOG[source].classes:
            classes = [str(i) for i in range(CATALOG[source].classes)]
        return Dataset(x, y.astype(np.int64), task, classes, name)
    y = y.astype(np.float32)
    return Dataset(x, y.reshape(len(y), -1), task, [], name)
