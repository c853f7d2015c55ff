"""`dlc import MODEL.onnx -o RUN`: an ONNX model as a run folder (spec.dl, weights.npz under dlc's names,
preprocess.npz, metrics.json with the class names) that check, eval, predict, export and `init from` read
like any run. The imported model's outputs are compared with the source's (onnxruntime) before anything
is written: on the spec's own data for dlc's exports whose data is at hand, else on seeded standard-normal
inputs of the model's input shape."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.runtime import run_folder as rf
from dlc.runtime.tools import onnx_import

ATOL = RTOL = 1e-5


@dataclass
class ImportReport:
    run_dir: Path
    own: bool
    layers: int
    params: int
    samples: int
    max_abs_diff: float
    inputs: str  # what the outputs were compared on


def import_model(src, out, samples: int = 64, overwrite: bool = False) -> ImportReport:
    from dlc.compiler.spec import compile as compile_spec
    from dlc.runtime.inference import Model
    from dlc.runtime.tools.onnx_runner import OnnxModel
    from dlc.runtime.weights import WeightsMismatch, check_weights

    src, out = Path(src), Path(out)
    if samples < 1:
        raise DLError(Diagnostic("error", f"--samples {samples}: the import is verified on at least 1 input",
                                 hint="leave --samples out (64 inputs), or give a positive number"))
    if not src.is_file():
        raise DLError(Diagnostic("error", f"no such ONNX file: {src}", hint="give the path of a .onnx file"))
    imported = onnx_import.read(src)
    try:
        spec = compile_spec(imported.spec_text, str(out / rf.SPEC), lint=False)  # (data paths as the run reads them)
    except DLError as e:  # what the file computes, dlc refuses to write (e.g. a pool window that drops a row)
        first = e.diagnostics[0]
        line = imported.spec_text.splitlines()[first.span.line - 1].strip() if first.span else ""
        raise DLError(Diagnostic("error", f"{src}: dlc cannot describe it: {first.message}"
                                          + (f" (the line it reads as: {line})" if line else "") + "; nothing written",
                                 hint=first.hint)) from None
    values = imported.weights if imported.own else onnx_import.weight_names(spec.graph, imported.layers)
    try:
        check_weights(spec.graph, values)
    except WeightsMismatch as e:
        raise DLError(Diagnostic("error", f"{src}: its weights do not fit the spec read from it: {e}",
                                 hint="report this as a bug")) from None
    pre = imported_preprocess(imported, spec)
    model = Model(spec, values, pre, imported.classes)
    x, inputs = _inputs(spec, samples)
    source = OnnxModel.load(src).run(x)
    theirs = source.get("output", next(iter(source.values())))
    ours = model.predict_proba(x)
    diff = float(np.max(np.abs(ours - theirs))) if ours.size else 0.0
    if ours.shape != theirs.shape or not np.all(np.abs(ours - theirs) <= ATOL + RTOL * np.abs(theirs)):
        raise DLError(Diagnostic("error", f"{src}: the imported model's outputs differ from the source's on {inputs} "
                                          f"(max abs difference {diff:.3g}); nothing written",
                                 hint="report this as a bug, with the .onnx file"))
    rf.make_dir(out)
    with rf.RunLock(out):
        rf.claim(out, spec.name, overwrite=overwrite)
        rf.atomic_write_text(out / rf.SPEC, _readable(imported.spec_text))
        rf.save_npz(out / rf.WEIGHTS, values)
        rf.save_npz(out / rf.PREPROCESS, rf.preprocess_arrays(pre, imported.classes))
        rf.save_json(out / rf.METRICS, {"classes": imported.classes, "imported_from": str(src),
                                        "engine": "import", "history": []})
        from dlc.compiler.picture import render
        rf.atomic_write_text(out / rf.NETWORK, render(spec.graph, ".svg"))
    params = sum(p.size for p in spec.graph.params())
    return ImportReport(out, imported.own, len(spec.graph.layers) - 1, params, len(x), diff, inputs)


def imported_preprocess(imported, spec):
    """The input map an ONNX file holds (dlc's `preprocess.*` initializers, per channel for a variable time
    axis) at the spec's input shape, with the spec's znorm; the identity when it holds none."""
    from dlc.runtime.data.splits import Preprocess, znorm_of
    shape = tuple(spec.graph.input_shape)
    pre = Preprocess.identity(shape)
    if imported.mul is not None and imported.add is not None:
        pre = Preprocess(np.broadcast_to(imported.mul, shape).astype(np.float32).copy(),
                         np.broadcast_to(imported.add, shape).astype(np.float32).copy())
    pre.per_series = znorm_of(spec)  # (the graph does it; the spec says so)
    return pre


def _inputs(spec, samples: int) -> tuple[np.ndarray, str]:
    """Raw inputs to compare the two models on: the spec's own data when it can be read, else seeded noise."""
    from dlc.runtime.tools.export import has_data, noise_inputs
    if has_data(spec):
        try:
            from dlc.runtime.data.splits import prepare
            splits = prepare(spec)
            x = splits.preprocess.invert(np.asarray(splits.x_train[:samples]))
            return x, f"{len(x)} real inputs"
        except DLError:
            pass  # the data is not here (a file beside the original spec): noise below
    return noise_inputs(spec, samples), f"{samples} standard-normal inputs"


def _readable(text: str) -> str:
    """The spec as `dlc fmt` writes it."""
    from dlc.formatting import format_spec
    return format_spec(text)
