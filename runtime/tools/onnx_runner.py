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
        from dlc.runtime.data.series import by_length
        names = [o.name for o in self.session.get_outputs()]
        parts = by_length(x)
        if parts is None:
            return dict(zip(names, self._run(names, x)))
        outs: list = [None] * len(names)
        for rows, part in parts:
            for k, value in enumerate(self._run(names, part)):
                if outs[k] is None:
                    outs[k] = np.empty((len(x),) + value.shape[1:], value.dtype)
                outs[k][rows] = value
        return dict(zip(names, outs))

    @property
    def takes_text(self) -> bool:
        """A string-in model (dlc's word or character tokenizer in the graph): texts in, as strings."""
        return self.session.get_inputs()[0].type == "tensor(string)"

    def run_texts(self, texts: list[str], chunk: int = 1024) -> dict[str, np.ndarray]:
        """A string-in model's outputs for the texts (a batch [N]: the graph runs each on its own), in order."""
        names = [o.name for o in self.session.get_outputs()]
        name = self.session.get_inputs()[0].name
        runs = [self.session.run(names, {name: np.array(texts[k:k + chunk], dtype=object)})
                for k in range(0, len(texts), chunk)]
        return {n: np.concatenate([r[k] for r in runs]) for k, n in enumerate(names)}

    def _run(self, names, x):
        first = self.session.get_inputs()[0]  # "input" in dlc's models; whatever a foreign one calls it
        if first.type == "tensor(int64)" and x.ndim == 3:  # token ids: the batch's (N, 1, L) whole numbers
            return self.session.run(names, {first.name: np.ascontiguousarray(x[:, 0, :], dtype=np.int64)})
        return self.session.run(names, {first.name: np.ascontiguousarray(x, dtype=np.float32)})
