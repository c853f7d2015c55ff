"""Peak memory of training LeNet on 60,000 synthetic 28x28 images (one epoch), in a new process,
against the goal: under twice the float32 data plus 1 GiB.

    python bench/memory_lenet.py [N=60000] [EPOCHS=1]
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import LENET  # noqa: E402


def main(n: int = 60000, epochs: int = 1) -> None:
    n, epochs = int(n), int(epochs)
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(n, 1, 28, 28)).astype(np.float32)
        y = rng.integers(0, 10, n)
        np.savez(f"{tmp}/data.npz", x=x, y=y)
        data_bytes = x.nbytes
        del x
        spec = Path(tmp) / "lenet.dl"
        spec.write_text(LENET.replace("optimizer adam lr=1e-3\n", f'data "data.npz" test=0.1\noptimizer adam lr=1e-3\n'
                                      f"train epochs={epochs} batch=64 validation=0.1 seed=0\n"))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dlc", "train", str(spec), "-o", f"{tmp}/run", "-q"], check=True,
                       cwd=ROOT, capture_output=True)
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux reports KiB
    limit = 2 * data_bytes + (1 << 30)
    print(f"LeNet on {n:,} 28x28 images, {epochs} epoch(s), {wall:.1f} s: peak RSS {peak / 2**20:,.0f} MiB; "
          f"float32 data {data_bytes / 2**20:,.0f} MiB; goal < 2x data + 1 GiB = {limit / 2**20:,.0f} MiB: "
          f"{'met' if peak < limit else 'not met'} ({peak / limit:.2f} of it)")


if __name__ == "__main__":
    main(*sys.argv[1:])
