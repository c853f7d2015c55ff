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

from typing import NoReturn

from . import ast
from .assemble import assemble
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

    graph = None  # the layers' names, from the text before any layer override (values do not rename layers,
    # and an intermediate text -- one block argument changed of two -- may not compile)
    for item in overrides:
        if "=" not in item:
            _fail(text, filename, item, "expected KEY=VALUE, e.g. optimizer.lr=0.01")
        key, value = item.split("=", 1)
        word, _, sub = key.partition(".")
        if word == "model":
            text = _model_override(text, filename, item, sub, value)
            graph = None
            continue
        if word not in STATEMENTS:
            if graph is None:
                graph = assemble(text, filename, lint=False, max_memory=0).graph
            text = _layer_override(text, filename, item, key, value, graph)
            continue
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
                flags = [str(a.value) for a in stmt.args[1:] if hasattr(a, "value") and a.value in valid]
                comment = line[line.index("#"):] if "#" in line else ""
                indent = line[:len(line) - len(line.lstrip())]
                lines[i] = indent + " ".join([word, value, *flags, *kept]) + (f"  {comment}" if comment else "")
        text = "\n".join(lines)
    return text


def _fail(text, filename, item, message, hint=None) -> NoReturn:
    raise DLError(Diagnostic("error", f"{_flag(item)} {item}: {message}", hint=hint), Source(text, filename))


def _flag(item) -> str:
    return getattr(item, "flag", "--set")


class Override(str):
    """A KEY=VALUE item that remembers the option it came from (--set or --vary), for its errors."""

    flag: str

    def __new__(cls, item: str, flag: str = "--set"):
        obj = super().__new__(cls, item)
        obj.flag = flag
        return obj


def _layer_override(text: str, filename: str, item: str, full_key: str, value: str, graph) -> str:
    """`dense1.dropout=0.3`, `input.dropout=0.1`, `dropout2.p=0.4`, `dense3.leaky_relu.alpha=0.2`: set a key
    on the model line that made that layer -- the keys `dlc check` and `dlc search` show for ranges.
    `graph` names the layers (the spec's graph before the layer overrides)."""
    from dlc.grammar import parse
    from .ops import REGISTRY

    parts = full_key.split(".")
    groups = {lay.group: lay for lay in graph.layers if lay.group}
    groups.update(_block_uses(graph))  # basic3.c=48: a block argument, on the line that uses the block
    known = {"input"} | {name for lay in graph.layers for name in lay.nodes} | set(groups)
    # the longest prefix that names a node: basic2.residual1.conv1.dropout -> basic2.residual1.conv1, dropout
    cut = next((k for k in range(len(parts) - 1, 0, -1) if ".".join(parts[:k]) in known), 1)
    layer_name, key = ".".join(parts[:cut]), ".".join(parts[cut:])
    if not key:
        _fail(text, filename, item, "expected LAYER.KEY=VALUE, e.g. dense1.dropout=0.3")
    layer = groups.get(layer_name) or next((lay for lay in graph.layers if (layer_name == "input" and lay.word == "input")
                                            or layer_name in lay.nodes), None)
    if layer is None:
        names = ["input"] + [lay.nodes[0] for lay in graph.layers if lay.nodes and lay.word != "input"]
        _fail(text, filename, item, f"unknown statement or layer '{layer_name}'",
              "a statement (" + ", ".join(["model", *STATEMENTS]) + ") or a layer: " + ", ".join(names[:12])
              + (" ..." if len(names) > 12 else ""))
    if sum(1 for lay in graph.layers if lay.span == layer.span) > 1:
        _fail(text, filename, item, f"{layer_name} is on line {layer.span.line} inside a repeat or a block used "
                                    "more than once, which makes several layers",
              "edit the spec's line to change every repetition")
    tree = parse(text, filename)
    stmt = next(s for s in _source_order(tree.models[0].body + [b for b in tree.stmts if b.word == "block"])
                if s.span == layer.span)
    attr = key.rsplit(".", 1)[-1]
    lines = text.split("\n")
    i = stmt.span.line - 1
    line = lines[i]
    written = stmt.kwargs + stmt.after_kwargs  # a group's keys are after its '}'
    target = next((kw.value for kw in written if kw.key == attr), None)
    if target is None:
        target = next((kw.value for a in stmt.args + stmt.after if isinstance(a, ast.Call) for kw in a.kwargs
                       if kw.key == attr), None)
    op = REGISTRY[stmt.word] if stmt.word in REGISTRY else None
    params = _block_params(tree, stmt.word)
    if params is not None and attr not in params:
        _fail(text, filename, item, f"block {stmt.word} has no parameter '{attr}'",
              f"its parameters: {', '.join(params) or 'none'}")
    if target is None and params is not None and attr in params:
        pos = params.index(attr)
        target = stmt.args[pos] if pos < len(stmt.args) else None
    if target is None and op is not None and attr in op.positional:
        values = [a for a in stmt.args if not isinstance(a, (ast.Name, ast.Call))]
        pos = list(op.positional).index(attr)
        target = values[pos] if pos < len(values) else None
    if target is not None:
        i = target.span.line - 1
        line, start = lines[i], target.span.col - 1
        lines[i] = line[:start] + value + line[value_end(line, start):]
    else:
        if stmt.body is not None:  # after the group's closing '}' (and what follows it on that line)
            i, col = _closing_brace(lines, stmt.span.line - 1, stmt.span.col - 1)
            line = lines[i]
            end = value_end_of_statement(line, col + 1)
        else:
            end = value_end_of_statement(line, stmt.span.col - 1)
        rest = line[end:]
        lines[i] = line[:end].rstrip() + f" {attr}={value}" + (" " if rest.startswith("#") else "") + rest
    return "\n".join(lines)


def _block_uses(graph) -> dict:
    """{use name (basic3, outer1.inner2): the layer of the line that uses the block}: a use's layer holds
    no node itself; its name is the scope its inner layers' nodes are named under."""
    import re
    out = {}
    layers = graph.layers
    for lay in layers:
        if lay.nodes or lay.group or not lay.inner:
            continue
        first = next((x.nodes[0] for x in layers[lay.index + 1:lay.index + 1 + lay.inner] if x.nodes), None)
        if first is None:
            continue
        comps = first.split(".")
        j = next((j for j in range(min(lay.depth, len(comps)), len(comps))
                  if re.sub(r"\d+$", "", comps[j]) == lay.word), None)
        if j is not None:
            out[".".join(comps[:j + 1])] = lay
    return out


def _block_params(tree, word: str) -> list[str] | None:
    """The parameter names of block `word` as defined in the spec, or None when `word` is no block."""
    for b in tree.stmts:
        if b.word == "block" and b.args:
            head = b.args[0]
            name = head.value if isinstance(head, ast.Name) else getattr(head, "name", None)
            if name == word:
                if not isinstance(head, ast.Call):
                    return []
                return [a.value for a in head.args if isinstance(a, ast.Name)] + [kw.key for kw in head.kwargs]
    return None


def _closing_brace(lines: list[str], line0: int, col0: int) -> tuple[int, int]:
    """(line, column) of the '}' that closes the first '{' at or after (line0, col0), skipping comments and strings."""
    depth = 0
    for i in range(line0, len(lines)):
        line = lines[i]
        j = col0 if i == line0 else 0
        quote = None
        while j < len(line):
            c = line[j]
            if quote:
                quote = None if c == quote else quote
            elif c in "\"'":
                quote = c
            elif c == "#":
                break
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return i, j
            j += 1
    return line0, len(lines[line0])


def value_end_of_statement(line: str, col0: int) -> int:
    """Where a statement starting at col0 ends on its line: a comment, ';' or '}' outside parentheses."""
    depth = 0
    for i in range(col0, len(line)):
        c = line[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif depth == 0 and c in "#;}":
            return i
    return len(line)


def _source_order(body):
    """The model block's statements as written (a repeat's body once, and the lines inside groups)."""
    for item in body:
        if isinstance(item, ast.Repeat):
            yield from _source_order(item.body)
        elif item.body is not None:
            yield item
            yield from _source_order(item.body)
        else:
            yield item


def _model_override(text: str, filename: str, item: str, key: str, value: str) -> str:
    from dlc.grammar import parse
    from .ops import REGISTRY

    def fail(message, hint=None) -> NoReturn:
        _fail(text, filename, item, message, hint)

    if key not in MODEL_KEYS:
        fail(f"unknown model key '{key}'", "one of: " + ", ".join(f"model.{k}" for k in MODEL_KEYS))
    tree = parse(text, filename)
    if not tree.models:
        fail("the spec has no model block")
    stmts = list(_source_order(tree.models[0].body))
    weight_line = lambda w: w in REGISTRY and REGISTRY[w].weight_layer  # noqa: E731
    last_linear = max((i for i, s in enumerate(stmts) if weight_line(s.word)), default=len(stmts))
    is_act = lambda w: w in REGISTRY and REGISTRY[w].kind == "activation"  # noqa: E731
    points = []  # (line, col) where a value to replace starts
    lines = text.split("\n")
    # the lines of the blocks the spec defines: a block's lines are the model's where it is used
    blocks = [b for b in _source_order([d for d in tree.stmts if d.word == "block" and d.body is not None])
              if b.word != "block"]
    if key == "activation":
        if not is_act(value):
            fail(f"'{value}' is not an activation", "one of: " + ", ".join(REGISTRY.names("activation")))
        for s in stmts[:last_linear] + blocks:
            if is_act(s.word):
                points.append((s.span.line, s.span.col))
            elif weight_line(s.word):
                points += [(a.span.line, a.span.col) for a in s.args if isinstance(a, ast.Name) and is_act(a.value)]
            if s.body is not None:  # residual { ... } relu: the activation after the group's '}'
                points += [(a.span.line, a.span.col) for a in s.after if isinstance(a, ast.Name) and is_act(a.value)]
        if not points:
            fail("the model has no hidden activation to replace")
    elif key == "init":
        for s in stmts + blocks:
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
        for i, s in enumerate(stmts + blocks):
            if s.word == "dropout" and s.args:
                points.append((s.args[0].span.line, s.args[0].span.col))
            elif s.word != "input" and i != last_linear:
                points += [(kw.value.span.line, kw.value.span.col) for kw in s.kwargs + s.after_kwargs
                           if kw.key == "dropout"]
        if not points:
            fail("the model has no dropout to vary", "write dropout= on the layers that should have it")
    for line_no, col in sorted(points, reverse=True):
        i, start = line_no - 1, col - 1
        lines[i] = lines[i][:start] + value + lines[i][value_end(lines[i], start):]
    return "\n".join(lines)
