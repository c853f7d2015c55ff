"""`dlc export --int8`: the run's float ONNX model quantized to int8 by onnxruntime.quantization (static
QDQ: `quant_pre_process`, per-channel int8 weights, uint8 activations calibrated on the run's own training
data), measured against the float model on the run's test split before anything is written, and refused
when it loses more than `max_drop` of accuracy (or adds more than `max_drop` relative MAE). Layers that
quantize badly are left in float where the measurement says so: after a failed try, the node whose output
has the lowest signal-to-quantization-noise ratio (onnxruntime's qdq_loss_debug) stays in float and the
quantization is tried again, up to MAX_FALLBACKS times; the refusal shows the per-layer errors.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.runtime import run_folder as rf
from dlc.runtime.tools.onnx_runner import OnnxModel

CALIBRATIONS = ("minmax", "entropy", "percentile")
MAX_FALLBACKS = 3  # nodes left in float, one per try, before the export is refused
KEEP_FLOAT = ("Softmax",)  # probabilities in uint8 lose the small ones; the argmax is all int8 would save


@dataclass
class Int8Report:
    path: Path
    task: str
    float_score: float  # accuracy (classification) or MAE (regression) on the test split
    int8_score: float
    agreement: float  # top-1 labels equal (classification), or 1.0
    max_output_diff: float
    float_bytes: int
    int8_bytes: int
    latency: dict[str, tuple[float, float]]  # "batch 1" / "batch 64": (float ms, int8 ms) per sample
    samples: int
    calibration: str
    left_float: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        what = "accuracy" if self.task == "classification" else "MAE"
        fmt = (lambda v: f"{100 * v:.2f}%") if self.task == "classification" else (lambda v: f"{v:.4g}")
        out = [f"wrote {self.path} (int8, {self.int8_bytes:,} bytes: {self.float_bytes / self.int8_bytes:.2f}x smaller "
               f"than float; calibration {self.calibration})",
               f"test split ({self.samples} samples): {what} float {fmt(self.float_score)}, int8 "
               f"{fmt(self.int8_score)}" + (f"; top-1 agreement {100 * self.agreement:.2f}%"
                                            if self.task == "classification" else "")
               + f"; largest output difference {self.max_output_diff:.3g}"]
        out += [f"latency per sample, {k}: float {f:.3f} ms, int8 {q:.3f} ms ({f / q:.2f}x)"
                for k, (f, q) in self.latency.items()]
        if self.left_float:
            out.append(f"left in float (quantized badly): {', '.join(self.left_float)}")
        return out


class _Batches:
    """onnxruntime's CalibrationDataReader over raw inputs: batches of 32, or one length at a time for
    series of different lengths (the exported model takes one length per batch)."""

    def __init__(self, x: np.ndarray):
        from dlc.runtime.data.series import by_length
        lengths = by_length(x)
        parts = [x[i:i + 32] for i in range(0, len(x), 32)] if lengths is None else [part for _, part in lengths]
        self._feeds = iter([{"input": np.ascontiguousarray(p, np.float32)} for p in parts])

    def get_next(self):
        return next(self._feeds, None)


def quantize_run(run_dir, out, calibration: str = "minmax", samples: int = 256, max_drop: float = 0.01,
                 keep_bn: bool = False) -> Int8Report:
    from onnxruntime.quantization import CalibrationDataReader
    from dlc.runtime.data.splits import prepare
    from dlc.runtime.runs import load_run
    from dlc.runtime.tools.export import build, compare

    if calibration not in CALIBRATIONS:
        raise DLError(Diagnostic("error", f"--calibration {calibration}: expected one of {', '.join(CALIBRATIONS)}"))
    if samples < 1:
        raise DLError(Diagnostic("error", f"--samples {samples}: int8 calibration needs at least 1 training input",
                                 hint="leave --samples out (256 inputs), or give a positive number"))
    if max_drop < 0:
        raise DLError(Diagnostic("error", f"--max-drop {100 * max_drop:g}: the points int8 may lose cannot be negative",
                                 hint="leave --max-drop out (1 point), or give 0 or more"))
    model = load_run(run_dir)
    if model.encoder is not None:
        raise DLError(Diagnostic("error", f"{run_dir} is a text model: export --int8 quantizes models of numbers "
                                          "(static QDQ calibrated on float inputs); a text model's embedding table and "
                                          "tokenizer are not quantized", hint=f"export it in float: dlc export {run_dir} -o MODEL.onnx"))
    splits = prepare(model.spec)
    invert = splits.preprocess.invert
    calib = invert(np.asarray(splits.x_train[:samples]))  # raw, as the exported model takes them (no augmentation)
    x_test, y_test = invert(np.asarray(splits.x_test)), splits.y_test
    if len(x_test) == 0:
        x_test, y_test = calib, splits.y_train[:samples]  # no test split: the calibration inputs themselves
    float_model = build(model, keep_bn)
    compare(model, float_model, calib)  # the float model first: verified against the NumPy runtime
    reader = type("Reader", (_Batches, CalibrationDataReader), {})
    task = model.spec.task
    with tempfile.TemporaryDirectory(prefix="dlc-int8-") as tmp:
        float_path, prepared = Path(tmp) / "float.onnx", Path(tmp) / "prepared.onnx"
        float_bytes = float_model.SerializeToString()
        float_path.write_bytes(float_bytes)
        _pre_process(float_path, prepared)
        float_session = OnnxModel.load(float_path)
        fp = float_session.run(x_test)["output"]
        float_score = _score(task, fp, y_test)
        left: list[str] = []
        while True:
            int8_path = Path(tmp) / f"int8-{len(left)}.onnx"
            _quantize(prepared, int8_path, reader(calib), calibration, left)
            int8_session = OnnxModel.load(int8_path)
            q = int8_session.run(x_test)["output"]
            int8_score = _score(task, q, y_test)
            drop = (float_score - int8_score) if task == "classification" else \
                (int8_score - float_score) / max(float_score, 1e-12)
            if drop <= max_drop:
                break
            errors = _layer_errors(prepared, int8_path, reader(calib), Path(tmp))
            worst = next((name for name, _ in errors if name not in left), None)
            if len(left) >= MAX_FALLBACKS or worst is None:
                raise _refusal(task, float_score, int8_score, max_drop, errors, left)
            left.append(worst)
        data = int8_path.read_bytes()
        latency = {f"batch {b}": (_latency(float_session, x_test, b), _latency(int8_session, x_test, b))
                   for b in (1, 64)}
    rf.atomic_write_bytes(Path(out), data)
    agreement = float(np.mean(fp.argmax(1) == q.argmax(1))) if task == "classification" else 1.0
    return Int8Report(Path(out), task, float_score, int8_score, agreement, float(np.max(np.abs(fp - q))),
                      len(float_bytes), len(data), latency, len(x_test), calibration, left)


def _pre_process(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import quant_pre_process
    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    except Exception:  # onnxruntime's optimizer refused the graph: quantize it as exported
        dst.write_bytes(src.read_bytes())


def _quantize(src: Path, dst: Path, reader, calibration: str, left: list[str]) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    source = onnx.load(str(src))
    keep = [n.name for n in source.graph.node if n.op_type in KEEP_FLOAT or n.name.startswith("preprocess")] + left
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[calibration]
    with contextlib.redirect_stdout(io.StringIO()):  # (its entropy and percentile calibrators print progress)
        quantize_static(str(src), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=keep,
                        calibrate_method=method)
    model = onnx.load(str(dst))  # the float model's metadata (spec, classes, task) goes with the int8 one
    del model.metadata_props[:]
    for p in source.metadata_props:
        model.metadata_props.add(key=p.key, value=p.value)
    model.metadata_props.add(key="quantization", value=f"int8 static QDQ, per-channel weights, {calibration}")
    onnx.save(model, str(dst))


def _layer_errors(prepared: Path, int8_path: Path, reader_float, tmp: Path) -> list[tuple[str, float]]:
    """(node, signal-to-quantization-noise ratio in dB of its output) for the quantized nodes, worst first."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (collect_activations, compute_activation_error,
                                                         create_activation_matching,
                                                         modify_model_output_intermediate_tensors)
    aug_float, aug_int8 = tmp / "aug-float.onnx", tmp / "aug-int8.onnx"
    modify_model_output_intermediate_tensors(str(prepared), str(aug_float))
    modify_model_output_intermediate_tensors(str(int8_path), str(aug_int8))
    feeds = list(iter(reader_float.get_next, None))  # (collect_activations iterates over its reader)
    float_acts = collect_activations(str(aug_float), feeds)
    int8_acts = collect_activations(str(aug_int8), feeds)
    errors = compute_activation_error(create_activation_matching(int8_acts, float_acts))
    producer = {o: n.name for n in onnx.load(str(prepared)).graph.node for o in n.output}
    rows = [(producer[t], float(e["xmodel_err"])) for t, e in errors.items() if t in producer and "xmodel_err" in e]
    return sorted(rows, key=lambda r: r[1])


def _refusal(task, float_score, int8_score, max_drop, errors, left) -> DLError:
    if task == "classification":
        what, change = "accuracy", f"{100 * float_score:.2f}% -> {100 * int8_score:.2f}%"
        allowed = f"{100 * max_drop:g} points"
    else:
        what, change = "MAE", f"{float_score:.4g} -> {int8_score:.4g}"
        allowed = f"{100 * max_drop:g}% more"
    listed = "; ".join(f"{name} {db:.1f} dB" for name, db in errors[:5])
    return DLError(Diagnostic(
        "error", f"the int8 model loses too much {what} on the test split: {change} (allowed: "
                 f"{allowed}); nothing written" + (f"; left in float: {', '.join(left)}" if left else "")
                 + (f". Signal-to-quantization-noise per layer, worst first: {listed}" if listed else ""),
        hint="export in float (without --int8), try --calibration entropy or percentile, or raise --max-drop"))


def _score(task: str, out: np.ndarray, y: np.ndarray) -> float:
    if task == "classification":
        return float(np.mean(out.argmax(1) == np.asarray(y)))
    return float(np.mean(np.abs(out - np.asarray(y).reshape(out.shape))))


def _latency(model: OnnxModel, x: np.ndarray, batch: int, repeats: int = 5) -> float:
    """Median ms per sample over `repeats` runs of one batch (threads: onnxruntime's default)."""
    xb = x[:batch] if len(x) >= batch else np.concatenate([x] * (batch // max(len(x), 1) + 1))[:batch]
    model.run(xb)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.run(xb)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times)) / len(xb)
