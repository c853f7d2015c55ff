"""The NumPy interpreter of the IR: parameters, forward with caches, backward.

Parameters live in one dict keyed by their IR names (dense1.weight, batchnorm1.running_mean ...),
the same names as weights.npz and the ONNX initializers.
"""

from __future__ import annotations

import math

import numpy as np

from dlc.compiler.ir import INPUT, Graph
from dlc.runtime.numpy_engine.layouts import NCHW, Context, to_layout
from dlc.runtime.numpy_engine.allocator import keep_freed_memory
from dlc.runtime.numpy_engine.kernels import KERNELS
from dlc.runtime.weights import WeightsMismatch, check_weights, expected_shapes, init_params  # noqa: F401


# Inference batches are sized to keep their activations near the CPU's caches: a conv net evaluated
# 1,024 samples at a time ran 2.3x slower than 64 at a time (LeNet); an MLP is indifferent.
PREDICT_BYTES = 8 << 20


class Network:
    """Runs a graph on batches. `forward` keeps what `backward` needs.

    The interpreter walks the nodes in order with an environment of values: each node reads its
    inputs' outputs, and a value is dropped once its last reader has run (unless kept for backward).
    Backward walks back, summing the gradients of a value that several nodes read."""

    def __init__(self, graph: Graph, values: dict[str, np.ndarray]):
        check_weights(graph, values)
        keep_freed_memory()  # steps reuse the same large temporaries: no page faults each step
        self.graph = graph
        self.values = values
        self.nodes = graph.nodes
        index = {INPUT: -1, **{n.name: k for k, n in enumerate(graph.nodes)}}
        self._plan = [(n, KERNELS[n.op], {**{r: values[p.name] for r, p in n.params.items()},
                                           **{r: values[b.name] for r, b in n.buffers.items()}},
                       tuple(index[i] for i in n.inputs))
                      for n in graph.nodes]
        # The last reader of each value (by position; the model's input is -1), to free values early.
        self._last_read = {}
        for k, (_, _, _, ins) in enumerate(self._plan):
            for i in ins:
                self._last_read[i] = k
        # Backward runs a node when it or a node before it has trained parameters: gradients of the rest
        # (and of a frozen stack at the bottom of a fine-tuned net) are unused.
        wants: list[bool] = []
        for n, _, _, ins in self._plan:
            wants.append(any(not p.frozen for p in n.params.values()) or any(i >= 0 and wants[i] for i in ins))
        self._wants_dy = wants
        self._plan_layouts()
        self._caches: list = []
        per_sample = 4 * sum(math.prod(n.out_shape) for n in graph.nodes) or 4
        self.predict_batch = int(min(1024, max(16, PREDICT_BYTES // per_sample)))

    def _plan_layouts(self):
        """The layout each node is run in, and of each image value: a conv runs in CHWN, an op that
        accepts its input's layout keeps it, any other runs in NCHW. A value is moved between layouts
        only where a reader needs the other one (and its gradient moved back)."""
        layout = {-1: NCHW}
        self._modes = []
        for k, (node, op, _, ins) in enumerate(self._plan):
            first = layout[ins[0]]
            if op.preferred_layout in op.layouts:
                mode = op.preferred_layout
            elif first in op.layouts:
                mode = first
            else:
                mode = op.layouts[0]
            self._modes.append(mode)
            layout[k] = mode if len(node.out_shape) == 3 else NCHW
        self._layout = layout

    def _inputs(self, env, ins, arity, mode):
        xs = [to_layout(env[i], self._layout[i], mode) for i in ins]
        return xs if arity is None else xs[0]

    def forward(self, x: np.ndarray, training: bool = False, rng: np.random.Generator | None = None,
                upto: int | None = None, keep: bool = True) -> np.ndarray:
        """Run nodes [0, upto) and return the output of node upto-1 (the model's output by default),
        in NCHW. With `keep`, caches are kept for `backward`."""
        ctx = Context(training=training, rng=rng if rng is not None else np.random.default_rng(0))
        plan = self._plan if upto is None else self._plan[:upto]
        caches = []
        env = {-1: x}
        last = len(plan) - 1
        for k, (node, op, p, ins) in enumerate(plan):
            ctx.layout = mode = self._modes[k]
            ctx.training = training and not (node.frozen and node.buffers)  # frozen batchnorm: its statistics
            y, cache = op.forward(self._inputs(env, ins, op.arity, mode), p, node.attrs, ctx)
            for i in ins:
                if self._last_read[i] <= k:
                    env.pop(i, None)
            env[k] = y
            if keep:
                caches.append(cache)
        self._caches = caches
        return to_layout(env[last], self._layout[last], NCHW) if plan else x

    def backward(self, dy: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of every trainable parameter, keyed by name; uses the last forward's caches.
        Nothing consumes the input's gradient: a weight layer (dense, conv) reading the model's
        input skips computing it, and nodes with no parameters at or before them are not run.
        A value read by several nodes gets the sum of their gradients."""
        grads = {}
        n = len(self._caches)
        dys = {n - 1: to_layout(dy, NCHW, self._layout[n - 1])}
        wants = self._wants_dy
        for k in range(n - 1, -1, -1):
            g_out = dys.pop(k, None)
            if g_out is None or not wants[k]:
                continue
            node, op, p, ins = self._plan[k]
            need_dx = any(i >= 0 and wants[i] for i in ins)
            if op.weight_layer and not need_dx:
                dx, g = op.backward(g_out, self._caches[k], p, node.attrs, need_dx=False)
            else:
                dx, g = op.backward(g_out, self._caches[k], p, node.attrs)
            self._caches[k] = None
            for role, value in g.items():
                if not node.params[role].frozen:
                    grads[node.params[role].name] = value
            if not need_dx:
                continue
            for i, d in zip(ins, dx if op.arity is None else (dx,)):
                if i >= 0 and wants[i]:
                    d = to_layout(d, self._modes[k], self._layout[i])
                    dys[i] = dys[i] + d if i in dys else d  # a fan-out: gradients add (never in place)
        self._caches = []
        return grads

    def trace(self, x: np.ndarray, training: bool = False, rng: np.random.Generator | None = None):
        """Yield (node, output in NCHW) for every node in order: what dlc diagnose inspects. Keeps no caches."""
        ctx = Context(training=training, rng=rng if rng is not None else np.random.default_rng(0))
        env = {-1: x}
        for k, (node, op, p, ins) in enumerate(self._plan):
            ctx.layout = mode = self._modes[k]
            ctx.training = training and not (node.frozen and node.buffers)
            env[k], _ = op.forward(self._inputs(env, ins, op.arity, mode), p, node.attrs, ctx)
            for i in ins:
                if self._last_read[i] <= k:
                    env.pop(i, None)
            yield node, to_layout(env[k], self._layout[k], NCHW)

    def predict(self, x: np.ndarray, batch: int | None = None, upto: int | None = None) -> np.ndarray:
        """Inference-mode outputs of node upto-1 (dropout off, batchnorm running statistics), in batches
        (None: as many samples as keep one batch's activations within PREDICT_BYTES)."""
        batch = batch or self.predict_batch
        outs = [self.forward(x[i:i + batch], training=False, upto=upto, keep=False) for i in range(0, len(x), batch)]
        if outs:
            return np.concatenate(outs)
        shape = self.graph.output_shape if upto is None else self.nodes[upto - 1].out_shape
        return np.zeros((0,) + tuple(shape), np.float32)
