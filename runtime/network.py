"""The NumPy interpreter of the IR: parameters, forward with caches, backward.

Parameters live in one dict keyed by their IR names (dense1.weight, batchnorm1.running_mean ...),
the same names as weights.npz and the ONNX initializers.
"""

from __future__ import annotations

import numpy as np

from dlc.compiler.ir import Graph
from dlc.compiler.ops import REGISTRY, Context
from dlc.runtime.allocator import keep_freed_memory


class WeightsMismatch(Exception):
    """Weights that do not fit the spec: the message names what differs."""


def init_params(graph: Graph, seed: int, dtype=np.float32) -> dict[str, np.ndarray]:
    """Sample every parameter from its init scheme; buffers get their fill value.
    One generator, parameters in graph order: the same spec and seed give the same weights."""
    rng = np.random.default_rng(seed)
    values = {}
    for node in graph.nodes:
        for p in node.params.values():
            values[p.name] = p.init.sample(rng, p.shape, p.fan_in, p.fan_out, dtype)
        for b in node.buffers.values():
            values[b.name] = np.full(b.shape, b.fill, dtype=dtype)
    return values


def expected_shapes(graph: Graph) -> dict[str, tuple[int, ...]]:
    out = {p.name: p.shape for p in graph.params()}
    out.update({b.name: b.shape for b in graph.buffers()})
    return out


def check_weights(graph: Graph, values: dict[str, np.ndarray]) -> None:
    want = expected_shapes(graph)
    missing = sorted(set(want) - set(values))
    extra = sorted(set(values) - set(want))
    wrong = sorted(f"{k} {tuple(values[k].shape)} (spec: {want[k]})" for k in set(want) & set(values)
                   if tuple(values[k].shape) != tuple(want[k]))
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append("missing: " + ", ".join(missing))
        if extra:
            parts.append("not in the spec: " + ", ".join(extra))
        if wrong:
            parts.append("wrong shape: " + "; ".join(wrong))
        raise WeightsMismatch("the weights do not match the spec: " + " | ".join(parts))


class Network:
    """Runs a graph on batches. `forward` keeps what `backward` needs."""

    def __init__(self, graph: Graph, values: dict[str, np.ndarray]):
        check_weights(graph, values)
        keep_freed_memory()  # steps reuse the same large temporaries: no page faults each step
        self.graph = graph
        self.values = values
        self.nodes = graph.nodes
        self._plan = [(n, REGISTRY[n.op], {**{r: values[p.name] for r, p in n.params.items()},
                                           **{r: values[b.name] for r, b in n.buffers.items()}})
                      for n in graph.nodes]
        self._caches: list = []

    def forward(self, x: np.ndarray, training: bool = False, rng: np.random.Generator | None = None,
                upto: int | None = None, keep: bool = True) -> np.ndarray:
        """Run nodes [0, upto). With `keep`, caches are kept for `backward`."""
        ctx = Context(training=training, rng=rng if rng is not None else np.random.default_rng(0))
        caches = []
        plan = self._plan if upto is None else self._plan[:upto]
        for node, op, p in plan:
            x, cache = op.forward(x, p, node.attrs, ctx)
            if keep:
                caches.append(cache)
        self._caches = caches
        return x

    def backward(self, dy: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of every trainable parameter, keyed by name; uses the last forward's caches."""
        grads = {}
        steps = list(zip(self._plan[:len(self._caches)], self._caches))
        # Nothing consumes the input's gradient: the last op walked back that has parameters
        # (a weight layer: dense, conv) skips computing it, and the parameter-free ops before it are not run.
        first = next((i for i, ((n, _, _), _) in enumerate(steps) if n.params), len(steps))
        for k in range(len(steps) - 1, first - 1, -1):
            (node, op, p), cache = steps[k]
            if k == first and op.weight_layer:
                dy, g = op.backward(dy, cache, p, node.attrs, need_dx=False)
            else:
                dy, g = op.backward(dy, cache, p, node.attrs)
            for role, value in g.items():
                grads[node.params[role].name] = value
        self._caches = []
        return grads

    def trace(self, x: np.ndarray, training: bool = False, rng: np.random.Generator | None = None):
        """Yield (node, output) for every node in order: what dlc diagnose inspects. Keeps no caches."""
        ctx = Context(training=training, rng=rng if rng is not None else np.random.default_rng(0))
        for node, op, p in self._plan:
            x, _ = op.forward(x, p, node.attrs, ctx)
            yield node, x

    def predict(self, x: np.ndarray, batch: int = 1024, upto: int | None = None) -> np.ndarray:
        """Inference-mode outputs of nodes [0, upto) (dropout off, batchnorm running statistics), in batches."""
        outs = [self.forward(x[i:i + batch], training=False, upto=upto, keep=False) for i in range(0, len(x), batch)]
        return np.concatenate(outs) if outs else np.zeros((0,) + self.graph.output_shape, np.float32)
