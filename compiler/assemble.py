"""The pass from spec text to a checked `Spec`: parse, read the blocks, build the graph (compiler/build.py),
read every statement, and the checks across them (the data against the model, class weights, the
monitored metric, the engine and device, the augment line), then the memory limit and lint.
compiler/spec.py is the entry point around it (overrides, files)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Protocol
from pathlib import Path

from .attrs import SearchRange
from .catalog import BUILTIN_SETS as CATALOG, GENERATOR_KEYS, is_file_source, source_keys
from .build import build_model
from .diagnostics import Diagnostic, Diagnostics, DLError, Source, Span, did_you_mean
from .ir import Graph
from .losses import LOSSES
from .statements import CLASSIFICATION_LOSSES, STATEMENTS, Setting, default_setting, read_statement

class DataReport(Protocol):
    """What dlc check read of the data, as the runtime reports it (runtime/data/images.py's survey)."""

    def lines(self) -> list[str]: ...


class InitReport(DataReport, Protocol):
    """What `init from "RUN"` would load, as the runtime reports it (runtime/init_from.py)."""

    loaded: Any  # the names of the weights taken from the run


@dataclass
class Spec:
    source: Source
    graph: Graph
    settings: dict[str, Setting]
    ranges: list[tuple[str, SearchRange]] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    data_files: dict | None = None  # a run's recorded data files {name: {path, sha256}} (runtime/data/record.py)
    blocks: dict[str, Span] = field(default_factory=dict)  # the blocks the spec defines, where their names are
    memory_limit: int | None = None  # bytes training may hold (--max-memory; None: no limit), data included
    init_report: InitReport | None = None  # init from "RUN": what would be loaded (runtime/init_from.py, set by dlc check)
    data_report: DataReport | None = None  # image files: the listing and headers dlc check read (runtime/data/images.py)
    data_dtype: Any = None  # a data file's input element type as stored, read by dlc check (lint DL116)
    overridden: tuple | None = None  # (the text as written, the overrides) when --set/--vary rewrote it

    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def loss(self) -> str:
        return self.settings["loss"].kind_name

    @property
    def task(self) -> str:
        return "classification" if self.loss in CLASSIFICATION_LOSSES else "regression"

    def __getitem__(self, word: str) -> Setting:
        return self.settings[word]

    @property
    def memory(self):
        """What training allocates: parameters, optimizer state, one batch's activations (compiler/memory.py)."""
        from .memory import estimate
        return estimate(self.graph, self["train"]["batch"], self["optimizer"].kind, hp=self["optimizer"].values)

    @property
    def base_dir(self) -> Path | None:
        return _base_dir(self.source.filename)


def _base_dir(filename: str) -> Path | None:
    """The folder data paths are relative to: the spec file's (None for text: the current folder)."""
    p = Path(filename)
    return p.parent if p.is_file() else None


def _default_loss(graph: Graph) -> str:
    """The loss that fuses with the output activation (softmax: cross_entropy, sigmoid:
    binary_cross_entropy), else mse."""
    from .losses import LOSSES
    act = graph.output_activation
    return next((name for name, loss in LOSSES.items() if loss.fuses and loss.fuses == act), "mse")


def _check_source_keys(data, diags: Diagnostics) -> None:
    """A key that this source would ignore (n= on a file, classes= on xor, label= on digits) is an
    error at the key, never accepted and silently unused."""
    takes = source_keys(data)
    from .catalog import IMAGE_KEYS
    for key in ("n", "noise", "classes", "label", "labels") + IMAGE_KEYS:
        if key not in data.spans or key in takes:
            continue
        what: str | None
        if is_file_source(data):
            what = f"the file {data.kind}"
        else:
            what = f"the built-in set {data.kind}" if data.kind in CATALOG else None
        if what is None:
            continue  # an unknown set: reported on its own
        if key in GENERATOR_KEYS:
            makers = [n for n, info in CATALOG.items() if key in info.options]
            hint = f"{key}= is for the synthetic sets that take it ({', '.join(makers)}); remove it"
        elif key in IMAGE_KEYS:
            hint = (f"{key}= is for image files: a folder of class folders (data \"photos/\") or a CSV "
                    "list of image paths; remove it")
        else:
            hint = ("label= names a CSV file's label column" if key == "label"
                    else "labels= names the IDX labels file that goes with IDX images") + "; remove it"
        diags.error(f"{what} does not use {key}=", data.spans[key], hint)
    info = CATALOG.get(data.kind)
    if info is not None and info.official_split and "test" in data.spans:
        train, test = info.official_split
        diags.error(f"the built-in set {data.kind} keeps the archive's own split ({train} training, {test} test "
                    "series): test= does not apply", data.spans["test"],
                    "remove test=; validation= on the train line takes the validation series from the training ones")


TEXT_KEYS = ("text", "tokens", "min_count")  # what only a text data line (input L tokens) takes
NUMERIC_KEYS = ("standardize", "center", "scale", "znorm", "reshape", "resize")  # what a text has no use for


def _check_text_keys(data, graph: Graph, diags: Diagnostics) -> None:
    """Texts (input L tokens) and numbers do not mix: a text key on a model of numbers, a numeric
    preprocessing key or a built-in set on a model of texts, each an error at its word."""
    texts = graph.input_dtype == "int64"
    if not texts:
        for key in TEXT_KEYS:
            if key in data.spans:
                diags.error(f"{key}= is for texts, but the model's input is {'x'.join(map(str, graph.input_shape))} "
                            "numbers", data.spans[key], "a model of texts starts: input L tokens, then an embedding")
        return
    for key in NUMERIC_KEYS:
        if key in data.spans:
            diags.error(f"{key} does not apply to texts: the model reads token ids (input L tokens)", data.spans[key],
                        f"remove {key}")
    if not is_file_source(data):
        diags.error(f"input {graph.input_shape[1]} tokens reads texts, but {data.kind} is not a file of texts",
                    data.kind_span, 'give a CSV, TSV or JSONL file of texts (data "reviews.csv" text=review '
                                    'label=sentiment) or a folder of class folders of .txt files')


def _check_data(spec_settings, graph: Graph, loss: str, diags: Diagnostics):
    """A built-in data set against the model (a data file is the runtime's to check: runtime/data/check.py)."""
    data = spec_settings.get("data")
    if data is None or not data.written:
        return
    _check_source_keys(data, diags)
    _check_text_keys(data, graph, diags)
    if graph.input_dtype == "int64":
        return  # a file of texts: read and checked by the runtime (runtime/data/check.py)
    if data.get("znorm") and len(graph.input_shape) != 2:
        diags.error(f"znorm z-normalises each series over its steps, but the model's input is "
                    f"{'x'.join(map(str, graph.input_shape))}, not a sequence CxL",
                    data.spans.get("znorm", data.kind_span), "use standardize for features and images")
    if is_file_source(data):
        return
    src = data.kind
    if src not in CATALOG:
        listed = "the built-in sets (nothing is downloaded): " + ", ".join(CATALOG)
        if "mnist" in src.lower():  # a set people download: dlc reads the files as they come
            hint = (f"{listed}; an MNIST download in its IDX form is read as is: data \"train-images-idx3-ubyte.gz\" "
                    "labels=\"train-labels-idx1-ubyte.gz\"")
        else:  # (a did-you-mean stays one: the editor's quick fix reads it)
            hint = did_you_mean(src, CATALOG) or f"write a file path in quotes; {listed}"
        diags.error(f"unknown data set '{src}'", data.kind_span, hint)
        return
    info = CATALOG[src]
    out = graph.output_shape
    shape = graph.input_shape
    resize, reshape = data.get("resize"), data.get("reshape")
    image = (info.image_shape[0], resize or info.image_shape[1], resize or info.image_shape[2]) \
        if info.image_shape else None
    if reshape:  # the samples (as images after resize=) are given the shape reshape= says
        made = image if image and resize else info.features
        fits = tuple(reshape) == shape and math.prod(reshape) == math.prod(made)
    else:
        fits = shape == info.features or (image is not None and shape == image)
    if not fits and reshape:
        made_text = "x".join(map(str, made))
        diags.error(f"reshape={'x'.join(map(str, reshape))} does not fit: {src} samples are {made_text} "
                    f"({math.prod(made)} values) and the model's input is {'x'.join(map(str, shape))}",
                    data.spans.get("reshape", data.kind_span), f"write reshape={'x'.join(map(str, shape))} "
                    f"with an input of {math.prod(made)} values, or drop reshape=")
    elif fits and info.variable and not graph.variable:
        want = "x".join(map(str, info.features))
        diags.error(f"{src} holds series of different lengths, up to {info.features[1]} steps, but the model's "
                    f"input is a fixed {want}", graph.layers[0].span if graph.layers else data.kind_span,
                    f"write input {want} variable")
    elif not fits:
        want = fmt = "x".join(map(str, info.features)) + (" variable" if info.variable else "")
        if info.image_shape:
            fmt = f"{want} features (or the image {'x'.join(map(str, info.image_shape))})"
        diags.error(f"input {'x'.join(map(str, shape))} does not fit {src}: it has {fmt}",
                    graph.layers[0].span if graph.layers else data.kind_span,
                    f"write input {want}" + (" and add resize=N to the data line to upsample images"
                                              if info.image_shape and len(shape) == 3 else ""))
    task_loss = LOSSES[loss].task
    if task_loss != info.task:
        diags.error(f"loss {loss} is for {task_loss}, but {src} is a {info.task} set",
                    spec_settings["loss"].kind_span or data.kind_span,
                    "use mse or mae" if info.task == "regression" else "use cross_entropy")
        return
    labels = LOSSES[loss].labels
    classes = data.get("classes") or info.classes
    if labels == "index" and len(out) == 1 and out[0] != classes:
        last = graph.layers[graph.nodes[-1].layer]
        diags.error(f"the output has {out[0]} units but {src} has {classes} classes", last.span,
                    f"make the last dense layer {classes} wide")
    if labels == "binary" and len(out) == 1 and out[0] != 1 and classes == 2:
        diags.error(f"{loss} needs 1 output unit, the model has {out[0]}", graph.nodes[-1].span,
                    "make the last layer dense 1 sigmoid, or use cross_entropy with softmax")


def assemble(text: str, filename: str, lint: bool = True, data_files: dict | None = None,
             max_memory: int | None = None) -> Spec:
    """Text -> a checked Spec, or DLError with every error found (see compile in spec.py)."""
    from dlc.grammar import parse

    source = Source(text, filename)
    if len(text) > MAX_SPEC_BYTES:
        raise DLError(Diagnostic("error", f"the spec is {len(text):,} characters; a spec is at most "
                                          f"{MAX_SPEC_BYTES:,}"), source)
    try:
        tree = parse(text, filename)
    except DLError as e:
        raise e.with_source(source)
    diags = Diagnostics(source)
    if not tree.models:
        raise DLError(Diagnostic("error", "no model block", Span(1, 1),
                                 "write model NAME { input 64 ... } (see specs/ for examples)"), source)
    for extra in tree.models[1:]:
        diags.error("only one model block per spec", extra.span)
    from .build import STRUCTURE_WORDS
    from .expand import read_blocks
    from .ops import REGISTRY
    blocks = read_blocks(tree.stmts, set(REGISTRY.names()) | set(STATEMENTS) | set(STRUCTURE_WORDS)
                         | {"model", "block"}, diags)
    result = build_model(tree.models[0], text.splitlines(), diags, blocks)
    settings: dict[str, Setting] = {}
    for stmt in tree.stmts:
        if stmt.word == "block":
            continue
        if stmt.body is not None:
            diags.error(f"'{stmt.word}' does not open a '{{' block", stmt.span,
                        "outside the model, only block NAME(params) { ... } has a body")
            continue
        if stmt.word not in STATEMENTS:
            if stmt.word in REGISTRY or stmt.word in STRUCTURE_WORDS or stmt.word in blocks:
                diags.error(f"'{stmt.word}' belongs inside the model block", stmt.span)
            else:
                diags.error(f"unknown statement '{stmt.word}'", stmt.span, did_you_mean(stmt.word, STATEMENTS))
            continue
        if stmt.word in settings:
            first = settings[stmt.word].span
            diags.error(f"{stmt.word} is given twice" + (f" (first on line {first.line})" if first else ""), stmt.span)
            continue
        s = read_statement(stmt, diags)
        if s is not None:
            settings[stmt.word] = s
    graph = result.graph
    ranges = list(result.ranges)
    for word, s in settings.items():
        ranges += [(f"{word}.{k}", v) for k, v in s.values.items() if isinstance(v, SearchRange)]
    if graph is not None:
        if not graph.nodes:
            diags.error(f"model {graph.name} has no layers after its input", tree.models[0].span,
                        "add at least one dense or conv layer")
        elif len(graph.output_shape) != 1:
            sequence = len(graph.output_shape) == 2
            diags.error(f"the model's output is {'a sequence' if sequence else 'an image'} "
                        f"{'x'.join(map(str, graph.output_shape))}; it must end in a feature vector",
                        graph.layers[graph.nodes[-1].layer].span,
                        "reduce over the steps (globalavgpool, or an lstm/gru without 'sequences') and end with "
                        "a dense layer" if sequence else "end with flatten and a dense layer")
        elif not graph.params():
            diags.error(f"model {graph.name} has no parameters: it can never train", tree.models[0].span,
                        "add a dense or conv layer")
        if graph.nodes:
            if "loss" not in settings:
                settings["loss"] = default_setting("loss", _default_loss(graph))
            _check_data(settings, graph, settings["loss"].kind_name, diags)
    for word in STATEMENTS:
        if word not in settings and word not in ("data", "init"):  # written, or absent
            settings[word] = default_setting(word)
    _check_engine(settings, diags)
    if graph is not None and graph.nodes:
        _check_class_weight(settings["loss"], graph, diags)
        _check_monitor(settings["train"], settings["loss"].kind_name, diags)
        _check_augment(settings["augment"], graph.input_shape, diags)
    diags.raise_if_errors()
    from .memory import check_limit, default_limit
    limit = default_limit() if max_memory is None else (max_memory or None)
    assert graph is not None, "a model without a graph has errors, raised above"
    spec = Spec(source, graph, settings, ranges, data_files=data_files,
                blocks={name: b.span for name, b in blocks.items()}, memory_limit=limit)
    check_limit(spec, limit)
    if lint:
        from .lint import lint as run_lint
        spec.warnings = run_lint(spec)
    return spec


def _check_class_weight(loss: Setting, graph: Graph, diags: Diagnostics) -> None:
    """Explicit class weights: one per class the output has (a sigmoid's single unit: two classes)."""
    weights = loss.get("class_weight")
    if not isinstance(weights, tuple) or (weights and isinstance(weights[0], tuple)):
        return  # balanced, or weights by class name: the data's class names are the runtime's to match
    units = graph.output_shape[0] if len(graph.output_shape) == 1 else None
    span = loss.spans.get("class_weight", loss.span)
    if LOSSES[loss.kind_name].labels == "binary":
        if units != 1:
            diags.error(f"class_weight with {loss.kind} needs 1 output unit (two classes), the model has {units}",
                        span, "for several independent labels leave class_weight out")
        elif len(weights) != 2:
            diags.error(f"class_weight gives {len(weights)} weights; {loss.kind} with 1 output has 2 classes",
                        span, "write class_weight=(weight of 0, weight of 1)")
    elif units is not None and len(weights) != units:
        diags.error(f"class_weight gives {len(weights)} weights; the output has {units} classes", span,
                    "one weight per class, in class order, or class_weight=balanced")


DEVICE = re.compile(r"cpu|mps|cuda(:\d+)?")


def _check_monitor(train, loss: str, diags: Diagnostics) -> None:
    """monitor=val_accuracy needs an accuracy: a classification loss."""
    from .statements import CLASSIFICATION_LOSSES
    if train.get("monitor") == "val_accuracy" and loss not in CLASSIFICATION_LOSSES:
        diags.error(f"monitor=val_accuracy with loss {loss}: a regression has no accuracy",
                    train.spans.get("monitor", train.span), "watch the validation loss: monitor=val_loss")


def _check_engine(settings: dict, diags: Diagnostics) -> None:
    """What the chosen engine cannot do, refused where it is written (whether a device exists on this
    machine is the runtime's to say: runtime/torch_engine/engine.py)."""
    tr, opt = settings["train"], settings["optimizer"]
    device = tr.get("device")
    if device is not None and not isinstance(device, SearchRange) and not DEVICE.fullmatch(device):
        diags.error(f"unknown device '{device}'", tr.spans.get("device", tr.span), "expected cpu, cuda, cuda:N or mps")
    from .engines import DEFAULT_ENGINE, able, engine_info
    name = tr.get("engine") if isinstance(tr.get("engine"), str) else None
    engine = engine_info(name)
    from .optimizers import OPTIMIZERS
    rule = OPTIMIZERS.get(opt.kind)
    if rule is not None and not rule.uses_gradients and not engine.gradient_free:
        where = " or ".join(able("gradient_free"))
        diags.error(f"optimizer {opt.kind} runs on the {where} engine only", opt.kind_span or opt.span or tr.span,
                    f"train it with engine={where}" + (" (the default)" if where == DEFAULT_ENGINE else "")
                    + ", or pick a gradient optimizer (adam, sgd ...)")
    if device is not None and not engine.devices:
        takes = " or ".join(able("devices"))
        diags.error(f"device= is the {takes} engine's: the {engine.name} engine runs on the CPU",
                    tr.spans.get("device", tr.span), f"add engine={takes} (or --engine {takes}), or remove device=")


def _check_augment(aug: Setting, input_shape: tuple[int, ...], diags: Diagnostics) -> None:
    """augment's image operations need image inputs, and crop, shift and cutout must fit inside them."""
    from .statements import GEOMETRIC
    used = [k for k in GEOMETRIC if aug.values.get(k) and not isinstance(aug.values[k], SearchRange)]
    if used and len(input_shape) != 3:
        diags.error(f"augment {used[0]} works on images, but the model's input is {'x'.join(map(str, input_shape))}",
                     aug.spans.get(used[0], aug.span), "give the model an image input (e.g. input 1x28x28), or "
                     "use only brightness=, contrast= and noise= on vectors")
        return
    if len(input_shape) != 3:
        return
    side = min(input_shape[1:])
    for key in ("crop", "cutout"):
        value = aug.values.get(key)
        if isinstance(value, int) and value >= side:
            diags.error(f"augment {key}={value} is as large as the {input_shape[1]}x{input_shape[2]} image",
                        aug.spans.get(key, aug.span), f"use {key} below {side} (a few pixels: {max(1, side // 8)})")


MAX_SPEC_BYTES = 10_000_000
