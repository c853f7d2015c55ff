"""`dlc export`: a run folder -> a verified ONNX file.

The model is checked with onnx.checker (full_check), run through onnxruntime on real inputs from
the run's data and compared with the NumPy runtime; a model that disagrees is not written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlc.version import __version__
from dlc.compiler.losses import LOSSES
from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.runtime import run_folder as rf
from dlc.runtime.tools.onnx_runner import OnnxModel
from dlc.runtime.runs import check_finite_outputs, load_run
from dlc.runtime.inference import Model

ATOL = 1e-5
RTOL = 1e-5


@dataclass
class ExportReport:
    path: Path | None
    max_abs_diff: float
    samples: int
    folded_bn: int
    onnx_nodes: int
    size_bytes: int
    real: bool = True  # compared on the run's own data (else on standard-normal inputs: the spec has none)


def has_data(spec) -> bool:
    """Whether the spec names its data (a run dlc import wrote from a foreign model has no data line)."""
    data = spec.settings.get("data")
    return data is not None and data.written


def noise_inputs(spec, n: int) -> np.ndarray:
    """n seeded standard-normal inputs of the model's input shape: what a model is compared on without data."""
    return np.random.default_rng(0).normal(0, 1, (n,) + tuple(spec.graph.input_shape)).astype(np.float32)


def real_inputs(model: Model, n: int = 256) -> np.ndarray:
    """Raw inputs from the run's own data (test split first), as a deployed model would receive them; a run
    whose spec has no data line: seeded standard-normal inputs."""
    from dlc.runtime.data.splits import prepare
    if not has_data(model.spec):
        return noise_inputs(model.spec, n)
    splits = prepare(model.spec)
    x = np.concatenate([splits.x_test[:n], splits.x_val[:n], splits.x_train[:n]])[:n]  # (a lazy split: n rows)
    return splits.preprocess.invert(x)


def build(model: Model, keep_bn: bool = False):
    from dlc.compiler.onnx_export import graph_to_onnx
    spec = model.spec
    metadata = {"dlc_version": __version__, "spec": spec.source.text, "classes": model.classes,
                "task": spec.task, "loss": spec.loss, "preprocessing": "included: x * mul + add",
                "batchnorm": "kept" if keep_bn else "folded"}
    return graph_to_onnx(spec.graph, model.values, preprocess=model.preprocess, keep_bn=keep_bn,
                         label=LOSSES[spec.loss].labels == "index", metadata=metadata)


def compare(model: Model, onnx_model, x_raw: np.ndarray) -> float:
    ref = model.predict_proba(x_raw)
    got = OnnxModel(onnx_model).run(x_raw)["output"]
    if ref.shape != got.shape:
        raise DLError(Diagnostic("error", f"the ONNX model's output is {got.shape}, the NumPy runtime's {ref.shape}; "
                                          "nothing written", hint="report this as a bug"))
    check_finite_outputs(ref, "the run's own data", "nothing written")
    check_finite_outputs(got, "the run's own data (in onnxruntime)", "nothing written")
    diff = float(np.max(np.abs(got - ref))) if ref.size else 0.0
    if ref.size and not np.all(np.abs(got - ref) <= ATOL + RTOL * np.abs(ref)):
        raise DLError(Diagnostic("error", f"the ONNX model disagrees with the NumPy runtime: max abs difference "
                                          f"{diff:.3g} (tolerance {ATOL:g} + {RTOL:g}*|x|); nothing written",
                                 hint="rerun with --keep-bn to rule out batchnorm folding, and report this as a bug"))
    return diff


def export_run(run_dir: str | Path, out: str | Path, keep_bn: bool = False, samples: int = 256) -> ExportReport:
    if samples < 1:
        raise DLError(Diagnostic("error", f"--samples {samples}: the export is verified on at least 1 real input",
                                 hint="leave --samples out (256 inputs), or give a positive number"))
    model = load_run(run_dir)
    onnx_model = build(model, keep_bn)
    x = real_inputs(model, samples)
    diff = compare(model, onnx_model, x)
    data = onnx_model.SerializeToString()
    rf.atomic_write_bytes(Path(out), data)
    folded = 0 if keep_bn else sum(1 for n in model.spec.graph.nodes if n.op == "batchnorm") - \
        sum(1 for n in onnx_model.graph.node if n.op_type == "BatchNormalization")
    return ExportReport(Path(out), diff, len(x), folded, len(onnx_model.graph.node), len(data), has_data(model.spec))
