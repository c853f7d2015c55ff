"""From a spec's `data` line to train/validation/test splits that fit the input layer.

Preprocessing (scale=, center, standardize) is fitted on the training split only and
stored as a per-feature affine map x * mul + add, saved with the run and emitted into
the ONNX graph, so deployed models take raw inputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from typing import Any

import numpy as np

from dlc.compiler.attrs import resolve
from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.compiler.spec import Spec
from dlc.runtime.data.augment import Augment, augmenting, raw_chunks
from dlc.runtime.data.lazy import LazyInputs
from dlc.runtime.data.files import reshape_refusal, shape_refusal
from dlc.runtime.data.series import check_against_model
from dlc.runtime.data.datasets import CATALOG, DataError, Dataset, check_labels, load, targets_refusal


@dataclass
class Preprocess:
    mul: np.ndarray  # per-sample shape
    add: np.ndarray
    per_series: bool = False  # data ... znorm: each series z-normalised on its own first

    def apply(self, x: np.ndarray) -> np.ndarray:
        if self.per_series:
            x = znormalize(x)
        return (x * self.mul + self.add).astype(np.float32)

    def invert(self, x: np.ndarray) -> np.ndarray:
        """Raw inputs back from preprocessed ones (z-normalised series stay so: applying it again to them
        changes nothing)."""
        return ((x - self.add) / self.mul).astype(np.float32)

    @property
    def is_identity(self) -> bool:
        return bool(np.all(self.mul == 1) and np.all(self.add == 0)) and not self.per_series

    @classmethod
    def identity(cls, shape) -> "Preprocess":
        return cls(np.ones(shape, np.float32), np.zeros(shape, np.float32))

    @classmethod
    def fit(cls, x: np.ndarray, scale: float | None, center: bool, standardize: bool,
            per_series: bool = False) -> "Preprocess":
        if per_series:
            x = znormalize(x)
            fitted = cls.fit_chunks(lambda: [x], x.shape[1:], len(x), scale, center, standardize)
            return dataclasses.replace(fitted, per_series=True)
        return cls.fit_chunks(lambda: [x], x.shape[1:], len(x), scale, center, standardize)

    @classmethod
    def fit_chunks(cls, chunks, shape, n: int, scale: float | None, center: bool, standardize: bool) -> "Preprocess":
        """From the training split as `chunks()` yields it (the whole array, or a lazy split a chunk at a
        time): float64 sums of the values, then of their squared deviations from the mean. Per feature of
        a vector and per pixel of an image; per channel of a sequence (C, L), over all its steps, so that
        a pattern is scaled the same wherever in time it occurs."""
        mul = np.full(shape, scale or 1.0, np.float64)
        add = np.zeros(shape, np.float64)
        over = (0, 2) if len(shape) == 2 else 0

        def spread(v):  # a sequence's per-channel statistic at every step
            return np.broadcast_to(v[:, None], shape) if len(shape) == 2 else v

        if center or standardize:  # (a shorter series's padding, NaN, is left out of the sums and stays NaN)
            count = sum((~np.isnan(c)).sum(axis=over) for c in chunks()) if len(shape) == 2 else n
            mean = spread(sum(np.nansum(c.astype(np.float64) * mul, axis=over) for c in chunks()) / count)
            add = -mean
            if standardize:
                std = np.sqrt(spread(sum(np.nansum((c.astype(np.float64) * mul - mean) ** 2, axis=over)
                                         for c in chunks()) / count)).copy()
                std[std < 1e-8] = 1.0  # constant features stay centred, not blown up
                mul = mul / std
                add = -mean / std
        return cls(mul.astype(np.float32), add.astype(np.float32))


def znorm_of(spec: Spec) -> bool:
    """Whether the spec's data line says znorm (the run folder and an exported graph keep the map, not this)."""
    data = spec.settings.get("data")
    return bool(data is not None and data.get("znorm"))


def znormalize(x: np.ndarray) -> np.ndarray:
    """Each series (N, C, L) to mean 0 and std 1 per channel over its own steps (NaN padding left out and
    kept); a constant channel is only centred. In float64, returned as float32."""
    x64 = x.astype(np.float64)
    mean = np.nanmean(x64, axis=2, keepdims=True)
    std = np.sqrt(np.nanmean((x64 - mean) ** 2, axis=2, keepdims=True))
    std[std < ZNORM_FLOOR] = 1.0
    return ((x64 - mean) / std).astype(np.float32)


ZNORM_FLOOR = 1e-8  # a channel's std below this: a constant, centred and not scaled (ONNX's graph says the same)


@dataclass
class Splits:
    x_train: Any  # each x: an array, or LazyInputs (data/lazy.py): a file on disk read a batch at a time
    y_train: np.ndarray
    x_val: Any
    y_val: np.ndarray
    x_test: Any
    y_test: np.ndarray
    classes: list[str]
    task: str
    preprocess: Preprocess
    name: str
    augment: "Augment | None" = None  # the spec's augment line, fitted on the raw training split
    skipped: list = field(default_factory=list)  # image files left out under skip_bad: (path, why)
    encoder: Any = None  # texts (input L tokens): the tokenizer and vocabulary (data/tokenize.py)
    texts: Any = None  # (training, validation, test texts) as read, when asked for (dlc check's report)

    def train_batch(self, idx, rng) -> np.ndarray:
        """Training samples `idx`, augmented (raw values, then the preprocessing) when the spec says so."""
        if self.augment is None:
            return self.x_train[idx]
        raw = self.x_train.raw(idx) if isinstance(self.x_train, LazyInputs) else self.preprocess.invert(self.x_train[idx])
        return self.preprocess.apply(self.augment(raw, rng))


def _data_error(spec: Spec, message: str, hint: str | None = None) -> DLError:
    data = spec.settings.get("data")
    span = data.kind_span if data is not None else None
    return DLError(Diagnostic("error", message, span, hint), spec.source)


def fit_input(spec: Spec, x: np.ndarray, dataset_name: str, image_shape=None, resize=None, reshape=None,
              error=None, given: bool = False) -> np.ndarray:
    """Bring x to the input layer's shape where that is unambiguous (or as reshape= says); otherwise
    refuse, naming both shapes. `error(message, hint)` makes the exception (default: at the data line).
    `given`: data given to eval or predict (a file on the command line, an array): flat samples of the
    input's size are taken as the input's shape whatever the training data line said, one rule for
    every model, and a refusal names the shape to give rather than a data line to edit."""
    error = error or (lambda message, hint=None: _data_error(spec, message, hint))
    want = tuple(spec.graph.input_shape)
    images = len(want) == 3 or bool(resize)  # resize= works on images, whatever reshape= makes of them after
    if image_shape and images and x.ndim == 2 and x.shape[1] == int(np.prod(image_shape)):
        x = x.reshape((len(x),) + tuple(image_shape))
    if x.ndim == 3 and images and (want[0] == 1 or resize):
        x = x[:, None]  # (N, H, W) grayscale -> (N, 1, H, W)
    if resize and x.ndim == 4 and x.shape[2:] != (resize, resize):
        from scipy.ndimage import zoom
        x = zoom(x, (1, 1, resize / x.shape[2], resize / x.shape[3]), order=1).astype(np.float32)
    if given and not reshape and x.ndim == 2 and len(want) > 1 and x.shape[1] == int(np.prod(want)):
        reshape = want  # flat samples of a model that takes images
    if reshape:
        per = int(np.prod(x.shape[1:]))
        if per != int(np.prod(reshape)):
            raise error(*reshape_refusal(reshape, per, dataset_name))
        x = x.reshape((len(x),) + tuple(reshape))
    if spec.graph.variable and x.ndim == 3 and x.shape[1] == want[0] and x.shape[2] < want[1]:
        x = np.concatenate([x, np.full((len(x), want[0], want[1] - x.shape[2]), np.nan, x.dtype)], axis=2)
    if tuple(x.shape[1:]) != want:
        if given:
            shape = "x".join(map(str, x.shape[1:]))
            size = int(np.prod(want))
            if int(np.prod(x.shape[1:])) == size:  # the same values, another shape: say how to reshape them
                hint = (f"flatten each sample: x.reshape(len(x), {size})" if len(want) == 1 else
                        f"reshape each sample: x.reshape(len(x), {', '.join(map(str, want))})")
            else:
                hint = f"give samples of {'x'.join(map(str, want))}" + (f" or flat ones of {size} values"
                                                                         if len(want) > 1 else "")
            raise error(f"{dataset_name} samples are {shape} but the model's input is "
                        f"{'x'.join(map(str, want))}", hint)
        raise error(*shape_refusal(tuple(x.shape[1:]), want, dataset_name))
    return x


def split_rows(y: np.ndarray, frac: float, seed: int, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the two parts scikit-learn's train_test_split makes of samples labelled `y` (the second
    holds `frac` of them), stratified by `y` when asked and possible. They depend on the labels, the
    fraction, the seed and scikit-learn's version alone, so they are cached (array_cache): a second run
    imports no scikit-learn."""
    from dlc.runtime.data import array_cache
    entry = "split-" + array_cache.key(y, frac, seed, stratify, array_cache.sklearn_version())
    cached = array_cache.load(entry)
    if cached is not None and set(cached) == {"first", "second"} \
            and len(cached["first"]) + len(cached["second"]) == len(y):
        return cached["first"], cached["second"]
    from sklearn.model_selection import train_test_split  # about 0.8 s to import: only when splitting
    rows = np.arange(len(y))
    try:
        first, second = train_test_split(rows, test_size=frac, random_state=seed, stratify=y if stratify else None)
    except ValueError:  # too few samples of a class to stratify
        first, second = train_test_split(rows, test_size=frac, random_state=seed)
    array_cache.save(entry, {"first": first, "second": second})
    return first, second


def fit_encoder(spec: Spec, texts: list[str]):
    """The spec's tokenizer (data ... tokens=, min_count=), fitted on `texts`, at most the embedding's vocab
    ids, a text's first L tokens (input L tokens)."""
    from dlc.runtime.data.text import ids_reader
    from dlc.runtime.data.tokenize import TextEncoder
    data = spec["data"]
    try:
        return TextEncoder.fit(data["tokens"], texts, ids_reader(spec.graph)["vocab"], resolve(data["min_count"]),
                               spec.graph.input_shape[1])
    except DataError as e:
        raise _data_error(spec, str(e)) from None


def prepare(spec: Spec, dataset: Dataset | None = None, encoder=None, keep_texts: bool = False) -> Splits:
    """Load, check and split the spec's data; fit preprocessing (a text's vocabulary: `encoder`, when
    resuming a run that has one) on the training split."""
    data = spec.settings.get("data")
    if data is None:
        raise DLError(Diagnostic("error", "the spec has no data line: nothing to train on", None,
                                 "add e.g. data digits test=0.2 standardize"), spec.source)
    seed = data.get("data_seed") if data.get("data_seed") is not None else spec["train"]["seed"]
    texts = spec.graph.input_dtype == "int64"  # input L tokens: the data line's texts, tokenized after the split
    if dataset is None:
        try:
            if texts:
                from dlc.runtime.data.text import load_texts
                dataset = load_texts(data.kind_name, data.values, spec.base_dir, spec.data_files)
            else:
                dataset = load(data.kind_name, data.values, spec.task, seed, spec.base_dir, spec.data_files,
                               limit=spec.memory_limit, input_shape=tuple(spec.graph.input_shape), lazy=True)
        except DataError as e:
            raise _data_error(spec, str(e)) from None
    info = CATALOG.get(data.kind_name)
    # (data on disk stays a memory map here: reshape= and a channel axis are views of it)
    x = dataset.x if texts else fit_input(spec, dataset.x, dataset.name, info.image_shape if info else None,
                                          data.get("resize"), data.get("reshape"))
    y = dataset.y
    assert y is not None, "training data is loaded with its labels (load's need_labels)"
    if isinstance(x, np.ndarray) and not texts:  # series of different lengths: the model takes them, each long enough
        check_against_model(spec.graph, x, dataset.name, lambda message, hint=None: _data_error(spec, message, hint))
    if dataset.task != spec.task:
        raise _data_error(spec, f"{dataset.name} is a {dataset.task} set but loss {spec.loss} is for {spec.task}")
    if spec.task == "classification":
        check_labels(spec.graph.output_shape[0], spec.loss, dataset, lambda message, hint=None: _data_error(spec, message, hint))
    else:
        refusal = targets_refusal(dataset.name, y,
                                  spec.graph.output_shape[0], spec.loss, spec.settings["loss"].written)
        if refusal is not None:
            raise _data_error(spec, *refusal)
    stratify = spec.task == "classification" and data["stratify"]

    def split(xa, ya, frac):
        if frac <= 0 or len(xa) < 2:
            return xa, ya, xa[:0], ya[:0]
        first, second = split_rows(ya, frac, seed, stratify)
        return xa[first], ya[first], xa[second], ya[second]

    rows = dataset.rows
    x_train: Any  # arrays, or LazyInputs over the file on disk
    x_val: Any
    x_test: Any
    if rows is not None:  # split the rows; the same draws as splitting the arrays
        r_train, y_train, r_test, y_test = split(rows, y, data["test"])
        r_train, y_train, r_val, y_val = split(r_train, y_train, spec["train"]["validation"])
        x_train, x_val, x_test = (LazyInputs(x, r) for r in (r_train, r_val, r_test))
    elif dataset.test_from is not None:  # an archive set: its own test split, validation from its training series
        k = dataset.test_from
        x_train, y_train, x_test, y_test = x[:k], y[:k], x[k:], y[k:]
        x_train, y_train, x_val, y_val = split(x_train, y_train, spec["train"]["validation"])
    else:
        x_train, y_train, x_test, y_test = split(x, y, data["test"])
        x_train, y_train, x_val, y_val = split(x_train, y_train, spec["train"]["validation"])
    if len(x_train) == 0:
        raise _data_error(spec, "no training samples are left after the test and validation splits")
    if spec.task == "classification" and len(np.unique(y_train)) < 2:
        only = dataset.classes[int(y_train[0])] if dataset.classes else str(y_train[0])
        raise _data_error(spec, f"the training split holds one class only ('{only}', {len(y_train)} samples): "
                                "a classifier learns nothing from it and would score 100 %",
                          "give the data two or more classes (or use a regression loss)")
    if rows is not None:
        pre = Preprocess.fit_chunks(x_train.chunks, x_train.shape[1:], len(x_train), data.get("scale"),
                                    data["center"], data["standardize"])
        augment = Augment.fit(spec["augment"].values, x_train.chunks()) if augmenting(spec["augment"].values) else None
        return Splits(x_train.with_preprocess(pre), y_train, x_val.with_preprocess(pre), y_val,
                      x_test.with_preprocess(pre), y_test, dataset.classes, spec.task, pre, dataset.name, augment,
                      dataset.skipped)
    if texts:  # the vocabulary from the training split only (or the run's own, on resume)
        encoder = encoder or fit_encoder(spec, list(x_train))
        pre = Preprocess.identity(spec.graph.input_shape)
        return Splits(encoder.encode(list(x_train)), y_train, encoder.encode(list(x_val)), y_val,
                      encoder.encode(list(x_test)), y_test, dataset.classes, spec.task, pre, dataset.name, encoder=encoder,
                      texts=(list(x_train), list(x_val), list(x_test)) if keep_texts else None)
    pre = Preprocess.fit(x_train, data.get("scale"), data["center"], data["standardize"], data["znorm"])
    augment = Augment.fit(spec["augment"].values, [x_train]) if augmenting(spec["augment"].values) else None
    return Splits(pre.apply(x_train), y_train, pre.apply(x_val), y_val, pre.apply(x_test), y_test,
                  dataset.classes, spec.task, pre, dataset.name, augment, dataset.skipped)


def for_spec(splits: Splits, spec: Spec) -> Splits:
    """Splits prepared once for several specs (compare, --vary, search) with this spec's augment line:
    the data and its preprocessing are shared, the augmentation is each spec's own."""
    values = spec["augment"].values
    if not augmenting(values):
        return dataclasses.replace(splits, augment=None) if splits.augment is not None else splits
    if splits.augment is not None and splits.augment.values == dict(values):
        return splits
    if isinstance(splits.x_train, LazyInputs):
        chunks = splits.x_train.chunks()
    else:
        chunks = raw_chunks(splits.x_train, splits.preprocess.invert)
    return dataclasses.replace(splits, augment=Augment.fit(values, chunks))
