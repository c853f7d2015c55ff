"""A picture of the network, drawn from the IR with dlc's own names: one box per line of the model
block (its text, output shape and parameter count), residual and parallel paths as the branching they
are, block uses and groups as labelled clusters; `depth` collapses the clusters nested deeper than it
into one box each. Three renderings: Graphviz DOT, Mermaid, and SVG laid out here (no Graphviz needed:
lines top to bottom in the order they are written, clusters as nested frames, an edge that skips lines
-- a residual shortcut, a branch joining its merge -- as a curve at the side).

    dlc check SPEC --graph net.svg|net.dot|net.mmd [--graph-depth N]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from .ir import INPUT, Graph
from .ops.base import fmt_shape

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
    items: list = field(default_factory=list)  # Box ids (str) and Clusters, in order


@dataclass
class Picture:
    name: str
    boxes: dict[str, Box]
    root: Cluster
    edges: list[tuple[str, str]]


def picture(graph: Graph, depth: int | None = None) -> Picture:
    layers = graph.layers
    owner = {}  # layer index -> the layer index whose box it is drawn in (a collapsed cluster's)
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
    for layer in layers:
        i = layer.index
        if owner[i] != i or (layer.inner and i not in collapsed and not layer.nodes) or \
                (not layer.nodes and layer.word != "input" and i not in collapsed):
            continue
        members = [k for k, o in owner.items() if o == i]
        params = sum(p.size for k in members for name in layers[k].nodes for p in nodes[name].params.values())
        out = graph.input_shape if layer.output in ("", INPUT) else nodes[layer.output].out_shape
        boxes[f"L{i}"] = Box(f"L{i}", layer.text, fmt_shape(out), params)

    def box_of(layer_index: int) -> str | None:
        return f"L{owner[layer_index]}" if f"L{owner[layer_index]}" in boxes else None

    edges: list[tuple[str, str]] = []
    for n in graph.nodes:
        target = box_of(node_layer[n.name])
        for i in n.inputs:
            source = box_of(0) if i == INPUT else box_of(node_layer[i])
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
            cluster = Cluster(f"C{i}", layer.text)
            stack[-1][0].items.append(cluster)
            stack.append((cluster, i + layer.inner))
            if f"L{i}" in boxes:  # a residual's or parallel's own nodes: its merge, drawn last in its frame
                cluster.items.append(("last", f"L{i}"))
            continue
        if f"L{i}" in boxes:
            stack[-1][0].items.append(f"L{i}")
    _place_merges(root)
    return Picture(graph.name, boxes, root, edges)


def _place_merges(cluster: Cluster) -> None:
    """A group's merge box goes after the lines inside it."""
    last = [item for item in cluster.items if isinstance(item, tuple)]
    cluster.items = [item for item in cluster.items if not isinstance(item, tuple)] + [b for _, b in last]
    for item in cluster.items:
        if isinstance(item, Cluster):
            _place_merges(item)


# ---- renderings ----------------------------------------------------------------------------------
def _dot_text(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def _nested(p: Picture, cluster: Cluster, indent: str, opening, closing: str, box):
    """The lines of a cluster's items in order: a cluster's opening lines, its items one level in, its
    closing line; a box's line. DOT and Mermaid differ only in these three pieces."""
    for item in cluster.items:
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


ROW, BOX_H, INDENT, CHAR, PAD = 46, 34, 18, 6.6, 10


def to_svg(p: Picture) -> str:
    """Boxes top to bottom; clusters as dashed frames with their label; consecutive boxes joined by a
    straight arrow, others by a curve on the right whose bulge grows with the distance."""
    rows: list[tuple] = []  # ("box", id, level) | ("label", cluster, level)
    spans = []  # (cluster, level, first row, last row)

    def walk(cluster: Cluster, level: int):
        for item in cluster.items:
            if isinstance(item, Cluster):
                start = len(rows)
                rows.append(("label", item, level + 1))
                walk(item, level + 1)
                spans.append((item, level + 1, start, len(rows) - 1))
            else:
                rows.append(("box", item, level))

    walk(p.root, 0)
    width_of = {b.id: max(len(b.text), len(b.detail)) * CHAR + 2 * PAD for b in p.boxes.values()}
    pos = {}
    for r, (kind, item, level) in enumerate(rows):
        if kind == "box":
            pos[item] = (20 + level * INDENT, 20 + r * ROW)
    right = max((x + width_of[b] for b, (x, _) in pos.items()), default=200)
    order = {b: k for k, b in enumerate(sorted(pos, key=lambda b: pos[b][1]))}
    far = {}  # how many boxes an edge skips (cluster labels between do not count)
    for a, b in p.edges:
        if a in pos and b in pos:
            far[(a, b)] = abs(order[b] - order[a])
    width = right + 40 + 12 * max(far.values(), default=1)
    height = 20 + len(rows) * ROW + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{int(width)}" height="{height}" '
           f'viewBox="0 0 {int(width)} {height}" font-family="Helvetica, Arial, sans-serif">',
           f"<title>{escape(p.name)}</title>",
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>']
    for cluster, level, first, last in sorted(spans, key=lambda s: s[1]):
        x = 20 + (level - 1) * INDENT - 6
        y = 20 + first * ROW - 6
        h = (last - first + 1) * ROW + 2
        w = right - x + 14 - (level - 1) * 4
        out.append(f'<g class="cluster" id="{cluster.id}"><rect x="{x}" y="{y}" width="{w:.0f}" height="{h}" '
                   f'rx="6" fill="none" stroke="#8aa" stroke-dasharray="4 3"/>'
                   f'<text x="{x + 8}" y="{y + 20}" font-size="11" fill="#476">{escape(cluster.label)}</text></g>')
    for a, b in p.edges:
        if a not in pos or b not in pos:
            continue
        (xa, ya), (xb, yb) = pos[a], pos[b]
        if far[(a, b)] == 1 and yb > ya:  # the next line: down, into the box where it is indented
            out.append(f'<line x1="{xa + 20}" y1="{ya + BOX_H}" x2="{xb + 20}" y2="{yb}" stroke="#555" '
                       f'marker-end="url(#arrow)"/>')
        else:  # a skip: out of a's right side, round the lines between, into b's right side
            x1, x2 = xa + width_of[a], xb + width_of[b]
            bulge = max(x1, x2) + 16 + 12 * far[(a, b)]
            out.append(f'<path d="M {x1:.0f} {ya + BOX_H / 2:.0f} C {bulge:.0f} {ya + BOX_H / 2:.0f}, {bulge:.0f} '
                       f'{yb + BOX_H / 2:.0f}, {x2:.0f} {yb + BOX_H / 2:.0f}" fill="none" stroke="#555" '
                       f'marker-end="url(#arrow)"/>')
    for b, (x, y) in pos.items():
        box = p.boxes[b]
        out.append(f'<g class="line" id="{b}"><rect x="{x}" y="{y}" width="{width_of[b]:.0f}" height="{BOX_H}" '
                   f'rx="5" fill="#f4f7fb" stroke="#345"/>'
                   f'<text x="{x + PAD}" y="{y + 14}" font-size="11" fill="#123">{escape(box.text)}</text>'
                   f'<text x="{x + PAD}" y="{y + 28}" font-size="10" fill="#567">{escape(box.detail)}</text></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def render(graph: Graph, suffix: str, depth: int | None = None) -> str:
    p = picture(graph, depth)
    return {".svg": to_svg, ".dot": to_dot, ".mmd": to_mermaid}[suffix](p)
