"""The shape pass: planned nodes (the graph pass's output, compiler/build.py) -> the IR. Every node's
shape is inferred from its inputs' shapes, its parameters are laid out with their inits (auto: by the
activation the layer feeds), a layer that feeds batchnorm alone loses its bias, a projection shortcut
becomes the 1x1 conv (or dense) that maps the residual's input to its body's output shape, and every
node is named. After a shape error the shapes below it are unknown and not checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .attrs import resolve
from .diagnostics import Span
from .expand import ScopedDiagnostics, Use
from .inits import AUTO_BY_FAMILY, InitSpec, fixed
from .ir import INPUT, Buffer, Graph, Layer, Node, Param
from .ops import REGISTRY, ShapeError, fmt_shape
from .ops.windows import out_size

PROJECT = "project"  # residual project { ... }: the shortcut projects the input to the body's shape


@dataclass
class PlannedNode:
    op: str | None  # None: a projection shortcut; the shape pass makes it a conv or a dense
    attrs: dict[str, Any]
    span: Span
    layer: int
    inputs: tuple[int, ...] = (-1,)  # plan indices; -1 is the model's input
    scope: tuple[str, ...] = ()
    uses: tuple[Use, ...] = ()
    init: InitSpec | None = None  # explicit init for the weights
    default_init: InitSpec | None = None  # the `init NAME` in force on this line
    reg: dict[str, float | None] = field(default_factory=dict)
    bias_explicit: bool = False
    frozen: bool = False  # planned on a line (or inside a group or block use) marked `frozen`
    match: int | None = None  # a projection: the node whose shape it must give
    paths: tuple[str, ...] = ()  # a merge: what each input is, for messages ("the body", "branch2")


def _consumers(plan: list[PlannedNode]) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in plan]
    for j, pn in enumerate(plan):
        for i in pn.inputs:
            if i >= 0:
                out[i].append(j)
    return out


def _feeds_batchnorm_alone(plan: list[PlannedNode], consumers: list[list[int]], index: int) -> bool:
    """Does the layer's output reach a normalizing op (batchnorm), and nothing else, through identities (`linear`) only?
    Then batchnorm's beta does its bias's job."""
    j = index
    while len(consumers[j]) == 1:
        j = consumers[j][0]
        name = plan[j].op
        if name is None:  # a projection shortcut: a layer of its own
            return False
        op = REGISTRY[name]
        if op.normalizes:
            return True
        if op.kind != "activation" or op.nonlinear:  # only identities pass it on
            return False
    return False


def _auto_init(plan: list[PlannedNode], consumers: list[list[int]], index: int) -> InitSpec:
    """The init for a weight layer with none given: by the activation that its output meets first
    (through batchnorm, dropout and merges), before another weight layer."""
    j = index
    while consumers[j]:
        j = consumers[j][0]
        name = plan[j].op
        op = REGISTRY[name] if name else None
        if op is None or op.weight_layer:
            break
        if op.kind == "activation" and op.name != "linear":
            return InitSpec(AUTO_BY_FAMILY[getattr(op, "init_family", "xavier")], auto=True)
    return InitSpec("xavier_uniform", auto=True)


def _projection(shape: tuple[int, ...], target: tuple[int, ...]) -> tuple[str, dict[str, Any]]:
    """The op that maps `shape` to `target` for a residual's shortcut: a 1x1 conv with the stride that
    gives the body's height and width (a kernel-1 conv1d for sequences), or a dense for feature vectors."""
    if len(shape) == 1 and len(target) == 1:
        return "dense", dict(REGISTRY["dense"].defaults(), units=target[0])
    if len(shape) == 2 and len(target) == 2:
        stride1 = -(-shape[1] // target[1])
        if out_size(shape[1], 1, stride1, 0, 0) == target[1]:
            return "conv1d", dict(REGISTRY["conv1d"].defaults(), filters=target[0], kernel=1, stride=stride1, pad=0)
    if len(shape) == 3 and len(target) == 3:
        stride = tuple(-(-shape[k] // target[k]) for k in (1, 2))
        if all(out_size(shape[k + 1], 1, stride[k], 0, 0) == target[k + 1] for k in (0, 1)):
            return "conv", dict(REGISTRY["conv"].defaults(), filters=target[0], kernel=(1, 1), stride=stride,
                                pad=(0, 0))
    raise ShapeError(f"no projection maps the input {fmt_shape(shape)} to the body's output {fmt_shape(target)}",
                     "a projection shortcut handles a change of channels or features and a stride; "
                     "keep the body's output of the same kind as its input")


def _describe_projection(shape, target) -> str:
    try:
        op, a = _projection(shape, target)
    except ShapeError:
        return ""
    if op == "dense":
        return f" (dense {a['units']})"
    if op == "conv1d":  # a sequence: a kernel-1 conv1d
        return f" (a kernel-1 conv1d with {a['filters']} filters" + (f" and stride {a['stride']})" if a["stride"] != 1 else ")")
    stride = a["stride"][0] if a["stride"][0] == a["stride"][1] else "x".join(map(str, a["stride"]))
    return f" (a 1x1 conv with {a['filters']} filters and stride {stride})"


def _merge_error(pn: PlannedNode, shapes, e: ShapeError) -> tuple[str, str | None]:
    """A merge's shape error in the words of the spec: the residual's body, the parallel's branches."""
    listed = ", ".join(f"{p} gives {fmt_shape(s)}" for p, s in zip(pn.paths, shapes))
    if pn.paths[1:] == ("the input",):
        body, given = shapes
        message = (f"the residual body changes the shape from {fmt_shape(given)} to {fmt_shape(body)}, "
                   f"so x + body(x) is undefined")
        try:
            _projection(given, body)
        except ShapeError:  # an image to a vector (or back): no shortcut can follow the body
            return message, (f"no projection shortcut maps {fmt_shape(given)} to {fmt_shape(body)}: keep the body's "
                             f"output of the input's kind ({fmt_shape(given)}), and flatten after the residual")
        return message, (f"write 'residual {PROJECT} {{' for a projection shortcut{_describe_projection(given, body)}, "
                         f"or keep the body's output at {fmt_shape(given)}")
    if pn.paths[1:] == ("the shortcut",):
        return f"residual: {listed}", e.hint
    return f"parallel {pn.op}: {listed}; {e}", e.hint or ("every branch must end in the same shape"
                                                          if pn.op == "add" else None)


def infer_shapes(name: str, input_shape: tuple[int, ...], plan: list[PlannedNode], layers: list[Layer],
                 layer_out: dict[int, int], diags: ScopedDiagnostics, variable: bool = False,
                 input_dtype: str = "float32") -> Graph | None:
    """The shape pass: planned nodes -> named IR nodes with shapes, parameters and FLOPs."""
    layers = [Layer(l.index, l.word, l.span, l.text, [], l.depth, l.inner, group=l.group) for l in layers]
    consumers = _consumers(plan)
    counters: dict[tuple, int] = {}
    nodes: list[Node] = []
    shapes: list[tuple[int, ...]] = []
    names: list[str] = []
    for i, pn in enumerate(plan):
        in_shapes = tuple(input_shape if k < 0 else shapes[k] for k in pn.inputs)
        op_name, attrs = pn.op, pn.attrs
        try:
            if op_name is None:
                assert pn.match is not None, "a projection is planned with the node it matches"
                op_name, attrs = _projection(in_shapes[0], shapes[pn.match])
            op = REGISTRY[op_name]
            a = {k: resolve(v) for k, v in attrs.items()}
            if op.weight_layer and not pn.bias_explicit and _feeds_batchnorm_alone(plan, consumers, i):
                a["bias"] = False  # batchnorm's beta does the bias's job
                attrs = dict(attrs, bias=False)
            _check_dtype(op, [input_dtype if k < 0 else "float32" for k in pn.inputs])
            out = op.infer(list(in_shapes) if op.arity is None else in_shapes[0], a)
            if variable and len(in_shapes[0]) == 2:  # every sequence value of the graph is of variable length
                op.check_steps(in_shapes[0], a)
        except ShapeError as e:
            message, hint = (_merge_error(pn, in_shapes, e) if pn.paths else (str(e), e.hint))
            diags.error(message, pn.span, hint, pn.uses)
            return None
        key = (pn.scope, op_name)
        counters[key] = counters.get(key, 0) + 1
        node_name = ".".join(pn.scope + (f"{op_name}{counters[key]}",))
        flops = op.flops(list(in_shapes) if op.arity is None else in_shapes[0], out, a)
        node = Node(node_name, op_name, dict(attrs), in_shapes[0], out, pn.span, pn.layer, flops=flops,
                    inputs=tuple(INPUT if k < 0 else names[k] for k in pn.inputs), in_shapes=in_shapes,
                    frozen=pn.frozen)
        for spec in op.params(in_shapes[0], a):
            if spec.init == "auto":
                init = pn.init or pn.default_init or _auto_init(plan, consumers, i)
            elif pn.init is not None and spec.role == "weight":  # the line's init= sets its weight's (embedding,
                init = pn.init  # lstm: whose own default is fixed)
            else:
                init = fixed(spec.init)
            reg = {k: resolve(v) for k, v in pn.reg.items()} if spec.decay else {}
            node.params[spec.role] = Param(f"{node_name}.{spec.role}", spec.role, spec.shape, init, spec.fan_in,
                                           spec.fan_out, spec.decay, **reg, frozen=pn.frozen)
        for role, (bshape, fill) in op.buffers(in_shapes[0], a).items():
            node.buffers[role] = Buffer(f"{node_name}.{role}", role, bshape, fill)
        layers[pn.layer].nodes.append(node_name)
        nodes.append(node)
        shapes.append(out)
        names.append(node_name)
    for layer in layers:
        k = layer_out.get(layer.index, -1)
        layer.output = names[k] if k >= 0 else INPUT
    return Graph(name, input_shape, nodes, layers, variable, input_dtype)


def _check_dtype(op, dtypes: list[str]) -> None:
    """ShapeError unless the op reads what it is given: token ids (int64) go into an embedding, and only
    there (every op writes float32)."""
    for dtype in dtypes:
        if dtype == op.reads:
            continue
        if dtype == "int64":
            raise ShapeError(f"{op.name} reads numbers, but its input is token ids (input L tokens)",
                             "turn the ids into vectors first: embedding DIM vocab=V, e.g. embedding 64 vocab=20000")
        raise ShapeError(f"{op.name} reads token ids, but its input is {dtype} values",
                         "an embedding reads a text's ids: write the input as input L tokens, e.g. input 64 tokens")
