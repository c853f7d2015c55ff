"""The shape of an op, and the registry.

An op is a class with pure methods and no per-call state on `self`:

- `attrs` / `positional`: the attributes it takes, typed, with defaults and ranges;
- `infer(shape, a)`: the per-sample output shape, or `ShapeError`;
- `params(shape, a)`: parameter specs (shape, fan-in/out, default init, decay);
- `buffers(shape, a)`: non-trained state (batchnorm running statistics);
- (each engine implements it: the NumPy engine's kernel -- runtime/numpy_engine/kernels/, a subclass of
  this declaration -- adds `forward(x, p, a, ctx)` -> (y, cache) and `backward(dy, cache, p, a)` ->
  (dx, {role: grad}) and the layouts they accept; the torch engine lowers it in runtime/torch_engine/ops.py);
- `to_onnx(g, x, p, a, shape)`: emit ONNX nodes through the exporter's builder (input name `x`,
  parameter initializer names `p`, per-sample input `shape`), return the output name;
- `flops(in_shape, out_shape, a)`: multiply-adds x2 per sample, for the summary.

A merge op (ops/merge.py: add, concat) has `arity = None` and takes lists where others take one input.

Shapes exclude the batch dimension: a feature vector is (F,), a sequence (C, L) -- channels x length,
as an image is (C, H, W).
Arrays include it. Every method keeps the dtype of its input (float32 in training,
float64 in gradient checks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from ..attrs import Attr

class ShapeError(Exception):
    """A shape rule failed. `hint` tells the user how to fix the spec."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


@dataclass
class ParamSpec:
    role: str  # weight | bias | gamma | beta | slope
    shape: tuple[int, ...]
    fan_in: int = 0
    fan_out: int = 0
    init: str = "auto"  # "auto" = the layer's weight init; or zeros / ones / constant:V
    decay: bool = True  # does l1/l2 weight decay apply


def fmt_shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def fmt_value(shape: tuple[int, ...], dtype: str = "float32") -> str:
    """A value's per-sample shape as dlc check and the picture print it; token ids (int64, 1 x L): 'L token ids'."""
    return f"{shape[-1]} token ids" if dtype == "int64" else fmt_shape(shape)


class Op:
    name: ClassVar[str]
    kind: ClassVar[str] = "layer"  # layer | activation | norm | dropout | reshape
    attrs: ClassVar[dict[str, Attr]] = {}
    positional: ClassVar[tuple[str, ...]] = ()
    doc: ClassVar[str] = ""
    # Which input ranks the op accepts: 1 = feature vector, 2 = sequence CxL, 3 = image CxHxW.
    ranks: ClassVar[tuple[int, ...]] = (1, 2, 3)
    # What the op is, declared here once and read everywhere else (build, lint, folding, runtime):
    weight_layer: ClassVar[bool] = False  # has a weight matrix or filters (dense, conv): a "layer" of the net
    inline: ClassVar[bool] = False  # its line may carry an activation, batchnorm and dropout=
    weight_out_axis: ClassVar[int | None] = None  # the weight's output-unit axis: what batchnorm folds into
    init_family: ClassVar[str | None] = None  # activations: the init the layer before them wants (he, xavier, lecun)
    saturating: ClassVar[bool] = False  # sigmoid/tanh: gradients vanish through deep stacks of them (and
    # such an op defines saturated(y), the outputs in its flat tails)
    nonlinear: ClassVar[bool] = False  # an activation that is not the identity (every one but `linear`)
    normalizes: ClassVar[bool] = False  # batchnorm: subtracts a mean and divides by a deviation of what it
    # reads, so a bias before it cancels and it belongs before the nonlinearity (lint DL101, DL103, DL107, DL111)
    recurrent: ClassVar[bool] = False  # lstm: a loop over the steps, whose gradients can explode through
    # them (lint DL117 asks for clipping)
    # it can read a variable-length sequence (`input CxL variable`): it honours the padding mask (works per
    # step, or masks what it reduces over time); flatten cannot -- its output size would follow the length
    variable_steps: ClassVar[bool] = True
    drops: ClassVar[bool] = False  # dropout: noise in training, the identity at inference (lint looks through it)
    dies: ClassVar[bool] = False  # relu: a unit that outputs 0 for every input gets no gradient again (such
    # an op defines dead(y), per unit -- a feature, or a conv channel -- whether it is 0 over the batch)
    # How many inputs: 1, or None for a merge (add, concat) whose methods take and return lists
    # (`infer(shapes)`, `forward(xs)`, `backward -> ([dx, ...], grads)`, `to_onnx(g, xs, p, a, shapes)`).
    arity: ClassVar[int | None] = 1
    # The element type of what it reads: float32 for every op but the embedding, which reads token ids
    # (int64; `input L tokens`). Every op writes float32. The shape pass refuses a mismatch.
    reads: ClassVar[str] = "float32"
    # Sample inputs for the registry-walking tests: per-sample shapes and attributes.
    examples: ClassVar[list[tuple[Any, dict[str, Any]]]] = []  # a merge's: a list of shapes

    def check_rank(self, shape):
        if len(shape) not in self.ranks:
            want = {1: "a feature vector", 2: "a sequence CxL", 3: "an image CxHxW"}
            raise ShapeError(f"{self.name} expects {' or '.join(want[r] for r in self.ranks)}, "
                             f"but its input is {fmt_shape(shape)}",
                             _to_vector_hint(shape) if 1 in self.ranks else None)

    def check_steps(self, shape, a) -> None:
        """ShapeError unless the op computes on a variable-length sequence (up to shape[1] steps) what it
        computes on each series at its own length (a window op: the same padding before every length)."""
        if not self.variable_steps:
            raise ShapeError(f"{self.name} cannot take a variable-length sequence: its output's size would "
                             "follow each series's length",
                             "reduce over time first: globalavgpool, globalmaxpool or an lstm/gru's last step")

    def steps_out(self, shape, a) -> int:
        """The valid steps of its output for a series of shape[1] valid steps (ShapeError: too short)."""
        return self.infer(shape, a)[1]

    def dead(self, y):
        """(a `dies` op) per unit -- a feature, or a conv channel -- whether it is 0 over the whole batch."""
        raise NotImplementedError(f"{self.name} does not die")

    def saturated(self, y):
        """(a `saturating` op) which outputs are in its flat tails."""
        raise NotImplementedError(f"{self.name} does not saturate")

    def infer(self, shape, a):
        self.check_rank(shape)
        return tuple(shape)

    def params(self, shape, a) -> list[ParamSpec]:
        return []

    def buffers(self, shape, a) -> dict[str, tuple[tuple[int, ...], float]]:
        return {}

    def to_onnx(self, g, x, p, a, shape):
        raise NotImplementedError

    def flops(self, in_shape, out_shape, a) -> int:
        return int(math.prod(out_shape))

    def defaults(self) -> dict[str, Any]:
        from ..attrs import REQUIRED
        return {k: v.default for k, v in self.attrs.items() if v.default is not REQUIRED}


def _to_vector_hint(shape) -> str:
    if len(shape) == 2:  # a sequence -> a vector: what the steps say, whatever their number
        return "reduce over the steps first: globalavgpool, globalmaxpool, or an lstm/gru without 'sequences'"
    return "add 'flatten' before it"


def registrar(table: dict, what: str):
    """A class decorator that puts one instance of each class in `table` under its name, refusing
    a nameless class or a name taken twice (ops, losses and optimizers register this way)."""
    def register(cls):
        if not getattr(cls, "name", None):
            raise ValueError(f"{cls.__name__} has no name")
        if cls.name in table:
            raise ValueError(f"{what} '{cls.name}' registered twice")
        table[cls.name] = cls()
        return cls
    return register


class Registry:
    def __init__(self):
        self._ops: dict[str, Op] = {}
        self.register = registrar(self._ops, "op")

    def __getitem__(self, name: str) -> Op:
        return self._ops[name]

    def __contains__(self, name: str) -> bool:
        return name in self._ops

    def names(self, kind: str | None = None) -> list[str]:
        return [n for n, op in self._ops.items() if kind is None or op.kind == kind]

    def __iter__(self):
        return iter(self._ops.values())


REGISTRY = Registry()
register = REGISTRY.register

