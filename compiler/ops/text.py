"""Text: embedding (token ids -> vectors), position (learned or sinusoidal encodings) and attention
(multi-head self-attention over the steps). A text is `input L tokens`: a sequence of 1 x L token ids
(id 0 pads, 1 is the unknown token), of 1 to L steps, so every op after the embedding sees each text at
its own length (the padding mask, docs/conventions.md).

Attention convention (pinned by tests, written in docs/conventions.md): for x (C, L) with H heads of
d = C/H channels, [q; k; v] = W^T x + b (W: C x 3C, as torch's in_proj transposed), per head
softmax(q^T k / sqrt(d)) with the keys past a text's length (and, `causal`, after the query) left out,
the heads concatenated and projected by out_weight (C x C) and out_bias.
"""

from __future__ import annotations

import math

from ..attrs import Attr
from ..lazy_numpy import lazy_numpy
from .base import Op, ParamSpec, ShapeError, register

np = lazy_numpy(__name__)  # (dlc check imports no NumPy: only the sinusoids need it)


def sinusoid(channels: int, steps: int):
    """The sinusoidal encodings of Vaswani et al. (2017), channels x steps (float64): channel 2i is
    sin(t / 10000^(2i/C)), channel 2i+1 its cosine."""
    t = np.arange(steps, dtype=np.float64)[None, :]
    i = np.arange(channels)[:, None]
    angle = t / np.power(10000.0, (i - i % 2) / channels)
    return np.where(i % 2 == 0, np.sin(angle), np.cos(angle))


@register
class Embedding(Op):
    name = "embedding"
    kind = "layer"
    inline = True  # its line may carry dropout= (and layernorm)
    reads = "int64"
    doc = "token ids -> DIM-channel vectors, a row of a VOCAB x DIM table per id (id 0, the padding: zeros)"
    attrs = {
        "dim": Attr("int", min=1, doc="channels of each token's vector"),
        "vocab": Attr("int", min=3, max=2**24, doc="rows of the table: the tokenizer keeps the VOCAB - 2 most "
                                                  "frequent training tokens (ids 2 ...; 0 pads, 1 is unknown)"),
    }
    positional = ("dim",)
    ranks = (2,)
    examples = [((1, 5), {"dim": 3, "vocab": 7}), ((1, 3), {"dim": 2, "vocab": 4})]

    def infer(self, shape, a):
        self.check_rank(shape)
        if shape[0] != 1:
            raise ShapeError(f"embedding reads token ids (input L tokens), but its input is {shape[0]}x{shape[1]}",
                             "write input L tokens, e.g. input 64 tokens")
        return (a["dim"], shape[1])

    def params(self, shape, a):
        return [ParamSpec("weight", (a["vocab"], a["dim"]), 1, a["dim"], init="padded_normal")]

    def to_onnx(self, g, x, p, a, shape):
        vectors = g.node("Gather", [p["weight"], x], axis=0)  # ids (N, L) -> (N, L, DIM)
        real = g.node("Unsqueeze", [g.node("Cast", [g.node("Greater", [x, g.ints([0])])], to=1), g.ints([2])])
        return g.node("Transpose", [g.node("Mul", [vectors, real])], perm=[0, 2, 1])  # the padding id: zeros

    def flops(self, in_shape, out_shape, a):
        return 0  # a lookup


@register
class Position(Op):
    name = "position"
    kind = "layer"
    doc = "adds each step's position encoding: learned (a C x L table) or sinusoidal (fixed)"
    attrs = {"sinusoidal": Attr("bool", False, searchable=False,
                                doc="the fixed sin/cos encodings (Vaswani et al. 2017) instead of a learned table")}
    ranks = (2,)
    examples = [((3, 4), {"sinusoidal": False}), ((4, 3), {"sinusoidal": True})]

    def params(self, shape, a):
        return [] if a["sinusoidal"] else [ParamSpec("weight", tuple(shape), 1, shape[0], init="normal", decay=False)]

    def table(self, shape, a, p):
        """The (C, L) encodings: the learned parameter, or the sinusoids (float32)."""
        return p["weight"] if not a["sinusoidal"] else sinusoid(*shape).astype(np.float32)

    def to_onnx(self, g, x, p, a, shape):
        table = p["weight"] if not a["sinusoidal"] else g.initializer(g.fresh("sinusoid"),
                                                                      sinusoid(*shape).astype(np.float32))
        steps = g.node("Slice", [g.node("Shape", [x]), g.ints([2]), g.ints([3])])  # this batch's length
        return g.node("Add", [x, g.node("Slice", [table, g.ints([0]), steps, g.ints([1])])])


@register
class Attention(Op):
    name = "attention"
    kind = "layer"
    doc = "multi-head self-attention over the steps (scaled dot product; padding keys masked; causal optional)"
    attrs = {
        "heads": Attr("int", 1, min=1, doc="heads: the channels are split into HEADS groups of C/HEADS"),
        "causal": Attr("bool", False, searchable=False, doc="each step attends to itself and the steps before it only"),
        "attention_dropout": Attr("float", 0.0, min=0, max=1, max_open=True,
                                  doc="dropout on the attention weights in training (torch's MultiheadAttention dropout)"),
    }
    ranks = (2,)
    examples = [((4, 3), {"heads": 2, "causal": False, "attention_dropout": 0.0}),
                ((3, 4), {"heads": 1, "causal": True, "attention_dropout": 0.0}),
                ((4, 5), {"heads": 4, "causal": False, "attention_dropout": 0.0})]

    def infer(self, shape, a):
        self.check_rank(shape)
        if shape[0] % a["heads"]:
            raise ShapeError(f"attention heads={a['heads']} must divide the {shape[0]} channels it reads",
                             f"use heads that divide {shape[0]}, or an embedding of a multiple of {a['heads']}")
        return tuple(shape)

    def params(self, shape, a):
        c = shape[0]
        return [ParamSpec("weight", (c, 3 * c), c, c, init="xavier_uniform"),
                ParamSpec("bias", (3 * c,), init="zeros", decay=False),
                ParamSpec("out_weight", (c, c), c, c, init="xavier_uniform"),
                ParamSpec("out_bias", (c,), init="zeros", decay=False)]

    def to_onnx(self, g, x, p, a, shape):
        c, h = shape[0], a["heads"]
        d = c // h
        steps_last = g.node("Transpose", [x], perm=[0, 2, 1])  # (N, L, C)
        qkv = g.node("Add", [g.node("MatMul", [steps_last, p["weight"]]), p["bias"]])
        heads = []
        for part in g.node_outputs("Split", [qkv, g.ints([c, c, c])], 3, axis=2):
            split = g.node("Reshape", [part, g.ints([0, 0, h, d])])
            heads.append(g.node("Transpose", [split], perm=[0, 2, 1, 3]))  # (N, H, L, d)
        q, k, v = heads
        scores = g.node("Mul", [g.node("MatMul", [q, g.node("Transpose", [k], perm=[0, 1, 3, 2])]),
                                g.scalar(1.0 / math.sqrt(d))])
        if a["causal"]:
            ones = g.node("Expand", [g.scalar(1.0), g.node("Concat", [g.node("Slice", [g.node("Shape", [x]),
                                                                                 g.ints([2]), g.ints([3])])] * 2,
                                                           axis=0)])
            keep = g.node("Cast", [g.node("Trilu", [ones], upper=0)], to=9)  # bool: the key is not after the query
            scores = g.node("Where", [keep, scores, g.scalar(float("-inf"))])
        weights = g.node("Softmax", [scores], axis=-1)
        mixed = g.node("Transpose", [g.node("MatMul", [weights, v])], perm=[0, 2, 1, 3])  # (N, L, H, d)
        merged = g.node("Reshape", [mixed, g.ints([0, 0, c])])
        y = g.node("Add", [g.node("MatMul", [merged, p["out_weight"]]), p["out_bias"]])
        return g.node("Transpose", [y], perm=[0, 2, 1])

    def flops(self, in_shape, out_shape, a):
        c, steps = in_shape
        return 2 * steps * c * 4 * c + 2 * 2 * steps * steps * c + 5 * a["heads"] * steps * steps
