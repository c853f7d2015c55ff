"""Reading a run folder back: the spec as trained, its weights and preprocessing -> a `Model`."""

from __future__ import annotations

import json
from pathlib import Path

from dlc.compiler.diagnostics import Diagnostic, DLError, Source
from dlc.compiler.spec import compile_file
from dlc.runtime import run_folder as rf
from dlc.runtime.data import Preprocess
from dlc.runtime.network import WeightsMismatch, check_weights
from dlc.runtime.trainer import Model


def load_run(run_dir: str | Path, weights: str | Path | None = None) -> Model:
    run_dir = Path(run_dir)
    for name in ("spec.dl", "weights.npz"):
        if not (run_dir / name).exists():
            raise DLError(Diagnostic("error", f"{run_dir} is not a run folder: {name} is missing",
                                     hint="pass the folder dlc train wrote, e.g. runs/digits_mlp"), Source("", str(run_dir)))
    spec = compile_file(run_dir / "spec.dl", lint=False)
    values = rf.load_npz(Path(weights) if weights else run_dir / "weights.npz")
    try:
        check_weights(spec.graph, values)
    except WeightsMismatch as e:
        raise DLError(Diagnostic("error", str(e)), Source("", str(run_dir))) from None
    pre_path = run_dir / "preprocess.npz"
    pre = Preprocess(**rf.load_npz(pre_path)) if pre_path.exists() else Preprocess.identity(spec.graph.input_shape)
    classes = []
    if (run_dir / "metrics.json").exists():
        classes = json.loads((run_dir / "metrics.json").read_text()).get("classes", [])
    return Model(spec, values, pre, classes)
