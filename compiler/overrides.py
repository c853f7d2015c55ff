"""`--set KEY=VALUE` overrides, applied as edits of the spec text so that the spec
saved with a run is exactly what was trained.

    optimizer.lr=0.01     set (or add) a key on a statement
    optimizer=sgd         set the statement's kind
    train.epochs=5        a statement that is absent is appended
    model.activation=tanh every hidden activation (the output layer's is kept)
    model.init=he_normal  the default init, and every per-layer init=
    model.dropout=0.3     every dropout rate written in the model (input dropout excepted)
"""

from __future__ import annotations

from . import ast
from .diagnostics import Diagnostic, DLError, Source
from .statements import STATEMENTS

MODEL_KEYS = ("activation", "init", "dropout")


def value_end(line: str, col0: int) -> int:
    """End index (exclusive) of the value starting at col0: a call's ')' or the token."""
    i = col0
    depth = 0
    while i < len(line):
        c = line[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        elif depth == 0 and (c.isspace() or c in "#;"):
            return i
        i += 1
    return i


def apply_overrides(text: str, filename: str, overrides) -> str:
    from dlc.grammar import parse

    for item in overrides:
        if "=" not in item:
            raise DLError(Diagnostic("error", f"--set {item}: expected KEY=VALUE, e.g. optimizer.lr=0.01"), Source(text, filename))
        key, value = item.split("=", 1)
        word, _, sub = key.partition(".")
        if word == "model":
            text = _model_override(text, filename, item, sub, value)
            continue
        if word not in STATEMENTS:
            raise DLError(Diagnostic("error", f"--set {item}: unknown statement '{word}'",
                                     hint="one of: model, " + ", ".join(STATEMENTS)), Source(text, filename))
        tree = parse(text, filename)
        stmt = next((s for s in tree.stmts if s.word == word), None)
        lines = text.split("\n")
        if stmt is None:
            end = len(lines)
            while end and not lines[end - 1].strip():
                end -= 1  # the new statement goes after the last line with text, not after blank ones
            lines.insert(end, f"{word} {sub}={value}" if sub else f"{word} {value}")
            if end == len(lines) - 1:
                lines.append("")  # the text ends with a newline
        else:
            i = stmt.span.line - 1
            line = lines[i]
            if sub:
                kw = next((k for k in stmt.kwargs if k.key == sub), None)
                if kw is not None:
                    start = kw.value.span.col - 1
                    lines[i] = line[:start] + value + line[value_end(line, start):]
                else:
                    body = line.split("#")[0].rstrip()
                    lines[i] = body + f" {sub}={value}" + line[len(body):]
            else:
                # A new kind: keep the keys it takes (lr survives sgd -> adam), drop the others.
                kinds, _, common = STATEMENTS[word]
                valid = set(common) | set((kinds or {}).get(value, {}))
                kept = [f"{kw.key}={line[kw.value.span.col - 1:value_end(line, kw.value.span.col - 1)]}"
                        for kw in stmt.kwargs if kinds is None or kw.key in valid]
                flags = [a.value for a in stmt.args[1:] if hasattr(a, "value") and a.value in valid]
                comment = line[line.index("#"):] if "#" in line else ""
                indent = line[:len(line) - len(line.lstrip())]
                lines[i] = indent + " ".join([word, value, *flags, *kept]) + (f"  {comment}" if comment else "")
        text = "\n".join(lines)
    return text


def _source_order(body):
    """The model block's statements as written (a repeat's body once)."""
    for item in body:
        if isinstance(item, ast.Repeat):
            yield from _source_order(item.body)
        else:
            yield item


def _model_override(text: str, filename: str, item: str, key: str, value: str) -> str:
    from dlc.grammar import parse
    from .ops import REGISTRY

    def fail(message, hint=None):
        raise DLError(Diagnostic("error", f"--set {item}: {message}", hint=hint), Source(text, filename))

    if key not in MODEL_KEYS:
        fail(f"unknown model key '{key}'", "one of: " + ", ".join(f"model.{k}" for k in MODEL_KEYS))
    tree = parse(text, filename)
    if not tree.models:
        fail("the spec has no model block")
    stmts = list(_source_order(tree.models[0].body))
    last_linear = max((i for i, s in enumerate(stmts) if s.word in ("dense", "conv")), default=len(stmts))
    is_act = lambda w: w in REGISTRY and REGISTRY[w].kind == "activation"  # noqa: E731
    points = []  # (line, col) where a value to replace starts
    lines = text.split("\n")
    if key == "activation":
        if not is_act(value):
            fail(f"'{value}' is not an activation", "one of: " + ", ".join(REGISTRY.names("activation")))
        for s in stmts[:last_linear]:
            if is_act(s.word):
                points.append((s.span.line, s.span.col))
            elif s.word in ("dense", "conv"):
                points += [(a.span.line, a.span.col) for a in s.args if isinstance(a, ast.Name) and is_act(a.value)]
        if not points:
            fail("the model has no hidden activation to replace")
    elif key == "init":
        for s in stmts:
            if s.word == "init" and s.args:
                points.append((s.args[0].span.line, s.args[0].span.col))
            points += [(kw.value.span.line, kw.value.span.col) for kw in s.kwargs if kw.key == "init"]
        if not any(s.word == "init" for s in stmts):
            first = next((s for s in stmts if s.word == "input"), None)
            if first is None:
                fail("the model has no input line")
            indent = lines[first.span.line - 1][:first.span.col - 1]
            lines.insert(first.span.line, f"{indent}init {value}")
            points = [(line + (line > first.span.line), col) for line, col in points]
    else:  # dropout
        for i, s in enumerate(stmts):
            if s.word == "dropout" and s.args:
                points.append((s.args[0].span.line, s.args[0].span.col))
            elif s.word != "input" and i != last_linear:
                points += [(kw.value.span.line, kw.value.span.col) for kw in s.kwargs if kw.key == "dropout"]
        if not points:
            fail("the model has no dropout to vary", "write dropout= on the layers that should have it")
    for line_no, col in sorted(points, reverse=True):
        i, start = line_no - 1, col - 1
        lines[i] = lines[i][:start] + value + lines[i][value_end(lines[i], start):]
    return "\n".join(lines)
