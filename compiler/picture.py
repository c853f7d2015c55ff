"""A picture of the network, drawn from the IR with dlc's own names: one box per line of the model
block (its text, output shape and parameter count), residual and parallel paths as the branching they
are, block uses and groups as labelled clusters; `depth` collapses the clusters nested deeper than it
into one box each. Three renderings: Graphviz DOT, Mermaid, and SVG laid out here (no Graphviz needed:
lines top to bottom in the order they are written, clusters as nested frames, a parallel's branches
side by side, a residual's projection shortcut beside its body, and an edge that would cross boxes --
an identity shortcut -- as a curve round their right side).

    dlc check SPEC --graph net.svg|net.dot|net.mmd [--graph-depth N]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from .ir import INPUT, Graph
from .ops.base import fmt_shape, fmt_value

FORMATS = (".svg", ".dot", ".mmd")


@dataclass
class Box:
    id: str
    text: str  # the line as written
    shape: str
    params: int

    @property
    def detail(self) -> str:
        return self.shape + (f" · {self.params:,} params" if self.params else "")


@dataclass
class Cluster:
    id: str
    label: str
    items: list = field(default_factory=list)  # Box ids (str), Clusters and Rows, in order
    word: str = ""  # the line's first word: residual, parallel, branch, a block's name


@dataclass
class Row:
    """Columns drawn side by side (a parallel's branches; a residual's body and its projection)."""

    columns: list[list]  # each a list of items, as a Cluster's


@dataclass
class Picture:
    name: str
    boxes: dict[str, Box]
    root: Cluster
    edges: list[tuple[str, str]]


def picture(graph: Graph, depth: int | None = None) -> Picture:
    layers = graph.layers
    owner: dict[int, int] = {}  # layer index -> the layer index whose box it is drawn in (a collapsed cluster's)
    for layer in layers:
        owner.setdefault(layer.index, layer.index)
        if layer.inner and depth is not None and layer.depth >= depth and owner[layer.index] == layer.index:
            for k in range(layer.index + 1, layer.index + layer.inner + 1):
                owner[k] = layer.index
    node_layer = {name: layer.index for layer in layers for name in layer.nodes}
    nodes = {n.name: n for n in graph.nodes}
    collapsed = {i for i, o in owner.items() if o == i and layers[i].inner and depth is not None
                 and layers[i].depth >= depth}

    boxes: dict[str, Box] = {}
    shortcut_box: dict[str, str] = {}  # a drawn residual's projection nodes -> their own box
    for layer in layers:
        i = layer.index
        if owner[i] != i or (layer.inner and i not in collapsed and not layer.nodes) or \
                (not layer.nodes and layer.word != "input" and i not in collapsed):
            continue
        members = [k for k, o in owner.items() if o == i]
        own = [name for k in members for name in layers[k].nodes]
        if layer.inner and i not in collapsed and layer.group:
            short = [name for name in own if name.startswith(layer.group + ".shortcut.")]
            if short:
                ops = ", ".join(nodes[name].op for name in short)
                boxes[f"L{i}s"] = Box(f"L{i}s", f"shortcut: {ops}", fmt_shape(nodes[short[-1]].out_shape),
                                      sum(p.size for name in short for p in nodes[name].params.values()))
                shortcut_box.update((name, f"L{i}s") for name in short)
                own = [name for name in own if name not in shortcut_box]
        params = sum(p.size for name in own for p in nodes[name].params.values())
        leaving = (graph.input_shape, graph.input_dtype) if layer.output in ("", INPUT) else \
            (nodes[layer.output].out_shape, nodes[layer.output].dtype)
        boxes[f"L{i}"] = Box(f"L{i}", layer.text, fmt_value(*leaving), params)

    def box_of(layer_index: int) -> str | None:
        return f"L{owner[layer_index]}" if f"L{owner[layer_index]}" in boxes else None

    def box_of_node(name: str) -> str | None:
        return box_of(0) if name == INPUT else shortcut_box.get(name) or box_of(node_layer[name])

    edges: list[tuple[str, str]] = []
    for n in graph.nodes:
        target = box_of_node(n.name)
        for read in n.inputs:
            source = box_of_node(read)
            if source and target and source != target and (source, target) not in edges:
                edges.append((source, target))

    root = Cluster("root", graph.name)
    stack = [(root, len(layers))]  # clusters open, and the last layer index each holds
    for layer in layers:
        while layer.index > stack[-1][1]:
            stack.pop()
        i = layer.index
        if owner[i] != i:
            continue
        if layer.inner and i not in collapsed:
            cluster = Cluster(f"C{i}", layer.text, word=layer.word)
            stack[-1][0].items.append(cluster)
            stack.append((cluster, i + layer.inner))
            if f"L{i}s" in boxes:
                cluster.items.append(("beside", f"L{i}s"))
            if f"L{i}" in boxes:  # a residual's or parallel's own nodes: its merge, drawn last in its frame
                cluster.items.append(("last", f"L{i}"))
            continue
        if f"L{i}" in boxes:
            stack[-1][0].items.append(f"L{i}")
    _arrange(root)
    return Picture(graph.name, boxes, root, edges)


def _arrange(cluster: Cluster) -> None:
    """A group's merge box goes after the lines inside it; a parallel's branches stand side by side in
    a Row, and a residual's projection shortcut in a column beside its body."""
    beside = [b for tag, b in (item for item in cluster.items if isinstance(item, tuple)) if tag == "beside"]
    last = [b for tag, b in (item for item in cluster.items if isinstance(item, tuple)) if tag == "last"]
    inner = [item for item in cluster.items if not isinstance(item, tuple)]
    for item in inner:
        if isinstance(item, Cluster):
            _arrange(item)
    if beside:
        inner = [Row([inner, beside])]
    elif cluster.word == "parallel" and len(inner) > 1:
        inner = [Row([[item] for item in inner])]
    cluster.items = inner + last


def _items(items: list):
    """The items of a cluster in order, a Row's columns one after another (DOT and Mermaid draw no rows)."""
    for item in items:
        if isinstance(item, Row):
            for column in item.columns:
                yield from _items(column)
        else:
            yield item


# ---- renderings ----------------------------------------------------------------------------------
def _dot_text(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def _nested(p: Picture, cluster: Cluster, indent: str, opening, closing: str, box):
    """The lines of a cluster's items in order: a cluster's opening lines, its items one level in, its
    closing line; a box's line. DOT and Mermaid differ only in these three pieces."""
    for item in _items(cluster.items):
        if isinstance(item, Cluster):
            yield from (indent + line for line in opening(item))
            yield from _nested(p, item, indent + "  ", opening, closing, box)
            yield indent + closing
        else:
            yield indent + box(p.boxes[item])


def to_dot(p: Picture) -> str:
    out = [f'digraph "{_dot_text(p.name)}" {{', "  rankdir=TB;",
           '  node [shape=box, style=rounded, fontname="Helvetica", fontsize=10];',
           '  edge [fontname="Helvetica", fontsize=9];']
    out += _nested(p, p.root, "  ",
                   lambda c: [f"subgraph cluster_{c.id} {{", f'  label="{_dot_text(c.label)}"; style=dashed;'], "}",
                   lambda b: f'{b.id} [label="{_dot_text(b.text)}\\n{_dot_text(b.detail)}"];')
    out += [f"  {a} -> {b};" for a, b in p.edges]
    out.append("}")
    return "\n".join(out) + "\n"


def _mermaid_text(s: str) -> str:
    return s.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(p: Picture) -> str:
    out = ["flowchart TD"]
    out += _nested(p, p.root, "  ", lambda c: [f'subgraph {c.id} ["{_mermaid_text(c.label)}"]'], "end",
                   lambda b: f'{b.id}["{_mermaid_text(b.text)}<br/>{_mermaid_text(b.detail)}"]')
    out += [f"  {a} --> {b}" for a, b in p.edges]
    return "\n".join(out) + "\n"


BOX_H, GAP, HGAP, CHAR, PAD, LABEL_H, MARGIN = 34, 18, 18, 6.6, 10, 20, 20


def _layout(p: Picture):
    """Sizes bottom-up, then places top-down: a column's items centred in its width, a Row's columns
    left to right, a cluster's items inside its frame under its label. -> box rects, frame rects, size."""
    width_of = {b.id: max(len(b.text), len(b.detail)) * CHAR + 2 * PAD for b in p.boxes.values()}
    size: dict[int, tuple[float, float]] = {}

    def measure(item) -> tuple[float, float]:
        w: float
        h: float
        if isinstance(item, str):
            w, h = width_of[item], BOX_H
        elif isinstance(item, Row):
            cols = [measure_column(c) for c in item.columns]
            w, h = sum(c[0] for c in cols) + HGAP * (len(cols) - 1), max(c[1] for c in cols)
        else:
            w, h = measure_column(item.items)
            w, h = max(w + 2 * PAD, len(item.label) * CHAR + 2 * PAD), h + LABEL_H + 2 * PAD
        size[id(item)] = (w, h)
        return w, h

    def measure_column(items) -> tuple[float, float]:
        sizes = [measure(i) for i in items]
        return max((s[0] for s in sizes), default=0), sum(s[1] for s in sizes) + GAP * max(len(sizes) - 1, 0)

    boxes: dict[str, tuple[float, float, float, float]] = {}
    frames: list[tuple[Cluster, float, float, float, float]] = []

    def place_column(items, x, y, width):
        for item in items:
            w, h = size[id(item)]
            place(item, x + (width - w) / 2, y)
            y += h + GAP

    def place(item, x, y):
        w, h = size[id(item)]
        if isinstance(item, str):
            boxes[item] = (x, y, w, h)
        elif isinstance(item, Row):
            for column in item.columns:
                cw = measure_column(column)[0]
                place_column(column, x, y, cw)
                x += cw + HGAP
        else:
            frames.append((item, x, y, w, h))
            place_column(item.items, x + PAD, y + LABEL_H + PAD, w - 2 * PAD)

    w, h = measure_column(p.root.items)
    place_column(p.root.items, MARGIN, MARGIN, w)
    return boxes, frames, w + 2 * MARGIN, h + 2 * MARGIN


def to_svg(p: Picture) -> str:
    """Boxes in frames as _layout places them. An edge runs from the bottom of one box to the top of
    the next as a gentle curve; one whose straight course would cross another box (an identity
    shortcut past the body) runs round the right of the boxes it passes, further out the more it skips."""
    boxes, frames, width, height = _layout(p)
    routes = []
    side = 0.0
    for a, b in p.edges:
        if a not in boxes or b not in boxes:
            continue
        (xa, ya, wa, ha), (xb, yb, wb, _) = boxes[a], boxes[b]
        x1, y1, x2, y2 = xa + wa / 2, ya + ha, xb + wb / 2, yb
        crossed = [r for k, r in boxes.items() if k not in (a, b) and _crosses(r, x1, y1, x2, y2)]
        if not crossed and y2 > y1:
            dy = (y2 - y1) / 2
            routes.append(f"M {x1:.0f} {y1:.0f} C {x1:.0f} {y1 + dy:.0f}, {x2:.0f} {y2 - dy:.0f}, {x2:.0f} {y2:.0f}")
            continue
        top, bottom = min(ya, yb), max(ya, yb) + BOX_H
        edge = max([xa + wa, xb + wb] + [fx + fw for _, fx, fy, fw, fh in frames
                                          if fy < bottom and fy + fh > top and fx < xa + wa]
                   + [x + w for x, y, w, _ in crossed])
        bulge = edge + 14 + 6 * len(crossed)
        side = max(side, bulge)
        ma, mb = ya + BOX_H / 2, yb + BOX_H / 2
        routes.append(f"M {xa + wa:.0f} {ma:.0f} C {bulge:.0f} {ma:.0f}, {bulge:.0f} {mb:.0f}, {xb + wb:.0f} {mb:.0f}")
    width = max(width, side + MARGIN)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif">',
           f"<title>{escape(p.name)}</title>",
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>']
    for cluster, x, y, w, h in frames:
        out.append(f'<g class="cluster" id="{cluster.id}"><rect x="{x:.0f}" y="{y:.0f}" width="{w:.0f}" '
                   f'height="{h:.0f}" rx="6" fill="none" stroke="#8aa" stroke-dasharray="4 3"/>'
                   f'<text x="{x + 8:.0f}" y="{y + 15:.0f}" font-size="11" fill="#476">{escape(cluster.label)}</text></g>')
    out += [f'<path d="{d}" fill="none" stroke="#555" marker-end="url(#arrow)"/>' for d in routes]
    for b, (x, y, w, h) in boxes.items():
        box = p.boxes[b]
        out.append(f'<g class="line" id="{b}"><rect x="{x:.0f}" y="{y:.0f}" width="{w:.0f}" height="{h:.0f}" '
                   f'rx="5" fill="#f4f7fb" stroke="#345"/>'
                   f'<text x="{x + PAD:.0f}" y="{y + 14:.0f}" font-size="11" fill="#123">{escape(box.text)}</text>'
                   f'<text x="{x + PAD:.0f}" y="{y + 28:.0f}" font-size="10" fill="#567">{escape(box.detail)}</text></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _crosses(rect, x1, y1, x2, y2) -> bool:
    """Does the segment (x1, y1)-(x2, y2) pass through the rectangle (sampled: boxes are large)?"""
    x, y, w, h = rect
    return any(x < x1 + (x2 - x1) * t < x + w and y < y1 + (y2 - y1) * t < y + h
               for t in (k / 32 for k in range(1, 32)))


def render(graph: Graph, suffix: str, depth: int | None = None) -> str:
    p = picture(graph, depth)
    return {".svg": to_svg, ".dot": to_dot, ".mmd": to_mermaid}[suffix](p)
