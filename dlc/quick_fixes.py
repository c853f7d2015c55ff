"""Quick fixes for the language server: edits that a diagnostic names, found from the compiler's own
output and the grammar's tokens.

- a did-you-mean hint (`unknown activation 'rleu'`): replace the word with each suggestion;
- lint rules whose fix is a one-line edit:
  DL101 batchnorm after the activation -> move batchnorm before it (onto the layer line, or swap two
  lines); DL102 a constant init -> remove `init=` (dlc then picks he or xavier by the activation);
  DL104 an init for the other family -> the init the rule names; DL106 dropout on the output layer ->
  remove `dropout=`; DL107 a bias before batchnorm -> remove `bias=true`.

Positions are 0-based (line, character), as LSP counts them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dlc.compiler.diagnostics import Diagnostic, Suggestion
from dlc.compiler.modifiers import DROPOUT_KEYS

Position = tuple[int, int]


@dataclass
class Fix:
    title: str
    edits: list[tuple[Position, Position, str]] = field(default_factory=list)
    preferred: bool = False


def fixes(text: str, d: Diagnostic) -> list[Fix]:
    if d.span is None:
        return []
    if isinstance(d.hint, Suggestion):
        return _replacements(text, d)
    rule = _RULES.get(d.code or "")
    return rule(text, d) if rule else []


def _replacements(text: str, d: Diagnostic) -> list[Fix]:
    rows = text.splitlines()
    hint = d.hint
    if d.span is None or not isinstance(hint, Suggestion):
        return []
    line, col = d.span.line - 1, d.span.col - 1
    if line >= len(rows) or rows[line][col:col + len(hint.word)] != hint.word or not hint.word:
        return []
    start, end = (line, col), (line, col + len(hint.word))
    return [Fix(f"replace '{hint.word}' with '{w}'", [(start, end, w)], preferred=k == 0)
            for k, w in enumerate(hint.replacements)]


# ---- lint fixes ----------------------------------------------------------------------------------------
def _line_args(text: str, line: int) -> list[list]:
    """The arguments of a 0-based line's statements as token groups (dlc/formatting's grouping); [] for a
    line whose spec does not lex."""
    from dlc.formatting import _args
    from lark.exceptions import LarkError

    from dlc.grammar.parser import tokens
    try:
        toks = [t for t in tokens(text) if t.line == line + 1 and t.type not in ("WS_INLINE", "COMMENT", "_NL")]
    except LarkError:  # a lexing error: no fix offered (the error itself is diagnosed)
        return []
    if any(t.type in ("LBRACE", "RBRACE", "SEMICOLON") for t in toks):
        return []  # a line holding braces or several statements: not a one-line edit we can be sure of
    return _args(toks)


def _start(tok) -> Position:
    return tok.line - 1, tok.column - 1


def _end(tok) -> Position:
    return tok.end_line - 1, tok.end_column - 1


def _remove_key(keys: tuple[str, ...], title: str):
    def fix(text: str, d: Diagnostic) -> list[Fix]:
        if d.span is None:
            return []
        args = _line_args(text, d.span.line - 1)
        found = [(k, a) for k, a in enumerate(args) if len(a) > 2 and a[1].type == "EQUAL" and str(a[0]) in keys]
        if not found or found[0][0] == 0:
            return []
        k, arg = found[0]
        written = "".join(str(t) for t in arg)
        start = _end(args[k - 1][-1])  # from the end of the value before: the space goes with it
        return [Fix(title.format(written=written), [(start, _end(arg[-1]), "")], preferred=True)]
    return fix


def _replace_init(text: str, d: Diagnostic) -> list[Fix]:
    from dlc.compiler.inits import INITS
    m = re.search(r"use (\w+)", d.hint or "")
    if not m or m.group(1) not in INITS or d.span is None:
        return []
    args = _line_args(text, d.span.line - 1)
    arg = next((a for a in args if len(a) == 3 and a[1].type == "EQUAL" and str(a[0]) == "init"), None)
    if arg is None:
        return []
    return [Fix(f"use init={m.group(1)}", [(_start(arg[2]), _end(arg[2]), m.group(1))], preferred=True)]


def _batchnorm_before_activation(text: str, d: Diagnostic) -> list[Fix]:
    """A `batchnorm` line after a layer line that ends in its activation: batchnorm joins the layer line
    before the activation. After a line holding only an activation: the two lines swap."""
    from dlc.compiler.ops import REGISTRY
    rows = text.splitlines()
    if d.span is None:
        return []
    line = d.span.line - 1
    here = _line_args(text, line)
    from dlc.compiler.modifiers import NORMALIZE
    if [str(a[0]) for a in here] != [NORMALIZE]:
        return []
    prev = line - 1
    while prev >= 0 and (not rows[prev].strip() or rows[prev].strip().startswith("#")):
        prev -= 1
    if prev < 0:
        return []
    before = _line_args(text, prev)
    acts = [a for a in before[1:] if len(a) == 1 and str(a[0]) in REGISTRY and REGISTRY[str(a[0])].kind == "activation"]
    delete = ((line, 0), (line + 1, 0)) if line + 1 < len(rows) else ((prev, len(rows[prev])), (line, len(rows[line])))
    if before and str(before[0][0]) in REGISTRY and REGISTRY[str(before[0][0])].inline and acts:
        at = _start(acts[0][0])
        return [Fix("move batchnorm onto the layer line, before its activation",
                    [(at, at, "batchnorm "), (*delete, "")], preferred=True)]
    head = str(before[0][0]) if before else ""
    if head in REGISTRY and REGISTRY[head].kind == "activation":
        indent = [rows[k][:len(rows[k]) - len(rows[k].lstrip())] for k in (prev, line)]
        swapped = [indent[0] + rows[line].strip()] + rows[prev + 1:line] + [indent[1] + rows[prev].strip()]
        return [Fix("put batchnorm before the activation (swap the two lines)",
                    [((prev, 0), (line, len(rows[line])), "\n".join(swapped))], preferred=True)]
    return []


_RULES = {
    "DL101": _batchnorm_before_activation,
    "DL102": _remove_key(("init",), "remove {written} (dlc picks he or xavier by the activation)"),
    "DL104": _replace_init,
    "DL106": _remove_key(DROPOUT_KEYS, "remove {written} from the output layer"),
    "DL107": _remove_key(("bias",), "remove {written} (batchnorm's beta does its job)"),
}
