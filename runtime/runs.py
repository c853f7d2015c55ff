"""Reading a run folder back: the spec as trained, its weights and preprocessing -> a `Model`."""

from __future__ import annotations

from pathlib import Path

from dlc.compiler.diagnostics import Diagnostic, DLError, Source
from dlc.compiler.spec import compile_file
from dlc.runtime.data import record as data_record
from dlc.runtime import run_folder as rf
from dlc.runtime.data.splits import Preprocess, znorm_of
from dlc.runtime.weights import WeightsMismatch, check_weights
from dlc.runtime.inference import Model


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


def check_finite_outputs(out, where: str, consequence: str = "") -> None:
    """Refuse outputs that are NaN or inf (weights that are finite but overflow in use, inputs far outside
    what the model saw): predict, eval and export alike, never a NaN printed as a result."""
    import numpy as np
    bad = int(np.sum(~np.all(np.isfinite(out.reshape(len(out), -1)), axis=1))) if len(out) else 0
    if bad:
        raise DLError(Diagnostic("error", f"the model computes NaN or inf for {bad} of {len(out)} input(s) of {where}"
                                          + (f"; {consequence}" if consequence else ""),
                                 hint="its weights overflow on these inputs: retrain the run (a lower learning "
                                      "rate, l2 or max_norm), or check the inputs' scale"))


def read_preprocess(run_dir: Path, spec) -> tuple[Preprocess, list[str]]:
    """The run's input map and class names from preprocess.npz, checked against the spec's input, and
    metrics.json's copy of the class names against them (an edited copy would relabel predictions)."""
    pre_path = run_dir / rf.PREPROCESS
    shape = tuple(spec.graph.input_shape)
    metrics = rf.load_json(run_dir / rf.METRICS, "the run's metrics") if (run_dir / rf.METRICS).exists() else {}
    listed = metrics.get("classes", [])
    if not isinstance(listed, list) or not all(isinstance(c, str) for c in listed):
        raise DLError(Diagnostic("error", f"{run_dir / rf.METRICS} is damaged: 'classes' is not a list of names"))
    if not pre_path.exists():
        return Preprocess.identity(spec.graph.input_shape), listed
    arrays = rf.load_npz(pre_path, "the input preprocessing", finite=True, text=True)
    names = arrays.pop("classes", None)
    if set(arrays) != {"mul", "add"} or any(a.shape != shape or a.dtype.kind != "f" for a in arrays.values()) \
            or (names is not None and (names.ndim != 1 or names.dtype.kind != "U")):
        raise DLError(Diagnostic("error", f"{pre_path} is damaged: expected arrays mul and add of shape "
                                          f"{'x'.join(map(str, shape))} and a list of class names",
                                 hint="train the run again"))
    pre = Preprocess(arrays["mul"], arrays["add"], znorm_of(spec))  # (the spec says znorm)
    if names is None:  # a run written before the class names were kept here
        return pre, listed
    classes = [str(c) for c in names]
    if listed != classes:
        raise DLError(Diagnostic("error", f"{run_dir / rf.METRICS} is damaged: its class names differ from the "
                                          f"run's ({', '.join(classes[:5])}{' ...' if len(classes) > 5 else ''} in "
                                          f"{pre_path.name})", hint="restore metrics.json, or train the run again"))
    return pre, classes


def load_run(run_dir: str | Path, weights: str | Path | None = None) -> Model:
    run_dir = Path(run_dir)
    if run_dir.is_file() and run_dir.suffix == ".dl":
        raise DLError(Diagnostic("error", f"{run_dir} is a spec, not a run folder: it has no trained weights",
                                 hint=f"train it first (dlc train {run_dir} -o runs/NAME), then pass runs/NAME "
                                      "or the .onnx file dlc export wrote"), Source("", str(run_dir)))
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
    pre, classes = read_preprocess(run_dir, spec)
    from dlc.runtime.data.tokenize import run_encoder
    return Model(spec, values, pre, classes, run_encoder(run_dir, spec))
