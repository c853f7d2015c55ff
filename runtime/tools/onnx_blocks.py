"""`dlc import`'s last step for a foreign graph: groups (residual and parallel lines) that repeat with only
their numbers changed become one `block` used once per repeat, when that makes the spec shorter -- the
way a ResNet is written by hand. The numbers that vary between the uses become the block's parameters,
named by the key they stand for (`stride`) or, for a layer's size, `c` (`c2`, ... when several vary
independently); the numbers every use shares stay written in the block."""

from __future__ import annotations

import re

NUMBER = re.compile(r"(?<![\w.])(\d+)(?![\w.])")  # a whole number standing alone (not in 3x3, not 1e-5)


def _units(lines: list[str]) -> list[list[str]]:
    """The model body's top-level units: a line, or a group from its `{` line to its closing `}` line."""
    units: list[list[str]] = []
    depth = 0
    for line in lines:
        if depth == 0:
            units.append([])
        units[-1].append(line)
        depth += line.count("{") - line.count("}")
    return units


def _template(unit: list[str]) -> tuple[str, list[tuple[str, int]]]:
    """The unit's text with each standalone number replaced by a slot, and (the key before it, its value)."""
    text = "\n".join(unit)
    slots = []

    def slot(m):
        before = text[:m.start()]
        key = re.search(r"(\w+)=$", before)
        slots.append((key.group(1) if key else "c", int(m.group(1))))
        return "{%d}" % (len(slots) - 1)

    return NUMBER.sub(slot, text), slots


def with_blocks(lines: list[str], indent: str = "    ") -> tuple[list[str], list[str]]:
    """(block definitions, the model's lines using them); no blocks when none makes the spec shorter."""
    units = _units(lines)
    found: dict[str, list[int]] = {}
    for k, unit in enumerate(units):
        if len(unit) > 1:
            found.setdefault(_template(unit)[0], []).append(k)
    blocks: list[str] = []
    uses: dict[int, str] = {}
    kinds: dict[str, int] = {}
    for template, where in sorted(found.items(), key=lambda kv: kv[1][0]):
        size = len(units[where[0]])
        if len(where) < 2 or size * len(where) <= size + 2 + len(where):  # a block must save lines
            continue
        values = [[v for _, v in _template(units[k])[1]] for k in where]
        keys = [key for key, _ in _template(units[where[0]])[1]]
        names: dict[tuple[int, ...], str] = {}  # a column of values (across the uses) -> its parameter
        body = template
        params: list[str] = []
        for i, key in enumerate(keys):
            column = tuple(row[i] for row in values)
            if len(set(column)) == 1:
                body = body.replace("{%d}" % i, str(column[0]), 1)
                continue
            if column not in names:
                name = key if key not in params else f"{key}{sum(p.startswith(key) for p in params) + 1}"
                names[column] = name
                params.append(name)
            body = body.replace("{%d}" % i, names[column], 1)
        first = units[where[0]][0].split()[0]  # residual, parallel
        kinds[first] = kinds.get(first, 0) + 1
        name = f"{first}{kinds[first]}"
        width = min(len(line) - len(line.lstrip()) for line in units[where[0]])
        blocks.append(f"block {name}({', '.join(params)}) {{")
        blocks += [indent + line[width:] for line in body.splitlines()]
        blocks.append("}")
        for k, row in zip(where, values):
            args = {names[tuple(r[i] for r in values)]: row[i] for i in range(len(keys))
                    if tuple(r[i] for r in values) in names}
            uses[k] = units[k][0][:width] + name + "".join(f" {p}={args[p]}" for p in params)
    out = []
    for k, unit in enumerate(units):
        out += [uses[k]] if k in uses else unit
    return blocks, out
