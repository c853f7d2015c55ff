"""The dlc command line. User mistakes print `file:line:col: error: ...` and exit 2."""

from __future__ import annotations

import argparse
import json
import sys

from dlc.compiler.diagnostics import DLError

EXIT_OK, EXIT_WARNINGS, EXIT_ERROR = 0, 1, 2


def _print_diags(diags, source, stream=sys.stderr):
    for d in diags:
        print(d.format(source), file=stream)


def cmd_check(args) -> int:
    from dlc.compiler.spec import compile_file
    from dlc.compiler.summary import render, to_json

    status = EXIT_OK
    reports = []
    for path in args.specs:
        spec = compile_file(path, overrides=args.set or ())
        if args.json:
            reports.append(dict(to_json(spec), file=path))
        else:
            print(render(spec))
            if spec.warnings:
                print()
                _print_diags(spec.warnings, spec.source, sys.stdout)
            print(f"{path}: ok, {len(spec.warnings)} warning(s)")
        if spec.warnings and args.strict:
            status = EXIT_WARNINGS
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))
    return status


def build_parser() -> argparse.ArgumentParser:
    from dlc import __version__

    p = argparse.ArgumentParser(prog="dlc", description="Compile, train and export neural networks described in .dl specs.")
    p.add_argument("--version", action="version", version=f"dlc {__version__}")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("check", help="parse, infer shapes and lint; print a summary",
                       description="Parse, infer every shape, lint. Exit 0 clean, 1 with warnings under --strict, 2 on errors.")
    c.add_argument("specs", nargs="+", metavar="SPEC")
    c.add_argument("--json", action="store_true", help="machine-readable summary")
    c.add_argument("--strict", action="store_true", help="exit 1 when there are warnings")
    c.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting, e.g. optimizer.lr=0.01")
    c.set_defaults(func=cmd_check)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_ERROR
    try:
        return args.func(args)
    except DLError as e:
        if args.debug:
            raise
        print(e.format(), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug in dlc, not a user mistake
        if args.debug:
            raise
        print(f"dlc: internal error: {e.__class__.__name__}: {e}\n"
              "  this is a bug in dlc; rerun with --debug for the traceback and report it", file=sys.stderr)
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
