"""The words of one model line read into typed values: an op's attributes (coerced, their search ranges
recorded), an init scheme, dropout=/keep=, and what a layer line carries besides its op (an activation,
batchnorm, dropout, init=, l1/l2/max_norm); and the keys the search ranges found are listed under
(`dense1.dropout`). The graph pass (build.py) asks; errors go to its diagnostics."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import ast
from .attrs import MAX_INT, RANGE_KINDS, REQUIRED, Attr, SearchRange, coerce
from .diagnostics import DLError, Span, did_you_mean
from .inits import INITS, InitSpec
from .modifiers import DROPOUT_KEYS, LAYER_NORM, NORMALIZE, TOKENS, VARIABLE
from .ir import Layer
from .ops import REGISTRY, fmt_shape

# Keys any dense/conv line may carry besides its own attributes.
LAYER_KEYS = {
    "dropout": Attr("float", 0.0, min=0, max=1, max_open=True,
                    doc="the probability of dropping a unit, from 0 up to (not including) 1; keep=0.8 is dropout=0.2"),
    "keep": Attr("float", None, min=0, max=1, min_open=True, doc="the keep probability (1 - dropout)"),
    "init": Attr("name", None, choices=tuple(INITS), searchable=False),
    "l1": Attr("float", None, min=0, doc="l1 strength for this layer's weights"),
    "l2": Attr("float", None, min=0, doc="l2 strength for this layer's weights"),
    "max_norm": Attr("float", None, min=0, min_open=True),
}

@dataclass
class Inline:
    """What a line carries besides its op: positional values, the op's own keys, an activation,
    batchnorm, layernorm, dropout=, and a weight layer's init= and l1/l2/max_norm."""

    positional: list = field(default_factory=list)
    own: list = field(default_factory=list)
    activation: str | None = None
    act_span: Span | None = None
    act_args: list = field(default_factory=list)
    act_kwargs: list = field(default_factory=list)
    batchnorm: bool = False
    layernorm: bool = False
    dropout_kw: list = field(default_factory=list)
    init: InitSpec | None = None
    reg: dict = field(default_factory=dict)
    bias_explicit: bool = False


class LineWords:
    """Reads line words for one model: `diags` takes the errors, `ranges` the search ranges found."""

    def input_size(self, stmt: ast.Stmt) -> tuple[tuple[int, ...], bool, str] | None:
        """The input line's size, whether its steps vary (input CxL variable; input L tokens) and its element
        type (int64 for token ids), or None after an error."""
        args, variable, dtype = list(stmt.args), False, "float32"
        if len(args) == 2 and isinstance(args[1], ast.Name) and args[1].value == TOKENS:
            word = args.pop()
            if isinstance(args[0], ast.Call) and args[0].name in RANGE_KINDS:  # input choice(32, 64) tokens
                length = self.coerce("length", args[0], Attr("int", min=1, max=MAX_INT), "input.length")
                if not isinstance(length, SearchRange):
                    return None
                args[0] = ast.Number(float(int(length.nominal())), str(int(length.nominal())), args[0].span)
            if not (isinstance(args[0], ast.Number) and args[0].is_int):
                self.diags.error("'tokens' takes one length: input L tokens (a text of 1 to L token ids)",
                                 word.span, "e.g. input 64 tokens")
                return None
            if int(args[0].value) < 1:
                self.diags.error("input L tokens: a text needs room for at least 1 token", args[0].span,
                                 "e.g. input 64 tokens")
                return None
            args[0] = ast.Dims((1, int(args[0].value)), args[0].span)
            variable, dtype = True, "int64"
        elif len(args) == 2 and isinstance(args[1], ast.Name) and args[1].value == VARIABLE:
            word = args.pop()
            if not (isinstance(args[0], ast.Dims) and len(args[0].value) == 2):
                self.diags.error("'variable' is a sequence's word: input CxL variable (each series 1 to L steps)",
                                 word.span, "e.g. input 12x29 variable")
                return None
            variable = True
        if len(args) != 1 or not (isinstance(args[0], ast.Dims) or
                                  (isinstance(args[0], ast.Number) and args[0].is_int)):
            self.diags.error("input needs one size: features (input 64), a sequence CxL (input 3x128: channels x "
                             "length; input 12x29 variable: 1 to 29 steps each) or an image CxHxW (input 1x28x28)",
                             stmt.span)
            return None
        v = args[0]
        shape = tuple(v.value) if isinstance(v, ast.Dims) else (int(v.value),)
        if len(shape) not in (1, 2, 3) or min(shape) < 1 or max(shape) > MAX_INT:
            self.diags.error(f"input {fmt_shape(shape)}: expected N features, CxL (a sequence) or CxHxW (an image) "
                             "with every size from 1 to 2,147,483,647", v.span, "e.g. input 64, input 3x128 or input 3x32x32")
            return None
        return shape, variable, dtype

    def __init__(self, diags, ranges: list[tuple[str, SearchRange]]):
        self.diags = diags
        self.ranges = ranges

    def coerce(self, key, value, attr, where):
        try:
            v = coerce(key, value, attr)
        except DLError as e:
            self.diags.extend(e)
            return REQUIRED
        if isinstance(v, SearchRange):
            self.ranges.append((where, v))
        return v

    def op_attrs(self, op, stmt: ast.Stmt, positional, kwargs, where) -> dict | None:
        a = op.defaults()
        names = list(op.positional)
        flags = set()
        for value in positional:
            if isinstance(value, ast.Name) and value.value in op.attrs and op.attrs[value.value].type == "bool":
                a[value.value] = True  # a yes/no key written as its bare name: lstm 64 sequences
                flags.add(value.value)
                continue
            if not names:
                self.diags.error(f"{op.name} takes no more positional values; got '{ast.value_text(value)}'", value.span,
                                 f"{op.name} takes: {', '.join(op.attrs) or 'no arguments'}")
                return None
            key = names.pop(0)
            a[key] = self.coerce(key, value, op.attrs[key], f"{where}.{key}")
        for kw in kwargs:
            a[kw.key] = self.coerce(kw.key, kw.value, op.attrs[kw.key], f"{where}.{kw.key}")
        given = {kw.key for kw in kwargs} | set(op.positional[:len(positional) - len(flags)]) | flags
        missing = [k for k, attr in op.attrs.items() if k not in given and attr.default is REQUIRED]
        if any(v is REQUIRED for v in a.values()) or missing:
            if missing:
                self.diags.error(f"{op.name} needs {', '.join(missing)}", stmt.span,
                                 f"e.g. {op.name} {64 if op.name == 'dense' else 16}")
            return None
        return a

    def init_spec(self, value: ast.Value, span: Span) -> InitSpec | None:
        if isinstance(value, ast.Name):
            name, args = value.value, []
        elif isinstance(value, ast.Call):
            name, args = value.name, value.args
        else:
            self.diags.error(f"init expects a scheme name, got '{ast.value_text(value)}'", value.span,
                             did_you_mean("", INITS))
            return None
        if name not in INITS:
            self.diags.error(f"unknown init '{name}'", value.span, did_you_mean(name, INITS))
            return None
        attrs = INITS[name].attrs
        if len(args) > len(attrs):
            self.diags.error(f"init {name} takes {len(attrs)} argument(s), got {len(args)}", value.span)
            return None
        out = {k: a.default for k, a in attrs.items()}
        for (k, attr), v in zip(attrs.items(), args):
            out[k] = self.coerce(k, v, attr, "init")
        for kw in getattr(value, "kwargs", ()):
            if kw.key not in attrs:
                self.diags.error(f"init {name} has no argument '{kw.key}'", kw.span,
                                 did_you_mean(kw.key, attrs) if attrs else f"{name} takes no arguments")
                return None
            out[kw.key] = self.coerce(kw.key, kw.value, attrs[kw.key], "init")
        return InitSpec(name, out)

    def dropout_kwargs(self, kwargs, stmt, where) -> float | SearchRange | None:
        p = None
        for kw in kwargs:
            if kw.key == "dropout":
                p = self.coerce("dropout", kw.value, LAYER_KEYS["dropout"], f"{where}.dropout")
            elif kw.key == "keep":
                keep = self.coerce("keep", kw.value, LAYER_KEYS["keep"], f"{where}.keep")
                if isinstance(keep, (int, float)):
                    p = 1.0 - keep
                elif isinstance(keep, SearchRange):
                    self.diags.error("keep= cannot be a search range; write dropout=... instead", kw.span)
            else:
                self.diags.error(f"unknown key '{kw.key}' for {stmt.word}", kw.span,
                                 did_you_mean(kw.key, list(DROPOUT_KEYS)))
        return None if p is REQUIRED else p

    def inline_parts(self, op, values, kwargs, where) -> "Inline | None":
        """Split a line's values and keys into the op's own, its activation's, batchnorm and dropout.
        `op` None: what follows a residual's or parallel's '}' (no own values, no init or l1/l2)."""
        parts = Inline()
        kwargs = list(kwargs)  # elu(alpha=0.5) adds alpha=0.5; the statement itself stays as parsed
        owner = op.name if op is not None else "a merge"
        for value in values:
            if isinstance(value, ast.Call) and value.name in RANGE_KINDS and op is not None:
                parts.positional.append(value)  # dense choice(32, 64): a search range for the op's value
            elif (op is not None and isinstance(value, ast.Name) and value.value in op.attrs
                  and op.attrs[value.value].type == "bool"):
                parts.positional.append(value)  # a yes/no key by its bare name: lstm 64 sequences dropout=0.2
            elif isinstance(value, (ast.Name, ast.Call)):
                word = value.value if isinstance(value, ast.Name) else value.name
                if word == NORMALIZE and isinstance(value, ast.Name):
                    parts.batchnorm = True
                elif word == LAYER_NORM and isinstance(value, ast.Name):
                    parts.layernorm = True
                elif word in REGISTRY and REGISTRY[word].kind == "activation":
                    if parts.activation:
                        self.diags.error(f"two activations on one line: {parts.activation} and {word}", value.span)
                        return None
                    parts.activation, parts.act_span = word, value.span
                    parts.act_args = value.args if isinstance(value, ast.Call) else []
                    if isinstance(value, ast.Call):
                        kwargs.extend(value.kwargs)  # elu(alpha=0.5) is elu alpha=0.5
                else:
                    known = REGISTRY.names("activation") + [NORMALIZE, LAYER_NORM]
                    self.diags.error(f"unknown activation '{word}'", value.span, did_you_mean(word, known))
                    return None
            elif op is None:
                self.diags.error(f"after the '}}' come the activation, batchnorm, layernorm and dropout=; "
                                 f"got '{ast.value_text(value)}'", value.span, "e.g. } relu")
                return None
            else:
                parts.positional.append(value)
        act_op = REGISTRY[parts.activation] if parts.activation else None
        own_attrs = op.attrs if op is not None else {}
        for kw in kwargs:
            if kw.key in own_attrs:
                parts.own.append(kw)
                parts.bias_explicit |= kw.key == "bias"
            elif act_op is not None and kw.key in act_op.attrs:
                parts.act_kwargs.append(kw)
            elif kw.key in DROPOUT_KEYS:
                parts.dropout_kw.append(kw)
            elif kw.key == "init" and op is not None:
                parts.init = self.init_spec(kw.value, kw.span)
            elif kw.key in ("l1", "l2", "max_norm") and op is not None:
                parts.reg[kw.key] = self.coerce(kw.key, kw.value, LAYER_KEYS[kw.key], f"{where}.{kw.key}")
            else:
                keys = (list(own_attrs) + list(LAYER_KEYS) if op is not None else list(DROPOUT_KEYS)) \
                    + (list(act_op.attrs) if act_op else [])
                hint = did_you_mean(kw.key, keys)
                if kw.key in ("alpha", "k", "lower", "upper") and act_op is None:
                    hint = f"{kw.key}= belongs to an activation; name it on the line, e.g. leaky_relu {kw.key}=..."
                self.diags.error(f"unknown key '{kw.key}' for {owner}", kw.span, hint)
                return None
        return parts


def values_text(values, kwargs) -> str:
    """Values and keys as they would be written on a line."""
    return " ".join([ast.value_text(v) for v in values] + [f"{k.key}={ast.value_text(k.value)}" for k in kwargs])


def layer_key(layer: int) -> str:
    """A placeholder for a layer's name in range keys, until lowering has named its nodes."""
    return f"@{layer}"


def named_ranges(ranges, layers: list[Layer]) -> list[tuple[str, SearchRange]]:
    """Range keys by layer name: `dense1.dropout`, `input.dropout`, `dropout2.p`, `dense3.leaky_relu.alpha` --
    the keys --set, --vary and search accept. A layer that failed to lower keeps its line: `line7`.
    A range written once is listed once, under its first layer, even when a repeat or a block used
    several times makes several layers of its line (they all take the value search picks)."""
    out, seen = [], set()
    for key, r in ranges:
        if (r.span.line, r.span.col) in seen:
            continue
        seen.add((r.span.line, r.span.col))
        if key.startswith("@"):
            index, _, rest = key[1:].partition(".")
            layer = layers[int(index)]
            name = "input" if layer.word == "input" else (
                layer.group or (layer.nodes[0] if layer.nodes else f"line{layer.span.line}"))
            key = f"{name}.{rest}"
        out.append((key, r))
    return out
