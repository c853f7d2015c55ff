"""`dlc predict`: predictions for a data set, from an ONNX file (onnxruntime) or a run folder (NumPy).

The data need no labels; where it has them, the result also holds accuracy (classification) or
MAE and MSE (regression), over every sample of DATA (not a split of it), and whether DATA is what the
model was trained on (then its training samples are among those scored: not a test score).

The arrays (also what `-o out.npz` holds): `output` (N, K) the model's outputs (class probabilities for
a softmax classifier), `class_index` (N,) the predicted class's index into the run's classes,
`class_name` (N,) its name (str), and for image files `files` (N,) the file of each row.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dlc.compiler.diagnostics import Diagnostic, DLError, Source
from dlc.compiler.files import not_regular
from dlc.compiler.spec import compile as compile_spec
from dlc.runtime.losses import predicted_class


def _refuse(path: Path, message: str, hint: str | None = None) -> DLError:
    return DLError(Diagnostic("error", message, None, hint), Source("", str(path)))


def load_onnx(path: Path):
    """(OnnxModel, its spec, its classes) of an .onnx file dlc exported; anything else is refused by name."""
    from dlc.runtime.tools.onnx_runner import OnnxModel

    if not path.exists():
        raise _refuse(path, f"no such file: {path}")
    if path.is_dir():
        raise _refuse(path, f"{path} is a folder, not an .onnx file")
    kind = not_regular(path)
    if kind:
        raise _refuse(path, f"{path} is {kind}, not an .onnx file")
    if path.stat().st_size == 0:
        raise _refuse(path, f"{path} is empty")
    try:
        onnx_model = OnnxModel.load(path)
    except Exception as e:  # onnxruntime's own exception types: InvalidProtobuf, Fail, InvalidGraph ...
        first = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise _refuse(path, f"{path} is not a loadable ONNX model: {first[:300]}",
                      "export it again with dlc export RUN -o MODEL.onnx") from None
    meta = onnx_model.metadata
    if "spec" not in meta:
        raise _refuse(path, f"{path} was not exported by dlc (no spec in its metadata)")
    try:
        spec = compile_spec(meta["spec"], f"{path}:spec", lint=False)
    except DLError as e:
        raise _refuse(path, f"the spec in {path}'s metadata does not compile: {e.diagnostics[0].message}") from None
    try:
        classes = json.loads(meta.get("classes", "[]"))
    except (ValueError, RecursionError):
        classes = None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise _refuse(path, f"{path}'s metadata is malformed: 'classes' is not a JSON list of names")
    inputs = {i.name: i.shape for i in onnx_model.session.get_inputs()}
    outputs = {o.name for o in onnx_model.session.get_outputs()}
    if set(inputs) == {"text"} and "output" in outputs and spec.graph.input_dtype == "int64":
        return onnx_model, spec, classes  # a string-in text model: a batch of strings
    if set(inputs) != {"input"} or "output" not in outputs:
        raise _refuse(path, f"{path} has inputs {sorted(inputs)} and outputs {sorted(outputs)}; a dlc model has "
                            "one input 'input' and an output 'output'")
    from dlc.compiler.onnx_export import input_dims
    dims = list(inputs["input"])[1:]
    if dims != input_dims(spec.graph):
        raise _refuse(path, f"{path}'s input is {dims} per sample but its metadata spec says "
                            f"{list(spec.graph.input_shape)}")
    return onnx_model, spec, classes


def predict(model_or_run: str, data) -> dict:
    """Predictions for DATA (a built-in set, a file, or an array of raw samples) from an .onnx file or
    a run folder."""
    from dlc.runtime.tools.evaluate import load_inputs
    from dlc.runtime.runs import load_run

    from dlc.runtime.data.lazy import LazyInputs

    def batched(fn, x):  # inputs on disk (an image folder): a chunk at a time
        if not isinstance(x, LazyInputs):
            return fn(x)
        return np.concatenate([fn(chunk) for chunk in x.chunks()])

    path = Path(model_or_run)
    if path.suffix == ".onnx":
        onnx_model, spec, classes = load_onnx(path)
        if onnx_model.takes_text:  # the texts as they are: the model tokenizes them
            from dlc.runtime.tools.evaluate import data_options, text_inputs
            texts, ds = text_inputs(data, data_options(spec), need_labels=False)
            probs = onnx_model.run_texts(texts)["output"]
            x = texts
        else:
            x, ds = load_inputs(spec, data, need_labels=False)
            probs = batched(lambda c: onnx_model.run(c)["output"], x)
        engine = "onnxruntime"
        model = None
    else:
        model = load_run(path)
        spec, classes = model.spec, model.classes
        x, ds = load_inputs(spec, data, need_labels=False, encoder=model.encoder)
        probs = batched(model.predict_proba, x)
        engine = "numpy"
    from dlc.runtime.runs import check_finite_outputs
    check_finite_outputs(probs, data if isinstance(data, str) else "the array")
    result = {"engine": engine, "n": len(x), "output": probs, "task": spec.task}
    if ds.files:  # image files: which file each row is
        result["files"] = np.array(ds.files)
    result["trained_on"] = _trained_on(path, spec, model, data)
    if spec.task == "classification":
        idx = predicted_class(spec.loss, probs)
        result["class_index"] = idx
        result["class_name"] = np.array([classes[i] if i < len(classes) else str(i) for i in idx])
        if ds.y is not None and ds.task == "classification":
            from dlc.runtime.tools.evaluate import model_labels
            truth = model_labels(classes or [str(i) for i in range(probs.shape[1])], ds, data)
            result["accuracy"] = float(np.mean(truth == idx))
    elif ds.y is not None and ds.task == "regression":
        y = ds.y
        from dlc.runtime.data.datasets import targets_refusal
        refusal = targets_refusal(str(data), y, probs.shape[1], spec.loss, True)  # as training judged them
        if refusal is not None:
            message, hint = refusal
            raise DLError(Diagnostic("error", message, None, hint), Source("", str(data)))
        err = probs - y
        result["mae"] = float(np.mean(np.abs(err)))
        result["mse"] = float(np.mean(err * err))
    return result


def _trained_on(path: Path, spec, model, data) -> bool:
    """Is DATA what the model was trained on? A built-in set of the spec's name; for a run, the file its
    data record names (the same path, or the same bytes); for an ONNX file, a file of the same name."""
    if not isinstance(data, str):
        return False
    written = spec.settings.get("data")
    if written is None:
        return False
    if data == written.kind:
        return True
    target = Path(data)
    if model is None:
        return target.name == Path(written.kind).name
    from dlc.runtime.data.record import read
    from dlc.runtime.run_folder import file_sha256
    recorded = list((read(path) or {}).values())
    try:
        if any(target.resolve() == Path(entry["path"]).resolve() for entry in recorded):
            return True
        digest = file_sha256(target) if recorded and target.is_file() else None  # (read once: a copy elsewhere)
    except OSError:
        return False
    return digest is not None and any(entry["sha256"] == digest for entry in recorded)
