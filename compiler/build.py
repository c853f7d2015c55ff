"""The model block -> IR: expand repeats, apply init defaults, lower each line in the
canonical order linear -> batchnorm -> activation -> dropout, infer every shape.

Errors are collected, not raised one by one, so that independent mistakes are all
reported; after a shape error the shapes below it are unknown and not checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import ast
from .attrs import MAX_INT, REQUIRED, Attr, SearchRange, coerce, resolve
from .diagnostics import DLError, Diagnostics, Span, did_you_mean
from .inits import AUTO_BY_FAMILY, SCHEMES, InitSpec, fixed
from .ir import Buffer, Graph, Layer, Node, Param
from .ops import REGISTRY, ShapeError, fmt_shape
from .statements import STATEMENTS

# Keys any dense/conv line may carry besides its own attributes.
LAYER_KEYS = {
    "dropout": Attr("float", 0.0, min=0, max=1, max_open=True,
                    doc="the probability of dropping a unit, from 0 up to (not including) 1; keep=0.8 is dropout=0.2"),
    "keep": Attr("float", None, min=0, max=1, min_open=True, doc="the keep probability (1 - dropout)"),
    "init": Attr("name", None, choices=tuple(SCHEMES), searchable=False),
    "l1": Attr("float", None, min=0, doc="l1 strength for this layer's weights"),
    "l2": Attr("float", None, min=0, doc="l2 strength for this layer's weights"),
    "max_norm": Attr("float", None, min=0, min_open=True),
}
STRUCTURE_WORDS = ("input", "init", "repeat")


@dataclass
class PlannedNode:
    op: str
    attrs: dict[str, Any]
    span: Span
    layer: int
    init: InitSpec | None = None  # explicit init for the weights
    default_init: InitSpec | None = None  # the `init NAME` in force on this line
    reg: dict[str, float | None] = field(default_factory=dict)
    bias_explicit: bool = False


@dataclass
class ModelResult:
    graph: Graph | None
    ranges: list[tuple[str, SearchRange]]
    default_init: InitSpec | None


MAX_LINES = 200_000  # model lines after repeats are expanded


def expanded_size(body) -> int:
    """How many lines `body` becomes once its repeats are expanded (computed, not expanded)."""
    n = 0
    for item in body:
        n += item.count * expanded_size(item.body) if isinstance(item, ast.Repeat) else 1
        if n > MAX_LINES:
            return n
    return n


def _flatten(body, diags: Diagnostics, depth=0):
    """The model lines with every repeat expanded; never more than MAX_LINES of work, whatever the counts."""
    for item in body:
        if isinstance(item, ast.Repeat):
            if item.count < 1:
                diags.error(f"repeat count must be at least 1, got {item.count}", item.span)
                continue
            if depth > 8:
                diags.error("repeat blocks nested more than 8 deep", item.span)
                continue
            inner = expanded_size(item.body)
            if item.count > MAX_LINES or item.count * inner > MAX_LINES:
                diags.error(f"repeat {item.count} expands to more than {MAX_LINES:,} layers", item.span,
                            "a model this deep cannot be trained here; use a smaller count")
                continue
            for _ in range(item.count if inner else 1):  # a body that makes no lines is read once, for its errors
                yield from _flatten(item.body, diags, depth + 1)
        else:
            yield item


class ModelBuilder:
    def __init__(self, block: ast.ModelBlock, source_lines: list[str], diags: Diagnostics):
        self.block = block
        self.lines = source_lines
        self.diags = diags
        self.plan: list[PlannedNode] = []
        self.layers: list[Layer] = []
        self.input_shape: tuple[int, ...] | None = None
        self.default_init: InitSpec | None = None
        self.ranges: list[tuple[str, SearchRange]] = []

    # ---- attribute reading -------------------------------------------------
    def _coerce(self, key, value, attr, where):
        try:
            v = coerce(key, value, attr)
        except DLError as e:
            self.diags.extend(e)
            return REQUIRED
        if isinstance(v, SearchRange):
            self.ranges.append((where, v))
        return v

    def _op_attrs(self, op, stmt: ast.Stmt, positional, kwargs, where) -> dict | None:
        a = op.defaults()
        names = list(op.positional)
        for value in positional:
            if not names:
                self.diags.error(f"{op.name} takes no more positional values; got '{ast.value_text(value)}'", value.span,
                                 f"{op.name} takes: {', '.join(op.attrs) or 'no arguments'}")
                return None
            key = names.pop(0)
            a[key] = self._coerce(key, value, op.attrs[key], f"{where}.{key}")
        for kw in kwargs:
            a[kw.key] = self._coerce(kw.key, kw.value, op.attrs[kw.key], f"{where}.{kw.key}")
        given = {kw.key for kw in kwargs} | set(op.positional[:len(positional)])
        missing = [k for k, attr in op.attrs.items() if k not in given and attr.default is REQUIRED]
        if any(v is REQUIRED for v in a.values()) or missing:
            if missing:
                self.diags.error(f"{op.name} needs {', '.join(missing)}", stmt.span,
                                 f"e.g. {op.name} {64 if op.name == 'dense' else 16}")
            return None
        return a

    def _init_spec(self, value: ast.Value, span: Span) -> InitSpec | None:
        if isinstance(value, ast.Name):
            name, args = value.value, []
        elif isinstance(value, ast.Call):
            name, args = value.name, value.args
        else:
            self.diags.error(f"init expects a scheme name, got '{ast.value_text(value)}'", value.span,
                             did_you_mean("", SCHEMES))
            return None
        if name not in SCHEMES:
            self.diags.error(f"unknown init '{name}'", value.span, did_you_mean(name, SCHEMES))
            return None
        attrs = SCHEMES[name][1]
        if len(args) > len(attrs):
            self.diags.error(f"init {name} takes {len(attrs)} argument(s), got {len(args)}", value.span)
            return None
        out = {k: a.default for k, a in attrs.items()}
        for (k, attr), v in zip(attrs.items(), args):
            out[k] = self._coerce(k, v, attr, "init")
        for kw in getattr(value, "kwargs", ()):
            if kw.key not in attrs:
                self.diags.error(f"init {name} has no argument '{kw.key}'", kw.span,
                                 did_you_mean(kw.key, attrs) if attrs else f"{name} takes no arguments")
                return None
            out[kw.key] = self._coerce(kw.key, kw.value, attrs[kw.key], "init")
        return InitSpec(name, out)

    # ---- statements --------------------------------------------------------
    def add_layer(self, stmt: ast.Stmt) -> int:
        line = self.lines[stmt.span.line - 1] if stmt.span.line <= len(self.lines) else stmt.word
        text = line[stmt.span.col - 1:]
        for stop in "#;}":
            text = text.split(stop)[0]
        text = text.strip()
        self.layers.append(Layer(len(self.layers), stmt.word, stmt.span, text))
        return len(self.layers) - 1

    def stmt_input(self, stmt: ast.Stmt):
        if self.input_shape is not None or self.plan:
            self.diags.error("input must be the first line of the model, and appear once", stmt.span)
            return
        if len(stmt.args) != 1 or not (isinstance(stmt.args[0], ast.Dims) or
                                       (isinstance(stmt.args[0], ast.Number) and stmt.args[0].is_int)):
            self.diags.error("input needs one size: features (input 64) or an image CxHxW (input 1x28x28)",
                             stmt.span)
            self.input_shape = ()
            return
        v = stmt.args[0]
        shape = tuple(v.value) if isinstance(v, ast.Dims) else (int(v.value),)
        if len(shape) not in (1, 3) or min(shape) < 1 or max(shape) > MAX_INT:
            self.diags.error(f"input {fmt_shape(shape)}: expected N features or CxHxW with every size from 1 to 2,147,483,647",
                             v.span, "e.g. input 64 or input 3x32x32")
            self.input_shape = ()
            return
        self.input_shape = shape
        layer = self.add_layer(stmt)
        p = self._dropout_kwargs(stmt.kwargs, stmt, _layer_key(layer))
        if p:
            self.plan.append(PlannedNode("dropout", {"p": p}, stmt.span, layer))

    def _dropout_kwargs(self, kwargs, stmt, where) -> float | SearchRange | None:
        p = None
        for kw in kwargs:
            if kw.key == "dropout":
                p = self._coerce("dropout", kw.value, LAYER_KEYS["dropout"], f"{where}.dropout")
            elif kw.key == "keep":
                keep = self._coerce("keep", kw.value, LAYER_KEYS["keep"], f"{where}.keep")
                if isinstance(keep, (int, float)):
                    p = 1.0 - keep
                elif isinstance(keep, SearchRange):
                    self.diags.error("keep= cannot be a search range; write dropout=... instead", kw.span)
            else:
                self.diags.error(f"unknown key '{kw.key}' for {stmt.word}", kw.span,
                                 did_you_mean(kw.key, ["dropout", "keep"]))
        return None if p is REQUIRED else p

    def stmt_init(self, stmt: ast.Stmt):
        if len(stmt.args) != 1:
            self.diags.error("init needs one scheme name, e.g. init he_normal", stmt.span, did_you_mean("", SCHEMES))
            return
        spec = self._init_spec(stmt.args[0], stmt.span)
        if spec and stmt.kwargs:
            args = dict(spec.args)
            attrs = SCHEMES[spec.name][1]
            for kw in stmt.kwargs:
                if kw.key not in attrs:
                    self.diags.error(f"unknown key '{kw.key}' for init {spec.name}", kw.span,
                                     did_you_mean(kw.key, attrs) or f"init {spec.name} takes no keys")
                else:
                    args[kw.key] = self._coerce(kw.key, kw.value, attrs[kw.key], "init")
            spec = InitSpec(spec.name, args)
        if spec:
            self.default_init = spec

    def stmt_op(self, stmt: ast.Stmt):
        op = REGISTRY[stmt.word]
        layer = self.add_layer(stmt)
        where = _layer_key(layer)
        if not op.inline:
            if op.name == "dropout":
                kwargs = [kw for kw in stmt.kwargs if kw.key not in ("keep",)]
                keep = [kw for kw in stmt.kwargs if kw.key == "keep"]
                if keep:
                    p = self._dropout_kwargs(keep, stmt, where)
                    if p is None:
                        return
                    a = self._op_attrs(op, stmt, [], [], where)
                    if a is not None:
                        a["p"] = p
                        self.plan.append(PlannedNode("dropout", a, stmt.span, layer))
                    return
            else:
                kwargs = stmt.kwargs
            for kw in kwargs:
                if kw.key not in op.attrs:
                    self.diags.error(f"unknown key '{kw.key}' for {op.name}", kw.span,
                                     did_you_mean(kw.key, op.attrs) or f"{op.name} takes: {', '.join(op.attrs) or 'no keys'}")
                    return
            args = list(stmt.args)
            if op.kind == "activation" and args and isinstance(args[0], ast.Name):
                self.diags.error(f"'{args[0].value}' cannot follow {op.name} on its line", args[0].span,
                                 "put one activation per line; only dense and conv lines carry an inline activation")
                return
            a = self._op_attrs(op, stmt, args, kwargs, where)
            if a is not None:
                self.plan.append(PlannedNode(op.name, a, stmt.span, layer, default_init=self.default_init))
            return
        self._linear_line(op, stmt, layer, where)

    def _linear_line(self, op, stmt: ast.Stmt, layer: int, where: str):
        positional, activation, act_args, act_span, batchnorm = [], None, [], None, False
        kwargs = list(stmt.kwargs)  # elu(alpha=0.5) adds alpha=0.5; the statement itself stays as parsed
        for value in stmt.args:
            if isinstance(value, (ast.Name, ast.Call)):
                word = value.value if isinstance(value, ast.Name) else value.name
                if word == "batchnorm" and isinstance(value, ast.Name):
                    batchnorm = True
                elif word in REGISTRY and REGISTRY[word].kind == "activation":
                    if activation:
                        self.diags.error(f"two activations on one line: {activation} and {word}", value.span)
                        return
                    activation, act_span = word, value.span
                    act_args = value.args if isinstance(value, ast.Call) else []
                    if isinstance(value, ast.Call):
                        kwargs.extend(value.kwargs)  # elu(alpha=0.5) is elu alpha=0.5
                else:
                    known = REGISTRY.names("activation") + ["batchnorm"]
                    self.diags.error(f"unknown activation '{word}'", value.span, did_you_mean(word, known))
                    return
            else:
                positional.append(value)
        act_op = REGISTRY[activation] if activation else None
        own, act_kwargs, init, reg, bias_explicit = [], [], None, {}, False
        dropout_kw = []
        for kw in kwargs:
            if kw.key in op.attrs:
                own.append(kw)
                bias_explicit |= kw.key == "bias"
            elif act_op is not None and kw.key in act_op.attrs:
                act_kwargs.append(kw)
            elif kw.key in ("dropout", "keep"):
                dropout_kw.append(kw)
            elif kw.key == "init":
                init = self._init_spec(kw.value, kw.span)
            elif kw.key in ("l1", "l2", "max_norm"):
                reg[kw.key] = self._coerce(kw.key, kw.value, LAYER_KEYS[kw.key], f"{where}.{kw.key}")
            else:
                keys = list(op.attrs) + list(LAYER_KEYS) + (list(act_op.attrs) if act_op else [])
                hint = did_you_mean(kw.key, keys)
                if kw.key in ("alpha", "k", "lower", "upper") and act_op is None:
                    hint = f"{kw.key}= belongs to an activation; name it on the line, e.g. leaky_relu {kw.key}=..."
                self.diags.error(f"unknown key '{kw.key}' for {op.name}", kw.span, hint)
                return
        a = self._op_attrs(op, stmt, positional, own, where)
        if a is None:
            return
        self.plan.append(PlannedNode(op.name, a, stmt.span, layer, init=init, default_init=self.default_init, reg=reg,
                                     bias_explicit=bias_explicit))
        if batchnorm:
            self.plan.append(PlannedNode("batchnorm", REGISTRY["batchnorm"].defaults(), stmt.span, layer))
        if act_op is not None:
            aa = self._op_attrs(act_op, stmt, act_args, act_kwargs, f"{where}.{activation}")
            if aa is None:
                return
            self.plan.append(PlannedNode(activation, aa, act_span, layer))
        p = self._dropout_kwargs(dropout_kw, stmt, where)
        if p:
            self.plan.append(PlannedNode("dropout", {"p": p}, stmt.span, layer))

    def read(self):
        if expanded_size(self.block.body) > MAX_LINES and not any(
                isinstance(i, ast.Repeat) and i.count * expanded_size(i.body) > MAX_LINES for i in self.block.body):
            self.diags.error(f"model {self.block.name} expands to more than {MAX_LINES:,} layers", self.block.span,
                             "a model this deep cannot be trained here; use smaller repeat counts")
            return
        for item in _flatten(self.block.body, self.diags):
            word = item.word
            if word == "input":
                self.stmt_input(item)
                continue
            if self.input_shape is None and word != "init":
                self.diags.error("the model must start with an input line", item.span,
                                 "e.g. input 64 (features) or input 1x28x28 (an image)")
                self.input_shape = ()
            if word == "init":
                self.stmt_init(item)
            elif word in REGISTRY:
                self.stmt_op(item)
            elif word in STATEMENTS or word == "model":
                self.diags.error(f"'{word}' belongs outside the model block", item.span,
                                 "move it below the closing '}'")
            else:
                self.diags.error(f"unknown layer '{word}'", item.span,
                                 did_you_mean(word, REGISTRY.names() + list(STRUCTURE_WORDS)))

    # ---- IR ----------------------------------------------------------------
    def auto_init(self, index: int) -> InitSpec:
        """The init for a weight layer with none given: by the activation that follows it."""
        for j in range(index + 1, len(self.plan)):  # no slice: a copy per layer is quadratic
            later = self.plan[j]
            if REGISTRY[later.op].weight_layer:
                break
            op = REGISTRY[later.op]
            if op.kind == "activation" and later.op != "linear":
                return InitSpec(AUTO_BY_FAMILY[getattr(op, "init_family", "xavier")], auto=True)
        return InitSpec("xavier_uniform", auto=True)

    def lower(self) -> Graph | None:
        if self.input_shape is None:
            self.diags.error(f"model {self.block.name} has no input line", self.block.span,
                             "start the block with input 64 (features) or input 1x28x28 (an image)")
            return None
        if not self.input_shape:
            return None
        counters: dict[str, int] = {}
        nodes: list[Node] = []
        shape = self.input_shape
        for i, pn in enumerate(self.plan):
            op = REGISTRY[pn.op]
            a = {k: resolve(v) for k, v in pn.attrs.items()}
            if op.weight_layer and not pn.bias_explicit and i + 1 < len(self.plan) \
                    and self.plan[i + 1].op == "batchnorm":
                a["bias"] = pn.attrs["bias"] = False  # batchnorm's beta does the bias's job
            try:
                out = op.infer(shape, a)
            except ShapeError as e:
                self.diags.error(str(e), pn.span, e.hint)
                return None
            counters[pn.op] = counters.get(pn.op, 0) + 1
            name = f"{pn.op}{counters[pn.op]}"
            node = Node(name, pn.op, dict(pn.attrs), shape, out, pn.span, pn.layer, flops=op.flops(shape, out, a))
            for spec in op.params(shape, a):
                if spec.init == "auto":
                    init = pn.init or pn.default_init or self.auto_init(i)
                else:
                    init = fixed(spec.init)
                reg = {k: resolve(v) for k, v in pn.reg.items()} if spec.decay else {}
                node.params[spec.role] = Param(f"{name}.{spec.role}", spec.role, spec.shape, init, spec.fan_in,
                                               spec.fan_out, spec.decay, **reg)
            for role, (bshape, fill) in op.buffers(shape, a).items():
                node.buffers[role] = Buffer(f"{name}.{role}", role, bshape, fill)
            self.layers[pn.layer].nodes.append(name)
            nodes.append(node)
            shape = out
        return Graph(self.block.name, self.input_shape, nodes, self.layers)


def _layer_key(layer: int) -> str:
    """A placeholder for a layer's name in range keys, until lowering has named its nodes."""
    return f"@{layer}"


def _named_ranges(ranges, layers: list[Layer]) -> list[tuple[str, SearchRange]]:
    """Range keys by layer name: `dense1.dropout`, `input.dropout`, `dropout2.p`, `dense3.leaky_relu.alpha` --
    the keys --set, --vary and search accept. A layer that failed to lower keeps its line: `line7`."""
    out = []
    for key, r in ranges:
        if key.startswith("@"):
            index, _, rest = key[1:].partition(".")
            layer = layers[int(index)]
            name = "input" if layer.word == "input" else (layer.nodes[0] if layer.nodes else f"line{layer.span.line}")
            key = f"{name}.{rest}"
        out.append((key, r))
    return out


def build_model(block: ast.ModelBlock, source_lines: list[str], diags: Diagnostics) -> ModelResult:
    b = ModelBuilder(block, source_lines, diags)
    b.read()
    graph = b.lower()
    return ModelResult(graph, _named_ranges(b.ranges, b.layers), b.default_init)
