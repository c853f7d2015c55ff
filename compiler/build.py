"""The graph pass (and the two passes' driver, build_model): expanded model lines -> planned nodes.

- graph: each line is read into planned nodes with explicit inputs, in the canonical order
  linear -> batchnorm -> activation -> dropout; residual and parallel lines add their paths and
  a merge node (add, concat), block uses and groups open a naming scope;
- shapes: every node's shape is inferred from its inputs' shapes, its parameters are laid out,
  a projection shortcut becomes the 1x1 conv (or dense) that maps the residual's input to its
  body's output shape, and every node is named.

The words of each line (attributes, init, inline activation/batchnorm/dropout) are read by
compiler/line_words.py. Errors are collected, not raised one by one, so that independent mistakes are all
reported; after a shape error the shapes below it are unknown and not checked.
Neither pass changes what it reads: the AST and the expanded lines stay as they were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from dataclasses import dataclass

from . import ast
from .attrs import SearchRange
from .diagnostics import Diagnostics, did_you_mean
from .expand import GROUP_WORDS, BlockDef, Nested, ScopedDiagnostics, expand_model
from .inits import INITS, InitSpec
from .ir import Graph, Layer
from .line_words import Inline, LineWords, layer_key, named_ranges, values_text
from .modifiers import DROPOUT, FROZEN, LAYER_NORM, NORMALIZE
from .ops import REGISTRY
from .shapes import PROJECT, PlannedNode, infer_shapes  # noqa: F401  (PROJECT: read from here too)
from .statements import STATEMENTS

STRUCTURE_WORDS = ("input", "init", "repeat") + GROUP_WORDS
MERGES = ("add", "concat")
IDENTITY = "identity"  # residual identity { ... }: the shortcut is the input itself (the default)


@dataclass
class ModelResult:
    graph: Graph | None
    ranges: list[tuple[str, SearchRange]]
    default_init: InitSpec | None


class ModelBuilder:
    def __init__(self, block: ast.ModelBlock, source_lines: list[str], diags: Diagnostics,
                 blocks: dict[str, BlockDef] | None = None):
        self.block = block
        self.block_names = tuple(blocks or ())
        self.lines = source_lines
        self.unknown_line = False  # a line of an unknown word was reported
        self.diags = ScopedDiagnostics(diags)  # errors inside a block also point at its use
        self.plan: list[PlannedNode] = []
        self.layers: list[Layer] = []
        self.input_shape: tuple[int, ...] | None = None
        self.variable = False  # input CxL variable (or L tokens)
        self.input_dtype = "float32"  # int64: input L tokens
        self.default_init: InitSpec | None = None
        self.ranges: list[tuple[str, SearchRange]] = []
        self.words = LineWords(self.diags, self.ranges)
        self.cur = -1  # the plan index of the value the next line reads (-1: the model's input)
        self.scope: tuple[str, ...] = ()
        self.depth = 0
        self.frozen = 0  # how many enclosing items say `frozen`
        self.scope_counts: dict[tuple, int] = {}
        self.layer_out: dict[int, int] = {}  # layer -> the plan index of the value that leaves it

    def add(self, pn: PlannedNode) -> int:
        """Plan a node reading the current value (unless it names its inputs); it becomes the current value."""
        if pn.inputs == (-1,) and self.cur != -1:
            pn.inputs = (self.cur,)
        pn.scope, pn.uses = self.scope, self.diags.uses
        pn.frozen = pn.frozen or self.frozen > 0
        self.plan.append(pn)
        self.cur = len(self.plan) - 1
        return self.cur

    def open_scope(self, stem: str) -> tuple[str, ...]:
        """A child scope named stem1, stem2 ... in order of appearance within the current scope."""
        key = (self.scope, stem)
        self.scope_counts[key] = self.scope_counts.get(key, 0) + 1
        return self.scope + (f"{stem}{self.scope_counts[key]}",)

    # ---- statements --------------------------------------------------------
    def add_layer(self, stmt: ast.Stmt) -> int:
        line = self.lines[stmt.span.line - 1] if stmt.span.line <= len(self.lines) else stmt.word
        start = stmt.span.col - 1
        stop = _LINE_END.search(line, start)  # the statement ends at the first of # ; { } after it
        text = line[start:stop.start() if stop else len(line)].strip()
        if self.diags.uses:  # inside a block: the line with the values this use gives
            text = " ".join([stmt.word, values_text(stmt.args, stmt.kwargs)]).strip()
        if stmt.body is not None and (stmt.after or stmt.after_kwargs):
            text += " { ... } " + values_text(stmt.after, stmt.after_kwargs)
        self.layers.append(Layer(len(self.layers), stmt.word, stmt.span, text, depth=self.depth))
        return len(self.layers) - 1

    def stmt_input(self, stmt: ast.Stmt):
        if self.input_shape is not None or self.plan or self.depth:
            self.diags.error("input must be the first line of the model, and appear once", stmt.span)
            return
        size = self.words.input_size(stmt)
        if size is None:
            self.input_shape = ()
            return
        shape, self.variable, self.input_dtype = size
        self.input_shape = shape
        layer = self.add_layer(stmt)
        p = self.words.dropout_kwargs(stmt.kwargs, stmt, layer_key(layer))
        if p:
            self.add(PlannedNode(DROPOUT, {"p": p}, stmt.span, layer))

    def stmt_init(self, stmt: ast.Stmt):
        if len(stmt.args) != 1:
            self.diags.error("init needs one scheme name, e.g. init he_normal", stmt.span, did_you_mean("", INITS))
            return
        spec = self.words.init_spec(stmt.args[0], stmt.span)
        if spec and stmt.kwargs:
            args = dict(spec.args)
            attrs = INITS[spec.name].attrs
            for kw in stmt.kwargs:
                if kw.key not in attrs:
                    self.diags.error(f"unknown key '{kw.key}' for init {spec.name}", kw.span,
                                     did_you_mean(kw.key, attrs) or f"init {spec.name} takes no keys")
                else:
                    args[kw.key] = self.words.coerce(kw.key, kw.value, attrs[kw.key], "init")
            spec = InitSpec(spec.name, args)
        if spec:
            self.default_init = spec

    def stmt_op(self, stmt: ast.Stmt):
        op = REGISTRY[stmt.word]
        if op.arity != 1:
            self.diags.error(f"'{op.name}' joins paths and is not written as a line", stmt.span,
                             f"write parallel {op.name} {{ branch {{ ... }} branch {{ ... }} }}")
            return
        layer = self.add_layer(stmt)
        where = layer_key(layer)
        if not op.inline:
            if op.name == DROPOUT:
                kwargs = [kw for kw in stmt.kwargs if kw.key not in ("keep",)]
                keep = [kw for kw in stmt.kwargs if kw.key == "keep"]
                if keep:
                    p = self.words.dropout_kwargs(keep, stmt, where)
                    if p is None:
                        return
                    a = self.words.op_attrs(op, stmt, [], [], where)
                    if a is not None:
                        a["p"] = p
                        self.add(PlannedNode(DROPOUT, a, stmt.span, layer))
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
            a = self.words.op_attrs(op, stmt, args, kwargs, where)
            if a is not None:
                self.add(PlannedNode(op.name, a, stmt.span, layer, default_init=self.default_init))
            return
        self._linear_line(op, stmt, layer, where)

    def _linear_line(self, op, stmt: ast.Stmt, layer: int, where: str):
        parts = self.words.inline_parts(op, stmt.args, stmt.kwargs, where)
        if parts is None:
            return
        a = self.words.op_attrs(op, stmt, parts.positional, parts.own, where)
        if a is None:
            return
        self.add(PlannedNode(op.name, a, stmt.span, layer, init=parts.init, default_init=self.default_init,
                             reg=parts.reg, bias_explicit=parts.bias_explicit))
        self._inline_tail(parts, stmt, layer, where)

    def _inline_tail(self, parts: "Inline", stmt: ast.Stmt, layer: int, where: str):
        """batchnorm -> activation -> layernorm -> dropout after the node just planned."""
        if parts.batchnorm:
            self.add(PlannedNode(NORMALIZE, REGISTRY[NORMALIZE].defaults(), stmt.span, layer))
        if parts.activation:
            act_op = REGISTRY[parts.activation]
            aa = self.words.op_attrs(act_op, stmt, parts.act_args, parts.act_kwargs, f"{where}.{parts.activation}")
            if aa is None:
                return
            self.add(PlannedNode(parts.activation, aa, parts.act_span or stmt.span, layer))
        if parts.layernorm:
            self.add(PlannedNode(LAYER_NORM, REGISTRY[LAYER_NORM].defaults(), stmt.span, layer))
        p = self.words.dropout_kwargs(parts.dropout_kw, stmt, where)
        if p:
            self.add(PlannedNode(DROPOUT, {"p": p}, stmt.span, layer))

    # ---- lines that hold lines ----------------------------------------------
    def read_items(self, items):
        for item in items:
            self.diags.uses = item.uses
            first = len(self.layers)
            item, frozen = _without_frozen(item)
            self.frozen += frozen
            try:
                if isinstance(item, Nested):
                    self.read_nested(item)
                else:
                    self.read_line(item.stmt)
            finally:
                self.frozen -= frozen
            if len(self.layers) > first:
                self.layer_out[first] = self.cur

    @contextlib.contextmanager
    def _descend(self, stem: str):
        """One level deeper, in a new scope named stem1, stem2 ...; `init NAME` inside ends with it."""
        saved = self.scope, self.depth, self.default_init
        self.scope, self.depth = self.open_scope(stem), self.depth + 1
        try:
            yield self.scope
        finally:
            self.scope, self.depth, self.default_init = saved

    def _inside(self, stem: str, body, layer: int):
        """Read `body` one level deeper, in a new scope; the layer it belongs to counts its lines."""
        with self._descend(stem):
            self.read_items(body)
        self.layers[layer].inner = len(self.layers) - layer - 1

    def read_nested(self, item: Nested):
        stmt = item.stmt
        if self.input_shape is None:
            self.diags.error("the model must start with an input line", stmt.span,
                             "e.g. input 64 (features) or input 1x28x28 (an image)")
            self.input_shape = ()
        if item.block is not None:
            layer = self.add_layer(stmt)
            self._inside(item.block, item.body, layer)
            self.diags.uses = item.uses
        elif stmt.word == "residual":
            self.read_residual(item)
        elif stmt.word == "parallel":
            self.read_parallel(item)
        else:
            self.diags.error(f"'{stmt.word}' belongs inside parallel", stmt.span,
                             "parallel concat { branch { ... } branch { ... } }")

    def _no_keys(self, stmt: ast.Stmt, what: str) -> bool:
        if stmt.kwargs:
            kw = stmt.kwargs[0]
            hint = "activation, batchnorm and dropout= go after the closing '}'"
            if kw.key in ("shortcut", "project"):
                hint = f"the shortcut is a word: residual {PROJECT} {{ ... }} (or {IDENTITY}, the default)"
            elif kw.key in ("merge", "mode"):
                hint = "the merge is a word: parallel concat { ... } or parallel add { ... }"
            self.diags.error(f"{what} takes no key '{kw.key}' before its '{{'", kw.span, hint)
            return False
        return True

    def read_residual(self, item: Nested):
        stmt = item.stmt
        project = None
        for v in stmt.args:
            if len(stmt.args) == 1 and isinstance(v, ast.Name) and v.value in (PROJECT, IDENTITY):
                project = v if v.value == PROJECT else None
            else:
                self.diags.error(f"residual takes one shortcut before its '{{': {IDENTITY} (the default) or "
                                 f"{PROJECT}; got '{ast.value_text(v)}'", v.span,
                                 f"residual {{ ... }} or residual {PROJECT} {{ ... }}")
                return
        if not self._no_keys(stmt, "residual"):
            return
        layer = self.add_layer(stmt)
        entry, start = self.cur, len(self.plan)
        with self._descend("residual") as scope:
            self.layers[layer].group = ".".join(scope)
            default_init = self.default_init
            self.read_items(item.body)
            self.diags.uses, self.default_init = item.uses, default_init  # the body's `init` ends with it
            self.layers[layer].inner = len(self.layers) - layer - 1
            body_out = self.cur
            if body_out == entry:
                self.diags.error("residual has an empty body", stmt.span,
                                 "put the layers of its path inside the braces")
                return
            short, path = entry, "the input"
            if project is not None:
                has_bn = any(pn.op == NORMALIZE for pn in self.plan[start:])
                self.scope, self.cur = scope + ("shortcut",), entry
                short = self.add(PlannedNode(None, {}, project.span, layer, match=body_out,
                                             default_init=self.default_init))
                if has_bn:
                    short = self.add(PlannedNode(NORMALIZE, REGISTRY[NORMALIZE].defaults(), project.span, layer))
                path = "the shortcut"
                self.scope = scope
            self.cur = body_out
            self.add(PlannedNode("add", {}, stmt.span, layer, inputs=(body_out, short), paths=("the body", path)))
            self._group_tail(stmt, layer)

    def read_parallel(self, item: Nested):
        stmt = item.stmt
        mode = stmt.args[0] if len(stmt.args) == 1 and isinstance(stmt.args[0], ast.Name) else None
        if mode is None or mode.value not in MERGES:
            where = stmt.args[0].span if stmt.args else stmt.span
            word = ast.value_text(stmt.args[0]) if stmt.args else ""
            self.diags.error("parallel needs how its paths merge: concat or add", where,
                             did_you_mean(word, MERGES) if word else "e.g. parallel concat { branch { ... } ... }")
            return
        if not self._no_keys(stmt, "parallel"):
            return
        branches = []
        for b in item.body:
            if isinstance(b, Nested) and b.block is None and b.stmt.word == "branch":
                branches.append(b)
            else:
                self.diags.error("inside parallel, each path is written branch { ... }", b.stmt.span,
                                 "e.g. branch { conv 16 kernel=1 relu }", b.uses)
                return
        if len(branches) < 2:
            self.diags.error(f"parallel needs two or more branches, got {len(branches)}", stmt.span,
                             "an empty branch { } passes its input through")
            return
        layer = self.add_layer(stmt)
        entry = self.cur
        with self._descend("parallel") as scope:
            self.layers[layer].group = ".".join(scope)
            outs: list[int] = []
            paths: list[str] = []
            for b in branches:
                for v in b.stmt.args + [k.value for k in b.stmt.kwargs]:
                    self.diags.error("branch takes nothing before its '{'", v.span, uses=b.uses)
                self.cur = entry
                blayer = self.add_layer(b.stmt)
                paths.append(f"branch{len(paths) + 1}")
                self._inside("branch", b.body, blayer)
                self.layer_out[blayer] = self.cur
                outs.append(self.cur)
            self.diags.uses = item.uses
            self.layers[layer].inner = len(self.layers) - layer - 1
            self.add(PlannedNode(mode.value, {}, stmt.span, layer, inputs=tuple(outs), paths=tuple(paths)))
            self._group_tail(stmt, layer)

    def _group_tail(self, stmt: ast.Stmt, layer: int):
        where = layer_key(layer)
        parts = self.words.inline_parts(None, stmt.after, stmt.after_kwargs, where)
        if parts is not None:
            self._inline_tail(parts, stmt, layer, where)

    def read_line(self, stmt: ast.Stmt):
        word = stmt.word
        if word == "input":
            self.stmt_input(stmt)
            return
        if self.input_shape is None and word != "init":
            self.diags.error("the model must start with an input line", stmt.span,
                             "e.g. input 64 (features) or input 1x28x28 (an image)")
            self.input_shape = ()
        if word == "init":
            self.stmt_init(stmt)
        elif word in REGISTRY:
            self.stmt_op(stmt)
        elif word in STATEMENTS or word in ("model", "block"):
            self.diags.error(f"'{word}' belongs outside the model block", stmt.span,
                             "move it below the closing '}'" if word != "block" else
                             "define blocks outside the model block, then use them as lines")
        elif word in GROUP_WORDS:
            self.diags.error(f"{word} needs its lines in braces", stmt.span,
                             {"residual": "residual { conv 16 kernel=3 pad=same } relu",
                              "parallel": "parallel concat { branch { ... } branch { ... } }"}.get(word,
                                                                                                "branch { ... }"))
        else:
            self.unknown_line = True  # the shapes after it would be another model's: no shape pass
            self.diags.error(f"unknown layer '{word}'", stmt.span,
                             did_you_mean(word, [n for n in REGISTRY.names() if REGISTRY[n].arity == 1]
                                          + list(STRUCTURE_WORDS) + list(self.block_names)))


def _without_frozen(item):
    """(the item without the word `frozen` among its values, whether it had it)."""
    stmt = item.stmt
    kept = [a for a in stmt.args if not (isinstance(a, ast.Name) and a.value == FROZEN)]
    if len(kept) == len(stmt.args):
        return item, False
    return dataclasses.replace(item, stmt=dataclasses.replace(stmt, args=kept)), True


_LINE_END = re.compile(r"[#;{}]")


def build_model(block: ast.ModelBlock, source_lines: list[str], diags: Diagnostics,
                blocks: dict[str, BlockDef] | None = None) -> ModelResult:
    """expand -> graph -> shapes for the model block (`blocks`: the spec's block definitions)."""
    blocks = blocks or {}
    items = expand_model(block, blocks, diags)
    b = ModelBuilder(block, source_lines, diags, blocks)
    if items is None:
        return ModelResult(None, [], None)
    b.read_items(items)
    graph = None
    if b.input_shape is None:
        diags.error(f"model {block.name} has no input line", block.span,
                    "start the block with input 64 (features) or input 1x28x28 (an image)")
    elif b.input_shape and not b.unknown_line:
        graph = infer_shapes(block.name, b.input_shape, b.plan, b.layers, b.layer_out, b.diags, b.variable,
                             b.input_dtype)
    return ModelResult(graph, named_ranges(b.ranges, graph.layers if graph else b.layers), b.default_init)
