"""Fine-tuning: `init from "RUN"` starts a model from a trained run's weights.

Parameters and batchnorm statistics are matched by name and shape: what the run has under the same
name and shape is loaded, what the spec has and the run does not is new (dlc's own init), what has
another shape is skipped, named with both shapes (a new head of another width, say). `dlc check`
prints that report; training records it, with the sha256 of the weights it loaded, in metrics.json.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.compiler.spec import Spec
from dlc.runtime import run_folder as rf
from dlc.runtime.data.files import DataError, resolve_path
from dlc.runtime.weights import expected_shapes


FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # what a run's weights are (the checkpoint's rule)


@dataclass
class InitReport:
    run: str
    sha256: str
    loaded: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "name: run 10x32, spec 5x32"
    unused: list[str] = field(default_factory=list)  # in the run, not in the spec

    def lines(self) -> list[str]:
        out = [f"init from {self.run} (weights sha256 {self.sha256[:12]}): {len(self.loaded)} array(s) loaded, "
               f"{len(self.new)} new, {len(self.skipped)} skipped"]
        if self.new:
            out.append("  new (dlc's init): " + ", ".join(self.new))
        if self.skipped:
            out.append("  skipped, another shape: " + "; ".join(self.skipped))
        if self.unused:
            out.append(f"  not in this spec: {len(self.unused)} array(s) of the run")
        return out

    def to_json(self) -> dict:
        return {"run": self.run, "sha256": self.sha256, "loaded": self.loaded, "new": self.new,
                "skipped": self.skipped, "unused": self.unused}


def _refuse(spec: Spec, message: str, hint: str | None = None) -> DLError:
    init = spec.settings["init"]
    return DLError(Diagnostic("error", message, init.kind_span or init.span, hint), spec.source)


def _weights_path(spec: Spec) -> Path:
    init = spec.settings["init"]
    try:
        run = resolve_path(init.kind_name, spec.base_dir)
    except DataError as e:
        raise _refuse(spec, str(e)) from None
    if not os.path.isdir(run):  # (False also for a name the system refuses: too long, a loop of links)
        raise _refuse(spec, f"no such run folder: {run}", "init from names the folder of a trained run (dlc train -o)")
    if not rf.is_run(run):
        raise _refuse(spec, f"{run} is not a dlc run folder (it has no {rf.MANIFEST}, which dlc train writes)",
                      "init from names the folder of a trained run (dlc train -o)")
    path = run / rf.WEIGHTS
    if not path.exists():
        raise _refuse(spec, f"{run} holds no {rf.WEIGHTS}: it is not a trained run (or it stopped before its end)",
                      f"finish it with dlc train {run} --resume, or name another run")
    return path


def plan(spec: Spec) -> InitReport | None:
    """What `init from` would load, from the run's weights.npz headers only (what `dlc check` prints)."""
    if "init" not in spec.settings:
        return None
    path = _weights_path(spec)
    try:
        headers = rf.npz_headers(path, f"{path} (the run's weights)")
    except DLError as e:
        raise _refuse(spec, e.diagnostics[0].message, e.diagnostics[0].hint) from None
    report = InitReport(os.path.normpath(path.parent), rf.file_sha256(path))
    want = expected_shapes(spec.graph)
    for name, shape in want.items():
        if name not in headers:
            report.new.append(name)
        elif headers[name][1] not in FLOAT_DTYPES:
            raise _refuse(spec, f"{path}: array '{name}' is {headers[name][1]}; weights are float32 or float64",
                          "dlc writes float weights: this file was not written by dlc train, or was altered")
        elif tuple(headers[name][0]) != tuple(shape):
            report.skipped.append(f"{name}: run {'x'.join(map(str, headers[name][0]))}, spec "
                                  f"{'x'.join(map(str, shape))}")
        else:
            report.loaded.append(name)
    report.unused = sorted(set(headers) - set(want))
    if not report.loaded:
        raise _refuse(spec, f"init from {path.parent}: no parameter of the run has a name and shape of this spec",
                      "fine-tuning matches parameters by name (dense1.weight ...): keep the lines to reuse as the "
                      "run wrote them")
    return report


def check_target(spec: Spec, report: InitReport | None, run_dir: Path) -> None:
    """Refuse to write a run into the folder it starts from: its weights would be replaced (with
    --overwrite, deleted) before they are read."""
    if report is not None and Path(report.run).resolve() == Path(run_dir).resolve():
        raise _refuse(spec, f"init from {report.run} is the folder this run would be written to: its weights "
                      "would be replaced by the ones trained from them",
                      "write the fine-tuned run to another folder: dlc train SPEC -o NEW_FOLDER")


def apply(spec: Spec, values: dict[str, np.ndarray], report: InitReport | None = None) -> InitReport | None:
    """Load the run's matching arrays into `values` (dlc's init for the spec); the report (`report`:
    the plan already made), or None."""
    report = report or plan(spec)
    if report is None:
        return None
    arrays = rf.load_npz(Path(report.run) / rf.WEIGHTS, "the run's weights", finite=True)
    for name in report.loaded:
        values[name] = np.array(arrays[name], dtype=values[name].dtype)
    return report
