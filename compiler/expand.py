"""Expand: the model block as written -> the lines it stands for, with no block uses and no repeats left.

A pure pass over the AST (nothing in it is changed; substituted statements are new objects):

- `repeat N { ... }` becomes N copies of its body (names stay flat: dense1, dense2, ...);
- a use of a block defined with `block NAME(params) { ... }` becomes a `Nested` item holding the
  block's body with its parameters replaced by the values the use gives; errors inside it carry a
  note pointing at the use (`Use`);
- `residual`, `parallel` and `branch` keep their bodies, expanded, as `Nested` items: what they mean
  is the graph pass's business.

Expansion never does more than MAX_LINES lines of work, whatever the counts: sizes are computed
before anything is copied.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Union

from . import ast
from .diagnostics import Diagnostic, DLError, Diagnostics, Span, did_you_mean
from .modifiers import FROZEN

MAX_LINES = 200_000  # model lines after repeats and blocks are expanded
MAX_DEPTH = 8  # repeats and block uses nested in one another
GROUP_WORDS = ("residual", "parallel", "branch")  # the words that open a body inside a model


@dataclass(frozen=True)
class Use:
    """Where a block was used: errors inside the block point here too."""

    block: str
    span: Span


@dataclass
class Line:
    stmt: ast.Stmt
    uses: tuple[Use, ...] = ()


@dataclass
class Nested:
    """A line that holds lines: residual / parallel / branch (block is None) or a block use."""

    stmt: ast.Stmt
    body: list["Item"]
    uses: tuple[Use, ...] = ()
    block: str | None = None


Item = Union[Line, Nested]


@dataclass
class BlockDef:
    name: str
    params: list[tuple[str, ast.Value | None]]  # (name, default); None: required
    body: list
    span: Span


@dataclass
class ScopedDiagnostics:
    """Adds a note per block use to each error reported while a block's body is read."""

    diags: Diagnostics
    uses: tuple[Use, ...] = ()

    def notes(self, uses: tuple[Use, ...]) -> list[Diagnostic]:
        return [Diagnostic("note", f"in block '{u.block}', used here", u.span) for u in reversed(uses)]

    def error(self, message: str, span: Span | None = None, hint: str | None = None,
              uses: tuple[Use, ...] | None = None) -> None:
        d = Diagnostic("error", message, span, hint)
        d.notes = self.notes(self.uses if uses is None else uses)
        self.diags.items.append(d)

    def extend(self, err: DLError, uses: tuple[Use, ...] | None = None) -> None:
        for d in err.diagnostics:
            d.notes = self.notes(self.uses if uses is None else uses)
            self.diags.items.append(d)


def read_blocks(stmts: list[ast.Stmt], reserved, diags: Diagnostics) -> dict[str, BlockDef]:
    """The `block NAME(params) { ... }` definitions among the top-level statements."""
    blocks: dict[str, BlockDef] = {}
    example = "e.g. block basic(c, stride=1) { conv c kernel=3 stride=stride relu }"
    for stmt in stmts:
        if stmt.word != "block":
            continue
        if len(stmt.args) != 1 or not isinstance(stmt.args[0], (ast.Name, ast.Call)) or stmt.kwargs:
            diags.error("block needs a name and its parameters", stmt.span, example)
            continue
        head = stmt.args[0]
        name = head.value if isinstance(head, ast.Name) else head.name
        if stmt.body is None:
            diags.error(f"block {name} has no body", stmt.span, "write its lines in braces: " + example)
            continue
        if stmt.after or stmt.after_kwargs:
            extra = (stmt.after + [k.value for k in stmt.after_kwargs])[0]
            diags.error(f"nothing may follow the '}}' of block {name}", extra.span,
                        "put the activation inside the block")
            continue
        if name in reserved:
            diags.error(f"'{name}' is a layer or statement of the language; a block needs another name",
                        head.span)
            continue
        if name in blocks:
            diags.error(f"block {name} is defined twice (first on line {blocks[name].span.line})", head.span)
            continue
        params: list[tuple[str, ast.Value | None]] = []
        ok = True
        for a in (head.args if isinstance(head, ast.Call) else []):
            if not isinstance(a, ast.Name):
                diags.error(f"a block parameter is a name, got '{ast.value_text(a)}'", a.span,
                            "give a default as name=value, e.g. stride=1")
                ok = False
            else:
                params.append((a.value, None))
        for kw in (head.kwargs if isinstance(head, ast.Call) else []):
            params.append((kw.key, kw.value))
        seen = set()
        for p, _ in params:
            if p in seen:
                diags.error(f"block {name} has two parameters named '{p}'", head.span)
                ok = False
            seen.add(p)
        if ok:
            blocks[name] = BlockDef(name, params, stmt.body, head.span)
    return blocks


def _size(body, blocks: dict[str, BlockDef], memo: dict, stack=()) -> int:
    """How many lines `body` becomes once expanded (computed, not expanded; stops past MAX_LINES)."""
    n = 0
    for item in body:
        if isinstance(item, ast.Repeat):
            n += max(item.count, 0) * _size(item.body, blocks, memo, stack)
        elif item.word in blocks and item.body is None:
            if item.word in stack:
                continue  # a cycle: reported by the expansion
            if item.word not in memo:
                memo[item.word] = _size(blocks[item.word].body, blocks, memo, stack + (item.word,))
            n += memo[item.word]
        elif item.body is not None:
            n += 1 + _size(item.body, blocks, memo, stack)
        else:
            n += 1
        if n > MAX_LINES:
            return n
    return n


def _substitute(value, env: dict):
    """`value` with every name that is a block parameter replaced by the value the use gives."""
    if isinstance(value, ast.Name) and value.value in env:
        return env[value.value]
    if isinstance(value, ast.Call):
        return dataclasses.replace(value, args=[_substitute(a, env) for a in value.args],
                                   kwargs=[_substitute(k, env) for k in value.kwargs])
    if isinstance(value, ast.Tuple):
        return dataclasses.replace(value, values=[_substitute(v, env) for v in value.values],
                                   kwargs=[_substitute(k, env) for k in value.kwargs])
    if isinstance(value, ast.KwArg):
        return dataclasses.replace(value, value=_substitute(value.value, env))
    if isinstance(value, ast.Stmt):
        return dataclasses.replace(
            value, args=[_substitute(a, env) for a in value.args], kwargs=[_substitute(k, env) for k in value.kwargs],
            body=None if value.body is None else [_substitute(s, env) for s in value.body],
            after=[_substitute(a, env) for a in value.after], after_kwargs=[_substitute(k, env) for k in value.after_kwargs])
    if isinstance(value, ast.Repeat):
        return dataclasses.replace(value, body=[_substitute(s, env) for s in value.body])
    return value


class Expander:
    def __init__(self, blocks: dict[str, BlockDef], diags: Diagnostics):
        self.blocks = blocks
        self.out = ScopedDiagnostics(diags)
        self.memo: dict = {}

    def expand(self, body, uses: tuple[Use, ...] = (), depth: int = 0, stack: tuple[str, ...] = ()) -> list[Item]:
        items: list[Item] = []
        for item in body:
            if isinstance(item, ast.Repeat):
                items += self._repeat(item, uses, depth, stack)
            elif item.word in self.blocks:
                used = self._use(item, uses, depth, stack)
                if used is not None:
                    items.append(used)
            elif item.body is not None:
                if item.word == "block":
                    self.out.error("'block' belongs outside the model block", item.span,
                                   "define blocks above the model, then use them as lines", uses)
                    continue
                if item.word not in GROUP_WORDS:
                    self.out.error(f"'{item.word}' does not open a '{{' block", item.span,
                                   "inside a model, residual, parallel and branch open blocks (and repeat N)",
                                   uses)
                    continue
                items.append(Nested(item, self.expand(item.body, uses, depth, stack), uses))
            else:
                items.append(Line(item, uses))
        return items

    def _repeat(self, item: ast.Repeat, uses, depth, stack) -> list[Item]:
        if item.count < 1:
            self.out.error(f"repeat count must be at least 1, got {item.count}", item.span, uses=uses)
            return []
        if depth >= MAX_DEPTH:
            self.out.error(f"repeat blocks and block uses nested more than {MAX_DEPTH} deep", item.span, uses=uses)
            return []
        inner = _size(item.body, self.blocks, self.memo, stack)
        if item.count > MAX_LINES or item.count * inner > MAX_LINES:
            self.out.error(f"repeat {item.count} expands to more than {MAX_LINES:,} layers", item.span,
                           "a model this deep cannot be trained here; use a smaller count", uses)
            return []
        once = self.expand(item.body, uses, depth + 1, stack)
        # a body that makes no lines is read once, for its errors; copies share the (unchanged) statements
        return once + [_copy(i) for _ in range(item.count - 1) for i in once] if inner else once

    def _use(self, stmt: ast.Stmt, uses, depth, stack) -> Nested | None:
        block = self.blocks[stmt.word]
        if stmt.body is not None:
            self.out.error(f"block {block.name} is used as a line and takes no '{{' body", stmt.span, uses=uses)
            return None
        if stmt.word in stack:
            self.out.error(f"block {block.name} uses itself", stmt.span, "a block cannot contain itself", uses)
            return None
        if depth >= MAX_DEPTH:
            self.out.error(f"repeat blocks and block uses nested more than {MAX_DEPTH} deep", stmt.span, uses=uses)
            return None
        names = [p for p, _ in block.params]
        env: dict[str, ast.Value] = {}
        ok = True
        values = [a for a in stmt.args if not (isinstance(a, ast.Name) and a.value == FROZEN)]  # the graph pass's
        if len(values) > len(names):
            extra = values[len(names)]
            self.out.error(f"block {block.name} takes {len(names)} value(s), got {len(values)}", extra.span,
                           f"block {block.name}({', '.join(names)})" if names else f"block {block.name} takes no values",
                           uses)
            ok = False
        for name, value in zip(names, values):
            env[name] = value
        for kw in stmt.kwargs:
            if kw.key not in names:
                self.out.error(f"block {block.name} has no parameter '{kw.key}'", kw.span,
                               did_you_mean(kw.key, names) or f"its parameters: {', '.join(names) or 'none'}", uses)
                ok = False
            elif kw.key in env:
                self.out.error(f"parameter '{kw.key}' of block {block.name} is given twice", kw.span, uses=uses)
                ok = False
            else:
                env[kw.key] = kw.value
        missing = [p for p, default in block.params if p not in env and default is None]
        if missing and ok:  # after an unknown key, that key was most likely the missing one
            given = " ".join(filter(None, [stmt.word, *(ast.value_text(a) for a in stmt.args),
                                           *(f"{k.key}={ast.value_text(k.value)}" for k in stmt.kwargs)]))
            self.out.error(f"block {block.name} needs {', '.join(missing)}", stmt.span,
                           f"block {block.name}({', '.join(names)}) has no default for {', '.join(missing)}: "
                           f"write e.g. {given} " + " ".join(f"{p}=..." for p in missing), uses)
            ok = False
        if not ok:
            return None
        for p, default in block.params:  # a default may name an earlier parameter: block b(c, d=c)
            if p not in env:
                env[p] = _substitute(default, env)
        body = [_substitute(s, env) for s in block.body]
        inner = uses + (Use(block.name, stmt.span),)
        return Nested(stmt, self.expand(body, inner, depth + 1, stack + (block.name,)), uses, block.name)


def _copy(item: Item) -> Item:
    """A repeat's copy of an expanded item: new containers, the same (never mutated) statements."""
    if isinstance(item, Line):
        return Line(item.stmt, item.uses)
    return Nested(item.stmt, [_copy(i) for i in item.body], item.uses, item.block)


def expand_model(block: ast.ModelBlock, blocks: dict[str, BlockDef], diags: Diagnostics) -> list[Item] | None:
    """The model's lines with repeats and block uses expanded, or None when it would be too large."""
    if _size(block.body, blocks, {}) > MAX_LINES and not _one_repeat_too_large(block.body, blocks):
        diags.error(f"model {block.name} expands to more than {MAX_LINES:,} layers", block.span,
                    "a model this deep cannot be trained here; use smaller repeat counts")
        return None
    return Expander(blocks, diags).expand(block.body)


def _one_repeat_too_large(body, blocks) -> bool:
    """Does a top-level repeat alone exceed the limit (then it reports the error, at its own line)?"""
    return any(isinstance(i, ast.Repeat) and i.count * _size(i.body, blocks, {}) > MAX_LINES for i in body)
