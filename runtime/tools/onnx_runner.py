"""onnxruntime inference for exported models."""

from __future__ import annotations

import numpy as np


class OnnxModel:
    def __init__(self, model, threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        data = model.SerializeToString() if hasattr(model, "SerializeToString") else model
        self.session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata = dict(meta)

    @classmethod
    def load(cls, path, threads: int | None = None):
        with open(path, "rb") as f:
            return cls(f.read(), threads)

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        outs = self.session.run(names, {"input": np.ascontiguousarray(x, dtype=np.float32)})
        return dict(zip(names, outs))
