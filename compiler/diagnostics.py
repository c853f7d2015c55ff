"""Located diagnostics: `file:line:col: severity: message`, the source line, a caret.

Every user mistake ends up here as a `Diagnostic`; a `DLError` carries one or
more of them (several independent errors are reported together).
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence


@dataclass(frozen=True)
class Span:
    """A region of the source: 1-based line and column, end exclusive."""

    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None

    def to(self, other: "Span") -> "Span":
        return Span(self.line, self.col, other.end_line or other.line, other.end_col or other.col + 1)


@dataclass(frozen=True)
class Source:
    """The text of a spec and the name it is reported under."""

    text: str
    filename: str = "<spec>"

    @functools.cached_property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def line_text(self, line: int) -> str:
        return self.lines[line - 1] if 0 < line <= len(self.lines) else ""


@dataclass
class Diagnostic:
    severity: str  # "error" | "warning" | "note"
    message: str
    span: Span | None = None
    hint: str | None = None
    code: str | None = None  # lint rule code, e.g. DL101
    notes: list["Diagnostic"] = field(default_factory=list)  # e.g. where the block holding the error was used

    def format(self, source: Source | None) -> str:
        filename = source.filename if source else "dlc"  # not about a file: a command-line mistake
        code = f"[{self.code}] " if self.code else ""
        if self.span is None:
            head = f"{filename}: {self.severity}: {code}{self.message}"
            lines = [head]
        else:
            head = f"{filename}:{self.span.line}:{self.span.col}: {self.severity}: {code}{self.message}"
            lines = [head]
            text = source.line_text(self.span.line) if source else ""
            if text:
                width = 1
                if self.span.end_line == self.span.line and self.span.end_col:
                    width = max(1, self.span.end_col - self.span.col)
                shown, col, width = _window(text.rstrip(), self.span.col, width)
                lines.append(f"    {shown}")
                lines.append("    " + " " * (col - 1) + "^" * width)
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        lines += [n.format(source) for n in self.notes]
        return "\n".join(lines)

    def to_json(self, source: Source | None) -> dict:
        d: dict[str, Any] = {"severity": self.severity, "message": self.message, "code": self.code, "hint": self.hint,
             "file": source.filename if source else None}
        if self.span:
            d.update(line=self.span.line, col=self.span.col)
        if self.notes:
            d["notes"] = [n.to_json(source) for n in self.notes]
        return d


WINDOW = 100  # characters of a long source line shown around the column


def _window(text: str, col: int, width: int) -> tuple[str, int, int]:
    """A long line cut to WINDOW characters around `col` ('...' where cut): (text, col, caret width)."""
    width = min(width, WINDOW)
    if len(text) <= WINDOW + 20:
        return text, col, width
    start = max(0, min(col - 1 - WINDOW // 2, len(text) - WINDOW))
    end = start + WINDOW
    head = "..." if start > 0 else ""
    tail = "..." if end < len(text) else ""
    return head + text[start:end] + tail, col - start + len(head), min(width, end - (col - 1))


MAX_SHOWN = 50  # diagnostics printed per error; the rest are counted


class DLError(Exception):
    """A user-facing error: one or more located diagnostics. The CLI prints them and exits 2."""

    def __init__(self, diagnostics: Diagnostic | Sequence[Diagnostic], source: Source | None = None):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = list(diagnostics)
        self.source = source
        super().__init__(self.format())

    def format(self) -> str:
        shown = [d.format(self.source) for d in self.diagnostics[:MAX_SHOWN]]
        if len(self.diagnostics) > MAX_SHOWN:
            shown.append(f"... and {len(self.diagnostics) - MAX_SHOWN:,} more error(s)")
        return "\n".join(shown)

    def with_source(self, source: Source) -> "DLError":
        if self.source is None:
            self.source = source
            self.args = (self.format(),)
        return self


def error(message: str, span: Span | None = None, hint: str | None = None, source: Source | None = None) -> DLError:
    return DLError(Diagnostic("error", message, span, hint), source)


class Suggestion(str):
    """A did-you-mean hint that also says which written word it would replace, and with what: the
    language server offers each as a quick fix."""

    word: str
    replacements: tuple[str, ...]

    def __new__(cls, text: str, word: str, replacements: Sequence[str]):
        s = super().__new__(cls, text)
        s.word, s.replacements = word, tuple(replacements)
        return s


def did_you_mean(word: str, known: Iterable[str]) -> str | None:
    """A hint naming the closest known word(s), or listing the options when few."""
    known = sorted(set(known))
    if not known:
        return None
    close = difflib.get_close_matches(word, known, n=3, cutoff=0.6)
    if close:
        return Suggestion("did you mean " + " or ".join(f"'{c}'" for c in close) + "?", word, close)
    if len(known) <= 12:
        return "expected one of: " + ", ".join(known)
    return None


@dataclass
class Diagnostics:
    """A collector used while compiling so that independent errors are all reported."""

    source: Source | None = None
    items: list[Diagnostic] = field(default_factory=list)

    def error(self, message: str, span: Span | None = None, hint: str | None = None) -> None:
        self.items.append(Diagnostic("error", message, span, hint))

    def warning(self, message: str, span: Span | None = None, hint: str | None = None, code: str | None = None) -> None:
        self.items.append(Diagnostic("warning", message, span, hint, code))

    def extend(self, err: DLError) -> None:
        self.items.extend(err.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "warning"]

    def raise_if_errors(self) -> None:
        """Raise the errors, in source order, each once (a line inside `repeat` is reported once, not per
        repetition)."""
        if self.errors:
            unique = {(d.span, d.message, d.hint): d for d in self.errors}
            raise DLError(sorted(unique.values(), key=lambda d: (d.span.line, d.span.col) if d.span else (0, 0)),
                          self.source)
