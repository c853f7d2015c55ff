"""Data sets: built-in synthetic sets, scikit-learn's bundled sets, and user files.

Every loader returns a `Dataset` with float32 inputs `x` (N, ...) and targets `y`:
int64 class indices for classification, float32 (N, k) for regression.
scikit-learn is imported only when one of its sets is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from dlc.compiler.catalog import BUILTIN_SETS, BuiltinSet
from dlc.compiler.files import is_folder
from dlc.compiler.lazy_numpy import lazy_numpy

from dlc.runtime.data.labels import class_labels
from dlc.runtime.data.series import is_padded
from dlc.runtime.data.files import DataError, check_file, read_csv, read_idx, read_npz, resolve_path

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_numpy(__name__)  # `dlc check` reads CATALOG and should not pay for NumPy


@dataclass
class Dataset:
    x: Any  # (N, ...) an array, or a memory map of a file on disk (None where only the labels were read)
    y: "np.ndarray | None"  # None: an unlabelled set (predict)
    task: str  # classification | regression
    classes: list[str] = field(default_factory=list)
    name: str = ""
    skipped: list = field(default_factory=list)  # image files left out under skip_bad: (path, why)
    files: list = field(default_factory=list)  # image files: the file of each sample
    rows: "np.ndarray | None" = None  # a lazy set: x is uint8 on disk, these are its samples' rows (data/lazy.py)
    test_from: int | None = None  # an archive set: its samples from here on are the official test split

    @property
    def n_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class DatasetInfo(BuiltinSet):
    """A built-in set as the compiler describes it (compiler/catalog.py), with its loader."""

    loader: Callable | None = None


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
    """scikit-learn's bundled set, cached as arrays after its first load (runtime/data/array_cache.py)."""
    def load(rng, **_):
        from dlc.runtime.data import array_cache
        entry = f"{name}-{array_cache.key('sklearn', array_cache.sklearn_version())}"
        cached = array_cache.load(entry)
        if cached is not None and set(cached) == {"x", "y"}:
            return cached["x"], cached["y"]
        import sklearn.datasets as skd
        bunch = getattr(skd, f"load_{name}")()
        array_cache.save(entry, {"x": np.asarray(bunch.data), "y": np.asarray(bunch.target)})
        return bunch.data, bunch.target
    return load


def _archive(name: str):
    """A UCR/UEA set that ships inside sktime's wheel, read with sktime's loader (its .ts files): the
    official training series, then the test series; cached as arrays after its first load."""
    def load(rng, **_):
        from dlc.compiler.catalog import ARCHIVE_NAMES
        from dlc.runtime.data import array_cache
        try:
            import sktime
        except ImportError:
            raise DataError(f'data {name} is read with sktime, which is not installed: pip install "dlc[series]"') \
                from None
        entry = f"{name}-{array_cache.key('sktime', sktime.__version__)}"
        cached = array_cache.load(entry)
        if cached is not None and set(cached) == {"x", "y"}:
            return cached["x"], cached["y"]
        from sktime.datasets import load_UCR_UEA_dataset
        from dlc.runtime.data import series
        parts = [load_UCR_UEA_dataset(ARCHIVE_NAMES[name], split=split, return_type="nested_univ")
                 for split in ("train", "test")]
        frame = [row for p in parts for _, row in p[0].iterrows()]  # a row: one pandas Series per channel
        x = series.pad([np.stack([np.asarray(c, np.float32) for c in row]) for row in frame],
                       CATALOG[name].features[1])
        y = np.concatenate([np.asarray(p[1]).astype(str) for p in parts])
        array_cache.save(entry, {"x": x, "y": y})
        return x, y
    return load


def _synthetic(fn, defaults):
    def load(rng, n=None, noise=None, classes=None):
        kw = dict(defaults)
        kw.update({k: v for k, v in (("n", n), ("noise", noise), ("classes", classes)) if v is not None})
        return fn(rng, **kw)
    return load


_LOADERS: dict[str, Callable] = {
    "spiral": _synthetic(_spiral, {"n": 300, "classes": 3, "noise": 0.2}),
    "xor": _synthetic(_xor, {"n": 400, "noise": 0.1}),
    "moons": _synthetic(_moons, {"n": 400, "noise": 0.1}),
    "blobs": _synthetic(_blobs, {"n": 400, "noise": 1.0, "classes": 3}),
    "sine": _synthetic(_sine, {"n": 400, "noise": 0.05}),
    **{name: _sklearn(name) for name in ("digits", "iris", "wine", "breast_cancer", "diabetes")},
    **{name: _archive(name) for name in ("gunpoint", "italy_power", "basic_motions", "japanese_vowels")},
}
CATALOG: dict[str, DatasetInfo] = {name: DatasetInfo(**vars(info), loader=_LOADERS[name])
                                   for name, info in BUILTIN_SETS.items()}


def _file_entry(source: str, base_dir: Path | None, files: dict | None, what: str = "data file",
                allow_folder: bool = False) -> Path:
    """The path of a data file (or, with allow_folder, an image folder) named in a spec; with a run's
    recorded `files`, that path, refused by name when its content changed since the run was trained (an
    image folder's listing is compared where it is read: images.load_images)."""
    if allow_folder:
        path = Path(files[source]["path"]) if files and source in files else resolve_path(source, base_dir)
        if is_folder(path):
            return path
    if files and source in files:
        path = check_file(Path(files[source]["path"]), what)
        from dlc.runtime.run_folder import file_sha256
        now = file_sha256(path)
        if now != files[source]["sha256"]:
            raise DataError(f"{path} changed since this run was trained (sha256 {files[source]['sha256'][:12]}... "
                            f"then, {now[:12]}... now)")
        return path
    return check_file(resolve_path(source, base_dir), what)


def load(source: str, options: dict, task_hint: str | None, seed: int, base_dir: Path | None = None,
         files: dict | None = None, need_labels: bool = True, n_features: int | None = None,
         limit: int | None | str = "default", input_shape: tuple | None = None, lazy: bool = False) -> Dataset:
    """Load a built-in set by name or a user file (.npz, .csv, IDX) or image folder by path.

    need_labels=False reads a file without labels too (y is then None: predictions only);
    n_features tells a CSV of features only from one with a label column. A file whose arrays
    would take more than `limit` bytes (default: half the physical memory) is refused unread.
    `input_shape` (the model's) gives image files their default size and channels; with `lazy`, image
    files stay on disk (x: the cache's uint8 memory map, `rows` the samples), read a batch at a time."""
    rng = np.random.default_rng(seed)
    if source not in CATALOG:
        from dlc.runtime.data import image_listing, images
        path = _file_entry(source, base_dir, files, allow_folder=True)
        if image_listing.is_image_source(path):
            channels, size = images.image_options(options, input_shape, path)
            recorded = files[source]["sha256"] if files and source in files and is_folder(path) else None
            x, y, classes, found, rows = images.load_images(path, options, channels, size, need_labels, recorded)
            if not lazy:
                x, rows = np.asarray(x[rows] if len(rows) < len(x) else x, np.float32), None
            shown = [source if f == path else str(Path(source) / f.relative_to(path)) if f.is_relative_to(path)
                     else str(f) for f in found.files]  # as the user wrote the folder
            return Dataset(x, y, "classification", classes, path.name, found.skipped, shown, rows)
    if source in CATALOG:
        info = CATALOG[source]
        opts = {k: options.get(k) for k in ("n", "noise", "classes") if options.get(k) is not None}
        assert info.loader is not None, "every built-in set has a loader"
        x, y = info.loader(rng, **opts)
        task = info.task
        name = source
    else:
        path = _file_entry(source, base_dir, files)
        name = path.name
        if path.suffix == ".npz" and lazy and _past_limit(path, limit):  # read from disk a batch at a time
            return _npz_on_disk(path, task_hint, need_labels, limit)
        if path.suffix == ".npz":
            x, y = read_npz(path, need_labels, limit)
        elif path.suffix == ".csv":
            x, y = read_csv(path, options.get("label"), n_features)
            if y is None and need_labels:
                raise DataError(f"{path} has no label column")
        else:
            x = read_idx(path, limit)
            if options.get("labels"):
                y = read_idx(_file_entry(options["labels"], base_dir, files, "labels file"), limit)
            elif need_labels:
                raise DataError(f"{path} looks like IDX images; name the labels file: labels=\"...-labels-idx1-ubyte\"")
            else:
                y = None
        task = task_hint or ("classification" if y is not None and y.dtype.kind in "iuUSOb" else "regression")
    x = np.asarray(x)
    if x.ndim == 0 or len(x) == 0:
        raise DataError(f"{name} holds no samples")
    if y is not None:
        y = np.asarray(y)
        if y.ndim == 0 or len(x) != len(y):
            raise DataError(f"{name}: {len(x)} inputs but {1 if y.ndim == 0 else len(y)} labels")
    if x.dtype.kind not in "fiub":
        raise DataError(f"{name}: inputs must be numeric, got {x.dtype}")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)) and not is_padded(x):  # (NaN after a series's steps: a shorter series)
        raise DataError(f"{name}: inputs hold NaN or inf (first at sample {_first_bad(x)})",)
    if y is None:
        return Dataset(x, None, task, [], name)
    if task == "classification":
        archive = CATALOG.get(source)
        if archive is not None and archive.class_names:  # an archive's labels, by name (its digits are names too)
            found = sorted(set(y.tolist()))
            if found != sorted(archive.class_names):
                raise DataError(f"{name}: the labels {found} are not the archive's {list(archive.class_names)}")
            index = {c: k for k, c in enumerate(archive.class_names)}
            y = np.array([index[v] for v in y.tolist()], np.int64)
            return Dataset(x, y, task, list(archive.class_names), name, test_from=_official_train(archive, len(x)))
        y, classes = class_labels(name, y)
        if archive is not None and archive.classes and len(classes) < archive.classes:
            classes = [str(i) for i in range(archive.classes)]
        return Dataset(x, y, task, classes, name)
    if y.dtype.kind not in "fiub":
        raise DataError(f"{name}: regression targets must be numbers, got {y.dtype}")
    y = y.astype(np.float32).reshape(len(y), -1)
    if not np.all(np.isfinite(y)):
        raise DataError(f"{name}: the targets hold NaN or inf (first at sample {_first_bad(y)})",)
    return Dataset(x, y, task, [], name)


def _official_train(info: BuiltinSet, n: int) -> int:
    """Where an archive set's official test series start; its size checked against the catalog's."""
    assert info.official_split is not None
    train, test = info.official_split
    if n != train + test:
        raise DataError(f"{info.name}: {n} series read, but the archive's split is {train} + {test}")
    return train


def _past_limit(path: Path, limit) -> bool:
    """Would the .npz's arrays take more than the memory limit once read?"""
    from dlc.runtime.data.files import _npz_headers
    if limit == "default":
        from dlc.compiler.memory import default_limit
        limit = default_limit()
    heads = _npz_headers(path)
    return limit is not None and sum(int(np.prod(s)) * np.dtype(d).itemsize for s, d in heads.values()) > limit


def _npz_on_disk(path: Path, task_hint: str | None, need_labels: bool, limit) -> Dataset:
    """A lazy data set from an .npz past the memory limit: x memory-mapped (rows read with pread),
    checked for NaN/inf chunk by chunk; y read whole (one label per sample)."""
    from dlc.runtime.data.files import CompressedNpz, npz_on_disk, read_npz_labels
    from dlc.runtime.data.lazy import LazyInputs
    try:
        x = npz_on_disk(path)
    except CompressedNpz as e:
        try:
            read_npz(path, need_labels, limit)  # the size refusal, read from the headers ("holds 215 MB once read ...")
        except DataError as size:
            raise DataError(f"{size}; {e}") from None
        raise
    if len(x) == 0:
        raise DataError(f"{path.name} holds no samples")
    every = LazyInputs(x, np.arange(len(x)))
    start = 0
    for chunk in every.chunks():
        bad = ~np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)
        if bad.any():
            raise DataError(f"{path.name}: inputs hold NaN or inf (first at sample {start + int(np.argmax(bad))})")
        start += len(chunk)
    y = read_npz_labels(path) if need_labels else None
    if y is not None and len(y) != len(x):
        raise DataError(f"{path.name}: {len(x)} inputs but {len(y)} labels")
    task = task_hint or ("classification" if y is not None and y.dtype.kind in "iuUSOb" else "regression")
    if y is None:
        return Dataset(x, None, task, [], path.name, rows=np.arange(len(x)))
    if task == "classification":
        y, classes = class_labels(path.name, y)
        return Dataset(x, y, task, classes, path.name, rows=np.arange(len(x)))
    y = np.asarray(y, np.float32).reshape(len(y), -1)
    if not np.all(np.isfinite(y)):
        raise DataError(f"{path.name}: the targets hold NaN or inf (first at sample {_first_bad(y)})")
    return Dataset(x, y, task, [], path.name, rows=np.arange(len(x)))


def check_labels(out: int, loss: str, dataset: Dataset, error) -> None:
    """Class labels that fit an output of `out` units: indices below it (names: as many as its units).
    `error(message, hint)` makes the exception to raise."""
    k = dataset.n_classes
    if dataset.y is None:  # unlabelled: nothing to check
        return
    indices = all(c == str(i) for i, c in enumerate(dataset.classes))
    from dlc.compiler.losses import LOSSES
    if LOSSES[loss].labels == "binary" and out == 1:
        if k > 2:
            raise error(f"{loss} with 1 output needs labels 0 and 1; {dataset.name} has {k} classes",
                        "use dense K softmax with cross_entropy")
        return
    if indices and k > out:
        bad = sorted({int(v) for v in dataset.y[dataset.y >= out][:1000]})
        first = int(np.argmax(dataset.y >= out))
        raise error(f"{dataset.name} has class label(s) {', '.join(map(str, bad[:10]))} (first at sample {first}) "
                    f"but the model outputs {out} classes (labels 0 to {out - 1})",
                    f"make the last dense layer {k} wide, or fix the labels")
    if not indices and k != out:
        raise error(f"{dataset.name} has {k} classes but the model outputs {out} values",
                    f"make the last dense layer {k} wide")


def targets_refusal(name: str, y, outputs: int, loss: str, loss_written: bool) -> tuple[str, str] | None:
    """(message, hint) when regression targets `y` do not fit an output of `outputs` units -- what both
    `dlc check` (from the file's labels) and training say -- else None. Labels that are class indices
    meeting an output of several units with no loss line are a classifier missing its softmax: dlc's
    cross_entropy takes probabilities, so the fix is written out (a PyTorch habit: `dense 10` as logits)."""
    y = np.asarray(y)
    cols = 1 if y.ndim == 1 else int(np.prod(y.shape[1:]))
    whole = y.dtype.kind in "iub" or (y.dtype.kind == "f" and y.size and np.all(np.isfinite(y))
                                      and np.all(y == np.round(y)))
    if y.dtype.kind in "US" and loss_written:
        return (f"{name}: regression targets must be numbers, got {y.dtype}",
                "class names need a classifier: end with dense K softmax and loss cross_entropy")
    if y.dtype.kind in "US" or (cols == 1 and outputs > 1 and whole and not loss_written):
        k = len(np.unique(y)) if y.size else 0
        return (f"{name} holds class labels ({k} classes) but the model ends in a {outputs}-unit layer with no "
                f"activation and the spec has no loss line, so it would train as regression ({loss})",
                f"end with dense {outputs} softmax (dlc's cross_entropy takes probabilities; the exported model "
                f"outputs them); to fit the labels as numbers instead, end with dense {cols}")
    if cols != outputs:
        return (f"{name} has {cols} target column(s) but the model outputs {outputs}",
                f"make the last dense layer {cols} wide" + (", or end with a softmax layer for class labels"
                                                            if whole and cols == 1 else ""))
    return None


def _first_bad(a) -> int:
    return int(np.argmax(~np.all(np.isfinite(a.reshape(len(a), -1)), axis=1)))


