"""Inference throughput of exported models: onnxruntime vs the NumPy runtime, batch 1 and 256.

    python bench/inference_throughput.py

Trains specs/digits_mlp.dl and specs/lenet.dl briefly (throughput does not depend on accuracy),
exports them and times both runtimes on real inputs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import dlc
from dlc.runtime.tools.export import build, real_inputs
from dlc.runtime.tools.onnx_runner import OnnxModel
from dlc.runtime.trainer import train

ROOT = Path(__file__).resolve().parent.parent


def timed(fn, x, min_seconds=1.0):
    fn(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_seconds:
        fn(x)
        n += 1
    return n * len(x) / (time.perf_counter() - t0)


def main():
    for name in ("digits_mlp", "lenet"):
        spec = dlc.compile_file(ROOT / f"specs/{name}.dl", overrides=["train.epochs=1"])
        with tempfile.TemporaryDirectory() as tmp:
            model = train(spec, out=Path(tmp) / "run", progress=False, max_steps=5).model
        onnx_rt = OnnxModel(build(model))
        x = real_inputs(model, 256)
        for batch in (1, 256):
            xb = x[:batch]
            ort = timed(lambda v: onnx_rt.run(v), xb)
            npy = timed(lambda v: model.predict_proba(v), xb)
            print(f"{name:10s} batch {batch:3d}: onnxruntime {ort:10.0f} samples/s | numpy {npy:10.0f} samples/s "
                  f"| ratio {ort / npy:.1f}x", flush=True)


if __name__ == "__main__":
    main()
