"""The spec as written: statements and values with their source spans.

The parser produces this tree; the compiler reads it. Nothing here knows what
`dense` or `adam` mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from .diagnostics import Span


@dataclass
class Number:
    value: float
    text: str
    span: Span

    @property
    def is_int(self) -> bool:
        return float(self.value).is_integer() and not any(c in self.text for c in ".eE")


@dataclass
class Dims:
    value: tuple[int, ...]
    span: Span


@dataclass
class Name:
    value: str
    span: Span


@dataclass
class String:
    value: str
    span: Span


@dataclass
class Call:
    name: str
    args: list["Value"]
    span: Span
    kwargs: list["KwArg"] = field(default_factory=list)  # normal(std=0.01)


@dataclass
class Tuple:
    """(30, 60, 90): several values for one key (schedule multistep milestones=...); (cat=2, dog=1):
    values by name (loss ... class_weight=)."""

    values: list["Value"]
    span: Span
    kwargs: list["KwArg"] = field(default_factory=list)


Value = Union[Number, Dims, Name, String, Call, Tuple]


@dataclass
class KwArg:
    key: str
    value: Value
    span: Span  # the key


@dataclass
class Stmt:
    word: str
    span: Span  # the leading word
    args: list[Value] = field(default_factory=list)
    kwargs: list[KwArg] = field(default_factory=list)
    line_span: Span | None = None
    # A statement that opens a braced body (`residual { ... } relu`): the body's statements,
    # and the values and keys written after its closing brace. None: the statement has no body.
    body: list[Union["Stmt", "Repeat"]] | None = None
    after: list[Value] = field(default_factory=list)
    after_kwargs: list[KwArg] = field(default_factory=list)


@dataclass
class Repeat:
    count: int
    body: list[Union[Stmt, "Repeat"]]
    span: Span


@dataclass
class ModelBlock:
    name: str
    body: list[Union[Stmt, Repeat]]
    span: Span


@dataclass
class SpecAST:
    models: list[ModelBlock]
    stmts: list[Stmt]  # training statements outside the model block


def value_text(v: Value) -> str:
    """The value as it would be written in a spec."""
    if isinstance(v, Number):
        return v.text
    if isinstance(v, Dims):
        return "x".join(str(d) for d in v.value)
    if isinstance(v, Name):
        return v.value
    if isinstance(v, String):
        return f'"{v.value}"'
    if isinstance(v, Tuple):
        return "(" + ", ".join([value_text(a) for a in v.values] + [f"{k.key}={value_text(k.value)}" for k in v.kwargs]) + ")"
    parts = [value_text(a) for a in v.args] + [f"{k.key}={value_text(k.value)}" for k in v.kwargs]
    return f"{v.name}(" + ", ".join(parts) + ")"
