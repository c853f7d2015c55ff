"""The IR graph as a torch module: each node's lowering (ops.py) run in graph order, its parameters and
buffers registered under their dlc names (torch refuses dots in names: `dense1.weight` is registered
as `dense1__weight`, and `dlc_name`/`torch_name` map between the two)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dlc.compiler.ir import INPUT, Graph
from dlc.compiler.ops import REGISTRY
from dlc.runtime.torch_engine.ops import LOWERINGS, Ctx


def torch_name(name: str) -> str:
    return name.replace(".", "__")


def dlc_name(name: str) -> str:
    return name.replace("__", ".")


class LoweredNet(torch.nn.Module):
    """Runs a graph on a batch (NCHW, as the IR): `forward(x, upto)` returns node upto-1's output
    (the model's output by default); `self.training` selects dropout/rrelu noise and batch statistics."""

    def __init__(self, graph: Graph, values: dict[str, np.ndarray], dtype: torch.dtype, device: torch.device):
        super().__init__()
        self.graph = graph
        self.generator: torch.Generator | None = None
        self.moments: Any = None  # batchnorm statistics over every process (runtime/torch_engine/distributed.py)
        for p in graph.params():
            t = torch.as_tensor(np.asarray(values[p.name]), dtype=dtype, device=device).clone()
            self.register_parameter(torch_name(p.name), torch.nn.Parameter(t, requires_grad=not p.frozen))
        for b in graph.buffers():
            t = torch.as_tensor(np.asarray(values[b.name]), dtype=dtype, device=device).clone()
            self.register_buffer(torch_name(b.name), t)
        index = {INPUT: -1, **{n.name: k for k, n in enumerate(graph.nodes)}}
        tensors: dict[str, torch.Tensor] = dict(self.named_parameters())
        tensors.update(dict(self.named_buffers()))
        self._plan = []
        for n in graph.nodes:
            bound = {r: tensors[torch_name(q.name)] for r, q in n.params.items()}
            bound.update({r: tensors[torch_name(q.name)] for r, q in n.buffers.items()})
            ins = tuple(index[i] for i in n.inputs)
            shapes = [graph.input_shape if i == -1 else graph.nodes[i].out_shape for i in ins]
            merge = REGISTRY[n.op].arity is None
            self._plan.append((n, LOWERINGS[n.op], bound, ins, shapes if merge else shapes[0], merge))
        self._last_read = {}
        for k, (_, _, _, ins, _, _) in enumerate(self._plan):
            for i in ins:
                self._last_read[i] = k
        self._contexts: dict[tuple, list[Ctx]] = {}  # (training, generator, moments) -> one Ctx per node, made once
        self._steps = None  # a variable-length graph: per node, its output's valid steps by the input's
        if graph.variable:
            from dlc.compiler.time_axis import step_lengths
            tables = step_lengths(graph)
            self._steps = [torch.as_tensor(tables[n.name], device=device) if n.name in tables else None
                           for n in graph.nodes]

    def _ctx(self) -> list[Ctx]:
        key = (self.training, id(self.generator), id(self.moments))
        ctxs = self._contexts.get(key)
        if ctxs is None:  # frozen batchnorm normalizes with its statistics, in training too
            ctxs = self._contexts[key] = [
                Ctx(self.training and not (node.frozen and node.buffers), self.generator, shape, self.moments)
                for node, _, _, _, shape, _ in self._plan]
        return ctxs

    def forward(self, x: torch.Tensor, upto: int | None = None) -> torch.Tensor:
        out = x
        for _, out in self.trace(x, upto):
            pass
        return out

    def trace(self, x: torch.Tensor, upto: int | None = None):
        """(node, its output) for each node up to `upto`, in order; each input is let go after its last reader."""
        plan = self._plan if upto is None else self._plan[:upto]
        ctxs = self._ctx()
        steps: dict[int, torch.Tensor] = {}
        if self._steps is not None:  # NaN after each series's last step (runtime/data/series.py)
            missing = torch.isnan(x)
            steps[-1] = x.shape[2] - missing[:, 0, :].sum(dim=1)
            x = x.masked_fill(missing, 0.0)
        env = {-1: x}
        for k, (node, fn, p, ins, _, merge) in enumerate(plan):
            if self._steps is not None:
                ctx = ctxs[k]
                ctx.lengths = steps.get(ins[0])
                ctx.mask = None if ctx.lengths is None else _mask(ctx.lengths, node.in_shape[1])
            env[k] = fn([env[i] for i in ins] if merge else env[ins[0]], p, node.attrs, ctxs[k])
            table = self._steps[k] if self._steps is not None else None
            if table is not None:  # nothing after a series's last step
                steps[k] = table[steps[-1] - 1]
                env[k] = env[k] * _mask(steps[k], node.out_shape[1])
            for i in ins:
                if self._last_read[i] <= k:
                    env.pop(i, None)
            yield node, env[k]


def _mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    return (torch.arange(steps, device=lengths.device) < lengths[:, None])[:, None, :]
