"""The TextMate grammar of .dl specs (editors/vscode/syntaxes/dl.tmLanguage.json), made from the
registries so that every layer, activation, statement, optimizer, loss, schedule and init scheme is
highlighted: `python -m dlc.textmate > editors/vscode/syntaxes/dl.tmLanguage.json` after adding one
(tests/editor/test_vscode_extension.py fails until the file matches)."""

from __future__ import annotations

import json


def _words(names) -> str:
    return r"\b(" + "|".join(sorted(set(names), key=lambda n: (-len(n), n))) + r")\b"


NUMBER = r"(?<![\w.])[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?(?:/(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))?(?![\w.])"


def grammar() -> dict:
    """The patterns, in the order that breaks ties (TextMate takes the earliest match on a line, and of
    matches at one place the first pattern): a key before the word it is named like (`init=`), a range
    function before the init of its name (`uniform(`), a block use -- a line's first word that no
    registry knows -- before the rest."""
    from dlc.compiler.attrs import RANGE_KINDS
    from dlc.compiler.build import GROUP_WORDS, IDENTITY, MERGES, PROJECT
    from dlc.compiler.modifiers import FROZEN, TOKENS, VARIABLE
    from dlc.compiler.catalog import BUILTIN_SETS
    from dlc.compiler.inits import INITS
    from dlc.compiler.losses import LOSSES
    from dlc.compiler.ops import REGISTRY
    from dlc.compiler.optimizers import OPTIMIZERS
    from dlc.compiler.schedules import SCHEDULES
    from dlc.compiler.statements import STATEMENTS
    activations = REGISTRY.names("activation")
    layers = [n for n in REGISTRY.names() if n not in activations]
    control = ("repeat", "input", VARIABLE, TOKENS, FROZEN, "from") + tuple(GROUP_WORDS)
    known = set(layers) | set(activations) | set(STATEMENTS) | set(control) | {"block", "model"}
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
        "name": "dl", "scopeName": "source.dl", "fileTypes": ["dl"],
        "patterns": [
            {"name": "comment.line.number-sign.dl", "match": "#.*$"},
            {"name": "string.quoted.double.dl", "match": r'"[^"\n]*"'},
            {"name": "string.quoted.single.dl", "match": r"'[^'\n]*'"},
            {"match": r"\b(block)\s+([A-Za-z_]\w*)",
             "captures": {"1": {"name": "keyword.control.dl"}, "2": {"name": "entity.name.function.dl"}}},
            {"match": r"\b(model)\s+([A-Za-z_]\w*)",
             "captures": {"1": {"name": "keyword.control.dl"}, "2": {"name": "entity.name.type.dl"}}},
            {"match": r"\b([A-Za-z_]\w*)\s*(=)",
             "captures": {"1": {"name": "variable.parameter.dl"}, "2": {"name": "keyword.operator.assignment.dl"}}},
            {"match": r"(?:^|(?<=\{))\s*" + "(?!" + _words(known) + r")([A-Za-z_]\w*)\b",
             "captures": {"2": {"name": "entity.name.function.call.dl"}}},
            {"name": "support.function.range.dl", "match": _words(RANGE_KINDS) + r"(?=\s*\()"},
            {"name": "keyword.control.dl", "match": _words(control)},
            {"name": "keyword.other.statement.dl", "match": _words(STATEMENTS)},
            {"name": "support.function.layer.dl", "match": _words(layers)},
            {"name": "support.function.activation.dl", "match": _words(activations)},
            {"name": "support.constant.dl",
             "match": _words(list(OPTIMIZERS) + list(LOSSES) + list(SCHEDULES) + list(INITS) + list(BUILTIN_SETS)
                             + [IDENTITY, PROJECT, *MERGES])},
            {"name": "constant.numeric.dims.dl", "match": r"\b[0-9]+(x[0-9]+)+\b"},
            {"name": "constant.numeric.dl", "match": NUMBER},
            {"name": "punctuation.section.braces.dl", "match": r"[{}]"},
        ],
    }


def text() -> str:
    return json.dumps(grammar(), indent=2) + "\n"


if __name__ == "__main__":
    print(text(), end="")
