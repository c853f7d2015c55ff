"""Text -> AST with Lark (LALR). Syntax errors become located `DLError`s.

The parser recovers in one pass: after a syntax error it skips the offending
token and goes on, so independent syntax errors on several lines are all
reported, one per line, without parsing the text again.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import cast
from pathlib import Path

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from dlc.compiler import ast
from dlc.compiler.diagnostics import Diagnostic, DLError, Source, Span

GRAMMAR_PATH = Path(__file__).with_name("dl.lark")
MAX_SYNTAX_ERRORS = 20

_TERMINAL_WORDS = {
    "SIGNED_NUMBER": "a number",
    "FRACTION": "a ratio such as 1/255",
    "INT": "a whole number",
    "NAME": "a name",
    "DIMS": "dimensions such as 1x28x28",
    "STRING": "a quoted string",
    "_NL": "end of line",
    "SEMICOLON": "';'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "EQUAL": "'='",
    "$END": "end of file",
    "MODEL": "'model'",
    "REPEAT": "'repeat'",
}


def _word(terminal: str) -> str:
    return _TERMINAL_WORDS.get(terminal, terminal.lower())


def _span(tok: Token) -> Span:
    return Span(tok.line or 0, tok.column or 0, tok.end_line, tok.end_column)


@dataclass
class _Body:
    """A braced body while it is being attached to its statement."""

    items: list
    after: list
    after_kwargs: list


class _ToAST(Transformer):
    """Parse tree -> `dlc.compiler.ast`. Purely structural: no semantic checks here."""

    def number(self, items):
        (tok,) = items
        if tok.type == "FRACTION":  # scale=1/255: a number written as a ratio (a zero divisor is checked later)
            top, _, bottom = str(tok).partition("/")
            value = float(top) / float(bottom) if float(bottom) else float("inf")
            return ast.Number(value, str(tok), _span(tok))
        return ast.Number(float(tok), str(tok), _span(tok))

    def dims(self, items):
        (tok,) = items
        return ast.Dims(tuple(int(p) for p in str(tok).split("x")), _span(tok))

    def name(self, items):
        (tok,) = items
        return ast.Name(str(tok), _span(tok))

    def string(self, items):
        (tok,) = items
        return ast.String(str(tok)[1:-1], _span(tok))

    def call(self, items):
        name, *args = items
        args = [a for a in args if a is not None]
        kwargs = [a for a in args if isinstance(a, ast.KwArg)]
        return ast.Call(str(name), [a for a in args if not isinstance(a, ast.KwArg)], _span(name), kwargs)

    def tuple(self, items):
        items = [v for v in items if v is not None]
        spans = [v.value.span if isinstance(v, ast.KwArg) else v.span for v in items]
        first = items[0].span  # a key's span starts at the key
        span = Span(first.line, first.col - 1, spans[-1].end_line, spans[-1].end_col + 1)
        return ast.Tuple([v for v in items if not isinstance(v, ast.KwArg)], span,
                         [v for v in items if isinstance(v, ast.KwArg)])

    def kwarg(self, items):
        key, value = items
        return ast.KwArg(str(key), value, _span(key))

    def stmt(self, items):
        word, *rest = items
        s = ast.Stmt(str(word), _span(word))
        for r in rest:
            if isinstance(r, _Body):
                s.body, s.after, s.after_kwargs = r.items, r.after, r.after_kwargs
            else:
                (s.kwargs if isinstance(r, ast.KwArg) else s.args).append(r)
        return s

    def body(self, items):
        b = _Body([], [], [])
        for r in items:
            if isinstance(r, (ast.Stmt, ast.Repeat)):
                b.items.append(r)
            else:
                (b.after_kwargs if isinstance(r, ast.KwArg) else b.after).append(r)
        return b

    def repeat(self, items):
        count, *body = items
        return ast.Repeat(int(count), list(body), _span(count))

    def model(self, items):
        name, *body = items
        return ast.ModelBlock(str(name), list(body), _span(name))

    def start(self, items):
        models = [i for i in items if isinstance(i, ast.ModelBlock)]
        stmts = [i for i in items if isinstance(i, ast.Stmt)]
        return ast.SpecAST(models, stmts)


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(GRAMMAR_PATH.read_text(), parser="lalr", maybe_placeholders=False,
                transformer=_ToAST(), cache=_cache_file())


def _cache_file():
    """Lark's compiled-grammar cache: a pickle, so only in dlc's cache folder when that is safe
    (compiler/files.user_cache_dir: the user's alone), in a file the user owns and alone can write,
    named by a hash of the grammar, lark's version and dlc's. Anything else is not used (False: build
    the parser without a cache, about 0.1 s)."""
    import hashlib
    import os
    import stat

    import lark

    from dlc.version import __version__
    from dlc.compiler.files import owned_safe, user_cache_dir

    base = user_cache_dir()
    if base is None:
        return False
    key = hashlib.sha256(GRAMMAR_PATH.read_bytes() + f"|{lark.__version__}|{__version__}".encode()).hexdigest()[:16]
    path = base / f"lark-grammar-{key}.cache"
    try:
        if os.path.lexists(path) and not owned_safe(path, stat.S_ISREG):
            return False
    except OSError:
        return False
    return str(path)


def _describe(err: UnexpectedInput, source: Source) -> Diagnostic:
    line_text = source.line_text(err.line) if err.line and err.line > 0 else ""
    if isinstance(err, UnexpectedCharacters):
        ch = err.char
        hint = None
        if ch in "./\\" and line_text.strip().startswith("data"):
            hint = 'file paths are written in quotes: data "path/to/file.csv"'
        elif ch == "-" or ch == "+":
            hint = "numbers are written as 0.5, -1, 1e-3"
        elif ch in "\"'":
            hint = "close the string on the same line"
        return Diagnostic("error", f"unexpected character {ch!r}", Span(err.line, err.column, err.line, err.column + 1), hint)
    if isinstance(err, (UnexpectedToken, UnexpectedEOF)):
        tok = getattr(err, "token", None)
        expected = sorted(getattr(err, "expected", None) or getattr(err, "accepts", None) or [])
        want = [_word(t) for t in expected if not t.startswith("__")]
        if tok is None or tok.type == "$END":
            line = len(source.text.splitlines()) or 1
            span = Span(line, max(1, len(source.line_text(line)) + 1))
            if "RBRACE" in expected:
                return Diagnostic("error", "unexpected end of file: a '{' block is not closed", span, "add the missing '}'")
            return Diagnostic("error", "unexpected end of file", span,
                              ("expected " + ", ".join(want)) if want else None)
        shown = "end of line" if tok.type == "_NL" else repr(str(tok))
        span = Span(tok.line, tok.column, tok.end_line, tok.end_column if tok.type != "_NL" else tok.column + 1)
        hint = ("expected " + " or ".join(want)) if want and len(want) <= 6 else None
        msg = f"unexpected {shown}"
        if tok.type == "EQUAL":
            msg, hint = "unexpected '='", "a keyword argument is written key=value, e.g. dropout=0.5"
        elif tok.type == "_NL" and "RPAR" in expected:
            msg, hint = "unclosed '(' at end of line", "close the call with ')'"
        elif tok.type == "_NL" and expected and set(expected) <= {"SIGNED_NUMBER", "NAME", "DIMS", "STRING"}:
            msg, hint = "missing value at end of line", "write a value after '=', e.g. dropout=0.5"
        elif tok.type == "RBRACE":
            msg, hint = "unexpected '}'", "this '}' closes no block"
        elif tok.type == "LBRACE" and re.search(r"\}\s*\w+\s*$", line_text[:tok.column - 1]):
            hint = ("the words after a '}' on its line belong to that block (} relu); start the next "
                    "statement on a new line or after ';'")
        elif tok.type == "LBRACE":
            hint = "a '{' opens a block after model NAME, repeat N, block, residual, parallel or branch"
        elif tok.type in ("SIGNED_NUMBER", "INT", "DIMS") and "NAME" in expected:
            hint = "a statement starts with a word such as dense, conv, relu"
        return Diagnostic("error", msg, span, hint)
    return Diagnostic("error", str(err).splitlines()[0], Span(getattr(err, "line", 1) or 1, getattr(err, "column", 1) or 1))


MAX_NESTING = 32  # braces and parentheses open at once, whatever opens them
MAX_NAME = 80  # characters in a name (a block's name is in every node name of every use)
_BRACKETS = re.compile(r"#[^\n]*|\"[^\"\n]*\"|'[^'\n]*'|[{}()]|(?<!\w)[A-Za-z_]\w{%d,}" % MAX_NAME)


def _line_col(text: str, offset: int) -> tuple[int, int]:
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _check_limits(text: str, source: Source) -> None:
    """Refuse braces or parentheses nested deeper than MAX_NESTING before anything recursive reads
    the text (Lark's tree, the transformer and every pass after it recurse once per level), and names
    longer than MAX_NAME (each use of a block copies its name into every node name: check's memory
    grows with name length x uses). Comments and strings are skipped; unbalanced brackets are left
    for the parser to report."""
    depth = 0
    for m in _BRACKETS.finditer(text):
        ch = m.group()
        if len(ch) > MAX_NAME and (ch[0].isalpha() or ch[0] == "_"):
            line, col = _line_col(text, m.start())
            raise DLError(Diagnostic("error", f"a name of {len(ch):,} characters; names are at most {MAX_NAME}",
                                     Span(line, col, line, col + min(len(ch), 20)),
                                     "shorten it (it becomes part of every layer name below it)"), source)
        if ch in "{(":
            depth += 1
            if depth > MAX_NESTING:
                line, col = _line_col(text, m.start())
                kind = "braces" if ch == "{" else "parentheses"
                raise DLError(Diagnostic("error", f"{kind} nested more than {MAX_NESTING} deep (blocks, groups, "
                                                  "repeats and calls together)", Span(line, col, line, col + 1),
                                         "flatten the nesting: define a block once and use it as a line"), source)
        elif ch in "})":
            depth = max(0, depth - 1)


def parse(text: str, filename: str = "<spec>") -> ast.SpecAST:
    """Parse spec text. Raises `DLError` with every syntax error found (one per line, at most
    MAX_SYNTAX_ERRORS), in one pass: after an error the parser skips the offending token and goes on
    (Lark's on_error), so recovery costs no re-parse."""
    source = Source(text, filename)
    _check_limits(text, source)
    diags: list[Diagnostic] = []
    lines_seen: set[int] = set()

    def record(err: UnexpectedInput) -> bool:
        d = _describe(err, source)
        line = d.span.line if d.span else 0
        if line not in lines_seen:
            lines_seen.add(line)
            diags.append(d)
        # a '{' where none may stand unbalances every brace after it: what follows would be follow-on errors
        brace = getattr(getattr(err, "token", None), "type", None) == "LBRACE"
        return len(diags) < MAX_SYNTAX_ERRORS and "end of file" not in d.message and not brace

    try:
        tree = _lark().parse(text, on_error=record)
    except UnexpectedInput as err:
        record(err)
    if diags:
        if len(diags) >= MAX_SYNTAX_ERRORS:
            diags.append(Diagnostic("note", f"stopped after {len(diags)} syntax error(s); fix these first"))
        raise DLError(diags, source)
    return cast(ast.SpecAST, tree)  # the transformer's output


def tokens(text: str) -> list[Token]:
    """The spec's tokens as the grammar's lexer reads them, the ignored ones too (WS_INLINE, COMMENT):
    what the formatter rebuilds the text from."""
    return list(_lark().lex(text, dont_ignore=True))
