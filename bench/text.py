"""Text: the attention step and tokenization throughput, on this CPU.

1. One training step (forward, backward, Adam) of a one-block pre-LN encoder over token ids -- embedding 64
   (vocab 5,000), residual { layernorm; attention heads=4 }, mean over the steps, dense 2 softmax -- on a
   batch of 32 texts of 64 tokens, and on 32 texts of 8 to 64 tokens (padded: the key padding mask):
   dlc's NumPy engine, dlc's torch engine, and the same network written by hand in PyTorch
   (nn.Embedding, nn.LayerNorm, nn.MultiheadAttention(batch_first) with key_padding_mask, a masked mean,
   nn.Linear, torch.optim.Adam, cross-entropy). Timings alternate; the fastest of RUNS, and the median.
2. The exported attention in onnxruntime: dlc's lowering (MatMul, Split, Reshape, Transpose, Softmax)
   against onnxruntime's fused com.microsoft Attention contrib op on the same packed C x 3C weights, on one
   batch of 32 texts of 64 tokens and on one text (ms per run, median of RUNS x 50 runs), outputs compared.
3. Tokenization of the 4,866 reviews of ../shared/data/rotten_tomatoes.csv (texts/s): dlc's words and chars
   tokenizers and its bpe (Hugging Face tokenizers' encode_batch) from texts to the padded id array, and the
   string-in ONNX front (StringNormalizer, Tokenizer, LabelEncoder) one text per run in onnxruntime.

    python bench/text.py [RUNS=5] [STEPS=20]
"""

from __future__ import annotations

import csv
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import dlc
from dlc.runtime.numpy_engine.engine import NumpyEngine
from dlc.runtime.torch_engine.engine import TorchEngine
from dlc.runtime.weights import init_params

ROOT = Path(__file__).resolve().parent.parent
SPEC = """model enc {
    input 64 tokens
    embedding 64 vocab=5000
    residual { layernorm; attention heads=4 }
    globalavgpool
    dense 2 softmax
}
optimizer adam lr=1e-3
train batch=32 seed=0
"""
N, L, V, C, H = 32, 64, 5000, 64, 4


class HandEncoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(V, C, padding_idx=0)
        self.norm = torch.nn.LayerNorm(C)
        self.att = torch.nn.MultiheadAttention(C, H, batch_first=True)
        self.out = torch.nn.Linear(C, 2)

    def forward(self, ids, pad):
        x = self.emb(ids)
        h = self.norm(x)
        x = x + self.att(h, h, h, key_padding_mask=pad, need_weights=False)[0]
        keep = (~pad).to(x.dtype)[:, :, None]
        x = x * keep
        return self.out(x.sum(1) / keep.sum(1))


def batch(rng, variable: bool):
    lengths = rng.integers(8, L + 1, N) if variable else np.full(N, L)
    x = np.full((N, 1, L), np.nan, np.float32)
    for k, n in enumerate(lengths):
        x[k, 0, :n] = rng.integers(2, V, n)
    return x, rng.integers(0, 2, N)


def time_steps(fn, steps):
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t) / steps * 1e3


def attention_step(runs: int, steps: int) -> None:
    torch.set_num_threads(torch.get_num_threads())
    spec = dlc.compile(SPEC, "enc.dl", lint=False)
    values = init_params(spec.graph, 0)
    numpy_engine = NumpyEngine(spec, {k: v.copy() for k, v in values.items()})
    torch_engine = TorchEngine(spec, {k: v.copy() for k, v in values.items()}, dtype=torch.float32,
                               device=torch.device("cpu"))
    hand = HandEncoder()
    opt = torch.optim.Adam(hand.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    for variable in (False, True):
        x, y = batch(np.random.default_rng(0), variable)
        ids = torch.as_tensor(np.nan_to_num(x[:, 0], nan=0).astype(np.int64))
        pad = ids == 0
        yt = torch.as_tensor(y)

        def hand_step():
            opt.zero_grad()
            loss = loss_fn(hand(ids, pad), yt)
            loss.backward()
            opt.step()
            float(loss.detach())

        runs_ms: dict[str, list[float]] = {"dlc torch engine": [], "hand-written torch": [], "dlc numpy engine": []}
        for fn in (lambda: torch_engine.step(x, y, 1e-3), hand_step, lambda: numpy_engine.step(x, y, 1e-3)):
            fn()  # warm-up
        for _ in range(runs):
            runs_ms["dlc torch engine"].append(time_steps(lambda: torch_engine.step(x, y, 1e-3), steps))
            runs_ms["hand-written torch"].append(time_steps(hand_step, steps))
            runs_ms["dlc numpy engine"].append(time_steps(lambda: numpy_engine.step(x, y, 1e-3), steps))
        hand_best = min(runs_ms["hand-written torch"])
        print(f"attention step, {N} texts of {'8 to ' if variable else ''}{L} tokens (ms/step: fastest of {runs}, median):")
        for name, ms in runs_ms.items():
            print(f"  {name:20s} {min(ms):7.2f}  {statistics.median(ms):7.2f}   {min(ms) / hand_best:5.2f}x the hand loop")


def onnx_attention(runs: int) -> None:
    from onnx import TensorProto, helper
    from dlc.compiler.onnx_export import OnnxBuilder
    from dlc.compiler.ops import REGISTRY
    from dlc.runtime.tools.onnx_runner import OnnxModel
    rng = np.random.default_rng(0)
    w = (rng.normal(0, 0.1, (C, 3 * C))).astype(np.float32)
    b = (rng.normal(0, 0.1, 3 * C)).astype(np.float32)
    wo = (rng.normal(0, 0.1, (C, C))).astype(np.float32)
    bo = (rng.normal(0, 0.1, C)).astype(np.float32)
    attrs = dict(REGISTRY["attention"].defaults(), heads=H)

    def model(fused: bool):
        g = OnnxBuilder()
        p = {k: g.initializer(k, v) for k, v in (("weight", w), ("bias", b), ("out_weight", wo), ("out_bias", bo))}
        if fused:  # input (N, C, L) -> (N, L, C) -> Attention -> out projection -> (N, C, L)
            steps_last = g.node("Transpose", ["x"], perm=[0, 2, 1])
            mixed = g.node("Attention", [steps_last, p["weight"], p["bias"]], domain="com.microsoft", num_heads=H)
            y = g.node("Add", [g.node("MatMul", [mixed, p["out_weight"]]), p["out_bias"]])
            out = g.node("Transpose", [y], perm=[0, 2, 1])
        else:
            out = REGISTRY["attention"].to_onnx(g, "x", p, attrs, (C, L))
        graph = helper.make_graph(g.nodes, "att", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", C, "L"])],
                                  [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                                  initializer=list(g.initializers.values()))
        opsets = [helper.make_opsetid("", 18)] + ([helper.make_opsetid("com.microsoft", 1)] if fused else [])
        return OnnxModel(helper.make_model(graph, opset_imports=opsets))

    lowered, fused = model(False), model(True)
    print(f"exported attention in onnxruntime (C={C}, {H} heads; ms per run: median of {runs} x 50):")
    for n in (32, 1):
        x = rng.normal(0, 1, (n, C, L)).astype(np.float32)
        a, f = (m.session.run(None, {"x": x})[0] for m in (lowered, fused))
        times = {}
        for name, m in (("dlc's MatMul/Softmax lowering", lowered), ("com.microsoft Attention", fused)):
            times[name] = statistics.median(_seconds(lambda: [m.session.run(None, {"x": x}) for _ in range(50)]) / 50 * 1e3
                                            for _ in range(runs))
        print(f"  batch {n:2d} x {L} tokens: " + ", ".join(f"{k} {v:.3f} ms" for k, v in times.items())
              + f"; outputs differ by {float(np.max(np.abs(a - f))):.1e}")


def tokenization(runs: int) -> None:
    from dlc.compiler.onnx_export import OnnxBuilder
    from dlc.compiler.onnx_text import TEXT_OPSETS, text_front
    from dlc.runtime.data.tokenize import TextEncoder
    from dlc.runtime.tools.onnx_runner import OnnxModel
    from onnx import TensorProto, helper
    path = ROOT.parent / "shared" / "data" / "rotten_tomatoes.csv"
    if not path.exists():
        print(f"tokenization: {path} is not here; skipped")
        return
    texts = [r["text"] for r in csv.DictReader(path.open(encoding="utf-8"))]
    print(f"tokenization of {len(texts):,} reviews into N x 1 x 64 ids (texts/s: fastest of {runs}):")
    for kind, rows in (("words", 12000), ("chars", 200), ("bpe", 4000)):
        enc = TextEncoder.fit(kind, texts, rows, 1, 64)
        enc.encode(texts[:10])
        best = min(_seconds(lambda: enc.encode(texts)) for _ in range(runs))
        print(f"  dlc {kind:6s} {len(texts) / best:12,.0f}")
        if kind in ("words", "chars"):
            g = OnnxBuilder()
            ids = text_front(g, "text", kind, enc.vocab, enc.length)
            graph = helper.make_graph(g.nodes, "front", [helper.make_tensor_value_info("text", TensorProto.STRING, [1])],
                                      [helper.make_tensor_value_info(ids, TensorProto.INT64, [1, None])],
                                      initializer=list(g.initializers.values()))
            model = OnnxModel(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)] + [
                helper.make_opsetid(d, v) for d, v in TEXT_OPSETS.items()]))
            sample = [np.array([t], dtype=object) for t in texts[:1000]]
            best = min(_seconds(lambda: [model.session.run(None, {"text": t}) for t in sample]) for _ in range(runs))
            print(f"  onnxruntime string-in front ({kind}), one text per run {len(sample) / best:12,.0f}")


def _seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    attention_step(runs, steps)
    onnx_attention(runs)
    tokenization(runs)
