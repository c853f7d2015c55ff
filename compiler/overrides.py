"""`--set KEY=VALUE` overrides, applied as edits of the spec text so that the spec
saved with a run is exactly what was trained.

    optimizer.lr=0.01     set (or add) a key on a statement
    optimizer=sgd         set the statement's kind
    train.epochs=5        a statement that is absent is appended
"""

from __future__ import annotations

from .diagnostics import Diagnostic, DLError, Source
from .statements import STATEMENTS


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
        if word not in STATEMENTS:
            raise DLError(Diagnostic("error", f"--set {item}: unknown statement '{word}'",
                                     hint="one of: " + ", ".join(STATEMENTS)), Source(text, filename))
        tree = parse(text, filename)
        stmt = next((s for s in tree.stmts if s.word == word), None)
        lines = text.split("\n")
        if stmt is None:
            lines.append(f"{word} {sub}={value}" if sub else f"{word} {value}")
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
