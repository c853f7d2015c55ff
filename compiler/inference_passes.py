"""Inference lowering passes on (graph nodes, values) before export.

- batchnorm folding: a batchnorm reading a layer that declares its weight's output axis (dense, conv, conv1d),
  and that layer's only reader, is folded into its weights and bias
  (W' = W * s, b' = (b - mean) * s + beta with s = gamma / sqrt(var + eps));
- dropout needs no pass: its ONNX lowering is the identity; rrelu lowers to its mean slope.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .ir import Graph, Node, Param
from .inits import InitSpec
from .ops import REGISTRY


def fold_batchnorm(graph: Graph, values: dict[str, np.ndarray]) -> tuple[list[Node], dict[str, np.ndarray]]:
    """Nodes with every foldable batchnorm merged into the layer before it, and their values.
    A batchnorm folds when it reads a layer that declares its weight's output axis (dense, conv, conv1d)
    and that layer's output feeds the batchnorm alone (a value another path also reads must stay
    as it is). Readers of a folded batchnorm read the layer instead. Neither argument is changed."""
    values = dict(values)
    consumers = graph.consumers()
    by_name = graph.producers()
    folded: dict[str, Node] = {}  # layer name -> the layer with the batchnorm folded in
    renamed: dict[str, str] = {}  # folded batchnorm -> the layer that replaces it
    for node in graph.nodes:
        prev = by_name.get(node.inputs[0])
        axis = REGISTRY[prev.op].weight_out_axis if prev is not None else None
        if prev is None or node.op != "batchnorm" or axis is None or len(consumers[prev.name]) != 1:
            continue
        gamma, beta = values[node.params["gamma"].name], values[node.params["beta"].name]
        mean, var = values[node.buffers["running_mean"].name], values[node.buffers["running_var"].name]
        scale = (gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + node.attrs["eps"]))
        w_name = prev.params["weight"].name
        w = values[w_name].astype(np.float64)
        shape = [1] * w.ndim
        shape[axis] = -1
        w = w * scale.reshape(shape)
        bias_name = f"{prev.name}.bias"
        b = values[bias_name].astype(np.float64) if "bias" in prev.params else 0.0
        values[w_name] = w.astype(np.float32)
        values[bias_name] = ((b - mean) * scale + beta).astype(np.float32)
        params = dict(prev.params)
        params["bias"] = Param(bias_name, "bias", (len(scale),), InitSpec("zeros"), decay=False)
        folded[prev.name] = dataclasses.replace(prev, params=params, attrs=dict(prev.attrs, bias=True),
                                                out_shape=node.out_shape)
        renamed[node.name] = prev.name
    out = []
    for node in graph.nodes:
        if node.name in renamed:
            continue
        node = folded.get(node.name, node)
        if any(i in renamed for i in node.inputs):
            node = dataclasses.replace(node, inputs=tuple(renamed.get(i, i) for i in node.inputs))
        out.append(node)
    return out, values
