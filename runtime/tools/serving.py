"""`dlc check --serving`: what the model costs to serve, before it is trained -- its ONNX file's size and
onnxruntime's latency per sample at batch 1 and 64, in float and in int8 (the weights as initialised; int8
calibrated on standard-normal inputs: sizes and speeds, not accuracy, which `export --int8` measures)."""

from __future__ import annotations

import tempfile
from pathlib import Path


def serving_cost(spec) -> dict:
    from onnxruntime.quantization import CalibrationDataReader
    from dlc.compiler.losses import LOSSES
    from dlc.compiler.onnx_export import graph_to_onnx
    from dlc.runtime.tools.export import noise_inputs
    from dlc.runtime.tools.onnx_runner import OnnxModel
    from dlc.runtime.tools.quantize import _Batches, _latency, _pre_process, _quantize
    from dlc.runtime.weights import init_params

    values = init_params(spec.graph, spec["train"]["seed"])
    model = graph_to_onnx(spec.graph, values, label=LOSSES[spec.loss].labels == "index")
    x = noise_inputs(spec, 64)
    reader = type("Reader", (_Batches, CalibrationDataReader), {})
    out: dict = {}
    texts = spec.graph.input_dtype == "int64"  # token ids in (texts of L ids); no int8 for a text model
    with tempfile.TemporaryDirectory(prefix="dlc-serving-") as tmp:
        float_path, prepared, int8_path = (Path(tmp) / n for n in ("float.onnx", "prepared.onnx", "int8.onnx"))
        float_path.write_bytes(model.SerializeToString())
        if not texts:
            _pre_process(float_path, prepared)
            _quantize(prepared, int8_path, reader(x), "minmax", [])
        for kind, path in (("float", float_path),) + ((("int8", int8_path),) if not texts else ()):
            session = OnnxModel.load(path)
            out[kind] = {"bytes": path.stat().st_size, "ms_batch_1": _latency(session, x, 1),
                         "ms_batch_64": _latency(session, x, 64)}
    return out


def serving_text(cost: dict) -> str:
    f, q = cost["float"], cost.get("int8")
    if q is None:  # a text model: float only, token ids in
        return (f"serving (onnxruntime on this CPU, ms per text of L token ids at batch 1 / 64): float "
                f"{f['bytes']:,} bytes, {f['ms_batch_1']:.3f} / {f['ms_batch_64']:.3f} ms (export --int8 does not "
                "quantize text models)")
    return (f"serving (onnxruntime on this CPU, ms per sample at batch 1 / 64): float {f['bytes']:,} bytes, "
            f"{f['ms_batch_1']:.3f} / {f['ms_batch_64']:.3f} ms; int8 {q['bytes']:,} bytes "
            f"({f['bytes'] / q['bytes']:.2f}x smaller), {q['ms_batch_1']:.3f} / {q['ms_batch_64']:.3f} ms")
