"""Lowering to ONNX: the only compiler module that imports onnx.

Opset 18 with IR version 8, which onnxruntime 1.20 and newer load. Each op emits its own nodes
through `OnnxBuilder` (see `Op.to_onnx`); this module adds the input preprocessing, the outputs,
the metadata, and runs the checker.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .inference_passes import fold_batchnorm
from .ir import INPUT as INPUT_NODE, Graph
from .ops import REGISTRY

OPSET = 18
IR_VERSION = 8  # the minimum for opset 18; onnx.helper would stamp a newer one older runtimes refuse
INPUT, OUTPUT, LABEL = "input", "output", "label"
TEXT = "text"  # a string-in model's input: texts [N], as strings


class OnnxBuilder:
    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self._count = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def node(self, op_type: str, inputs: list[str], name: str | None = None, **attrs) -> str:
        out = name or self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def node_outputs(self, op_type: str, inputs: list[str], count: int, **attrs) -> list[str]:
        """A node with `count` outputs (LSTM's Y and Y_h): their names."""
        base = self.fresh(op_type.lower())
        outs = [f"{base}_{k}" for k in range(count)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=base, **attrs))
        return outs

    def initializer(self, name: str, array: np.ndarray) -> str:
        self.initializers[name] = numpy_helper.from_array(np.ascontiguousarray(array), name)
        return name

    def scalar(self, value: float) -> str:
        return self.initializer(self.fresh("const"), np.array(value, dtype=np.float32))

    def ints(self, values) -> str:
        return self.initializer(self.fresh("shape"), np.array(values, dtype=np.int64))


def graph_to_onnx(graph: Graph, values: dict[str, np.ndarray], *, preprocess=None, keep_bn: bool = False,
                  label: bool = False, metadata: dict | None = None, text: dict | None = None) -> onnx.ModelProto:
    """IR + trained values -> a checked ONNX model with a dynamic batch dimension (and a dynamic time
    axis for `input CxL variable`: one batch, one length). `text` ({kind, vocab, length}: a word or character
    tokenizer's vocabulary) makes a string-in model: texts [N] in, the tokenizer in the graph, each text run
    on its own in a Loop (onnx_text.py)."""
    nodes, values = (list(graph.nodes), values) if keep_bn else fold_batchnorm(graph, values)
    g = OnnxBuilder()
    x = INPUT
    if text is not None:  # (inside a loop over the texts: see below)
        from .onnx_text import ONE_TEXT, text_front
        x = text_front(g, ONE_TEXT, text["kind"], text["vocab"], text["length"])
    if preprocess is not None and getattr(preprocess, "per_series", False):
        x = _znormalize(g, x)
    if preprocess is not None and not preprocess.is_identity:
        # a variable-length input: per channel (C, 1), for any number of steps (the same at every step)
        mul, add = (preprocess.mul[:, :1], preprocess.add[:, :1]) if graph.variable else (preprocess.mul, preprocess.add)
        x = g.node("Mul", [x, g.initializer("preprocess.mul", mul.astype(np.float32))], name="preprocess_mul")
        x = g.node("Add", [x, g.initializer("preprocess.add", add.astype(np.float32))], name="preprocess_add")
    env = {INPUT_NODE: x}  # IR node name -> the ONNX value holding its output
    for node in nodes:
        p = {}
        for role, param in list(node.params.items()) + list(node.buffers.items()):
            p[role] = g.initializer(param.name, values[param.name].astype(np.float32))
        op = REGISTRY[node.op]
        start = len(g.nodes)
        if op.arity is None:
            x = op.to_onnx(g, [env[i] for i in node.inputs], p, node.attrs, node.in_shapes)
        else:
            x = op.to_onnx(g, env[node.inputs[0]], p, node.attrs, node.in_shape)
        emitted = g.nodes[start:]  # named after the IR node (Netron, onnxruntime's profiles, int8's report)
        for j, n in enumerate(emitted):
            n.name = node.name if j == len(emitted) - 1 else f"{node.name}/{j}_{n.op_type}"
        env[node.name] = x
    if x == INPUT:
        x = g.node("Identity", [x])
    if text is not None:  # each text through the nodes above on its own, the outputs stacked
        from .onnx_text import loop_over_texts
        loop_over_texts(g, x, TEXT, OUTPUT, graph.output_shape[0])
    else:
        g.node("Identity", [x], name=OUTPUT)
    outputs = [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", *graph.output_shape])]
    if label:
        g.node("ArgMax", [OUTPUT], name=LABEL, axis=1, keepdims=0)
        outputs.append(helper.make_tensor_value_info(LABEL, TensorProto.INT64, ["N"]))
    if text is not None:
        from .onnx_text import TEXT_OPSETS
        inputs = [helper.make_tensor_value_info(TEXT, TensorProto.STRING, ["N"])]
        opsets = [helper.make_opsetid("", OPSET)] + [helper.make_opsetid(d, v) for d, v in TEXT_OPSETS.items()]
    else:
        inputs = [helper.make_tensor_value_info(INPUT, TensorProto.INT64 if graph.input_dtype == "int64"
                                                else TensorProto.FLOAT, ["N", *input_dims(graph)])]
        opsets = [helper.make_opsetid("", OPSET)]
    onnx_graph = helper.make_graph(g.nodes, graph.name, inputs, outputs, initializer=list(g.initializers.values()))
    model = helper.make_model(onnx_graph, opset_imports=opsets, producer_name="dlc", ir_version=IR_VERSION)
    for k, v in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v if isinstance(v, str) else json.dumps(v)
    # (onnx's shape inference crashes the process on onnxruntime's Tokenizer contrib op: a string-in model
    # gets the structural check here; export runs it in onnxruntime on every test text before writing it)
    onnx.checker.check_model(model, full_check=text is None)
    return model


def input_dims(graph) -> list:
    """The ONNX input's per-sample dimensions: the input's shape, its steps named "L" when they vary; token
    ids (input L tokens) as (L,), the channel axis of one left out."""
    if graph.input_dtype == "int64":
        return ["L" if graph.variable else graph.input_shape[1]]
    return [graph.input_shape[0], "L"] if graph.variable else list(graph.input_shape)


def _znormalize(g, x: str) -> str:
    """data ... znorm in the graph: each series to mean 0, std 1 per channel over its steps (one batch, one
    length); a std under 1e-8 (a constant channel) counts as 1, as runtime/data/splits.py's znormalize."""
    steps = g.ints([2])
    mean = g.node("ReduceMean", [x, steps], keepdims=1)
    centred = g.node("Sub", [x, mean])
    std = g.node("Sqrt", [g.node("ReduceMean", [g.node("Mul", [centred, centred]), steps], keepdims=1)])
    floor = g.initializer(g.fresh("znorm_floor"), np.array(1e-8, np.float32))
    one = g.initializer(g.fresh("one"), np.array(1.0, np.float32))
    return g.node("Div", [centred, g.node("Where", [g.node("Less", [std, floor]), one, std])])
