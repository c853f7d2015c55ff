"""Run under torchrun by tests/runtime/test_torch_distributed.py (or alone, as one process): train a spec's
engine in float64 for some steps on the trainer's batches and save the final weights (rank 0)."""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_parity import batches, noiseless  # noqa: E402

from dlc.runtime.data.splits import prepare  # noqa: E402
from dlc.runtime.numpy_engine.network import init_params  # noqa: E402
from dlc.runtime.torch_engine.engine import TorchEngine  # noqa: E402


def main(spec_path: str, steps: int, out: str) -> None:
    spec = noiseless(Path(spec_path))
    splits = prepare(spec)
    engine = TorchEngine(spec, init_params(spec.graph, spec["train"]["seed"], dtype=np.float64),
                         dtype=torch.float64, device=torch.device("cpu"))
    losses = []
    for x, y, lr in batches(spec, splits, np.float64, steps):
        loss, _ = engine.step(x, y, lr)
        losses.append(loss)
    if engine.rank == 0:
        np.savez(out, __losses__=np.array(losses), **engine.weights())
    engine.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
