"""Raw text in, token ids out, as ONNX nodes onnxruntime runs: the front of an exported string-in model
for the word and character tokenizers (runtime/data/tokenize.py runs the same rules in Python).

    text [1] -> StringNormalizer (lowercase, locale C.UTF-8) -> Tokenizer (com.microsoft: the token
    pattern in RE2's syntax) -> LabelEncoder (ai.onnx.ml: token -> id, unknown -> 1) -> the first L ids
    ([1] for a text with no token) -> (1, L') int64, what the model's embedding reads.

A batch of texts [N] goes through an ONNX Loop, one text per iteration: each text is tokenized and run at
its own length, as dlc runs it (padding texts to the batch's longest would need a padding mask inside the
graph, which the exported graph does not carry); the outputs are stacked, (N, K).
"""

from __future__ import annotations

PAD, UNK = "<pad>", "<unk>"  # ids 0 and 1
TOKENIZERS = ("words", "chars", "bpe", "wordpiece")  # data ... tokens=: the last two are subword tokenizers
IN_GRAPH = ("words", "chars")  # the tokenizers a string-in model runs itself
WORD_PATTERN_PY = r"[\w']+"  # Python's \w: letters, digits (Unicode) and _
WORD_PATTERN_RE2 = r"[\p{L}\p{N}_']+"
CHAR_PATTERN_PY = CHAR_PATTERN_RE2 = r"."  # every character but a newline
LOCALE = "C.UTF-8"  # StringNormalizer's: lowercase every code point (the default en_US.UTF-8 is often missing)
TEXT_OPSETS = {"com.microsoft": 1, "ai.onnx.ml": 2}


ONE_TEXT = "text_one"  # inside the loop: this iteration's text, shape [1]


def loop_over_texts(g, out: str, texts: str, output: str, width: int) -> None:
    """Move every node built so far (the front and the model, reading ONE_TEXT, writing `out` (1, width))
    into the body of a Loop over the texts [N]; `output` (N, width) in the graph itself."""
    from onnx import TensorProto, helper
    body_nodes, g.nodes = g.nodes, []
    index, cond = "text_index", "text_cond"
    one = g.node("Reshape", [g.node("Gather", [texts, index]), g.ints([1])], name=ONE_TEXT)
    head, g.nodes = g.nodes, []
    cond_out = g.node("Identity", [cond], name="text_cond_out")
    row = g.node("Identity", [out], name="text_output")
    tail, g.nodes = g.nodes, []
    assert one == ONE_TEXT
    body = helper.make_graph(head + body_nodes + tail, "one_text",
                             [helper.make_tensor_value_info(index, TensorProto.INT64, []),
                              helper.make_tensor_value_info(cond, TensorProto.BOOL, [])],
                             [helper.make_tensor_value_info(cond_out, TensorProto.BOOL, []),
                              helper.make_tensor_value_info(row, TensorProto.FLOAT, [1, width])])
    count = g.node("Squeeze", [g.node("Shape", [texts]), g.ints([0])])
    stacked = g.node("Loop", [count, ""], body=body)  # (N, 1, width)
    g.node("Reshape", [stacked, g.ints([-1, width])], name=output)


def text_front(g, text: str, kind: str, vocab: list[str], length: int) -> str:
    """Nodes from the string input `text` (shape [1]) to its token ids (1, 1..length) int64."""
    import numpy as np
    lower = g.node("StringNormalizer", [text], case_change_action="LOWER", locale=LOCALE)
    rows = g.node("Reshape", [lower, g.ints([1, -1])])  # (1, 1): a row per text, as Tokenizer wants
    tokens = g.node("Tokenizer", [rows], domain="com.microsoft", mark=0, mincharnum=1, pad_value="#!pad",
                    tokenexp=WORD_PATTERN_RE2 if kind == "words" else CHAR_PATTERN_RE2)
    flat = g.node("Reshape", [tokens, g.ints([1, -1])])  # (1, T), T = 0 for a text with no token
    ids = g.node("LabelEncoder", [flat], domain="ai.onnx.ml", keys_strings=list(vocab[2:]),
                 values_int64s=list(range(2, len(vocab))), default_int64=1)
    with_unknown = g.node("Concat", [ids, g.initializer(g.fresh("unknown"), np.array([[1]], np.int64))], axis=1)
    count = g.node("Slice", [g.node("Shape", [ids]), g.ints([1]), g.ints([2])])
    end = g.node("Min", [g.node("Max", [count, g.ints([1])]), g.ints([length])])
    return g.node("Slice", [with_unknown, g.ints([0]), end, g.ints([1])], name="token_ids")
