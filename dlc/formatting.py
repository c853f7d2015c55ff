"""`dlc fmt` and the language server's formatting: a spec rewritten in one canonical layout, from the
grammar's own tokens (comments included), so nothing the user wrote is lost.

- four spaces per brace level; blank lines kept, runs of them cut to one; no trailing spaces; one
  newline at the end;
- one space between values, none around `=`, inside parentheses or before `,` `;`; one after `,` `;`;
- a layer line's modifiers (and what follows a group's `}`) in the order the compiler applies them:
  the op's values and keys as written, then `batchnorm`, the activation with its keys, `layernorm`,
  `dropout=` / `keep=`, and `frozen` last (`conv 16 kernel=3 relu batchnorm` -> `conv 16 kernel=3 batchnorm relu`);
- a comment after code keeps the gap before it as written (aligned comments stay aligned), a comment
  line is indented as the code around it.

Formatting a formatted spec changes nothing; a spec with syntax errors is not formatted (the errors are
raised, as dlc check reports them)."""

from __future__ import annotations

from dlc.compiler.modifiers import DROPOUT_KEYS, FROZEN, LAYER_NORM, NORMALIZE

INDENT = "    "


def format_spec(text: str, filename: str = "<spec>") -> str:
    from dlc.grammar.parser import parse, tokens
    parse(text, filename)  # refuse a spec that does not parse: its tokens have no structure to keep
    lines: list[list] = [[]]
    for tok in tokens(text):
        if tok.type == "_NL":
            lines.append([])
        else:
            lines[-1].append(tok)
    out: list[str] = []
    depth = 0
    for toks in lines:
        code = [t for t in toks if t.type not in ("WS_INLINE", "COMMENT")]
        comment = next((t for t in toks if t.type == "COMMENT"), None)
        if not code and comment is None:
            if out and out[-1] != "":
                out.append("")
            continue
        level = depth - (1 if code and code[0].type == "RBRACE" else 0)
        text_line = _line(code)
        if comment is not None:
            gap = " "
            if code:
                k = toks.index(comment)
                gap = str(toks[k - 1]) if k and toks[k - 1].type == "WS_INLINE" else " "
                text_line += gap + str(comment)
            else:
                text_line = str(comment)
        out.append(INDENT * max(level, 0) + text_line)
        depth += sum(1 for t in code if t.type == "LBRACE") - sum(1 for t in code if t.type == "RBRACE")
    while out and out[-1] == "":
        out.pop()
    while out and out[0] == "":
        out.pop(0)
    return "\n".join(out) + "\n" if out else ""


def _line(code: list) -> str:
    """One line's code tokens: statements split at `{`, `}` and `;`, each with its modifiers in order."""
    parts: list[str] = []
    segment: list = []
    after_brace = False  # the segment follows a group's '}': its activation, batchnorm, dropout=

    def flush():
        if segment:
            parts.append(" ".join(_arg_text(a) for a in _ordered(_args(segment), after_brace)))
            segment.clear()

    for tok in code:
        if tok.type in ("LBRACE", "RBRACE", "SEMICOLON"):
            flush()
            parts.append(str(tok))
            after_brace = tok.type == "RBRACE"
        else:
            segment.append(tok)
    flush()
    text = ""
    for part in parts:
        if part == ";":
            text += ";"
        else:
            text += (" " if text else "") + part
    return text


def _args(segment: list) -> list[list]:
    """Tokens -> arguments: a key with its value, a call or a tuple with its parentheses, or one token."""
    args, k = [], 0
    while k < len(segment):
        start = k
        if segment[k].type == "NAME" and k + 1 < len(segment) and segment[k + 1].type == "EQUAL":
            k += 2
        if k < len(segment) and segment[k].type == "NAME" and k + 1 < len(segment) and segment[k + 1].type == "LPAR":
            k += 1
        if k < len(segment) and segment[k].type == "LPAR":
            depth = 0
            while k < len(segment):
                depth += {"LPAR": 1, "RPAR": -1}.get(segment[k].type, 0)
                k += 1
                if depth == 0:
                    break
        else:
            k += 1
        args.append(segment[start:k])
    return args


def _arg_text(arg: list) -> str:
    text = ""
    for prev, tok in zip([None] + arg[:-1], arg):
        if prev is not None and prev.type not in ("LPAR", "EQUAL") and tok.type not in ("RPAR", "COMMA", "EQUAL", "LPAR"):
            text += " "
        text += str(tok)
    return text


def _ordered(args: list[list], after_brace: bool) -> list[list]:
    """A layer line's (or a group tail's) arguments in the canonical order; any other statement's as
    written."""
    from dlc.compiler.ops import REGISTRY
    head = None if after_brace else str(args[0][0])
    op = REGISTRY[head] if head is not None and head in REGISTRY else None
    if not after_brace and (op is None or not op.inline):
        return args
    own = op.attrs if op is not None else {}
    core, bn, act, act_keys, ln, drop, frozen = ([] for _ in range(7))
    act_op = None
    for arg in (args if after_brace else args[1:]):
        first = str(arg[0])
        is_key = len(arg) > 1 and arg[1].type == "EQUAL"
        if len(arg) == 1 and first == NORMALIZE:
            bn.append(arg)
        elif len(arg) == 1 and first == LAYER_NORM:
            ln.append(arg)
        elif len(arg) == 1 and first == FROZEN:
            frozen.append(arg)
        elif not is_key and first in REGISTRY and REGISTRY[first].kind == "activation":
            act.append(arg)
            act_op = REGISTRY[first]
        elif is_key and first in DROPOUT_KEYS:
            drop.append(arg)
        else:
            core.append(arg)
    if act_op is not None:  # leaky_relu alpha=0.1: the activation's keys go with it
        act_keys = [a for a in core if len(a) > 1 and a[1].type == "EQUAL" and str(a[0]) in act_op.attrs
                    and str(a[0]) not in own]
        core = [a for a in core if not any(a is b for b in act_keys)]
    return ([] if after_brace else args[:1]) + core + bn + act + act_keys + ln + drop + frozen
