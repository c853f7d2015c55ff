"""Training throughput (samples/s) of the NumPy trainer on synthetic data, and of PyTorch eager
for the same nets in the same run when torch is installed (test-time reference only).

    python bench/train_throughput.py [--steps 30]

Nets: MLP 784-512-512-10 (batchnorm, relu, dropout 0.5, adam, batch 128) and LeNet
(1x28x28, conv20-5 relu, maxpool 2, conv50-5 relu batchnorm, maxpool 2, dense 500 relu dropout 0.5,
dense 10, adam, batch 64).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import dlc
from dlc.runtime.losses import loss_and_grad
from dlc.runtime.numpy_engine.network import Network, init_params
from dlc.runtime.numpy_engine.optimizers import Optimizer

MLP = """model mlp {
    input 784
    dense 512 relu batchnorm dropout=0.5
    dense 512 relu batchnorm dropout=0.5
    dense 10 softmax
}
optimizer adam lr=1e-3
"""
LENET = """model lenet {
    input 1x28x28
    conv 20 kernel=5 relu
    maxpool 2
    conv 50 kernel=5 relu batchnorm
    maxpool 2
    flatten
    dense 500 relu dropout=0.5
    dense 10 softmax
}
optimizer adam lr=1e-3
"""


def dlc_throughput(text: str, batch: int, steps: int) -> float:
    spec = dlc.compile(text)
    values = init_params(spec.graph, 0)
    net = Network(spec.graph, values)
    opt = Optimizer("adam", spec["optimizer"].values, values)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch,) + spec.graph.input_shape).astype(np.float32)
    y = rng.integers(0, 10, batch)
    upto = len(spec.graph.nodes) - 1

    def step():
        out = net.forward(x, training=True, rng=rng, upto=upto)
        _, d = loss_and_grad("cross_entropy", out, y, fused=True)
        opt.step(net.backward(d), 1e-3)

    return samples_per_second(step, batch, steps)


def samples_per_second(step, batch: int, steps: int) -> float:
    for _ in range(3):  # warm-up
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t)


def torch_net(kind: str):
    """The same nets as MLP and LENET above, in PyTorch (bench/e2e_vs_torch.py uses them too)."""
    from torch import nn
    if kind == "mlp":
        return nn.Sequential(nn.Linear(784, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(), nn.Dropout(0.5),
                             nn.Linear(512, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(), nn.Dropout(0.5),
                             nn.Linear(512, 10))
    return nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(20, 50, 5, bias=False), nn.BatchNorm2d(50), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Dropout(0.5), nn.Linear(500, 10))


def torch_throughput(kind: str, batch: int, steps: int) -> float | None:
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    torch.manual_seed(0)
    net = torch_net(kind)
    x = torch.randn(batch, 784) if kind == "mlp" else torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss_fn(net(x), y).backward()
        opt.step()

    return samples_per_second(step, batch, steps)


def matmul_peak(n: int = 2048, reps: int = 5) -> float:
    """This machine's float32 matmul rate (GFLOP/s): the best of `reps` n x n x n products through NumPy's BLAS."""
    a = np.random.default_rng(0).normal(size=(n, n)).astype(np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def _timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    peak = matmul_peak()
    print(f"float32 matmul peak (2048^3 through NumPy's BLAS): {peak:.0f} GFLOP/s")
    for name, text, batch in (("mlp", MLP, 128), ("lenet", LENET, 64)):
        ours = dlc_throughput(text, batch, args.steps)
        ref = torch_throughput(name, batch, args.steps)
        # a training step costs three times the forward FLOPs (forward, and the two products of backward)
        rate = 3 * sum(n.flops for n in dlc.compile(text).graph.nodes) * ours / 1e9
        line = f"{name:6s} batch {batch:4d}: dlc {ours:9.0f} samples/s ({rate:.0f} GFLOP/s, {rate / peak:.2f} of peak)"
        if ref is not None:
            import torch
            line += f" | torch {torch.__version__} eager {ref:9.0f} samples/s | ratio dlc/torch {ours / ref:.2f}x"
        else:
            line += " | torch not installed (pip install torch==2.13.0 for the reference)"
        print(line, flush=True)


if __name__ == "__main__":
    main()
