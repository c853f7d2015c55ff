"""Reading a run folder back: the spec as trained, its weights and preprocessing -> a `Model`."""

from __future__ import annotations

from pathlib import Path

from dlc.compiler.diagnostics import Diagnostic, DLError, Source
from dlc.compiler.spec import compile_file
from dlc.runtime import data_record
from dlc.runtime import run_folder as rf
from dlc.runtime.data import Preprocess
from dlc.runtime.network import WeightsMismatch, check_weights
from dlc.runtime.trainer import Model


def _not_a_run(run_dir: Path, missing: str) -> DLError:
    return DLError(Diagnostic("error", f"{run_dir} is not a run folder: {missing} is missing",
                              hint="pass the folder dlc train wrote, e.g. runs/digits_mlp"), Source("", str(run_dir)))


def final_weights(run_dir: Path) -> dict:
    """weights.npz; after a kill, which leaves none, the weights the last checkpoint stands for."""
    path = run_dir / rf.WEIGHTS
    if path.exists():
        return rf.load_npz(path, "the trained weights", finite=True)
    ckpt = rf.load_checkpoint(run_dir)
    if ckpt is None:
        raise _not_a_run(run_dir, rf.WEIGHTS)
    groups, _ = ckpt
    return groups["best"] or groups["weights"]


def load_run(run_dir: str | Path, weights: str | Path | None = None) -> Model:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DLError(Diagnostic("error", f"no such run folder: {run_dir}",
                                 hint="pass the folder dlc train wrote, e.g. runs/digits_mlp"), Source("", str(run_dir)))
    if not (run_dir / rf.SPEC).exists():
        raise _not_a_run(run_dir, rf.SPEC)
    spec = compile_file(run_dir / rf.SPEC, lint=False, data_files=data_record.read(run_dir))
    values = rf.load_npz(Path(weights), "weights", finite=True) if weights else final_weights(run_dir)
    try:
        check_weights(spec.graph, values)
    except WeightsMismatch as e:
        raise DLError(Diagnostic("error", str(e)), Source("", str(run_dir))) from None
    pre_path = run_dir / rf.PREPROCESS
    if pre_path.exists():
        arrays = rf.load_npz(pre_path, "the input preprocessing", finite=True)
        shape = tuple(spec.graph.input_shape)
        if set(arrays) != {"mul", "add"} or any(a.shape != shape for a in arrays.values()):
            raise DLError(Diagnostic("error", f"{pre_path} is damaged: expected arrays mul and add of shape "
                                              f"{'x'.join(map(str, shape))}", hint="train the run again"))
        pre = Preprocess(**arrays)
    else:
        pre = Preprocess.identity(spec.graph.input_shape)
    classes = []
    if (run_dir / rf.METRICS).exists():
        classes = rf.load_json(run_dir / rf.METRICS, "the run's metrics").get("classes", [])
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise DLError(Diagnostic("error", f"{run_dir / rf.METRICS} is damaged: 'classes' is not a list of names"))
    return Model(spec, values, pre, classes)
