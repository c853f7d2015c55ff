"""`dlc import`'s reading of an ONNX file: the spec it describes and its weights under dlc's names.

Two kinds of file come in. **dlc's own exports** carry their spec in the metadata: the spec comes back as
written, the weights by their initializer names (dlc's), the preprocessing from the `preprocess.*`
initializers, and a folded batchnorm as the identity statistics that give the folded layer exactly
(gamma 1, running mean 0, running variance 1 - eps, beta the folded bias): the same outputs, and the same
graph when exported again. **Foreign chains** (torch.onnx.export, Keras 3's ONNX export: Gemm or MatMul+Add,
Conv, BatchNormalization, the activations dlc has, pools, Flatten/Reshape to a vector, Dropout, Identity)
become one line per layer, an activation or batchnorm on the line of the layer it follows; a fork whose paths
meet again in one Add or Concat becomes `residual { ... }` (one path is the input itself) or `parallel
add|concat { branch { ... } ... }`. Anything else -- an op dlc does not have, an attribute that changes the
maths (Gemm's transA/alpha/beta, asymmetric pads, ceil_mode, grouped or dilated 2-D convolutions), paths that
do not meet in one merge -- is a refusal naming the node, never a partial spec.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

import numpy as np

from dlc.compiler.diagnostics import Diagnostic, DLError

ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Elu": "elu", "Selu": "selu",
               "Softplus": "softplus", "Softmax": "softmax", "LeakyRelu": "leaky_relu", "Gelu": "gelu"}
SKIPPED = ("Dropout", "Identity")  # inference: the identity
MAPPED = set(ACTIVATIONS) | set(SKIPPED) | {"Gemm", "MatMul", "Add", "Conv", "BatchNormalization", "MaxPool",
                                            "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Flatten",
                                            "Reshape", "Constant"}
# shape arithmetic exporters write around a layer (torch's around an LSTM): the layer is what to name
PLUMBING = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "ConstantOfShape", "Slice", "Cast", "Expand",
            "Transpose"}


@dataclass
class Imported:
    spec_text: str
    layers: list[dict]  # per parameter-holding layer in graph order: {"op": name, role: array ...}
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # dlc's own export: by dlc's names
    mul: np.ndarray | None = None
    add: np.ndarray | None = None
    classes: list[str] = field(default_factory=list)
    own: bool = False  # written by dlc export
    spec: Any = None  # dlc's own export: its spec, compiled (a foreign graph's text is compiled by the caller)


def _refuse(path: Path, message: str, hint: str | None = None) -> DLError:
    return DLError(Diagnostic("error", f"{path}: {message}", None, hint))


def read(path: Path) -> Imported:
    import onnx
    from onnx import numpy_helper
    try:
        model = onnx.load(str(path))
    except Exception as e:  # onnx's DecodeError and friends: a file that is not an ONNX model
        raise _refuse(path, f"not an ONNX model ({type(e).__name__})", "give a .onnx file") from None
    meta = {p.key: p.value for p in model.metadata_props}
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    numeric = {1}  # onnx.TensorProto.FLOAT
    kinds = {i.type.tensor_type.elem_type for i in model.graph.input if i.name not in inits}
    if kinds - numeric:
        what = "a string (a text)" if 8 in kinds else "token ids (int64)" if 7 in kinds else "not float32"
        raise _refuse(path, f"its input is {what}: dlc import reads models of float32 inputs; a text model's "
                            "tokenizer, vocabulary and embedding are not imported",
                      "train the text model with dlc (its run folder keeps the vocabulary), or import a numeric model")
    if "dlc_version" in meta and "spec" in meta:
        return _own(path, model, meta, inits)
    return _Chain(path, model, inits).read()


def _own(path: Path, model, meta: dict, inits: dict) -> Imported:
    from dlc.compiler.spec import compile as compile_spec
    spec = compile_spec(meta["spec"], f"{path}:spec", lint=False)
    weights: dict[str, np.ndarray] = {}
    for node in spec.graph.nodes:
        for role, p in list(node.params.items()) + list(node.buffers.items()):
            if p.name in inits:
                weights[p.name] = inits[p.name].astype(np.float32)
    for node in spec.graph.nodes:  # a batchnorm folded into the layer before it: its identity statistics
        if node.op == "batchnorm" and node.params["gamma"].name not in inits:
            eps = node.attrs.get("eps", 1e-5)
            prev = spec.graph.producers()[node.inputs[0]]
            c = node.params["gamma"].shape[0]
            folded_bias = inits.get(f"{prev.name}.bias", np.zeros(c))  # fold: (b - mean) * s + beta
            weights[node.params["gamma"].name] = np.ones(c, np.float32)
            # the layer's own bias (bias=true) holds the folded one already; else beta does
            weights[node.params["beta"].name] = (np.zeros(c) if "bias" in prev.params else folded_bias).astype(np.float32)
            weights[node.buffers["running_mean"].name] = np.zeros(c, np.float32)
            weights[node.buffers["running_var"].name] = np.full(c, 1 - eps, np.float32)
    classes = json.loads(meta.get("classes", "[]"))
    mul, add = inits.get("preprocess.mul"), inits.get("preprocess.add")
    return Imported(meta["spec"], [], weights, mul, add, classes if isinstance(classes, list) else [], own=True,
                    spec=spec)


class _Chain:
    """A foreign graph read line by line: chains, and the residual and parallel groups its forks make."""

    def __init__(self, path: Path, model, inits: dict):
        import onnx
        self.path = path
        try:
            model = onnx.shape_inference.infer_shapes(model)
        except Exception:  # (a model onnx cannot infer: shapes are read from the weights alone)
            pass
        self.model = model
        self.shapes = {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
                       for v in list(model.graph.value_info) + list(model.graph.input)}
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.consts = dict(inits)
        self.lines: list[str] = []
        self.layers: list[dict] = []
        self.rank = 0  # the current value's rank per sample: 1 vector, 2 sequence, 3 image
        self.line_open = False  # the last line is a weight layer that may still take batchnorm and an activation
        self.line_has: set[str] = set()
        self.depth = 0  # lines inside residual/parallel/branch groups are indented

    def read(self) -> Imported:
        graph = self.model.graph
        inputs = [i for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise _refuse(self.path, f"{len(inputs)} inputs and {len(graph.output)} outputs: dlc imports a model with "
                                     "one input and one output")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim][1:]
        if not dims or any(d is None or d < 1 for d in dims):
            raise _refuse(self.path, f"input '{inputs[0].name}' has per-sample dimensions {dims}: dlc needs them fixed")
        layer = next((n for n in graph.node if n.op_type not in MAPPED | PLUMBING), None)
        if layer is not None:  # an op dlc does not have: named before the chain is walked
            raise self._unsupported(layer)
        self.rank = len(dims)
        self.lines.append("input " + "x".join(map(str, dims)))
        from onnx import numpy_helper
        nodes = []
        for node in graph.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
            else:
                nodes.append(node)
        self.nodes = nodes  # in topological order (as ONNX stores them)
        self.users: dict[str, list] = {}
        for node in nodes:
            for i in self._data(node):
                self.users.setdefault(i, []).append(node)
        end = self._walk(inputs[0].name, join=None)
        if end != graph.output[0].name:
            raise _refuse(self.path, "the graph's output is not where its paths end")
        name = re.sub(r"\W", "_", self.path.stem) or "imported"
        name = name if name[0].isalpha() else f"m_{name}"
        from dlc.runtime.tools.onnx_blocks import with_blocks
        blocks, body = with_blocks(self.lines[1:])  # groups that repeat, numbers aside: one block
        text = f"# imported from {self.path.name} ({self.model.producer_name or 'an unnamed producer'} " \
               f"{self.model.producer_version}, opset {self.opset})\n" + "".join(f"{b}\n" for b in blocks) + \
               (f"\nmodel {name} {{\n" if blocks else f"model {name} {{\n") + \
               "\n".join(f"    {line}" for line in self.lines[:1] + body) + "\n}\n"
        return Imported(text, self.layers)

    def _data(self, node) -> list[str]:
        return [i for i in node.input if i and i not in self.consts]

    def _walk(self, tensor: str, join) -> str:
        """Lines for the path from `tensor` on, until it reaches `join` (a merge node of an enclosing group)
        or the graph's end; returns the tensor it stopped at."""
        while True:
            users = self.users.get(tensor, [])
            if not users or (join is not None and users == [join]):
                return tensor
            if len(users) == 1:
                node = users[0]
                if len(self._data(node)) > 1:  # a merge this path does not own
                    raise self._unsupported(node, "its paths do not start from one point (a graph dlc cannot write)")
                self._node(node)
                tensor = node.output[0]
                continue
            tensor = self._group(tensor, users)

    def _reach(self, node) -> set[int]:
        seen, todo = set(), [node]
        while todo:
            n = todo.pop()
            if id(n) in seen:
                continue
            seen.add(id(n))
            for o in n.output:
                todo.extend(self.users.get(o, []))
        return seen

    def _group(self, tensor: str, users: list) -> str:
        """A fork: `residual { ... }` when one path is the input itself, else `parallel add|concat` with a
        branch per path, closed at the first node every path reaches (their merge)."""
        common = set.intersection(*(self._reach(u) for u in users))
        merge = next(n for n in self.nodes if id(n) in common)  # the first node every path reaches
        ins = self._data(merge)
        if merge.op_type not in ("Add", "Concat"):
            raise self._unsupported(merge, "paths that merge other than by one Add or Concat of every path")
        if merge.op_type == "Concat" and self._attrs(merge).get("axis") not in (1, -self.rank - 1):
            raise self._unsupported(merge, "a concat along another axis than the channels")
        starts = [u for u in users if u is not merge]
        if merge.op_type == "Add" and len(ins) == 2 and tensor in ins:  # x + body(x)
            self._add_line("residual {")
            self.depth += 1
            self._walk_from(starts[0], merge)
        else:
            self._add_line(f"parallel {'add' if merge.op_type == 'Add' else 'concat'} {{")
            self.depth += 1
            by_input = {}
            for u in starts:  # each branch's lines, in the order the merge reads them
                mark = len(self.lines), len(self.layers)
                self._add_line("branch {")
                self.depth += 1
                end = self._walk_from(u, merge)
                self.depth -= 1
                self._add_line("}")
                lines = self.lines[mark[0]:]
                if len(lines) == 3 and "{" not in lines[1]:  # one line: branch { conv 16 kernel=1 }
                    lines = [f"{lines[0]} {lines[1].strip()} }}"]
                by_input[end] = (lines, self.layers[mark[1]:])
                del self.lines[mark[0]:], self.layers[mark[1]:]
            if tensor in ins:
                by_input[tensor] = (["    " * self.depth + "branch { }"], [])
            if sorted(by_input) != sorted(ins):
                raise self._unsupported(merge, "paths that merge other than by one Add or Concat of every path")
            for i in ins:
                self.lines += by_input[i][0]
                self.layers += by_input[i][1]
        self.depth -= 1
        self._add_line("}", open_=True)
        self.line_has.add("group")
        return merge.output[0]

    def _walk_from(self, node, merge) -> str:
        """A branch from its first node to the merge; returns the tensor the merge reads."""
        if len(self._data(node)) > 1:
            raise self._unsupported(node, "a merge inside a branch that is not its own group")
        self._node(node)
        return self._walk(node.output[0], merge)

    def _unsupported(self, node, why: str = "") -> DLError:
        name = node.name or node.output[0]
        return _refuse(self.path, f"node '{name}' ({node.op_type}, opset {self.opset}) is not supported"
                                  + (f": {why}" if why else ""),
                       "dlc imports dense, conv, batchnorm, pooling, flatten and activation layers, and residual "
                       "and parallel paths of them")

    def _attrs(self, node) -> dict:
        from onnx import helper
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def _add_line(self, text: str, weights: dict | None = None, open_: bool = False) -> None:
        self.lines.append("    " * self.depth + text)
        if weights is not None:
            self.layers.append(weights)
        self.line_open, self.line_has = open_, set()

    def _node(self, node) -> None:
        op, a = node.op_type, self._attrs(node)
        if op in SKIPPED:
            return
        if op in ACTIVATIONS:
            self._activation(node, ACTIVATIONS[op], a)
        elif op == "Gemm":
            if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                raise self._unsupported(node, "Gemm with transA, alpha or beta other than 0, 1, 1")
            w = self.consts[node.input[1]]
            w = w.T if a.get("transB", 0) else w
            bias = self.consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            self._dense(node, w, bias)
        elif op == "MatMul":
            self._dense(node, self.consts[node.input[1]], None)
        elif op == "Add" and self.lines and self.layers and self.layers[-1]["op"] == "dense" \
                and "bias" not in self.layers[-1] and self.line_open and not self.line_has:
            self.layers[-1]["bias"] = self.consts[node.input[1]].reshape(-1)  # MatMul + Add: the dense's bias
            self.lines[-1] = self.lines[-1].replace(" bias=false", "")
        elif op == "Conv":
            self._conv(node, a)
        elif op == "BatchNormalization":
            self._batchnorm(node, a)
        elif op in ("MaxPool", "AveragePool"):
            self._pool(node, a, "maxpool" if op == "MaxPool" else "avgpool")
        elif op in ("GlobalAveragePool", "GlobalMaxPool"):
            self._add_line("globalavgpool" if op == "GlobalAveragePool" else "globalmaxpool")
            self.rank = -1  # (N, C, 1, 1) in ONNX: a vector to dlc; the Flatten after it is a no-op
        elif op == "Flatten" or (op == "Reshape" and self._flattens(node)):
            if self.rank != -1:
                self._add_line("flatten")
            self.rank = 1
        else:
            raise self._unsupported(node)

    def _flattens(self, node) -> bool:
        shape = self.consts.get(node.input[1])
        return shape is not None and shape.ndim == 1 and len(shape) == 2 and (-1 in shape.tolist() or 0 in shape.tolist())

    def _activation(self, node, name: str, a: dict) -> None:
        if name == "softmax" and a.get("axis", -1 if self.opset >= 13 else 1) not in (1, -1):
            raise self._unsupported(node, f"softmax over axis {a['axis']}")
        keys = ""
        if name == "leaky_relu":
            keys = f" alpha={_num(a.get('alpha', 0.01))}"
        elif name == "elu" and a.get("alpha", 1.0) != 1.0:
            keys = f" alpha={_num(a['alpha'])}"
        if self.line_open and "activation" not in self.line_has:
            self.lines[-1] += f" {name}{keys}"
            self.line_has.add("activation")
        else:
            self._add_line(f"{name}{keys}")

    def _dense(self, node, w: np.ndarray, bias) -> None:
        if self.rank not in (1, -1):
            raise self._unsupported(node, "a dense layer over an image (dlc flattens first)")
        layer = {"op": "dense", "weight": w.astype(np.float32)}
        if bias is not None:
            layer["bias"] = np.asarray(bias, np.float32).reshape(-1)
        self._add_line(f"dense {w.shape[1]}" + ("" if bias is not None else " bias=false"), layer, open_=True)
        self.rank = 1

    def _conv(self, node, a: dict) -> None:
        w = self.consts[node.input[1]].astype(np.float32)
        bias = self.consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if a.get("group", 1) != 1:
            raise self._unsupported(node, f"a grouped convolution (group={a['group']})")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise self._unsupported(node, "auto_pad (export with explicit pads)")
        k = list(w.shape[2:])
        strides, dil = a.get("strides", [1] * len(k)), a.get("dilations", [1] * len(k))
        pads = a.get("pads", [0] * 2 * len(k))
        if pads[:len(k)] != pads[len(k):]:
            raise self._unsupported(node, f"asymmetric pads {pads}")
        layer = {"op": "conv1d" if len(k) == 1 else "conv", "weight": w}
        if bias is not None:
            layer["bias"] = np.asarray(bias, np.float32)
        if len(k) == 1:
            text = f"conv1d {w.shape[0]} kernel={k[0]}" + _unless(" stride=", strides, 1) + _unless(" dilation=", dil, 1)
        else:
            if any(d != 1 for d in dil):
                raise self._unsupported(node, f"a dilated 2-D convolution (dilations {dil})")
            text = f"conv {w.shape[0]} kernel={_dims(k)}" + _unless(" stride=", strides, 1)
        self._add_line(text + _unless(" pad=", pads[:len(k)], 0) + ("" if bias is not None else " bias=false"),
                       layer, open_=True)

    def _batchnorm(self, node, a: dict) -> None:
        gamma, beta, mean, var = (self.consts[i].astype(np.float32) for i in node.input[1:5])
        layer = {"op": "batchnorm", "gamma": gamma, "beta": beta, "running_mean": mean, "running_var": var}
        keys = f" eps={_num(a.get('epsilon', 1e-5))} momentum={_num(a.get('momentum', 0.9))}"
        if self.line_open and not self.line_has - {"group"}:
            if "group" not in self.line_has and "bias" in self.layers[-1]:  # a layer before batchnorm drops its bias unless told to keep it
                self.lines[-1] += " bias=true"
            self.lines[-1] += " batchnorm" + keys  # (the modifier takes the op's keys on its line)
            self.layers.append(layer)
            self.line_has.add("batchnorm")
        else:
            self._add_line("batchnorm" + keys, layer)

    def _pool(self, node, a: dict, word: str) -> None:
        k = list(a["kernel_shape"])
        if a.get("ceil_mode", 0):
            raise self._unsupported(node, "ceil_mode=1 (dlc's windows tile the input)")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise self._unsupported(node, "auto_pad (export with explicit pads)")
        pads = a.get("pads", [0] * 2 * len(k))
        if pads[:len(k)] != pads[len(k):]:
            raise self._unsupported(node, f"asymmetric pads {pads}")
        if word == "avgpool" and a.get("count_include_pad", 0) and any(pads):
            raise self._unsupported(node, "count_include_pad=1 with padding (dlc does not count padded cells)")
        strides = a.get("strides", k)
        sizes = (self.shapes.get(node.input[0]) or [])[2:]
        tiles = len(sizes) == len(k) and all(n is not None and (n + 2 * p - kk) % st == 0
                                             for n, p, kk, st in zip(sizes, pads, k, strides))
        self._add_line(f"{word} {_dims(k)}" + ("" if list(strides) == k else f" stride={_dims(strides)}")
                       + _unless(" pad=", pads[:len(k)], 0) + ("" if tiles else " floor"))  # ceil_mode=0: floor


def _dims(v) -> str:
    return str(v[0]) if len(set(v)) == 1 else "x".join(map(str, v))


def _unless(key: str, v, default: int) -> str:
    """` key=V` unless every value is the default (the spec says only what differs)."""
    return "" if all(x == default for x in v) else f"{key}{_dims(v)}"


def _num(v: float) -> str:
    return f"{float(v):.8g}"


def weight_names(graph, layers: list[dict]) -> dict[str, np.ndarray]:
    """A foreign chain's weights under the compiled spec's names: the parameter-holding nodes in graph order."""
    holders = [n for n in graph.nodes if n.params or n.buffers]
    out = {}
    for node, layer in zip(holders, layers):
        assert node.op == layer["op"], (node.op, layer["op"])
        for role, p in list(node.params.items()) + list(node.buffers.items()):
            out[p.name] = layer[role].reshape(p.shape).astype(np.float32)
    return out
