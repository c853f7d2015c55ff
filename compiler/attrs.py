"""Typed attributes: one schema type used by ops (`kernel=5`) and training statements (`lr=1e-3`).

`coerce` turns an AST value into a Python value or raises a located `DLError`.
Search ranges (`loguniform(1e-5, 1e-1)`, `uniform(a, b)`, `choice(a, b, ...)`) are
kept as `SearchRange` where the attribute allows them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from . import ast
from .diagnostics import DLError, Diagnostic, Span, did_you_mean

REQUIRED = object()
MAX_INT = 2 ** 31 - 1  # no size or count is larger; a seed may go to its own max (2^32 - 1)

RANGE_KINDS = ("loguniform", "uniform", "choice", "randint")


@dataclass(frozen=True)
class SearchRange:
    kind: str
    args: tuple
    span: Span
    text: str

    def nominal(self):
        """A representative value used where a concrete one is needed (shape inference)."""
        if self.kind == "choice":
            return self.args[0]
        lo, hi = self.args
        if self.kind == "loguniform":
            return math.sqrt(lo * hi)
        if self.kind == "randint":
            return int(round((lo + hi) / 2))
        return (lo + hi) / 2

    def sample(self, rng):
        if self.kind == "choice":
            return self.args[int(rng.integers(len(self.args)))]
        lo, hi = self.args
        if self.kind == "loguniform":
            return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        if self.kind == "randint":
            return int(rng.integers(lo, hi + 1))
        return float(rng.uniform(lo, hi))


@dataclass(frozen=True)
class Attr:
    """type: int | float | bool | name | str | dims (int or AxB) | pad (int, AxB or 'same') |
    epochs (whole numbers in increasing order: (30, 60, 90), or one number) |
    class_weight (`balanced`, or one weight per class: (1, 5, 1))."""

    type: str
    default: Any = REQUIRED
    min: float | None = None
    max: float | None = None
    min_open: bool = False  # min is exclusive
    max_open: bool = False
    choices: tuple | None = None
    doc: str = ""
    searchable: bool = True

    def describe_range(self) -> str:
        lo = "" if self.min is None else ("(" if self.min_open else "[") + f"{self.min:g}"
        hi = "" if self.max is None else f"{self.max:g}" + (")" if self.max_open else "]")
        if self.min is not None and self.max is not None:
            return f"in {lo}, {hi}"
        if self.min is not None:
            return f"{'>' if self.min_open else '>='} {self.min:g}"
        if self.max is not None:
            return f"{'<' if self.max_open else '<='} {self.max:g}"
        return ""


def _err(msg: str, span: Span, hint: str | None = None) -> DLError:
    return DLError(Diagnostic("error", msg, span, hint))


def _check_range(key: str, v, attr: Attr, span: Span):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        bad = ((attr.min is not None and (v < attr.min or (attr.min_open and v == attr.min)))
               or (attr.max is not None and (v > attr.max or (attr.max_open and v == attr.max))))
        if bad or (isinstance(v, float) and not math.isfinite(v)):
            raise _err(f"{key}={v:g} is out of range: {key} must be {attr.describe_range()}", span, attr.doc or None)
    return v


def _check_size(key: str, value: ast.Number, attr: Attr, span: Span) -> None:
    limit = max(attr.max if attr.max is not None else MAX_INT, MAX_INT)
    if abs(value.value) > limit:
        raise _err(f"{key}={value.text} is too large: at most {int(limit):,}", span, attr.doc or None)


def _coerce_scalar(key: str, value: ast.Value, attr: Attr):
    t = attr.type
    span = value.span
    if t in ("int", "float"):
        if not isinstance(value, ast.Number):
            raise _err(f"{key} expects a number, got '{ast.value_text(value)}'", span, attr.doc or None)
        if "/" in value.text and not math.isfinite(value.value):
            raise _err(f"{key}={value.text} divides by zero", span, "write the ratio with a divisor other than 0")
        if t == "int":
            if not float(value.value).is_integer():
                raise _err(f"{key} expects a whole number, got {value.text}", span)
            _check_size(key, value, attr, span)
            return _check_range(key, int(value.value), attr, span)
        return _check_range(key, float(value.value), attr, span)
    if t == "bool":
        if isinstance(value, ast.Name) and value.value in ("true", "false", "yes", "no", "on", "off"):
            return value.value in ("true", "yes", "on")
        if isinstance(value, ast.Number) and value.value in (0, 1):
            return bool(value.value)
        raise _err(f"{key} expects true or false, got '{ast.value_text(value)}'", span)
    if t == "name":
        if not isinstance(value, ast.Name):
            raise _err(f"{key} expects a name, got '{ast.value_text(value)}'", span)
        if attr.choices and value.value not in attr.choices:
            raise _err(f"unknown {key} '{value.value}'", span, did_you_mean(value.value, attr.choices))
        return value.value
    if t == "str":
        if isinstance(value, (ast.String, ast.Name)):
            return value.value
        if isinstance(value, ast.Number):
            return value.text
        raise _err(f"{key} expects a name or a quoted string", span)
    if t == "shape":
        if isinstance(value, ast.Dims) and len(value.value) in (1, 3) and 1 <= min(value.value) <= max(value.value) <= MAX_INT:
            return tuple(value.value)
        if isinstance(value, ast.Number) and value.is_int and value.value >= 1:
            return (int(value.value),)
        raise _err(f"{key} expects a sample shape: N features or CxHxW, got '{ast.value_text(value)}'", span,
                   "e.g. reshape=1x28x28")
    if t == "pad1d":
        if isinstance(value, ast.Name):
            if value.value in ("same", "valid", "causal"):
                return value.value
            raise _err(f"{key} expects a number, 'same', 'valid' or 'causal', got '{value.value}'", span,
                       did_you_mean(value.value, ["same", "valid", "causal"]))
        if isinstance(value, ast.Number) and float(value.value).is_integer():
            _check_size(key, value, attr, span)
            return _check_range(key, int(value.value), attr, span)
        raise _err(f"{key} expects a whole number, 'same', 'valid' or 'causal', got '{ast.value_text(value)}'", span)
    if t in ("dims", "pad"):
        if t == "pad" and isinstance(value, ast.Name):
            if value.value in ("same", "valid"):
                return value.value
            raise _err(f"{key} expects a number, HxW or 'same', got '{value.value}'", span,
                       did_you_mean(value.value, ["same", "valid"]))
        if isinstance(value, ast.Number) and float(value.value).is_integer():
            _check_size(key, value, attr, span)
            v = int(value.value)
            _check_range(key, v, attr, span)
            return (v, v)
        if isinstance(value, ast.Dims) and len(value.value) == 2:
            for v in value.value:
                if v > MAX_INT:
                    raise _err(f"{key}={value.text if hasattr(value, 'text') else ast.value_text(value)} is too "
                               f"large: at most {MAX_INT:,} each", span)
                _check_range(key, v, attr, span)
            return tuple(value.value)
        raise _err(f"{key} expects a whole number or HxW, got '{ast.value_text(value)}'", span)
    if isinstance(value, ast.Tuple) and value.kwargs and t != "class_weight":
        raise _err(f"{key} takes values, not name=value", value.kwargs[0].span)
    if t == "epochs":
        items = value.values if isinstance(value, ast.Tuple) else [value]
        out = []
        for item in items:
            if not isinstance(item, ast.Number) or not float(item.value).is_integer():
                raise _err(f"{key} expects whole numbers, e.g. {key}=(30, 60), got '{ast.value_text(item)}'",
                           item.span, attr.doc or None)
            _check_size(key, item, attr, item.span)
            out.append(_check_range(key, int(item.value), attr, item.span))
        if any(b <= a for a, b in zip(out, out[1:])):
            raise _err(f"{key}={ast.value_text(value)} must be in increasing order", span)
        return tuple(out)
    if t == "class_weight":
        if isinstance(value, ast.Name) and value.value == "balanced":
            return "balanced"
        if not isinstance(value, ast.Tuple):
            raise _err(f"{key} expects balanced or one weight per class, e.g. {key}=(1, 5, 1) or "
                       f"{key}=(cat=2), got '{ast.value_text(value)}'", span, attr.doc or None)
        if value.values and value.kwargs:
            raise _err(f"{key}: give every class's weight in order, or some classes' by name, not both", span)

        def weight(item):
            if not isinstance(item, ast.Number) or not math.isfinite(item.value) or item.value < 0:
                raise _err(f"{key}: a class weight is a number >= 0, got '{ast.value_text(item)}'", item.span)
            return float(item.value)

        if value.kwargs:  # by class name (the others weigh 1): resolved against the data's classes
            named = {}
            for kw in value.kwargs:
                if kw.key in named:
                    raise _err(f"{key}: class '{kw.key}' is given twice", kw.span)
                named[kw.key] = weight(kw.value)
            return tuple(sorted(named.items()))
        out = [weight(item) for item in value.values]
        if not any(out):
            raise _err(f"{key}={ast.value_text(value)} weighs every class 0: nothing would train", span)
        return tuple(out)
    if isinstance(value, ast.Tuple):
        raise _err(f"{key} takes one value, got {ast.value_text(value)}", span)
    raise AssertionError(f"unknown attr type {t}")


def coerce(key: str, value: ast.Value, attr: Attr):
    """AST value -> Python value for `attr`, or a `SearchRange`."""
    if isinstance(value, ast.Call) and value.name in RANGE_KINDS:
        if not attr.searchable:
            raise _err(f"{key} cannot be a search range", value.span)
        if value.kwargs:
            raise _err(f"{value.name}(...) takes values, not key=value", value.kwargs[0].span,
                       "e.g. lr=loguniform(1e-4, 1e-1) or dropout=choice(0.2, 0.5)")
        args = tuple(_coerce_scalar(key, a, attr) for a in value.args)
        if value.name == "choice":
            if not args:
                raise _err("choice(...) needs at least one value", value.span)
        else:
            if len(args) != 2:
                raise _err(f"{value.name}(low, high) takes two values, got {len(args)}", value.span)
            if attr.type not in ("int", "float"):
                raise _err(f"{value.name}(...) needs a numeric attribute; {key} is {attr.type}", value.span,
                           "use choice(...) instead")
            lo, hi = args
            if not lo < hi:
                raise _err(f"{value.name}({lo:g}, {hi:g}): the low end must be below the high end", value.span)
            if value.name == "loguniform" and lo <= 0:
                raise _err("loguniform needs positive bounds", value.span)
        kind = value.name
        if kind == "uniform" and attr.type == "int":
            kind = "randint"
        return SearchRange(kind, args, value.span, ast.value_text(value))
    if isinstance(value, ast.Call):
        raise _err(f"unknown function '{value.name}' for {key}", value.span, did_you_mean(value.name, RANGE_KINDS))
    return _coerce_scalar(key, value, attr)


def resolve(v):
    """The concrete value of an attribute (a range's nominal value)."""
    return v.nominal() if isinstance(v, SearchRange) else v
