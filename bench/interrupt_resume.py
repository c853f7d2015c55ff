"""Interrupt `dlc train` at random moments (SIGINT like Ctrl-C, or SIGKILL), resume, and compare with an
uninterrupted run: epochs, test accuracy, and whether the final weights are bit-identical.

    python bench/interrupt_resume.py [SPEC=specs/digits_mlp.dl] [RUNS=5] [SIGNAL=INT|KILL]
"""

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _train(args, timeout=None, sig=None):
    p = subprocess.Popen([sys.executable, "-m", "dlc", "train", *args, "-q"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(sig)
        return p.wait()


def _summary(run: Path):
    m = json.loads((run / "metrics.json").read_text())
    with np.load(run / "weights.npz") as z:
        w = {k: z[k] for k in z.files}
    return m["epochs_run"], m["test"]["accuracy"], w


def main(spec="specs/digits_mlp.dl", runs=5, sig="INT"):
    signum = {"INT": signal.SIGINT, "KILL": signal.SIGKILL}[sig]
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        _train([spec, "-o", f"{tmp}/ref"])
        full = time.perf_counter() - t0
        ref_epochs, ref_acc, ref_w = _summary(Path(tmp) / "ref")
        print(f"uninterrupted: {ref_epochs} epochs, test {100 * ref_acc:.2f}%, {full:.1f} s")
        same = 0
        for k in range(runs):
            run = f"{tmp}/r{k}"
            at = rng.uniform(0.5, full)
            _train([spec, "-o", run], timeout=at, sig=signum)
            kept = 0
            if (Path(run) / "checkpoint.npz").exists():
                with np.load(Path(run) / "checkpoint.npz") as z:
                    kept = json.loads(z["state"].tobytes())["epoch"]
            code = _train([run, "--resume"])
            epochs, acc, w = _summary(Path(run))
            identical = w.keys() == ref_w.keys() and all(np.array_equal(w[n], ref_w[n]) for n in w)
            same += identical
            print(f"SIG{sig} at {at:.1f} s ({kept} epochs checkpointed), resume exit {code}: {epochs} epochs, test {100 * acc:.2f}%, "
                  f"weights {'bit-identical' if identical else 'DIFFERENT'}")
        print(f"{same} of {runs} resumed runs bit-identical to the uninterrupted one")
        return 0 if same == runs else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    args = sys.argv[1:]
    raise SystemExit(main(args[0] if args else "specs/digits_mlp.dl", int(args[1]) if len(args) > 1 else 5,
                          args[2] if len(args) > 2 else "INT"))
