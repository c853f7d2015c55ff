"""The dlc command line's options: one small function per command's parser, and the argument types that
refuse a bad value where it is typed (a size, a path the file system cannot take). dlc/cli.py runs them."""

from __future__ import annotations

import argparse
import os

from dlc.compiler.engines import ENGINES
from dlc.compiler.search_space import SAMPLERS


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
    _check(sub)
    _diagnose(sub)
    _train(sub)
    _compare(sub)
    _search(sub)
    _eval(sub)
    _export(sub)
    _import(sub)
    _lsp(sub)
    _fmt(sub)
    _predict(sub)
    return p


def _check(sub) -> None:
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
    c.add_argument("--serving", action="store_true",
                   help="also measure what serving it costs: the ONNX file's size and onnxruntime's latency per "
                        "sample at batch 1 and 64, float and int8 (initial weights; docs/deploy.md)")
    _add_set(c)
    _add_max_memory(c)
    c.set_defaults(command="check")


def _diagnose(sub) -> None:
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
    d.set_defaults(command="diagnose")


def _train(sub) -> None:
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
    t.set_defaults(command="train")


def _compare(sub) -> None:
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
    cp.set_defaults(command="compare")


def _search(sub) -> None:
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
    se.set_defaults(command="search")


def _eval(sub) -> None:
    e = sub.add_parser("eval", help="metrics of a trained run on its splits or on a data set",
                       description="Loss and accuracy of a run with the NumPy runtime, with per-class precision, "
                                   "recall, F1 and support, macro and weighted averages, top-k accuracy and the "
                                   "confusion matrix (RUN/confusion.png) -- MAE, MSE and R² for regression: on the "
                                   "run's own splits, or on DATA (a built-in set name or a .npz/.csv/IDX file). "
                                   "RUN may also be an .onnx file dlc export wrote (float or --int8): scored "
                                   "through onnxruntime, by the spec in its metadata.")
    e.add_argument("run", metavar="RUN", type=_path)
    e.add_argument("data", nargs="?", metavar="DATA", type=_path)
    e.add_argument("--split", choices=["train", "validation", "test", "all"], default="all")
    e.add_argument("--top-k", type=int, default=None, metavar="K",
                   help="also report top-K accuracy (default: 5 where there are more than 5 classes)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(command="eval")


def _export(sub) -> None:
    x = sub.add_parser("export", help="export a trained run to ONNX, verified against the NumPy runtime",
                       description="Write ONNX (opset 18) with the trained weights, a dynamic batch dimension, "
                                   "dropout removed, batchnorm folded (unless --keep-bn), preprocessing included "
                                   "and the spec in the metadata. The model is checked with onnx.checker and "
                                   "compared with the NumPy runtime on real inputs; a model that disagrees is not written.")
    x.add_argument("run", metavar="RUN", type=_path)
    x.add_argument("-o", "--output", required=True, metavar="MODEL.onnx", type=_path)
    x.add_argument("--keep-bn", action="store_true", help="keep BatchNormalization nodes instead of folding them")
    x.add_argument("--samples", type=int, default=256,
                   help="real inputs used for the parity check, and with --int8 for the calibration (default 256)")
    x.add_argument("--int8", action="store_true",
                   help="write an int8 model (onnxruntime static QDQ, per-channel weights, activations calibrated "
                        "on the run's training data), measured against the float model on the test split and "
                        "refused when it loses more than --max-drop")
    x.add_argument("--calibration", choices=("minmax", "entropy", "percentile"), default="minmax",
                   help="how --int8 sets the activations' ranges (default minmax)")
    x.add_argument("--max-drop", type=float, default=1.0, metavar="POINTS",
                   help="--int8: the accuracy points (regression: percent of MAE) it may lose (default 1)")
    x.set_defaults(command="export")


def _lsp(sub) -> None:
    lsp = sub.add_parser("lsp", help="a language server over stdio for editors (pip install \"dlc[lsp]\")",
                         description="Speak the Language Server Protocol on stdin/stdout: diagnostics as you type, "
                                     "shapes after each model line, hover, completion, block navigation, the outline, quick "
                                     "fixes and formatting (docs/editors.md; VS Code: editors/vscode/).")
    lsp.set_defaults(command="lsp")


def _fmt(sub) -> None:
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
    fm.set_defaults(command="fmt")


def _import(sub) -> None:
    im = sub.add_parser("import", help="an ONNX model as a run folder: a readable spec and its weights",
                        description="Read MODEL.onnx into a run folder (spec.dl, weights.npz under dlc's names, the "
                                    "preprocessing it can recover) that check, eval, predict, export and init from "
                                    "use like any run. dlc's own exports come back as written; chains of dense, conv, "
                                    "batchnorm, pooling, flatten and activation layers from other tools become one "
                                    "line per layer; anything else is refused, naming the node. The run's outputs "
                                    "are compared with the source's before anything is written.")
    im.add_argument("source", metavar="MODEL.onnx", type=_path)
    im.add_argument("-o", "--output", required=True, metavar="RUN", type=_path)
    im.add_argument("--samples", type=int, default=64, help="inputs the two models are compared on (default 64)")
    im.add_argument("--overwrite", action="store_true", help="replace an earlier run in RUN (only the files it names)")
    im.set_defaults(command="import")


def _predict(sub) -> None:
    pr = sub.add_parser("predict", help="predictions for a data set from an .onnx file or a run folder",
                        description="Predict with onnxruntime (MODEL.onnx) or the NumPy runtime (a run folder). "
                                    "DATA is a built-in set name or a .npz/.csv/IDX file, as in training.")
    pr.add_argument("model", metavar="MODEL_OR_RUN", type=_path)
    pr.add_argument("data", metavar="DATA", type=_path, nargs="?",
                    help="a built-in set, a data file (a text model: a CSV/TSV/JSONL file of texts)")
    pr.add_argument("--text", action="append", metavar="TEXT",
                    help="a text model: predict for this text (repeat for several); instead of DATA")
    pr.add_argument("-o", "--output", metavar="OUT.npz", type=_path,
                    help="write the arrays: output (N, K: class probabilities for a classifier), class_index (N,: "
                         "the predicted class's index), class_name (N,: its name), files (image files: each row's file)")
    pr.add_argument("--show", type=int, default=10, help="rows to print (default 10)")
    pr.set_defaults(command="predict")
