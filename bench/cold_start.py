"""Cold start: how long `dlc train SPEC` spends outside its training loop (wall minus the training
seconds it reports in metrics.json), in a new process each time, and where an import goes.

    python bench/cold_start.py [SPEC=specs/digits_mlp.dl] [RUNS=5] [EPOCHS=1]

The training seconds run from the first epoch's start to the end of the last epoch; the rest is
interpreter start-up, imports, compiling the spec, loading and splitting the data, the final
evaluation and writing the run folder (weights, metrics, curves). Also: the time from the last line
the command prints to the process's exit (what is left to do once the user has the result).
The goal (issue 26): a 1-epoch built-in-set run at most 1.0 s outside its epochs on an idle machine,
from the second run on (the first loads the set and draws its split through scikit-learn and caches
both: runtime/data/array_cache.py).
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


def one(spec: str, epochs: int | None = None) -> tuple[float, float, float]:
    """(wall, training seconds, seconds from the last printed line to the exit) of one run."""
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--set", f"train.epochs={epochs}"] if epochs else []
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "dlc", "train", spec, "-o", f"{tmp}/run", "-q", *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
        last = t0
        for _ in proc.stdout:
            last = time.perf_counter()
        if proc.wait():
            raise SystemExit(f"dlc train {spec} failed")
        end = time.perf_counter()
        return end - t0, json.loads(Path(f"{tmp}/run/metrics.json").read_text())["seconds"], end - last


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


def main(spec: str = "specs/digits_mlp.dl", runs: int = 5, epochs: int = 1) -> None:
    epochs = int(epochs) or None
    one(spec, epochs)  # warm the file cache, the grammar cache and the data set's array cache
    rows = [one(spec, epochs) for _ in range(int(runs))]
    outside = [w - t for w, t, _ in rows]
    tail = [x for _, _, x in rows]
    print(f"{spec} ({epochs or 'all'} epoch(s)): wall {statistics.median(w for w, _, _ in rows):.2f} s, training "
          f"{statistics.median(t for _, t, _ in rows):.2f} s, outside the training loop median "
          f"{statistics.median(outside):.2f} s (range {min(outside):.2f}-{max(outside):.2f}, {runs} runs); "
          f"last line to exit median {statistics.median(tail) * 1000:.0f} ms")
    print("slowest top-level imports: " + ", ".join(f"{name} {s:.2f} s" for s, name in imports(spec)))


if __name__ == "__main__":
    main(*sys.argv[1:])
