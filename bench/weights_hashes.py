"""Behaviour unchanged, bit for bit: the sha256 of every array of the final weights of a few specs trained
briefly on each engine (NumPy, and torch when it is installed) with threads=1, written to a JSON file; run it
before and after a refactor and compare (`diff before.json after.json`). The kernels' move out of the compiler
(issue 27) kept all six NumPy hashes; the rest of issue 27 kept all thirteen (genetic_xor's too).

    python bench/weights_hashes.py OUT.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from dlc.compiler.spec import compile_file
from dlc.runtime.trainer import train

ROOT = Path(__file__).resolve().parent.parent
RUNS = [("digits_mlp", 2), ("resnet_digits", 1), ("all_ops", 2), ("lenet", 1), ("inception_digits", 1), ("spiral", 5),
        ("experiments/genetic_xor", 3)]
NUMPY_ONLY = {"experiments/genetic_xor"}  # a gradient-free optimizer: the torch engine refuses it


def engines() -> list[str]:
    try:
        import torch  # noqa: F401
    except ImportError:
        return ["numpy"]
    return ["numpy", "torch"]


def main(out: str) -> None:
    hashes = {}
    for engine in engines():
        for name, epochs in RUNS:
            if engine != "numpy" and name in NUMPY_ONLY:
                continue
            spec = compile_file(ROOT / "specs" / f"{name}.dl",
                                overrides=[f"train.epochs={epochs}", "train.threads=1", f"train.engine={engine}"])
            r = train(spec, write=False, progress=False)
            h = hashlib.sha256()
            for k in sorted(r.model.values):
                h.update(k.encode())
                h.update(np.ascontiguousarray(r.model.values[k]).tobytes())
            key = name if engine == "numpy" else f"{name}@{engine}"
            hashes[key] = h.hexdigest()
            print(key, hashes[key][:16])
    Path(out).write_text(json.dumps(hashes, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
