"""The Python API: the command line's verbs for notebooks and scripts, and the one place each
command's call is built (dlc/cli.py parses options and prints; it calls these functions).

A spec argument is a compiled `Spec` or a path to a .dl file (or a run folder, whose spec.dl is
used); a run argument is a `RunResult` or a run folder. Nothing here prints; progress bars are
off unless asked for.
"""

from __future__ import annotations

from pathlib import Path

from dlc.compiler.diagnostics import Diagnostic, DLError  # noqa: F401  (what callers catch and print)
from dlc.compiler.spec import Spec


def _spec(spec, overrides=(), max_memory=None, resume=None) -> Spec:
    """A compiled spec, with its data file checked against it: a Spec as it is (overrides applied by
    recompiling), or a .dl path, or a run folder (its spec.dl, data files pinned to the run's).
    `resume`: the run folder to be resumed; when it has a checkpoint, `init from`'s source run is not
    read (a resumed run's weights are its checkpoint's, so the source may have moved)."""
    from dlc.compiler.spec import compile as compile_text
    from dlc.compiler.spec import compile_file
    from dlc.runtime.data.check import check_data_file
    from dlc.runtime import run_folder as rf
    from dlc.runtime.data.record import read

    if isinstance(spec, Spec):
        if not overrides:
            return spec
        compiled = compile_text(spec.source.text, spec.source.filename, overrides=overrides, max_memory=max_memory)
    else:
        path, run = spec_path(spec)
        compiled = compile_file(path, overrides=overrides or (), data_files=read(run) if run else None,
                                max_memory=max_memory)
    resumed = resume is not None and (Path(resume) / rf.CHECKPOINT).exists()
    check_data_file(compiled, run=Path(resume) if resumed else None)
    if "init" in compiled.settings and not resumed:  # init from "RUN": what it loads, from the run's headers
        from dlc.runtime.init_from import plan
        compiled.init_report = plan(compiled)
    return compiled


def spec_path(path) -> tuple[Path, Path | None]:
    """(the spec file, the run folder or None) for a spec path or a run folder (one with a spec.dl)."""
    p = Path(path)
    if p.is_dir() and (p / "spec.dl").exists():
        return p / "spec.dl", p
    return p, None


def _run_dir(run) -> Path:
    return Path(getattr(run, "run_dir", run))


def check(spec, overrides=(), max_memory=None, graph=None, graph_depth: int | None = None,
          augment_preview=None, resume=None) -> Spec:
    """Parse, infer shapes, lint and check the data file's headers; the compiled spec (`.warnings`).
    `graph`: also write a picture of the network there (.svg, .dot or .mmd; compiler/picture.py), with
    the clusters nested deeper than `graph_depth` drawn as one box each. `augment_preview`: also load
    the data and write a PNG grid of training images as the augment line changes them. `resume`: the
    run folder a `dlc train --resume` continues (its checkpoint, not `init from`'s run, gives the weights)."""
    compiled = _spec(spec, overrides, max_memory, resume)
    if graph is not None:
        write_picture(compiled, graph, graph_depth)
    if augment_preview is not None:
        from dlc.runtime.tools.augment_preview import write_preview
        write_preview(compiled, augment_preview)
    return compiled


def fmt(specs, check: bool = False, diff: bool = False) -> list[str]:
    """Rewrite each spec file in the canonical layout (dlc/formatting.py), atomically, keeping its mode
    (a link's target is rewritten); with `check`, change nothing. -> the specs that (would) change; with
    `diff`, change nothing and return each change as a unified diff instead of the path.
    A spec that does not parse raises its syntax errors (DLError), and the files after it are left."""
    import difflib

    from dlc.compiler.spec import read_spec_text
    from dlc.formatting import format_spec
    from dlc.runtime import run_folder as rf
    changed = []
    for path in specs:
        text = read_spec_text(path)
        formatted = format_spec(text, str(path))
        if formatted == text:
            continue
        if diff:
            changed.append("".join(difflib.unified_diff(text.splitlines(True), formatted.splitlines(True),
                                                        f"{path}", f"{path} (formatted)")))
            continue
        changed.append(str(path))
        if not check:
            target = Path(path).resolve()  # a link's target is rewritten, the link stays
            rf.atomic_write_text(target, formatted, mode=target.stat().st_mode & 0o7777)
    return changed


def write_picture(spec: Spec, path, depth: int | None = None) -> Path:
    """The network's picture written to `path` (its suffix picks SVG, Graphviz DOT or Mermaid)."""
    from dlc.compiler.picture import FORMATS, render
    from dlc.runtime import run_folder as rf
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise DLError(Diagnostic("error", f"--graph {path}: a picture is written as .svg, .dot (Graphviz) or .mmd "
                                          "(Mermaid)", hint=f"e.g. --graph {path.with_suffix('.svg')}"))
    if depth is not None and depth < 0:
        raise DLError(Diagnostic("error", f"--graph-depth {depth}: a depth is 0 (only top-level lines) or more"))
    rf.atomic_write_text(path, render(spec.graph, path.suffix.lower(), depth))
    return path


def engine_overrides(engine: str | None = None, device: str | None = None) -> list[str]:
    """--engine and --device as the train keys they stand for (each remembering its option, for the note
    on an error at the line they rewrote)."""
    from dlc.compiler.overrides import Override
    return [Override(f"train.{k}={v}", f"--{k}") for k, v in (("engine", engine), ("device", device)) if v]


def train(spec, out=None, resume: bool = False, progress: bool = False, write: bool = True,
          overwrite: bool = False, overrides=(), max_memory=None, notify=None, engine: str | None = None,
          device: str | None = None):
    """Train; returns a RunResult (run_dir, model, history, metrics). `out` must be new or empty
    unless `overwrite` (see dlc train --overwrite). `engine` ("numpy", "torch") and `device` (torch:
    "cpu", "cuda", "cuda:N", "mps") are the train line's keys of those names."""
    from dlc.compiler.spec import note_overrides
    from dlc.runtime.trainer import train as _train
    overrides = [*overrides, *engine_overrides(engine, device)]
    compiled = _spec(spec, overrides, max_memory, out if resume else None)
    try:
        return _train(compiled, out=out, resume=resume, progress=progress, write=write, overwrite=overwrite,
                      notify=notify)
    except DLError as e:  # a refusal at a line --set rewrote (e.g. --device cuda) says so
        raise note_overrides(compiled, e) from None


def evaluate(run, data=None, split: str = "all", top_k: int | None = None, plot: bool = True) -> dict:
    """Loss, accuracy and the per-class report (precision, recall, F1, support, macro and weighted
    averages, top-k accuracy, confusion matrix; MAE/MSE/R² for regression) of a run on its own splits,
    or on DATA; writes RUN/confusion.png unless plot=False."""
    from dlc.runtime.tools.evaluate import evaluate_run
    return evaluate_run(str(_run_dir(run)), data, split, top_k=top_k, plot=plot)


def export(run, path, keep_bn: bool = False, samples: int = 256, int8: bool = False, calibration: str = "minmax",
           max_drop: float = 1.0):
    """Write ONNX for a trained run, verified against the NumPy runtime; returns the ExportReport. With
    `int8`, an int8 model measured against the float one on the test split and refused when its accuracy
    drops more than `max_drop` points; returns the Int8Report."""
    if int8:
        from dlc.runtime.tools.quantize import quantize_run
        return quantize_run(_run_dir(run), path, calibration=calibration, samples=samples, max_drop=max_drop / 100,
                            keep_bn=keep_bn)
    from dlc.runtime.tools.export import export_run
    return export_run(_run_dir(run), path, keep_bn=keep_bn, samples=samples)


def serving_cost(spec) -> dict:
    """What serving a compiled spec costs: {"float"|"int8": {"bytes", "ms_batch_1", "ms_batch_64"}} (its
    ONNX file with the initial weights, onnxruntime on this CPU; int8 calibrated on noise: no accuracy)."""
    from dlc.runtime.tools.serving import serving_cost as cost
    return cost(spec if isinstance(spec, Spec) else _spec(spec, (), None, None))


def serving_text(cost: dict) -> str:
    from dlc.runtime.tools.serving import serving_text as text
    return text(cost)


def import_onnx(source, out, samples: int = 64, overwrite: bool = False):
    """An ONNX file as a run folder, its outputs checked against the source's; returns the ImportReport."""
    from dlc.runtime.tools.import_run import import_model
    return import_model(source, out, samples=samples, overwrite=overwrite)


def predict(model_or_run, data=None, out=None, text=None) -> dict:
    """Predictions from an .onnx file or a run: DATA is a built-in set name, a file path, or an array of
    raw samples (N, features) or (N, C, H, W). The dict holds `output` (N, K), and `class_index` (N,)
    and `class_name` (N,) for a classifier, `files` for image files; `accuracy` (or `mae`, `mse`) over
    every sample of DATA when it has labels, and `trained_on` (DATA is what the model was trained on);
    `out` also writes the arrays to an .npz file. A text model takes `text`: a string or a list of them
    (or DATA: a file of texts, or a list of strings)."""
    import numpy as np

    if text is not None:
        if data is not None:
            raise DLError(Diagnostic("error", "give DATA or --text, not both"))
        data = [text] if isinstance(text, str) else list(text)
    if data is None:
        raise DLError(Diagnostic("error", "nothing to predict for: give DATA (a data set or file)",
                                 hint="dlc predict RUN DATA, or a text model: dlc predict RUN --text \"...\""))

    from dlc.runtime.tools.predict import predict as _predict
    result = _predict(str(_run_dir(model_or_run)), data)
    if out is not None:
        from dlc.runtime.run_folder import save_npz
        save_npz(Path(out), {k: v for k, v in result.items() if isinstance(v, np.ndarray)})
    return result


def diagnose(spec, out=None, plot: bool = True, overrides=(), max_memory=None):
    """The babysitting checks; returns a Report (`.ok`, `.checks`, `.render()`)."""
    from dlc.runtime.tools.diagnose import diagnose as _diagnose
    return _diagnose(_spec(spec, overrides, max_memory), out=out, plot=plot)


def compare(specs, labels=None, out=None, progress: bool = False, overwrite: bool = False, overrides=(),
            max_memory=None):
    """Train every spec on the first one's split and seed; one table, one plot (a Comparison)."""
    from dlc.runtime.tools.compare import compare as _compare
    return _compare([_spec(s, overrides, max_memory) for s in specs], labels=labels, out=out, progress=progress,
                    overwrite=overwrite)


def search(spec, trials: int = 20, fine: int | None = None, jobs=None, seed=None, out=None, progress: bool = False,
           sampler: str = "random", prune: bool = False, storage: str | None = None, study: str | None = None,
           overrides=(), max_memory=None):
    """Search the ranges written in the spec on Optuna (see dlc search --help); a SearchResult."""
    from dlc.runtime.tools.search import search as _search
    return _search(_spec(spec, overrides, max_memory), trials, fine=fine, jobs=jobs, seed=seed, out=out,
                   progress=progress, sampler=sampler, prune=prune, storage=storage, study=study)


# ---- what the command line prints and catches (dlc/cli.py imports this module alone) ------------------


def __getattr__(name):
    """`TrainingDiverged` (the loss stopped being finite), loaded with the runtime on first use (PEP 562)."""
    if name == "TrainingDiverged":
        from dlc.runtime.trainer import TrainingDiverged
        return TrainingDiverged
    raise AttributeError(f"module 'dlc.api' has no attribute {name!r}")


def summary_text(spec: Spec) -> str:
    """dlc check's table: every line's output shape, parameters, FLOPs and memory (compiler/summary.py)."""
    from dlc.compiler.summary import render
    return render(spec)


def summary_json(spec: Spec) -> dict:
    from dlc.compiler.summary import to_json
    return to_json(spec)


def class_report_text(report: dict) -> str:
    """An evaluation's per-class table (precision, recall, F1, support; MAE/MSE/R² for regression)."""
    from dlc.runtime.tools.class_report import render
    return render(report)


def process_rank() -> int:
    """This process's rank under torchrun (0 alone reports), else 0."""
    from dlc.runtime.engine import process_rank as rank
    return rank()


def default_run_dir(name: str) -> Path:
    """runs/NAME, or runs/NAME-2 ... when taken."""
    from dlc.runtime.run_folder import default_run_dir as first_free
    return first_free(name)


def variants(vary) -> list:
    """--vary KEY=V1,V2 ...: (label, overrides) for every combination (runtime/tools/compare.py)."""
    from dlc.runtime.tools.compare import variants as combos
    return combos(vary)
