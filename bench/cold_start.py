"""Cold start: how long `dlc train SPEC` spends outside its training loop (wall minus the training
seconds it reports in metrics.json), in a new process each time, and where an import goes.

    python bench/cold_start.py [SPEC=specs/digits_mlp.dl] [RUNS=5]

The training seconds run from the first epoch's start to the end of the last epoch; the rest is
interpreter start-up, imports, compiling the spec, loading and splitting the data, the final
evaluation and writing the run folder (weights, metrics, curves).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one(spec: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dlc", "train", spec, "-o", f"{tmp}/run", "-q"], check=True,
                       capture_output=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        return wall, json.loads(Path(f"{tmp}/run/metrics.json").read_text())["seconds"]


def imports(spec: str) -> list[tuple[float, str]]:
    """The slowest top-level imports of one run (python -X importtime), in seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        err = subprocess.run([sys.executable, "-X", "importtime", "-m", "dlc", "train", spec, "-o", f"{tmp}/run", "-q"],
                             capture_output=True, text=True, cwd=ROOT).stderr
    out = []
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            if not name.startswith("  ") and cumulative.strip().isdigit():
                out.append((int(cumulative) / 1e6, name.strip()))
    return sorted(out, reverse=True)[:6]


def main(spec: str = "specs/digits_mlp.dl", runs: int = 5) -> None:
    one(spec)  # warm the file cache and the grammar cache
    rows = [one(spec) for _ in range(int(runs))]
    outside = [w - t for w, t in rows]
    print(f"{spec}: wall {statistics.median(w for w, _ in rows):.2f} s, training {statistics.median(t for _, t in rows):.2f} s, "
          f"outside the training loop median {statistics.median(outside):.2f} s "
          f"(range {min(outside):.2f}-{max(outside):.2f}, {runs} runs)")
    print("slowest top-level imports: " + ", ".join(f"{name} {s:.2f} s" for s, name in imports(spec)))


if __name__ == "__main__":
    main(*sys.argv[1:])
