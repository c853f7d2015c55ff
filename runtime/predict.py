"""`dlc predict`: predictions for a data set, from an ONNX file (onnxruntime) or a run folder (NumPy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlc.compiler.diagnostics import Diagnostic, DLError, Source
from dlc.compiler.spec import compile as compile_spec
from dlc.runtime.losses import predicted_class


def predict(model_or_run: str, data: str) -> dict:
    from dlc.runtime.evaluate import load_inputs
    from dlc.runtime.runs import load_run

    path = Path(model_or_run)
    if path.suffix == ".onnx":
        from dlc.runtime.onnx_runner import OnnxModel
        if not path.exists():
            raise DLError(Diagnostic("error", f"no such file: {path}"), Source("", str(path)))
        onnx_model = OnnxModel.load(path)
        if "spec" not in onnx_model.metadata:
            raise DLError(Diagnostic("error", f"{path} was not exported by dlc (no spec in its metadata)"))
        spec = compile_spec(onnx_model.metadata["spec"], f"{path}:spec", lint=False)
        x, ds = load_inputs(spec, data)
        probs = onnx_model.run(x)["output"]
        classes, engine = onnx_model.classes, "onnxruntime"
    else:
        model = load_run(path)
        spec = model.spec
        x, ds = load_inputs(spec, data)
        probs = model.predict_proba(x)
        classes, engine = model.classes, "numpy"
    result = {"engine": engine, "n": len(x), "output": probs}
    if spec.task == "classification":
        idx = predicted_class(spec.loss, probs)
        result["label"] = idx
        result["class"] = np.array([classes[i] if i < len(classes) else str(i) for i in idx])
        if ds.task == "classification" and len(ds.y) == len(idx):
            truth = np.array([ds.classes[i] for i in ds.y])
            result["accuracy"] = float(np.mean(truth == result["class"]))
    return result
