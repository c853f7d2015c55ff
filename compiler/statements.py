"""The training statements outside the model block: their words, kinds and typed keys.

    data SOURCE [standardize] [center] [scale=S] [test=0.2] ...
    loss cross_entropy | binary_cross_entropy | mse | mae
    optimizer sgd|adagrad|rmsprop|adam|adamw|genetic lr=... [clip_norm=...]
    regularize l1=... l2=... max_norm=...
    schedule constant|step|exponential|cosine ...
    train epochs=... batch=... validation=... early_stop=... seed=... engine=numpy|torch device=...
    init from "RUN"       (fine-tuning: start from a trained run's weights)
    augment flip_x crop=4 rotate=10 ...   (random changes to training images, runtime/data/augment.py)
"""

from __future__ import annotations

from .engines import ENGINES

from dataclasses import dataclass, field
from typing import Any

from . import ast
from .attrs import Attr, coerce
from .onnx_text import TOKENIZERS
from .losses import LOSSES as LOSS_RULES
from .optimizers import CLIP, OPTIMIZERS as OPTIMIZER_RULES
from .schedules import SCHEDULES as SCHEDULE_RULES, schedule_keys
from .diagnostics import Diagnostics, DLError, Span, did_you_mean

# each optimizer's keys, from its class in the registry (compiler/optimizers.py), plus clipping
OPTIMIZERS = {name: dict(rule.attrs, **CLIP) for name, rule in OPTIMIZER_RULES.items()}

LOSSES = {name: loss.attrs for name, loss in LOSS_RULES.items()}  # from the registry, compiler/losses.py
CLASSIFICATION_LOSSES = tuple(name for name, loss in LOSS_RULES.items() if loss.task == "classification")

SCHEDULES = {name: schedule_keys(name) for name in SCHEDULE_RULES}  # from the registry, compiler/schedules.py

REGULARIZE = {
    "l1": Attr("float", 0.0, min=0, doc="adds l1 * sum|w| to the loss (weights only)"),
    "l2": Attr("float", 0.0, min=0, doc="adds l2/2 * sum w^2 to the loss (weights only)"),
    "max_norm": Attr("float", None, min=0, min_open=True, doc="caps each unit's incoming weight norm after every step"),
}

TRAIN = {
    "epochs": Attr("int", 10, min=1),
    "batch": Attr("int", 32, min=1, doc="samples per step; batch=all for full-batch gradient descent"),
    "validation": Attr("float", 0.1, min=0, max=1, max_open=True, doc="fraction of the training split held out"),
    "early_stop": Attr("int", 0, min=0, doc="epochs without validation improvement before stopping (0 = off)"),
    "monitor": Attr("name", None, choices=("val_loss", "val_accuracy"), searchable=False,
                    doc="what early stopping, the best epoch kept and the plateau schedule watch: val_loss (the "
                        "default; lower is better) or val_accuracy (higher; classification); the training split's "
                        "when there is no validation split"),
    "seed": Attr("int", 0, min=0, max=2**32 - 1, doc="random seed, 0 to 2^32-1"),
    "shuffle": Attr("bool", True),
    "threads": Attr("int", None, min=1, searchable=False,
                    doc="BLAS threads (torch: intra-op threads; default: the machine's); results are bit-identical "
                        "only at the same count"),
    "engine": Attr("name", None, choices=tuple(ENGINES),
                   doc="what trains the model: numpy (the reference, the default) or torch (pip install "
                       "\"dlc[torch]\"); docs/engines.md"),
    "log": Attr("name", None, choices=("tensorboard",), searchable=False,
                doc="a live view: tensorboard writes RUN/tensorboard/ every epoch (pip install \"dlc[live]\")"),
    "device": Attr("str", None, searchable=False,
                   doc="the torch engine's device: cpu, cuda, cuda:N or mps (default: a GPU when there is one)"),
}

DATA = {
    "test": Attr("float", 0.2, min=0, max=1, max_open=True, doc="fraction held out for the test split"),
    "standardize": Attr("bool", False, doc="subtract the training mean, divide by the training std, per feature"),
    "center": Attr("bool", False, doc="subtract the training mean per feature"),
    "znorm": Attr("bool", False, doc="z-normalise each series on its own: per channel over its own steps, mean 0 "
                                     "and std 1 (the UCR/UEA archive's convention); in the exported model too"),
    "scale": Attr("float", None, min=0, min_open=True, doc="multiply inputs by this constant"),
    "n": Attr("int", None, min=2, doc="samples to generate (synthetic sets)"),
    "noise": Attr("float", None, min=0, doc="noise level (synthetic sets)"),
    "classes": Attr("int", None, min=2, doc="classes to generate (spiral, blobs)"),
    "label": Attr("str", None, doc="the label column of a CSV file (name or index; default: the last; for texts: label)"),
    "text": Attr("str", None, searchable=False,
                 doc="the text column of a CSV, TSV or JSONL file of texts (default: text); needs input L tokens"),
    "tokens": Attr("name", "words", choices=TOKENIZERS,
                   doc="how texts become tokens: words (lowercase, Unicode letters/digits), chars, or a subword "
                       "tokenizer trained on the training split (bpe, wordpiece: pip install \"dlc[text]\")"),
    "min_count": Attr("int", 1, min=1, doc="a token seen fewer times in the training split is unknown (id 1)"),
    "labels": Attr("str", None, doc="the IDX labels file that goes with an IDX images file"),
    "resize": Attr("int", None, min=1, doc="resize square images to RxR (bilinear)"),
    "reshape": Attr("shape", None, searchable=False, doc="the shape of one sample, e.g. 1x28x28 for 784 flat pixels"),
    "stratify": Attr("bool", True, doc="keep class proportions in the splits (classification)"),
    "data_seed": Attr("int", None, min=0, max=2**32 - 1, doc="seed of the split and synthetic data (default: train seed)"),
    "size": Attr("dims", None, min=1, max=65536, searchable=False, doc="image files: resize to HxW (default: the model input's)"),
    "channels": Attr("int", None, min=1, max=3, searchable=False,
                     doc="image files: 1 (grey) or 3 (RGB) (default: the model input's)"),
    "fit": Attr("name", "stretch", choices=("stretch", "crop", "pad"), searchable=False,
                doc="image files: stretch to size, or keep the aspect and crop the centre or pad with black"),
    "skip_bad": Attr("bool", False, doc="image files: leave out unreadable or stray files (counted) instead of refusing"),
}

INIT: dict[str, Attr] = {}  # init from "RUN": no keys

# augment: random changes to each training batch (never validation, test or export); the formulas are
# in runtime/data/augment.py and docs/language.md. GEOMETRIC keys need image inputs (CxHxW).
AUGMENT = {
    "flip_x": Attr("bool", False, doc="mirror left-right, each image with probability 1/2"),
    "flip_y": Attr("bool", False, doc="mirror top-bottom, each image with probability 1/2"),
    "crop": Attr("int", 0, min=0, doc="pad P pixels on each side, crop back at a random place: a shift of up to P pixels"),
    "shift": Attr("float", 0.0, min=0, max=0.5, doc="shift by up to this fraction of the height and width"),
    "rotate": Attr("float", 0.0, min=0, max=180, doc="rotate by up to this many degrees either way (bilinear)"),
    "brightness": Attr("float", 0.0, min=0, max=1, doc="add up to this fraction of the data's value range"),
    "contrast": Attr("float", 0.0, min=0, max=1, doc="scale each image's deviation from its mean by 1 +- this"),
    "noise": Attr("float", 0.0, min=0, max=1, doc="add Gaussian noise, std this fraction of the value range"),
    "cutout": Attr("int", 0, min=0, doc="fill a random PxP square of each image with the training mean"),
}
GEOMETRIC = ("flip_x", "flip_y", "crop", "shift", "rotate", "cutout")

# word -> (kinds or None, default kind, keys common to all kinds)
STATEMENTS: dict[str, tuple[dict | None, str | None, dict]] = {
    "data": (None, None, DATA),
    "init": (None, None, INIT),  # outside the model block: init from "RUN" (fine-tuning)
    "loss": (LOSSES, None, {}),
    "optimizer": (OPTIMIZERS, "adam", {}),
    "regularize": ({"": {}}, "", REGULARIZE),
    "schedule": (SCHEDULES, "constant", {}),
    "train": ({"": {}}, "", TRAIN),
    "augment": ({"": {}}, "", AUGMENT),
}


@dataclass
class Setting:
    """One training statement, resolved: its kind (adam, step, a data source) and values."""

    word: str
    kind: str | None
    values: dict[str, Any]
    span: Span | None = None
    kind_span: Span | None = None
    spans: dict[str, Span] = field(default_factory=dict)
    written: bool = False
    quoted: bool = False  # the data source was a quoted string: always a file path

    @property
    def kind_name(self) -> str:
        """The kind of a statement that has one (adam, step, mse, a data source): what registries are indexed by."""
        if self.kind is None:
            raise ValueError(f"{self.word} has no kind")
        return self.kind

    def __getitem__(self, key):
        return self.values[key]

    def get(self, key, default=None):
        return self.values.get(key, default)


def _defaults(attrs: dict[str, Attr]) -> dict:
    return {k: a.default for k, a in attrs.items()}


def default_setting(word: str, kind: str | None = None) -> Setting:
    kinds, default_kind, common = STATEMENTS[word]
    kind = kind if kind is not None else default_kind
    attrs = dict(common, **((kinds or {}).get(kind, {})))
    return Setting(word, kind, _defaults(attrs))


def _init_from(stmt: ast.Stmt, diags: Diagnostics) -> Setting | None:
    """init from "RUN": start the model from a trained run's weights, matched by name and shape."""
    args = stmt.args
    if len(args) != 2 or not (isinstance(args[0], ast.Name) and args[0].value == "from") \
            or not isinstance(args[1], ast.String) or stmt.kwargs:
        diags.error('outside the model block, init takes the run to start from: init from "RUN"', stmt.span,
                    "e.g. init from \"runs/base\"; an init scheme (init he_normal) goes inside the model block")
        return None
    if not args[1].value.strip():
        diags.error("init from needs a run folder", args[1].span)
        return None
    return Setting("init", args[1].value, {}, stmt.span, args[1].span, written=True, quoted=True)


def read_statement(stmt: ast.Stmt, diags: Diagnostics) -> Setting | None:
    kinds, default_kind, common = STATEMENTS[stmt.word]
    kind, kind_span = default_kind, None
    positional = list(stmt.args)
    quoted = False
    if stmt.word == "init":
        return _init_from(stmt, diags)
    if stmt.word == "data":
        source = next((p for p in positional if isinstance(p, ast.String)
                       or (isinstance(p, ast.Name) and p.value not in DATA)), None)
        if source is None:
            diags.error("data needs a source: a built-in set (digits, spiral ...) or a quoted file path",
                        stmt.span, 'e.g. data digits test=0.2 standardize, or data "train.csv" label=y')
            return None
        kind, kind_span = source.value, source.span
        quoted = isinstance(source, ast.String)
        positional.remove(source)
    elif kinds and "" not in kinds:
        if positional and isinstance(positional[0], ast.Name) and positional[0].value not in common:
            kind, kind_span = positional[0].value, positional[0].span
            positional = positional[1:]
            if kind not in kinds:
                diags.error(f"unknown {stmt.word} '{kind}'", kind_span, did_you_mean(kind, kinds))
                return None
        elif default_kind is None:
            diags.error(f"{stmt.word} needs a name", stmt.span, did_you_mean("", kinds))
            return None
    attrs = dict(common, **((kinds or {}).get(kind, {}) if kinds else {}))
    setting = Setting(stmt.word, kind, _defaults(attrs), stmt.span, kind_span, written=True,
                      quoted=stmt.word == "data" and quoted)
    for p in positional:
        if isinstance(p, ast.Name) and p.value in attrs and attrs[p.value].type == "bool":
            setting.values[p.value] = True
            setting.spans[p.value] = p.span
        elif isinstance(p, ast.Name):
            hint = did_you_mean(p.value, [k for k, a in attrs.items() if a.type == "bool"] + list(attrs))
            diags.error(f"unexpected '{p.value}' in {stmt.word}", p.span, hint)
        else:
            diags.error(f"unexpected value '{ast.value_text(p)}' in {stmt.word}", p.span,
                        f"write it as a keyword argument, e.g. {next(iter(attrs), 'key')}=...")
    for kw in stmt.kwargs:
        if kw.key in setting.spans and kw.key in attrs:
            diags.error(f"{kw.key} is given twice", kw.span)
            continue
        if kw.key not in attrs:
            what = f"{stmt.word} {kind}" if kind else stmt.word
            diags.error(f"unknown key '{kw.key}' for {what}", kw.span,
                        did_you_mean(kw.key, attrs) or f"{what} takes: {', '.join(attrs) or 'no keys'}")
            continue
        if stmt.word == "train" and kw.key == "batch" and isinstance(kw.value, ast.Name) and kw.value.value in ("all", "full"):
            setting.values["batch"] = "all"
            setting.spans["batch"] = kw.span
            continue
        try:
            setting.values[kw.key] = coerce(kw.key, kw.value, attrs[kw.key])
            setting.spans[kw.key] = kw.span
        except DLError as err:
            diags.extend(err)
    return setting

