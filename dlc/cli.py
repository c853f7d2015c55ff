"""The dlc command line. User mistakes print `file:line:col: error: ...` and exit 2."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from dlc import api
from dlc.api import Diagnostic, DLError
from dlc.cli_parser import build_parser

EXIT_OK, EXIT_WARNINGS, EXIT_ERROR = 0, 1, 2


def _print_diags(diags, source, stream=None):
    for d in diags:
        print(d.format(source), file=stream or sys.stderr)  # sys.stderr at call time


def cmd_check(args) -> int:
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
        cost = api.serving_cost(spec) if args.serving else None
        if args.json:
            reports.append(dict(api.summary_json(spec), file=path, **({"serving": cost} if cost else {})))
        else:
            print(api.summary_text(spec))
            if cost:
                print(api.serving_text(cost))
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
    if args.vary:
        return _train_variants(args)
    if args.resume and Path(args.spec).is_dir() and not (Path(args.spec) / "spec.dl").exists():
        print(f"dlc: error: {args.spec} holds no spec.dl: the run stopped before its first epoch; "
              f"start it again with dlc train SPEC -o {args.spec}", file=sys.stderr)
        return EXIT_ERROR
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
    rank = api.process_rank()  # under torchrun, rank 0 alone reports
    try:
        result = api.train(spec, out=out, resume=args.resume, progress=not args.quiet and rank == 0,
                           overwrite=args.overwrite, notify=lambda note: _notify(note, spec))
    except api.TrainingDiverged as e:
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
    if isinstance(note, Diagnostic):
        _print_diags([note], spec.source)
    else:
        print(f"dlc: {note}", file=sys.stderr)


def _train_overrides(args) -> list[str]:
    """--set, with --engine and --device as the train keys they stand for."""
    return [*(args.set or ()), *api.engine_overrides(args.engine, args.device)]


def _train_variants(args) -> int:
    if args.resume:
        print("dlc: --resume and --vary do not go together: resume each run folder on its own", file=sys.stderr)
        return EXIT_ERROR
    combos = api.variants(args.vary)
    specs = [api.check(args.spec, [*_train_overrides(args), *extra], args.max_memory) for _, extra in combos]
    if not args.quiet:
        _print_diags(specs[0].warnings, specs[0].source)
    name = specs[0].name
    out = args.output or api.default_run_dir(f"{name}-vary")
    result = api.compare(specs, [label for label, _ in combos], out=out, progress=not args.quiet,
                         overwrite=args.overwrite)
    print(result.render())
    return 130 if result.interrupted else EXIT_OK


def cmd_lsp(args) -> int:
    from dlc.lsp import run
    return run()


def cmd_fmt(args) -> int:
    """Rewrite each spec in the canonical layout (dlc/formatting.py); --check only says which would change."""
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
    result = api.compare(args.specs, out=args.output, progress=not args.quiet, overwrite=args.overwrite,
                         overrides=args.set or (), max_memory=args.max_memory)
    print(result.render())
    return 130 if result.interrupted else EXIT_OK


def cmd_search(args) -> int:
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
            print(api.class_report_text(r["report"]))
        if report.get("confusion_png"):
            print(f"confusion matrix: {report['confusion_png']}")
    return EXIT_OK


def cmd_export(args) -> int:
    if args.int8:
        report = api.export(args.run, args.output, keep_bn=args.keep_bn, samples=args.samples, int8=True,
                            calibration=args.calibration, max_drop=args.max_drop)
        print("\n".join(report.lines()))
        return EXIT_OK
    r = api.export(args.run, args.output, keep_bn=args.keep_bn, samples=args.samples)
    print(f"wrote {r.path} ({r.size_bytes:,} bytes, {r.onnx_nodes} ONNX nodes, opset 18, "
          f"{r.folded_bn} batchnorm folded); onnxruntime vs NumPy on {r.samples} "
          f"{'real' if r.real else 'standard-normal'} inputs: "
          f"max abs difference {r.max_abs_diff:.2e}")
    if r.text:
        print(f"text: {r.text}")
    return EXIT_OK


def cmd_import(args) -> int:
    r = api.import_onnx(args.source, args.output, samples=args.samples, overwrite=args.overwrite)
    kind = "dlc's own export, its spec as written" if r.own else "a graph read layer by layer"
    print(f"imported {args.source} -> {r.run_dir} ({kind}): {r.layers} lines, {r.params:,} parameters; its outputs "
          f"equal the source's on {r.inputs} (max abs difference {r.max_abs_diff:.2e})")
    return EXIT_OK


def cmd_predict(args) -> int:
    import numpy as np

    r = api.predict(args.model, args.data, out=args.output, text=args.text)
    shown = min(len(r["output"]), args.show)
    rows = [str(f) for f in r["files"]] if "files" in r else [str(i) for i in range(len(r["output"]))]
    if args.text:  # each text beside its class
        rows = [t if len(t) <= 60 else t[:57] + "..." for t in args.text]
    if shown:
        print(("file" if "files" in r else "text" if args.text else "row") + ("\tclass\tprobability" if "class_name" in r else
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
    spec = api.check(args.spec, args.set or (), args.max_memory)
    if spec.warnings and not args.json:
        _print_diags(spec.warnings, spec.source)  # the linter's findings come first: they cost nothing
    report = api.diagnose(spec, out=args.output)
    if args.json:
        print(json.dumps(dict(report.to_json(), warnings=[d.to_json(spec.source) for d in spec.warnings]), indent=2))
    else:
        print(report.render())
    return EXIT_OK if report.ok else EXIT_WARNINGS


COMMANDS = {"check": cmd_check, "diagnose": cmd_diagnose, "train": cmd_train, "compare": cmd_compare,
            "search": cmd_search, "eval": cmd_eval, "export": cmd_export, "lsp": cmd_lsp, "fmt": cmd_fmt,
            "predict": cmd_predict, "import": cmd_import}


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
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_ERROR
    try:
        code = COMMANDS[args.command](args)
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
