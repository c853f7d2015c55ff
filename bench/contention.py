"""BLAS threads under contention: `dlc train` wall time on an idle machine and beside busy processes.

    python bench/contention.py [SPEC=specs/resnet_digits.dl] [EPOCHS=3] [BUSY=cores]

Runs the spec in a fresh process (so the BLAS library reads its environment anew) for each setting:
  dlc default        OPENBLAS_THREAD_TIMEOUT=4 (dlc/__init__.py), BLAS threads = cores
  spinning threads   OPENBLAS_THREAD_TIMEOUT=28 (OpenBLAS's own default: threads spin ~2^28 cycles)
  train threads=1    one BLAS thread
each idle and then beside BUSY processes that spin on a core each (what a second training, a compile or
a browser does to a laptop). Prints one table of wall times.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _spin() -> None:
    while True:
        pass


def _train(spec: Path, epochs: int, env: dict, threads: int | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, "-m", "dlc", "train", str(spec), "-q", "-o", str(Path(tmp) / "run"),
                "--set", f"train.epochs={epochs}"]
        if threads:
            args += ["--set", f"train.threads={threads}"]
        t0 = time.perf_counter()
        subprocess.run(args, env=env, check=True, capture_output=True)
        return time.perf_counter() - t0


def main(spec: str = "specs/resnet_digits.dl", epochs: int = 3, busy: int | None = None) -> None:
    spec_path = ROOT / spec
    busy = busy or os.cpu_count() or 1
    base = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    base["PYTHONPATH"] = os.pathsep.join([str(ROOT), *sys.path])
    settings = [("dlc default (thread timeout 4)", dict(base, OPENBLAS_THREAD_TIMEOUT="4"), None),
                ("spinning threads (timeout 28)", dict(base, OPENBLAS_THREAD_TIMEOUT="28"), None),
                ("train threads=1", dict(base, OPENBLAS_THREAD_TIMEOUT="4"), 1)]
    rows = []
    for load in ("idle", f"{busy} busy"):
        procs = []
        if load != "idle":
            procs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(busy)]
            for p in procs:
                p.start()
        try:
            for name, env, threads in settings:
                rows.append((load, name, _train(spec_path, epochs, env, threads)))
                print(f"{load:8s} {name:32s} {rows[-1][2]:7.1f} s", flush=True)
        finally:
            for p in procs:
                p.terminate()
    print(f"\n{spec}, {epochs} epochs, {os.cpu_count()} cores")


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0] if a else "specs/resnet_digits.dl", int(a[1]) if len(a) > 1 else 3, int(a[2]) if len(a) > 2 else None)
