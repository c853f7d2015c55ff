"""The typed IR: a chain of nodes, each an op with attributes, shapes and parameters.

Names: node `{op}{k}` (dense1, batchnorm2 ...), counted per op in spec order;
parameter `{node}.{role}`: dense1.weight (in, out), dense1.bias, conv1.weight (O, C, kh, kw),
batchnorm1.gamma / .beta / .running_mean / .running_var, prelu1.slope.
These are the keys of weights.npz and the ONNX initializer names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .diagnostics import Span
from .inits import InitSpec


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

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass
class Buffer:
    name: str
    role: str
    shape: tuple[int, ...]
    fill: float


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


@dataclass
class Layer:
    """A line of the model block as written, and the nodes it lowered to."""

    index: int
    word: str
    span: Span
    text: str
    nodes: list[str] = field(default_factory=list)


@dataclass
class Graph:
    name: str
    input_shape: tuple[int, ...]
    nodes: list[Node]
    layers: list[Layer]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.nodes[-1].out_shape if self.nodes else self.input_shape

    def params(self) -> list[Param]:
        return [p for n in self.nodes for p in n.params.values()]

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
        for n in reversed(self.nodes):
            if n.op in ("dropout", "linear"):
                continue
            from .ops import REGISTRY
            return n.op if REGISTRY[n.op].kind == "activation" else None
        return None
