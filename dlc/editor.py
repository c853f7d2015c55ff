"""What the language server says about a spec, from the compiler's own API (no second parser, no rule
of its own): diagnostics with their spans, each model line's output shape and parameters, hover texts
read from the registries, and completions by context. dlc/lsp.py speaks LSP around it.

Positions here are 0-based (line, character), as LSP counts them; the compiler's spans are 1-based
with an exclusive end."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

from dlc.compiler.diagnostics import Diagnostic, DLError, Span


@dataclass
class Found:
    severity: str  # error | warning | note
    message: str
    start: tuple[int, int]
    end: tuple[int, int]
    code: str | None = None
    related: list["Found"] = field(default_factory=list)  # its notes: e.g. the block use that holds the error
    diagnostic: Diagnostic | None = None  # as the compiler gave it: what quick fixes are read from


@dataclass
class Hint:
    line: int  # 0-based
    character: int  # where the hint goes: the end of the line's text
    text: str


@dataclass
class Analysis:
    diagnostics: list[Found]
    hints: list[Hint]
    blocks: dict[str, list[str]]  # each block's name -> its parameters, as written


def _range(span: Span | None, lines: list[str]) -> tuple[tuple[int, int], tuple[int, int]]:
    if span is None:
        return (0, 0), (0, 0)
    start = (span.line - 1, max(span.col - 1, 0))
    end_line = (span.end_line or span.line) - 1
    end_col = (span.end_col - 1) if span.end_col else len(lines[end_line]) if end_line < len(lines) else start[1]
    return start, (end_line, max(end_col, start[1]))


def _found(d: Diagnostic, lines: list[str]) -> Found:
    start, end = _range(d.span, lines)
    message = d.message + (f" (hint: {d.hint})" if d.hint else "")
    return Found(d.severity, message, start, end, d.code, [_found(n, lines) for n in d.notes if n.span], d)


def analyse(text: str, path: str) -> Analysis:
    """Compile `text` as the spec at `path` (its data file and `init from` run read from their
    headers, as dlc check does) -> diagnostics, shape hints and the block names. The cyclic garbage
    collector waits until it is done: a compile makes many short-lived objects and no cycles worth
    chasing, and its passes cost a fifth of a 1,000-line spec's re-check (bench/lsp_recheck.py)."""
    import gc
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _analyse(text, path)
    finally:
        if was_enabled:
            gc.enable()


def _analyse(text: str, path: str) -> Analysis:
    from dlc.compiler.spec import compile as compile_text
    from dlc.runtime.data.check import check_data_file
    lines = text.splitlines() or [""]
    blocks = block_params(text)
    try:
        spec = compile_text(text, path)
        check_data_file(spec)
        if "init" in spec.settings:
            from dlc.runtime.init_from import plan
            plan(spec)
    except DLError as e:
        return Analysis([_found(d, lines) for d in e.diagnostics], [], blocks)
    return Analysis([_found(d, lines) for d in spec.warnings], _hints(spec, lines), blocks)


def _hints(spec, lines: list[str]) -> list[Hint]:
    """After each model line: the shape that leaves it and its parameters, as `dlc check`'s table has
    them (a block use or a group: what leaves it, and the parameters of everything inside); a line
    inside a block gets the shapes of each of its uses, once each."""
    from dlc.compiler.ops.base import fmt_shape
    from dlc.compiler.summary import rows
    by_line: dict[int, list[str]] = {}
    for row in rows(spec):
        text = fmt_shape(tuple(row["output"])) + (f" · {row['params']:,} params" if row["params"] else "")
        seen = by_line.setdefault(row["line"] - 1, [])
        if text not in seen:
            seen.append(text)
    return [Hint(line, len(lines[line].rstrip()) if line < len(lines) else 0, "→ " + " | ".join(texts))
            for line, texts in sorted(by_line.items())]


# ---- hover and completion --------------------------------------------------------------------------
def _attrs_text(attrs: dict) -> str:
    from dlc.compiler.attrs import REQUIRED
    parts = []
    for key, a in attrs.items():
        default = "required" if a.default is REQUIRED else f"default {a.default}"
        rng = a.describe_range()
        parts.append(f"- `{key}` ({a.type}, {default}{', ' + rng if rng else ''}){': ' + a.doc if a.doc else ''}")
    return "\n".join(parts)


def hover(word: str) -> str | None:
    """Markdown for a layer, activation, init scheme, optimizer, loss or schedule name, from its registry."""
    from dlc.compiler.inits import INITS
    from dlc.compiler.losses import LOSSES
    from dlc.compiler.ops import REGISTRY
    from dlc.compiler.optimizers import OPTIMIZERS
    from dlc.compiler.schedules import SCHEDULES
    if word in REGISTRY:
        op = REGISTRY[word]
        return f"**{word}** ({op.kind}): {op.doc}\n\n" + _attrs_text(op.attrs)
    if word in INITS:
        s = INITS[word]
        return f"**{word}** (init): {s.distribution}, scale `{s.formula}`\n\n" + _attrs_text(s.attrs)
    if word in OPTIMIZERS:
        rule = OPTIMIZERS[word]
        doc = (type(rule).__doc__ or "").strip().split("\n\n")[0]
        return f"**{word}** (optimizer){': ' + doc if doc else ''}\n\n" + _attrs_text(rule.attrs)
    if word in LOSSES:
        loss = LOSSES[word]
        return f"**{word}** (loss, {loss.task}): {loss.doc}\n\n" + _attrs_text(loss.attrs)
    if word in SCHEDULES:
        schedule = SCHEDULES[word]
        return f"**{word}** (schedule): `{schedule.formula}`\n\n" + _attrs_text(schedule.attrs)
    from dlc.compiler.modifiers import TOKENS, TOKENS_DOC, VARIABLE, VARIABLE_DOC
    if word == VARIABLE:
        return VARIABLE_DOC
    if word == TOKENS:
        return TOKENS_DOC
    return None


def block_params(text: str) -> dict[str, list[str]]:
    """Each `block NAME(params)` line's name and parameter names, read from the lines as written (a spec
    with errors elsewhere still has them)."""
    out = {}
    for m in re.finditer(r"^\s*block\s+([A-Za-z_]\w*)\s*(?:\(([^)]*)\))?", text, flags=re.M):
        out[m.group(1)] = [p.split("=")[0].strip() for p in (m.group(2) or "").split(",") if p.split("=")[0].strip()]
    return out


def completions(text: str, line: int, character: int, blocks: dict[str, list[str]]) -> list[str]:
    """Words that fit where the cursor is: after `optimizer`/`loss`/`schedule`/`init`, their names; after
    `data`, the bundled data sets; after a block's name, its parameters (as `name=`); after a layer, its
    keys (as `key=`), activations, batchnorm and frozen; after a group's `}`, what may follow it; at a
    line's start, statements, layers and block names."""
    from dlc.compiler.inits import INITS
    from dlc.compiler.losses import LOSSES
    from dlc.compiler.ops import REGISTRY
    from dlc.compiler.optimizers import OPTIMIZERS
    from dlc.compiler.schedules import SCHEDULES
    from dlc.compiler.statements import STATEMENTS
    rows = text.splitlines()
    before = rows[line][:character] if line < len(rows) else ""
    words = before.split()
    typing = "" if before.endswith((" ", "\t")) or not words else words[-1]
    done = words[:-1] if typing else words
    from dlc.compiler.build import IDENTITY, MERGES, PROJECT
    from dlc.compiler.catalog import BUILTIN_SETS
    done = done[done.index("{") + 1:] if "{" in done else done  # repeat 2 { dense ...: the statement inside
    if not done:
        return sorted(set(STATEMENTS) | {"model", "block", "repeat", "residual", "parallel", "branch", "input", "init"}
                      | set(REGISTRY.names()) | set(blocks))
    head = done[0]
    if head == "}":  # } relu batchnorm dropout=0.2: what follows a residual's or parallel's body
        from dlc.compiler.modifiers import words as modifier_words
        return modifier_words(REGISTRY.names("activation"))
    names: Any = {"optimizer": OPTIMIZERS, "loss": LOSSES, "schedule": SCHEDULES, "init": INITS, "data": BUILTIN_SETS,
             "residual": (IDENTITY, PROJECT), "parallel": MERGES}.get(head)
    if names is not None and len(done) == 1:
        return sorted(names)
    if head in blocks:
        return [f"{p}=" for p in blocks[head]]
    if head == "input":  # input CxL variable, dropout=/keep= on the input
        from dlc.compiler.modifiers import DROPOUT_KEYS, TOKENS, VARIABLE
        return sorted([VARIABLE, TOKENS] + [f"{k}=" for k in DROPOUT_KEYS])
    if head in REGISTRY:
        op = REGISTRY[head]
        keys = [f"{k}=" for k in op.attrs]
        if op.inline:
            from dlc.compiler.line_words import LAYER_KEYS
            from dlc.compiler.modifiers import words as modifier_words
            keys += [f"{k}=" for k in LAYER_KEYS] + modifier_words(REGISTRY.names("activation"))
        return sorted(set(keys))
    if head in STATEMENTS:
        kinds, _, common = STATEMENTS[head]
        kind = done[1] if len(done) > 1 else None
        attrs = dict(common, **((kinds or {}).get(kind, {}) if kinds and kind else {}))
        return sorted(f"{k}=" for k in attrs)
    return []


def word_at(text: str, line: int, character: int) -> str | None:
    rows = text.splitlines()
    if line >= len(rows):
        return None
    for m in re.finditer(r"[A-Za-z_]\w*", rows[line]):
        if m.start() <= character <= m.end():
            return m.group(0)
    return None


def document_path(uri: str) -> str:
    """A file: URI as the path the compiler reports (data files are found relative to it)."""
    from urllib.parse import unquote, urlparse
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else str(Path(uri))


def block_places(text: str, name: str) -> tuple[tuple[int, int, int] | None, list[tuple[int, int, int]]]:
    """Where block `name` is defined, and the lines that use it, as (line, start, end) of the name: read
    from the lines as written, so a spec with errors elsewhere still has them."""
    definition, uses = None, []
    for k, row in enumerate(text.splitlines()):
        m = re.match(r"\s*block\s+([A-Za-z_]\w*)", row)
        if m and m.group(1) == name:
            definition = (k, m.start(1), m.end(1))
            continue
        for m in re.finditer(r"(?:^|[{;])\s*([A-Za-z_]\w*)\b", row.split("#", 1)[0]):  # a statement's first word
            if m.group(1) == name:
                uses.append((k, m.start(1), m.end(1)))
    return definition, uses


@dataclass
class Symbol:
    name: str
    detail: str  # model | block | residual | parallel | branch | repeat | a statement's word
    line: int  # 0-based
    start: int
    end: int
    last_line: int  # the line of its closing brace (its own line for a statement)
    children: list["Symbol"] = field(default_factory=list)


GROUPS = ("residual", "parallel", "branch", "repeat")


def symbols(text: str) -> list[Symbol]:
    """The outline: the model and the blocks, the residual / parallel / branch / repeat groups inside
    them, and the statements outside (data, loss, optimizer ...), each spanning to its closing brace.
    Read from the grammar's tokens, so a spec with errors elsewhere still has an outline; a spec that
    does not even lex has the model and block lines only."""
    from lark.exceptions import LarkError

    from dlc.grammar.parser import tokens
    try:
        toks: list[Any] = [t for t in tokens(text) if t.type not in ("WS_INLINE", "COMMENT")]  # lark Tokens
    except LarkError:  # a character the grammar has no token for: the model and block lines only
        return [Symbol(m.group(2), m.group(1), text.count("\n", 0, m.start()), m.start(2) - m.start(),
                       m.end(2) - m.start(), text.count("\n", 0, m.start()))
                for m in re.finditer(r"^(model|block)\s+([A-Za-z_]\w*)", text, flags=re.M)]
    rows = text.splitlines()
    top: list[Symbol] = []
    open_: list[Symbol | None] = []  # one per open brace: the symbol it belongs to (None: a brace of no symbol)
    at_start = True
    pending: Symbol | None = None
    for k, tok in enumerate(toks):
        if tok.type in ("_NL", "SEMICOLON"):
            at_start, pending = True, None
            continue
        if tok.type == "LBRACE":
            open_.append(pending)
            pending, at_start = None, True
            continue
        if tok.type == "RBRACE":
            sym = open_.pop() if open_ else None
            if sym is not None:
                sym.last_line = tok.line - 1
            at_start = False
            continue
        if not at_start:
            continue
        at_start = False
        word = str(tok)
        parent = next((s for s in reversed(open_) if s is not None), None)
        siblings = parent.children if parent else (top if not open_ else None)
        line = tok.line - 1
        if word in ("model", "block") and not open_ and k + 1 < len(toks) and toks[k + 1].type == "NAME":
            name = toks[k + 1]
            pending = Symbol(str(name), word, line, name.column - 1, name.end_column - 1, line)
        elif word in GROUPS and siblings is not None:
            rest = []
            for t in toks[k + 1:]:
                if t.type in ("LBRACE", "_NL", "SEMICOLON"):
                    break
                rest.append(str(t))
            pending = Symbol(" ".join([word] + rest), word, line, tok.column - 1, tok.end_column - 1, line)
        elif not open_:
            top.append(Symbol(word, rows[line].split("#", 1)[0].strip(), line, tok.column - 1, tok.end_column - 1, line))
            continue
        else:
            continue
        if siblings is not None:
            siblings.append(pending)
    return top
