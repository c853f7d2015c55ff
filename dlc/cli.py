"""The dlc command line. User mistakes print `file:line:col: error: ...` and exit 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from dlc.compiler.diagnostics import DLError
from dlc.compiler.engines import ENGINES
from dlc.compiler.search_space import SAMPLERS

EXIT_OK, EXIT_WARNINGS, EXIT_ERROR = 0, 1, 2


def _print_diags(diags, source, stream=None):
    for d in diags:
        print(d.format(source), file=stream or sys.stderr)  # sys.stderr at call time


def cmd_check(args) -> int:
    from dlc import api
    from dlc.compiler.summary import render, to_json

    status = EXIT_OK
    reports = []
    if (args.graph or args.augment_preview) and len(args.specs) > 1:
        print(f"dlc: {'--graph' if args.graph else '--augment-preview'} draws one spec: check the others without it",
              file=sys.stderr)
        return EXIT_ERROR
    for path in args.specs:
        try:
            spec = api.check(path, args.set or (), args.max_memory, args.graph, args.graph_depth,
                             args.augment_preview)
        except DLError as e:
            if not args.json:
                raise
            reports.append({"file": path, "errors": [d.to_json(e.source) for d in e.diagnostics]})
            status = EXIT_ERROR
            continue
        if args.json:
            reports.append(dict(to_json(spec), file=path))
        else:
            print(render(spec))
            if spec.warnings:
                print()
                _print_diags(spec.warnings, spec.source, sys.stdout)
            print(f"{path}: ok, {len(spec.warnings)} warning(s)" + (f"; picture: {args.graph}" if args.graph else "")
                  + (f"; augmentation preview: {args.augment_preview}" if args.augment_preview else ""))
        if spec.warnings and args.strict and status == EXIT_OK:
            status = EXIT_WARNINGS
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))
    return status


def _import_ahead(*modules) -> None:
    """Start importing modules the command will need (scikit-learn takes about 0.7 s) in a thread,
    while this one compiles the spec; a failed import is left for the real one to report."""
    import threading

    def load():
        import importlib
        for m in modules:
            try:
                importlib.import_module(m)
            except Exception:  # noqa: BLE001 - reported where it is really imported
                return

    threading.Thread(target=load, daemon=True).start()


def _needed_later(spec) -> list[str]:
    """The slow imports training this spec will make: matplotlib for the curves. (scikit-learn is
    imported only on a first run: a built-in set and its split are cached as arrays afterwards.)"""
    if spec.settings.get("data") is None:
        return []
    return ["matplotlib.figure", "matplotlib.backends.backend_agg"]


def cmd_train(args) -> int:
    from dlc.runtime.trainer import TrainingDiverged

    if args.vary:
        return _train_variants(args)
    if args.resume and Path(args.spec).is_dir() and not (Path(args.spec) / "spec.dl").exists():
        print(f"dlc: error: {args.spec} holds no spec.dl: the run stopped before its first epoch; "
              f"start it again with dlc train SPEC -o {args.spec}", file=sys.stderr)
        return EXIT_ERROR
    from dlc import api
    run_from_dir = api.spec_path(args.spec)[1]
    # `dlc train RUN` retrains the run's spec into a new folder; only --resume writes into RUN itself
    out = args.output or (run_from_dir if args.resume else None)
    if args.resume and out is None:
        print("dlc: --resume needs the run folder: dlc train RUN --resume, or -o RUN", file=sys.stderr)
        return EXIT_ERROR
    spec = api.check(args.spec, _train_overrides(args), args.max_memory, resume=out if args.resume else None)
    _import_ahead(*_needed_later(spec))
    if spec.warnings and not args.quiet:
        _print_diags(spec.warnings, spec.source)
    from dlc.runtime.engine import process_rank
    rank = process_rank()  # under torchrun, rank 0 alone reports
    try:
        result = api.train(spec, out=out, resume=args.resume, progress=not args.quiet and rank == 0,
                           overwrite=args.overwrite, notify=lambda note: _notify(note, spec))
    except TrainingDiverged as e:
        if rank == 0:
            print(f"{spec.source.filename}: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    if rank != 0:
        return 130 if result.interrupted else EXIT_OK
    m = result.metrics
    if result.complete:
        key = "train.early_stop" if m.get("stopped_early") else "train.epochs"  # what would let it go on
        print(f"{result.run_dir} is complete: {m['epochs_run']} epoch(s)"
              + (", stopped early" if m.get("stopped_early") else "") + "; nothing changed. "
              f"Train longer with: dlc train {result.run_dir} --resume --set {key}=N")
        return EXIT_OK
    if result.interrupted and not result.history:
        print(f"interrupted before the first epoch completed: nothing kept in {result.run_dir}",
              file=sys.stderr)
        return 130
    if result.interrupted:
        print(f"interrupted: {len(result.history)} epoch(s) kept in {result.run_dir}; "
              f"continue with: dlc train {result.run_dir} --resume", file=sys.stderr)
    print(_metrics_line(m))
    print(f"run folder: {result.run_dir}")
    return 130 if result.interrupted else EXIT_OK


def _notify(note, spec) -> None:
    """A note from training: a message, or a located warning (DL113) printed as check prints it."""
    from dlc.compiler.diagnostics import Diagnostic
    if isinstance(note, Diagnostic):
        _print_diags([note], spec.source)
    else:
        print(f"dlc: {note}", file=sys.stderr)


def _train_overrides(args) -> list[str]:
    """--set, with --engine and --device as the train keys they stand for."""
    from dlc.api import engine_overrides
    return [*(args.set or ()), *engine_overrides(args.engine, args.device)]


def _train_variants(args) -> int:
    from dlc.runtime.tools.compare import variants

    if args.resume:
        print("dlc: --resume and --vary do not go together: resume each run folder on its own", file=sys.stderr)
        return EXIT_ERROR
    from dlc import api
    combos = variants(args.vary)
    specs = [api.check(args.spec, [*_train_overrides(args), *extra], args.max_memory) for _, extra in combos]
    if not args.quiet:
        _print_diags(specs[0].warnings, specs[0].source)
    name = specs[0].name
    from dlc.runtime.run_folder import default_run_dir
    out = args.output or default_run_dir(f"{name}-vary")
    result = api.compare(specs, [label for label, _ in combos], out=out, progress=not args.quiet,
                         overwrite=args.overwrite)
    print(result.render())
    return 130 if result.interrupted else EXIT_OK


def cmd_lsp(args) -> int:
    from dlc.lsp import run
    return run()


def cmd_fmt(args) -> int:
    """Rewrite each spec in the canonical layout (dlc/formatting.py); --check only says which would change."""
    from dlc import api
    changed, failed = [], False
    check = args.check or args.diff
    for path in args.specs:
        try:
            found = api.fmt([path], check=check, diff=args.diff)
            if found:
                changed.append(path)
                print(found[0] if args.diff else f"{path}: {'would be reformatted' if check else 'reformatted'}",
                      end="" if args.diff else "\n")
        except DLError as e:
            print(e.format(), file=sys.stderr)
            failed = True
    if failed:
        return EXIT_ERROR
    print(f"{len(changed)} of {len(args.specs)} spec(s) {'would be ' if check else ''}reformatted",
          file=sys.stderr if args.diff else sys.stdout)
    return EXIT_WARNINGS if check and changed else EXIT_OK


def cmd_compare(args) -> int:
    from dlc import api
    result = api.compare(args.specs, out=args.output, progress=not args.quiet, overwrite=args.overwrite,
                         overrides=args.set or (), max_memory=args.max_memory)
    print(result.render())
    return 130 if result.interrupted else EXIT_OK


def cmd_search(args) -> int:
    from dlc import api

    spec = api.check(args.spec, args.set or (), args.max_memory)
    if spec.warnings and not args.quiet:
        _print_diags(spec.warnings, spec.source)
    result = api.search(spec, args.trials, fine=args.fine, jobs=args.jobs, seed=args.seed, out=args.output,
                        progress=not args.quiet, sampler=args.sampler, prune=args.prune, storage=args.storage,
                        study=args.study)
    print(result.render())
    if result.interrupted:
        return 130
    if result.best is None:
        print(f"dlc: all {len(result.trials)} trials failed; see {result.out_dir / 'results.csv'}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _metrics_line(m: dict) -> str:
    parts = []
    for split in ("train", "validation", "test"):
        r = m.get(split) or {}
        if r.get("loss") is None:
            continue
        text = f"{split} loss {r['loss']:.4f}"
        if r.get("accuracy") is not None:
            text += f" acc {100 * r['accuracy']:.2f}%"
        if r.get("mae") is not None:
            text += f" mae {r['mae']:.4f}"
        parts.append(text)
    extra = f" ({m['epochs_run']} epochs, {m['seconds']:.1f} s" + (", stopped early" if m.get("stopped_early") else "") + ")"
    return " | ".join(parts) + extra


def cmd_eval(args) -> int:
    from dlc import api
    from dlc.runtime.tools.class_report import render
    report = api.evaluate(args.run, args.data, split=args.split, top_k=args.top_k)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for split, r in report["splits"].items():
            line = f"{split}: n={r['n']} loss {r['loss']:.4f}"
            if r.get("accuracy") is not None:
                line += f" accuracy {100 * r['accuracy']:.2f}%"
            if r.get("mae") is not None:
                line += f" mae {r['mae']:.4f}"
            print(line)
            print(render(r["report"]))
        if report.get("confusion_png"):
            print(f"confusion matrix: {report['confusion_png']}")
    return EXIT_OK


def cmd_export(args) -> int:
    from dlc import api
    r = api.export(args.run, args.output, keep_bn=args.keep_bn, samples=args.samples)
    print(f"wrote {r.path} ({r.size_bytes:,} bytes, {r.onnx_nodes} ONNX nodes, opset 18, "
          f"{r.folded_bn} batchnorm folded); onnxruntime vs NumPy on {r.samples} real inputs: "
          f"max abs difference {r.max_abs_diff:.2e}")
    return EXIT_OK


def cmd_predict(args) -> int:
    import numpy as np

    from dlc import api
    r = api.predict(args.model, args.data, out=args.output)
    shown = min(len(r["output"]), args.show)
    rows = [str(f) for f in r["files"]] if "files" in r else [str(i) for i in range(len(r["output"]))]
    if shown:
        print(("file" if "files" in r else "row") + ("\tclass\tprobability" if "class_name" in r else
              "\t" + " ".join(f"output{j}" for j in range(r["output"].shape[1]))))
    for i in range(shown):
        if "class_name" in r:
            print(f"{rows[i]}\t{r['class_name'][i]}\t{float(np.max(r['output'][i])):.4f}")
        else:
            print(f"{rows[i]}\t" + " ".join(f"{v:.5g}" for v in r["output"][i]))
    summary = f"{r['n']} predictions ({r['engine']})"
    scored = f"all {r['n']:,} samples of {args.data}"
    if "accuracy" in r:
        summary += f", accuracy against the data's labels {100 * r['accuracy']:.2f}% ({scored})"
    if "mae" in r:
        summary += f", against the data's targets ({scored}): MAE {r['mae']:.5g}, MSE {r['mse']:.5g}"
    if r.get("trained_on") and ("accuracy" in r or "mae" in r):
        print(f"dlc: warning: {args.data} is the data this model was trained on: its training samples are among "
              f"those scored, so this is not a test score\n  hint: dlc eval RUN --split test scores the split it "
              "never trained on", file=sys.stderr)
    if args.output:
        summary += f", written to {args.output}"
    print(summary)
    return EXIT_OK


def cmd_diagnose(args) -> int:
    from dlc import api

    spec = api.check(args.spec, args.set or (), args.max_memory)
    if spec.warnings and not args.json:
        _print_diags(spec.warnings, spec.source)  # the linter's findings come first: they cost nothing
    report = api.diagnose(spec, out=args.output)
    if args.json:
        print(json.dumps(dict(report.to_json(), warnings=[d.to_json(spec.source) for d in spec.warnings]), indent=2))
    else:
        print(report.render())
    return EXIT_OK if report.ok else EXIT_WARNINGS


def _memory_size(text: str) -> int:
    from dlc.compiler.memory import parse_size
    try:
        return parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size; write e.g. 8G, 512M or 0 for no limit") from None


def _path(text: str) -> str:
    """A path argument the file system can take: each name at most its NAME_MAX bytes (255 here), the
    whole at most PATH_MAX; else a located refusal now, not an OSError wherever it is first used."""
    limit = 255
    try:
        limit = os.pathconf(os.path.dirname(os.path.abspath(text)) or "/", "PC_NAME_MAX")
    except (OSError, ValueError):
        pass
    raw = os.fsencode(text)
    long = next((part for part in raw.split(b"/") if len(part) > limit), None)
    if long is not None:
        raise argparse.ArgumentTypeError(f"a name in this path is {len(long)} bytes ('{os.fsdecode(long[:24])}...'); "
                                         f"file names here are at most {limit} bytes")
    if len(raw) >= 4096:
        raise argparse.ArgumentTypeError(f"the path is {len(raw):,} bytes; paths here are shorter than 4,096 bytes")
    return text


def _add_max_memory(parser) -> None:
    parser.add_argument("--max-memory", type=_memory_size, default=None, metavar="SIZE",
                        help="refuse a spec whose training needs more memory than this (e.g. 8G; 0: no limit; "
                             "default: half the physical memory)")


def _add_set(parser, where: str = "") -> None:
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help=f"override a setting {where}(repeatable), e.g. optimizer.lr=0.01, train.epochs=20, "
                             "model.activation=tanh")


def build_parser() -> argparse.ArgumentParser:
    from dlc.version import __version__

    p = argparse.ArgumentParser(prog="dlc", description="Compile, train and export neural networks described in .dl specs.")
    p.add_argument("--version", action="version", version=f"dlc {__version__}")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("check", help="parse, infer shapes and lint; print a summary",
                       description="Parse, infer every shape, lint. Exit 0 clean, 1 with warnings under --strict, 2 on errors.")
    c.add_argument("specs", nargs="+", metavar="SPEC", type=_path)
    c.add_argument("--json", action="store_true", help="machine-readable summary")
    c.add_argument("--strict", action="store_true", help="exit 1 when there are warnings")
    c.add_argument("--graph", metavar="FILE", type=_path, help="also draw the network: one box per line with its output shape and "
                                                   "parameters, paths and blocks as drawn clusters; FILE.svg, .dot "
                                                   "(Graphviz) or .mmd (Mermaid)")
    c.add_argument("--graph-depth", type=int, metavar="N",
                   help="draw clusters nested deeper than N as one box (0: only the top-level lines)")
    c.add_argument("--augment-preview", metavar="FILE.png", type=_path,
                   help="also load the data and draw training images as the augment line changes them "
                        "(each row one image: as stored, then its first epochs' versions)")
    _add_set(c)
    _add_max_memory(c)
    c.set_defaults(func=cmd_check)

    d = sub.add_parser("diagnose", help="the babysitting checklist: initial loss, overfit, gradients, lr range test",
                       description="Before a long run: initial loss vs ln(classes), overfitting 20 samples, per-layer "
                                   "gradient norms and update/weight ratios over the first steps, dead ReLU and "
                                   "saturated sigmoid/tanh fractions, and a learning-rate range test (lr_range.png). "
                                   "Exit 0 when every check passes, 1 when any warns or fails. Search ranges take "
                                   "their middle value.")
    d.add_argument("spec", metavar="SPEC", type=_path)
    d.add_argument("-o", "--output", metavar="DIR", type=_path, help="where lr_range.png and report.json go "
                                                          "(default: runs/MODEL-diagnose)")
    _add_set(d)
    d.add_argument("--json", action="store_true", help="the report as JSON")
    _add_max_memory(d)
    d.set_defaults(func=cmd_diagnose)

    t = sub.add_parser("train", help="train a spec (NumPy, or PyTorch with --engine torch); write a run folder",
                       description="Train with the NumPy engine (or --engine torch) and write the run folder "
                                   "(weights.npz, spec.dl, metrics.json, history.csv, curves.png). Ctrl-C keeps the "
                                   "completed epochs.")
    t.add_argument("spec", metavar="SPEC", type=_path, help="a .dl spec, or a run folder: its spec.dl is trained into a new run folder, or continued in place with --resume")
    t.add_argument("-o", "--output", metavar="RUN", type=_path, help="run folder: new or empty (default: runs/MODEL, or "
                                                         "runs/MODEL-2 ... when taken)")
    t.add_argument("--overwrite", action="store_true",
                   help="let -o name a folder that holds an earlier run (its files are replaced) or other files "
                        "(kept beside the run)")
    _add_set(t)
    t.add_argument("--resume", action="store_true", help="continue the run in RUN from its last completed epoch")
    t.add_argument("--engine", choices=tuple(ENGINES),
                   help="what trains: numpy (the reference, the default) or torch (GPUs, torchrun; pip install "
                        "\"dlc[torch]\"); the same as --set train.engine=...")
    t.add_argument("--device", metavar="DEV", help="the torch engine's device: cpu, cuda, cuda:N or mps (default: "
                                                   "a GPU when there is one); the same as --set train.device=...")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar or warnings")
    t.add_argument("--vary", action="append", metavar="KEY=V1,V2",
                   help="train one run per value (repeat for every combination) on the same split and seed, "
                        "then print a table and draw the curves in one PNG, as dlc compare; KEY as for --set, "
                        "plus model.activation, model.init, model.dropout")
    _add_max_memory(t)
    t.set_defaults(func=cmd_train)

    cp = sub.add_parser("compare", help="train several specs on the same split and seed; one table, one plot",
                        description="Train each spec on the first spec's data split with its seed (the specs must "
                                    "share the data line). Writes RUN/NAME/ run folders, RUN/compare.png with every "
                                    "curve, and RUN/compare.csv / .json with the table printed.")
    cp.add_argument("specs", nargs="+", metavar="SPEC", type=_path)
    cp.add_argument("-o", "--output", metavar="RUN", type=_path, help="folder for the runs and the plot "
                                                          "(default: runs/compare-A-vs-B)")
    cp.add_argument("--overwrite", action="store_true", help="let -o name a folder that is not empty "
                                                             "(earlier runs of the same names are replaced)")
    _add_set(cp, "in every spec ")
    cp.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _add_max_memory(cp)
    cp.set_defaults(func=cmd_compare)

    se = sub.add_parser("search", help="search over the ranges written in the spec (Optuna)",
                        description="Search on Optuna: each trial writes a sampled value where each range is written "
                                    "(loguniform in log space) and trains with the spec's seed on one shared split. "
                                    "Trials run in parallel and are ranked by validation accuracy (validation loss "
                                    "for regression). The study is kept in RUN/study.db: running the same command "
                                    "again resumes it. Writes RUN/results.csv, results.json, search.png and best.dl.")
    se.add_argument("spec", metavar="SPEC", type=_path)
    se.add_argument("--trials", type=int, default=20, help="trials in all (default 20)")
    se.add_argument("--fine", type=int, default=None, metavar="M",
                    help="how many of the trials sample ranges narrowed around the best coarse trial "
                         "(default a quarter; 0: one coarse stage)")
    se.add_argument("--jobs", type=int, default=None, help="parallel trials (default: the machine's cores)")
    se.add_argument("--sampler", choices=SAMPLERS, default=SAMPLERS[0],
                    help="how trials pick values: random (default, coarse to fine), tpe (Optuna's Bayesian "
                         "sampler) or genetic (Optuna's NSGA-II)")
    se.add_argument("--prune", action="store_true",
                    help="stop trials whose validation score is behind the median of the earlier trials at "
                         "the same epoch (Optuna's MedianPruner: after 5 trials, from a trial's third epoch)")
    se.add_argument("--storage", metavar="URL",
                    help="where the study lives, any URL Optuna accepts (default: sqlite:///RUN/study.db); "
                         "searches on one storage and study share their trials, also across machines")
    se.add_argument("--study", metavar="NAME", help="the study's name in the storage (default: the model's name)")
    se.add_argument("--seed", type=int, default=None, help="sampling seed (default: the spec's train seed)")
    se.add_argument("-o", "--output", metavar="RUN", type=_path, help="results folder (default: runs/MODEL-search)")
    _add_set(se)
    se.add_argument("-q", "--quiet", action="store_true", help="no progress bar or warnings")
    _add_max_memory(se)
    se.set_defaults(func=cmd_search)

    e = sub.add_parser("eval", help="metrics of a trained run on its splits or on a data set",
                       description="Loss and accuracy of a run with the NumPy runtime, with per-class precision, "
                                   "recall, F1 and support, macro and weighted averages, top-k accuracy and the "
                                   "confusion matrix (RUN/confusion.png) -- MAE, MSE and R² for regression: on the "
                                   "run's own splits, or on DATA (a built-in set name or a .npz/.csv/IDX file).")
    e.add_argument("run", metavar="RUN", type=_path)
    e.add_argument("data", nargs="?", metavar="DATA", type=_path)
    e.add_argument("--split", choices=["train", "validation", "test", "all"], default="all")
    e.add_argument("--top-k", type=int, default=None, metavar="K",
                   help="also report top-K accuracy (default: 5 where there are more than 5 classes)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)

    x = sub.add_parser("export", help="export a trained run to ONNX, verified against the NumPy runtime",
                       description="Write ONNX (opset 18) with the trained weights, a dynamic batch dimension, "
                                   "dropout removed, batchnorm folded (unless --keep-bn), preprocessing included "
                                   "and the spec in the metadata. The model is checked with onnx.checker and "
                                   "compared with the NumPy runtime on real inputs; a model that disagrees is not written.")
    x.add_argument("run", metavar="RUN", type=_path)
    x.add_argument("-o", "--output", required=True, metavar="MODEL.onnx", type=_path)
    x.add_argument("--keep-bn", action="store_true", help="keep BatchNormalization nodes instead of folding them")
    x.add_argument("--samples", type=int, default=256, help="real inputs used for the parity check (default 256)")
    x.set_defaults(func=cmd_export)

    lsp = sub.add_parser("lsp", help="a language server over stdio for editors (pip install \"dlc[lsp]\")",
                         description="Speak the Language Server Protocol on stdin/stdout: diagnostics as you type, "
                                     "shapes after each model line, hover, completion, block navigation, the outline, quick "
                                     "fixes and formatting (docs/editors.md; VS Code: editors/vscode/).")
    lsp.set_defaults(func=cmd_lsp)

    fm = sub.add_parser("fmt", help="rewrite specs in the canonical layout (indentation, spacing, modifier order)",
                        description="Rewrite each SPEC in place: four spaces per brace level, one space between "
                                    "values, a layer's modifiers in the order dlc applies them (batchnorm, the "
                                    "activation, dropout=, frozen); comments and blank lines kept. Formatting a "
                                    "formatted spec changes nothing. Exit 2 if a spec does not parse.")
    fm.add_argument("specs", nargs="+", metavar="SPEC", type=_path)
    fm.add_argument("--check", action="store_true",
                    help="change nothing; list the specs that would change and exit 1 if any would")
    fm.add_argument("--diff", action="store_true",
                    help="change nothing; print what would change as a unified diff and exit 1 if anything would")
    fm.set_defaults(func=cmd_fmt)

    pr = sub.add_parser("predict", help="predictions for a data set from an .onnx file or a run folder",
                        description="Predict with onnxruntime (MODEL.onnx) or the NumPy runtime (a run folder). "
                                    "DATA is a built-in set name or a .npz/.csv/IDX file, as in training.")
    pr.add_argument("model", metavar="MODEL_OR_RUN", type=_path)
    pr.add_argument("data", metavar="DATA", type=_path)
    pr.add_argument("-o", "--output", metavar="OUT.npz", type=_path,
                    help="write the arrays: output (N, K: class probabilities for a classifier), class_index (N,: "
                         "the predicted class's index), class_name (N,: its name), files (image files: each row's file)")
    pr.add_argument("--show", type=int, default=10, help="rows to print (default 10)")
    pr.set_defaults(func=cmd_predict)

    return p


def _stdout_closed() -> int:
    """The reader of our output went away (`dlc check spec.dl | head -1`): stop quietly, as Unix tools do."""
    import os
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing more reaches the closed pipe, not even at exit
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE, what a shell reports for a tool that a closed pipe stopped


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_ERROR
    try:
        code = args.func(args)
        if not sys.stdout.closed:  # (dlc lsp: the server closed it on exit)
            sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except DLError as e:
        if args.debug:
            raise
        print(e.format(), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MemoryError:  # an allocation past what the machine has (e.g. with --max-memory 0: no limit)
        if args.debug:
            raise
        print("dlc: error: out of memory: the machine could not allocate what this needs\n"
              "  hint: make the model, batch or optimizer population smaller, or keep the memory check on "
              "(--max-memory SIZE; 0 turns it off)", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:  # a bug in dlc, not a user mistake
        if args.debug:
            raise
        print(f"dlc: internal error: {e.__class__.__name__}: {e}\n"
              "  this is a bug in dlc; rerun with --debug for the traceback and report it", file=sys.stderr)
        return 3


def entry() -> None:
    """The `dlc` command (and `python -m dlc`): main(), then exit at once. Every file dlc writes is
    written, fsynced and closed before the last line is printed; the interpreter's own teardown of the
    modules a run imported (numpy, matplotlib, onnx ...) took 0.2 s more on every command
    (bench/cold_start.py: last line to exit), so it is skipped once the output is flushed."""
    try:
        code = main()
    except SystemExit as e:  # argparse's refusals and --help
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            if not stream.closed:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach the reader
            pass
    os._exit(code if isinstance(code, int) else 1)


if __name__ == "__main__":
    entry()
