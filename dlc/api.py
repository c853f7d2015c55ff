"""The Python API: the command line's verbs for notebooks and scripts.

A spec argument is a compiled `Spec` or a path to a .dl file; a run argument is a `RunResult`
or a run folder. Nothing here prints; progress bars are off unless asked for.
"""

from __future__ import annotations

from pathlib import Path

from dlc.compiler.spec import Spec, compile_file


def _spec(spec) -> Spec:
    if isinstance(spec, Spec):
        return spec
    from dlc.runtime.data_check import check_data_file
    compiled = compile_file(spec)
    check_data_file(compiled)
    return compiled


def _run_dir(run) -> Path:
    return Path(getattr(run, "run_dir", run))


def train(spec, out=None, resume: bool = False, progress: bool = False, write: bool = True,
          overwrite: bool = False):
    """Train; returns a RunResult (run_dir, model, history, metrics). `out` must be new or empty
    unless `overwrite` (see dlc train --overwrite)."""
    from dlc.runtime.trainer import train as _train
    return _train(_spec(spec), out=out, resume=resume, progress=progress, write=write, overwrite=overwrite)


def evaluate(run, data=None, split: str = "all") -> dict:
    from dlc.runtime.evaluate import evaluate_run
    return evaluate_run(_run_dir(run), data, split)


def export(run, path, keep_bn: bool = False, samples: int = 256):
    """Write ONNX for a trained run, verified against the NumPy runtime; returns the ExportReport."""
    from dlc.runtime.export import export_run
    return export_run(_run_dir(run), path, keep_bn=keep_bn, samples=samples)


def predict(model_or_run, data) -> dict:
    from dlc.runtime.predict import predict as _predict
    return _predict(str(_run_dir(model_or_run)), data)


def diagnose(spec, out=None, plot: bool = True):
    """The babysitting checks; returns a Report (`.ok`, `.checks`, `.render()`)."""
    from dlc.runtime.diagnose import diagnose as _diagnose
    return _diagnose(_spec(spec), out=out, plot=plot)


def compare(specs, labels=None, out=None, progress: bool = False, overwrite: bool = False):
    from dlc.runtime.compare import compare as _compare
    return _compare([_spec(s) for s in specs], labels=labels, out=out, progress=progress, overwrite=overwrite)


def search(spec, trials: int = 20, fine: int | None = None, jobs=None, seed=None, out=None, progress: bool = False):
    from dlc.runtime.search import search as _search
    return _search(_spec(spec), trials, fine=fine, jobs=jobs, seed=seed, out=out, progress=progress)
