"""`dlc eval`: a run's metrics on its own splits (re-derived from the spec and seed) or on other data."""

from __future__ import annotations

from typing import Any

from pathlib import Path

import numpy as np

from dlc.compiler.diagnostics import Diagnostic, DLError, Source
from dlc.runtime.data.splits import fit_input, prepare
from dlc.runtime.data.datasets import CATALOG, DataError, load
from dlc.runtime.runs import check_finite_outputs, load_run


def _at(data: str):
    """Errors about a data set named on the command line point at it, not at the spec."""
    def error(message, hint=None):
        return DLError(Diagnostic("error", message, None, hint), Source("", data))
    return error


def load_inputs(spec, data, need_labels: bool = True, encoder=None):
    """Raw inputs (and the data set, whose y is None when it has no labels) of DATA shaped for
    `spec`'s input layer: a built-in set name or a file, relative to the current folder, or (from the
    Python API) an array of samples. A text model (`encoder`: its tokenizer): a file of texts (the text and
    label columns its data line names) or a list of strings, as token ids."""
    options = data_options(spec)
    if encoder is not None:
        texts, ds = text_inputs(data, options, need_labels)
        return encoder.encode(texts), ds
    if not isinstance(data, (str, Path)):
        return _array_inputs(spec, data, options)
    data = str(data)
    error = _at(data)
    try:
        ds = load(data, options, spec.task, spec["train"]["seed"], Path.cwd(), need_labels=need_labels,
                  n_features=int(np.prod(spec.graph.input_shape)), input_shape=tuple(spec.graph.input_shape),
                  lazy=True)
    except DataError as e:
        raise error(str(e)) from None
    if ds.rows is not None:  # image files (or a large .npz): read from disk a batch at a time
        from dlc.runtime.data.lazy import LazyInputs
        want = tuple(spec.graph.input_shape)
        if tuple(ds.x.shape[1:]) != want:
            raise error(f"{ds.name} samples are {'x'.join(map(str, ds.x.shape[1:]))} but the model's input is "
                        f"{'x'.join(map(str, want))}", f"give samples of {'x'.join(map(str, want))}")
        return LazyInputs(ds.x, ds.rows), ds
    info = CATALOG.get(data)
    x = fit_input(spec, ds.x, ds.name, info.image_shape if info else None, options.get("resize"),
                  options.get("reshape"), error=error, given=True)
    return x, ds


def data_options(spec) -> dict:
    """The keys of the spec's data line (columns, reshape=, ...), which given data is read by too."""
    d = spec.settings.get("data")
    return dict(d.values) if d is not None else {}


def text_inputs(data, options: dict, need_labels: bool):
    """(the texts, their data set) of DATA: a file of texts (the data line's text and label columns) or a
    list of strings."""
    from dlc.runtime.data.datasets import Dataset
    if isinstance(data, (str, Path)):
        from dlc.runtime.data.text import load_texts
        try:
            ds = load_texts(str(data), options, Path.cwd(), None, need_labels)
        except DataError as e:
            raise _at(str(data))(str(e)) from None
        texts = list(ds.x)
    else:
        texts = [data] if isinstance(data, str) else list(data)
        if not all(isinstance(t, str) for t in texts) or not texts:
            raise _at("the texts")("a text model predicts for texts: give a file of texts or a list of strings")
        ds = Dataset(np.array(texts, object), None, "classification", [], "the texts")
    return texts, ds


def _array_inputs(spec, data, options: dict):
    """An array of raw samples (N, features) or (N, C, H, W) from the Python API, as a data set without labels."""
    from dlc.runtime.data.datasets import Dataset
    error = _at("the array")
    try:
        x = np.asarray(data)
    except (TypeError, ValueError) as e:
        raise error(f"predict takes a data set name, a file path or an array of samples, not {type(data).__name__}"
                    f" ({e})") from None
    if x.dtype.kind in "US":
        raise error(f"texts are for a text model (input L tokens); this model's input is "
                    f"{'x'.join(map(str, spec.graph.input_shape))} numbers", "give it numbers, e.g. a data file")
    if x.dtype.kind not in "fiub" or x.ndim < 2 or len(x) == 0:
        raise error(f"an array of samples is numeric with one row per sample; got {x.dtype} of shape {x.shape}",
                    "pass e.g. x of shape (N, features)")
    if not np.all(np.isfinite(x)):
        raise error("the array holds NaN or inf")
    x = fit_input(spec, x.astype(np.float32), "the array", None, options.get("resize"), options.get("reshape"),
                  error=error, given=True)
    return x, Dataset(x, None, spec.task, [], "the array")


def prepared(model, x, split_preprocess=None):
    """x with the run's own preprocessing: raw inputs, or a split prepared by `split_preprocess` (undone
    first); a lazy split gets it applied a batch at a time as it is read."""
    from dlc.runtime.data.lazy import LazyInputs
    if isinstance(x, LazyInputs):
        return x.with_preprocess(model.preprocess)
    return model.preprocess.apply(split_preprocess.invert(x) if split_preprocess is not None else x)


def model_labels(classes: list[str], ds, data: str) -> np.ndarray:
    """The data set's class labels as the model's class indices (its classes may be named differently);
    a label the model never saw is refused, never scored as a miss (eval and predict alike)."""
    if not classes or ds.classes == classes[:len(ds.classes)]:
        return ds.y
    index = {c: i for i, c in enumerate(classes)}
    present = {ds.classes[i] for i in np.unique(ds.y)}  # integer labels name every index below the largest
    unknown = sorted(present - set(index), key=lambda c: (len(c), c))
    if unknown:
        raise _at(data)(f"{data} has labels the model never saw: {', '.join(unknown[:10])}")
    return np.array([index.get(c, -1) for c in ds.classes], dtype=np.int64)[ds.y]  # one lookup per class


def _evaluate(model, x, y, where: str, top_k: int | None = None) -> dict:
    """Metrics of prepared inputs, with the per-class report (runtime/tools/class_report.py); outputs that are
    not finite are refused by name rather than reported as NaN."""
    from dlc.runtime.tools.class_report import model_report

    out = model.outputs(x)
    check_finite_outputs(out, where)
    return dict(model.evaluate(x, y, out=out), n=len(x), report=model_report(model, y, out, top_k))


def evaluate_run(run: str, data: str | None = None, split: str = "all", top_k: int | None = None,
                 plot: bool = True) -> dict:
    """Loss, accuracy and the per-class report (precision, recall, F1, support, averages, top-k, confusion
    matrix; MAE/MSE/R² for regression) on the run's splits or on DATA; `plot` writes RUN/confusion.png for
    the last split reported (the test split by default)."""
    if top_k is not None and top_k < 1:
        raise DLError(Diagnostic("error", f"--top-k {top_k}: k is at least 1"))
    onnx_file = str(run).endswith(".onnx") and Path(run).is_file()
    model = _onnx_model(Path(run)) if onnx_file else load_run(run)
    plot = plot and not onnx_file  # (a confusion picture goes in a run folder)
    report: dict[str, Any] = {"run": str(run), "splits": {}}
    if data is None:
        splits = prepare(model.spec, encoder=model.encoder)
        # the run's own preprocessing, not a refit
        pairs = {"train": (splits.x_train, splits.y_train), "validation": (splits.x_val, splits.y_val),
                 "test": (splits.x_test, splits.y_test)}
        for name, (x, y) in pairs.items():
            if split not in ("all", name) or len(x) == 0:
                continue
            report["splits"][name] = _evaluate(model, prepared(model, x, splits.preprocess), y,
                                               f"the {name} split", top_k)
    else:
        x, ds = load_inputs(model.spec, data, encoder=model.encoder)
        if ds.task != model.spec.task:
            raise _at(data)(f"{data} is a {ds.task} set but the model does {model.spec.task}")
        y = model_labels(model.classes, ds, data) if model.spec.task == "classification" else ds.y
        if model.spec.task == "regression":  # the targets as training judged them
            from dlc.runtime.data.datasets import targets_refusal
            refusal = targets_refusal(data, y, model.spec.graph.output_shape[0], model.spec.loss, True)
            if refusal is not None:
                raise _at(data)(*refusal)
        report["splits"][Path(data).name] = _evaluate(model, prepared(model, x), y, data, top_k)
    shown = [(name, r) for name, r in report["splits"].items() if "confusion" in r.get("report", {})]
    if plot and shown:
        from dlc.runtime.tools import class_report
        from dlc.runtime import run_folder as rf
        name, r = shown[-1]
        path = Path(run) / rf.CONFUSION
        class_report.save_confusion(path, r["report"], f"{model.spec.name}: {name} ({r['n']} samples)")
        report["confusion_png"] = str(path)
    return report


def _onnx_model(path: Path):
    """An .onnx file dlc exported (float or --int8) as the model eval scores: its spec, classes and
    preprocessing from the file, its outputs from onnxruntime."""
    from dlc.runtime.inference import Model
    from dlc.runtime.tools import onnx_import
    from dlc.runtime.tools.import_run import imported_preprocess
    from dlc.runtime.tools.onnx_runner import OnnxModel

    session = OnnxModel.load(path)
    if session.session.get_inputs()[0].type != "tensor(float)":  # a text model: string or token ids in
        raise DLError(Diagnostic("error", f"{path} takes texts (its input is {session.session.get_inputs()[0].type}): "
                                          "dlc eval scores an .onnx file of a numeric model",
                                 hint=f"dlc predict {path} TEXTS.csv prints its accuracy on a labelled file of texts; "
                                      "dlc eval RUN scores the run folder it was exported from"), Source("", str(path)))
    imported = onnx_import.read(path)
    if not imported.own:
        raise DLError(Diagnostic("error", f"{path} was not written by dlc export: it has no spec to score it by",
                                 hint=f"import it first (dlc import {path} -o RUN), then evaluate RUN on a data set"))

    class OnnxBacked(Model):
        def __post_init__(self):  # no NumPy network: onnxruntime computes
            from dlc.runtime.scores import is_fused
            self.fused = is_fused(self.spec)

        def outputs(self, x_prepared, batch=None):  # the ONNX graph holds the preprocessing: raw inputs in
            out = session.run(self.preprocess.invert(np.asarray(x_prepared)))["output"]
            # a fused softmax's logits: log-probabilities give the same softmax and cross-entropy
            return np.log(np.maximum(out, np.finfo(np.float32).tiny)) if self.fused else out

    spec = imported.spec
    return OnnxBacked(spec, {}, imported_preprocess(imported, spec), imported.classes)
