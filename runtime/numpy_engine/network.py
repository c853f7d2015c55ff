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
        self._steps = _step_tables(graph, self._plan) if graph.variable else None
        self._masks: list = []  # each node's output mask in the last forward (variable lengths)
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
        caches, masks = [], []
        y = x
        for k, y, cache, mask in self._run(x, training, rng, upto):
            if keep:
                caches.append(cache)
                masks.append(mask)
        self._caches, self._masks = caches, masks
        last = len(self._plan if upto is None else self._plan[:upto]) - 1
        return to_layout(y, self._layout[last], NCHW) if last >= 0 else x

    def _run(self, x, training, rng, upto=None):
        """Yield (k, output, cache, output mask) for nodes [0, upto). A variable-length batch (NaN after
        each series's last step) is read as zeros with its lengths; every sequence value is zeroed after
        its valid steps (the mask), and each op is told its input's valid steps (`ctx.lengths`, `ctx.mask`)."""
        ctx = Context(training=training, rng=rng if rng is not None else np.random.default_rng(0))
        plan = self._plan if upto is None else self._plan[:upto]
        steps: dict[int, np.ndarray] = {}
        if self._steps is not None:
            x, steps[-1] = padded_batch(x)
        env = {-1: x}
        for k, (node, op, p, ins) in enumerate(plan):
            ctx.layout = mode = self._modes[k]
            ctx.training = training and not (node.frozen and node.buffers)  # frozen batchnorm: its statistics
            mask = None
            if self._steps is not None:
                ctx.lengths = steps.get(ins[0])
                ctx.mask = None if ctx.lengths is None else _mask(ctx.lengths, node.in_shape[1])
            y, cache = op.forward(self._inputs(env, ins, op.arity, mode), p, node.attrs, ctx)
            if self._steps is not None and self._steps[k] is not None:
                steps[k] = self._steps[k][steps[-1] - 1]
                mask = _mask(steps[k], node.out_shape[1])
                y = y * mask
            for i in ins:
                if self._last_read[i] <= k:
                    env.pop(i, None)
            env[k] = y
            yield k, y, cache, mask

    def input_gradient(self, dy: np.ndarray) -> np.ndarray:
        """The loss's gradient at the model's input (dy: at the output; uses the last forward's caches):
        what reaches each step of a sequence (dlc diagnose's gradient through time)."""
        grads: dict = {}
        return self._backward(dy, grads, to_input=True)

    def backward(self, dy: np.ndarray) -> dict[str, np.ndarray]:
        grads: dict = {}
        self._backward(dy, grads)
        return grads

    def _backward(self, dy: np.ndarray, grads: dict, to_input: bool = False):
        """Gradients of every trainable parameter, keyed by name; uses the last forward's caches.
        Nothing consumes the input's gradient: a weight layer (dense, conv) reading the model's
        input skips computing it, and nodes with no parameters at or before them are not run.
        A value read by several nodes gets the sum of their gradients. `to_input`: every node runs, and the
        input's gradient is returned."""
        n = len(self._caches)
        dys = {n - 1: to_layout(dy, NCHW, self._layout[n - 1])}
        wants = [True] * n if to_input else self._wants_dy

        def reached(i):  # whose gradient is kept: a node that wants it, the input when asked for
            return wants[i] if i >= 0 else to_input

        for k in range(n - 1, -1, -1):
            g_out = dys.pop(k, None)
            if g_out is None or not wants[k]:
                continue
            node, op, p, ins = self._plan[k]
            if self._masks and self._masks[k] is not None:  # nothing reaches a padded step
                g_out = g_out * self._masks[k]
            need_dx = any(reached(i) for i in ins)
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
                if reached(i):
                    d = to_layout(d, self._modes[k], self._layout[i])
                    dys[i] = dys[i] + d if i in dys else d  # a fan-out: gradients add (never in place)
        self._caches, self._masks = [], []
        return dys.get(-1)

    def trace(self, x: np.ndarray, training: bool = False, rng: np.random.Generator | None = None):
        """Yield (node, output in NCHW) for every node in order: what dlc diagnose inspects. Keeps no caches."""
        for k, y, _, _ in self._run(x, training, rng):
            yield self._plan[k][0], to_layout(y, self._layout[k], NCHW)

    def predict(self, x: np.ndarray, batch: int | None = None, upto: int | None = None) -> np.ndarray:
        """Inference-mode outputs of node upto-1 (dropout off, batchnorm running statistics), in batches
        (None: as many samples as keep one batch's activations within PREDICT_BYTES)."""
        batch = batch or self.predict_batch
        outs = [self.forward(x[i:i + batch], training=False, upto=upto, keep=False) for i in range(0, len(x), batch)]
        if outs:
            return np.concatenate(outs)
        shape = self.graph.output_shape if upto is None else self.nodes[upto - 1].out_shape
        return np.zeros((0,) + tuple(shape), np.float32)


def padded_batch(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A variable-length batch (N, C, L), NaN after each series's last step -> (x with zeros there, the
    valid steps per series). The data readers guarantee the NaNs are a suffix of every channel."""
    missing = np.isnan(x[:, 0, :])
    lengths = x.shape[2] - missing.sum(axis=1)
    return (np.where(np.isnan(x), x.dtype.type(0), x) if missing.any() else x), lengths


def _mask(lengths: np.ndarray, steps: int) -> np.ndarray:
    return (np.arange(steps) < lengths[:, None])[:, None, :]


def _step_tables(graph: Graph, plan) -> list:
    """Per node, its output's valid steps by the input's (index: input steps - 1), or None for a vector."""
    from dlc.compiler.time_axis import step_lengths
    tables = step_lengths(graph)
    return [np.asarray(tables[n.name]) if n.name in tables else None for n, *_ in plan]
