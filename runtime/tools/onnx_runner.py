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
        """The model's outputs for x. Series of different lengths (NaN after each one's steps) go through
        as one batch per length, each at its own length, the outputs back in x's order."""
        names = [o.name for o in self.session.get_outputs()]
        if x.ndim == 3 and x.size and np.isnan(x[:, 0, -1]).any():
            from dlc.runtime.data.series import lengths
            steps = lengths(x)
            parts = {int(n): self._run(names, x[steps == n, :, :n]) for n in np.unique(steps)}
            outs = [np.empty((len(x),) + parts[int(steps[0])][k].shape[1:], parts[int(steps[0])][k].dtype)
                    for k in range(len(names))]
            for n, part in parts.items():
                for out, value in zip(outs, part):
                    out[steps == n] = value
            return dict(zip(names, outs))
        return dict(zip(names, self._run(names, x)))

    def _run(self, names, x):
        name = self.session.get_inputs()[0].name  # "input" in dlc's models; whatever a foreign one calls it
        return self.session.run(names, {name: np.ascontiguousarray(x, dtype=np.float32)})
