"""The typed IR: a graph of nodes in an order where each node comes after its inputs; each node is
an op with attributes, the names of the nodes it reads (`inputs`; INPUT is the model's input),
shapes and parameters. The last node is the output.

Names: node `{op}{k}` (dense1, batchnorm2 ...), counted per op in spec order within its scope;
nodes inside a residual, parallel, branch or block use are named under it, hierarchically:
`basic2.residual1.conv1`, `parallel1.branch2.conv1`, `residual1.shortcut.conv1`, `residual1.add1`.
Parameter `{node}.{role}`: dense1.weight (in, out), dense1.bias, conv1.weight (O, C, kh, kw),
batchnorm1.gamma / .beta / .running_mean / .running_var, prelu1.slope.
These are the keys of weights.npz and the ONNX initializer names. A chain keeps its flat names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .diagnostics import Span
from .inits import InitSpec


INPUT = "input"  # the name nodes use to read the model's input


@dataclass
class Param:
    name: str
    role: str
    shape: tuple[int, ...]
    init: InitSpec
    fan_in: int = 0
    fan_out: int = 0
    decay: bool = True  # global l1/l2 apply (weights yes; biases, BN and prelu no)
    l1: float | None = None  # per-layer overrides of the global strengths
    l2: float | None = None
    max_norm: float | None = None
    frozen: bool = False  # kept as it starts (the `frozen` word on its line or group): never updated

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass
class Buffer:
    name: str
    role: str
    shape: tuple[int, ...]
    fill: float


# The element types a value may have, and their sizes (memory estimates): every value is float32 today;
# token ids (int64) and masks (bool) are the text ops' inputs
DTYPE_BYTES = {"float32": 4, "int64": 8, "bool": 1}


@dataclass
class Node:
    name: str
    op: str
    attrs: dict[str, Any]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    span: Span
    layer: int  # index into Graph.layers
    params: dict[str, Param] = field(default_factory=dict)
    buffers: dict[str, Buffer] = field(default_factory=dict)
    flops: int = 0
    inputs: tuple[str, ...] = ()  # the nodes it reads; () in a chain built by hand: the node before it
    in_shapes: tuple[tuple[int, ...], ...] = ()  # one per input (in_shape is the first)
    frozen: bool = False  # its parameters are not trained and its batchnorm statistics stay as they are
    dtype: str = "float32"  # its output's element type (DTYPE_BYTES)


@dataclass
class Layer:
    """A line of the model block as written, and the nodes it lowered to."""

    index: int
    word: str
    span: Span
    text: str
    nodes: list[str] = field(default_factory=list)
    depth: int = 0  # how deep inside residual / parallel / branch / block lines it is
    inner: int = 0  # for a line that holds lines: how many layers after it are inside it
    output: str = ""  # the node whose value leaves the line (INPUT: the line passes its input on)
    group: str = ""  # a residual or parallel line: its scope (`residual1`, `basic2.residual1`), its keys' prefix


@dataclass
class Graph:
    name: str
    input_shape: tuple[int, ...]
    nodes: list[Node]
    layers: list[Layer]
    # `input CxL variable`: each series has 1 to L steps, padded to L in a batch; every sequence value
    # of the graph carries a padding mask (docs/conventions.md), compiler/time_axis.py maps the lengths
    variable: bool = False
    input_dtype: str = "float32"  # the input's element type (DTYPE_BYTES)

    def __post_init__(self):
        prev = INPUT
        for n in self.nodes:
            if not n.inputs:
                n.inputs = (prev,)
            if not n.in_shapes:
                n.in_shapes = (n.in_shape,)
            prev = n.name

    @property
    def is_chain(self) -> bool:
        prev = INPUT
        for n in self.nodes:
            if n.inputs != (prev,):
                return False
            prev = n.name
        return True

    def consumers(self) -> dict[str, list[Node]]:
        """Each node's (and INPUT's) readers, in graph order."""
        out: dict[str, list[Node]] = {INPUT: []}
        for n in self.nodes:
            out[n.name] = []
            for i in n.inputs:
                out[i].append(n)
        return out

    def producers(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.nodes[-1].out_shape if self.nodes else self.input_shape

    def params(self) -> list[Param]:
        return [p for n in self.nodes for p in n.params.values()]

    def trained_params(self) -> list[Param]:
        """The parameters training updates: all but the frozen ones."""
        return [p for p in self.params() if not p.frozen]

    def buffers(self) -> list[Buffer]:
        return [b for n in self.nodes for b in n.buffers.values()]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def param_count(self) -> int:
        return sum(p.size for p in self.params())

    @property
    def output_activation(self) -> str | None:
        """The last activation before the output (skipping dropout/linear), if any."""
        from .ops import REGISTRY
        by_name = self.producers()
        n = self.nodes[-1] if self.nodes else None
        while n is not None and (REGISTRY[n.op].kind == "dropout" or
                                 (REGISTRY[n.op].kind == "activation" and not REGISTRY[n.op].nonlinear)):
            n = by_name.get(n.inputs[0])
        return n.op if n is not None and REGISTRY[n.op].kind == "activation" else None
