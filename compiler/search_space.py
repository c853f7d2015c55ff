"""The search space of a spec: its ranges (`lr=loguniform(1e-4, 1e-1)` ...), and concrete
specs made from it by writing a value where each range is written.

A range is one dimension per place in the text: a range inside `repeat 4 { … }` takes one
value for all four repetitions. Its key is where it is: `optimizer.lr`, `line4.dropout`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .attrs import SearchRange
from .overrides import value_end


SAMPLERS = ("random", "tpe", "genetic")  # dlc search --sampler: how trials pick values (runtime/tools/study.py)


@dataclass(frozen=True)
class Dimension:
    key: str
    range: SearchRange

    def narrowed(self, center, factor: float = 0.25) -> "Dimension":
        """A finer range around `center`: a quarter of the width (log width for loguniform),
        inside the original bounds. A choice is fixed to `center`."""
        r = self.range
        if r.kind == "choice":
            return Dimension(self.key, SearchRange("choice", (center,), r.span, f"choice({format_value(center)})"))
        lo, hi = r.args
        if r.kind == "loguniform":
            half = factor * (math.log(hi) - math.log(lo)) / 2
            a, b = max(lo, center * math.exp(-half)), min(hi, center * math.exp(half))
        else:
            half = factor * (hi - lo) / 2
            a, b = max(lo, center - half), min(hi, center + half)
            if r.kind == "randint":
                a, b = int(math.floor(a)), int(math.ceil(b))
        return Dimension(self.key, SearchRange(r.kind, (a, b), r.span, f"{r.kind}({format_value(a)}, {format_value(b)})"))


def dimensions(spec) -> list[Dimension]:
    """One dimension per range written in the spec, in source order."""
    seen, dims = set(), []
    for key, r in spec.ranges:
        where = (r.span.line, r.span.col)
        if where not in seen:
            seen.add(where)
            dims.append(Dimension(key, r))
    return sorted(dims, key=lambda d: (d.range.span.line, d.range.span.col))


def format_value(v, exact: bool = False) -> str:
    """A value as written in a spec: 4 significant digits for a table, or (`exact`) the shortest text
    that reads back as the same float, for a spec to train (0.99999 must not become 1)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if exact else f"{v:.4g}"
    return str(v)


def substitute(text: str, values: dict[Dimension, object]) -> str:
    """`text` with each dimension's range replaced by its value (written as in a spec)."""
    lines = text.split("\n")
    for dim in sorted(values, key=lambda d: (d.range.span.line, d.range.span.col), reverse=True):
        i, start = dim.range.span.line - 1, dim.range.span.col - 1
        line = lines[i]
        lines[i] = line[:start] + format_value(values[dim], exact=True) + line[value_end(line, start):]
    return "\n".join(lines)


def nominal_spec(spec):
    """The spec with every range at its middle value (the geometric middle for loguniform)."""
    from .spec import compile

    dims = dimensions(spec)
    text = substitute(spec.source.text, {d: d.range.nominal() for d in dims})
    return compile(text, spec.source.filename)
