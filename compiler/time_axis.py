"""The time axis of a variable-length graph (`input CxL variable`): each series has 1 to L steps, and a
batch pads them to L. Every sequence value of the graph has, per series, a number of valid steps -- the
op's own shape rule applied to the series's length (a conv1d with stride 2 halves it) -- and the engines
mask the steps after it (docs/conventions.md). Pure functions of the graph: engines and data checks read them."""

from __future__ import annotations

from .attrs import resolve
from .ir import INPUT, Graph
from .ops import REGISTRY, ShapeError


def step_lengths(graph: Graph) -> dict[str, list[int]]:
    """Each sequence value's valid steps for every input length: table[name][l - 1] for a series of l
    steps (0: too short for that op). The input's table is under INPUT; vectors have none."""
    longest = graph.input_shape[1]
    tables: dict[str, list[int]] = {INPUT: list(range(1, longest + 1))}
    for node in graph.nodes:
        if len(node.out_shape) != 2:
            continue
        op = REGISTRY[node.op]
        a = {k: resolve(v) for k, v in node.attrs.items()}
        ins = [tables.get(i) for i in node.inputs]
        memo: dict[tuple[int, ...], int] = {}
        table = []
        for l in range(longest):
            steps = tuple(t[l] if t is not None else 0 for t in ins)
            if steps not in memo:
                memo[steps] = _out_steps(op, node, a, steps)
            table.append(memo[steps])
        tables[node.name] = table
    return tables


def _out_steps(op, node, a, steps: tuple[int, ...]) -> int:
    if not all(steps):
        return 0
    shapes = [(s[0], l) for s, l in zip(node.in_shapes, steps)]
    try:
        return op.steps_out(shapes if op.arity is None else shapes[0], a)
    except ShapeError:
        return 0


def accepted(graph: Graph) -> list[bool]:
    """For l = 1..L, whether a series of l steps passes through every op (a valid conv1d, a pooling
    window, need a few)."""
    tables = step_lengths(graph)
    return [all(t[l] > 0 for t in tables.values()) for l in range(graph.input_shape[1])]


def shortest(graph: Graph) -> int:
    """The fewest steps a series may have (L + 1: none passes)."""
    ok = accepted(graph)
    return next((l + 1 for l, fine in enumerate(ok) if fine), len(ok) + 1)
