"""End to end: `dlc.train` against a plain PyTorch loop on the same data, epochs and batch size
(the issue-11 baseline). Data: scikit-learn's digits upsampled to 28x28 (real images) for the MLP
and LeNet, the 8x8 digits for the small ResNet (specs/resnet_digits.dl without its l2 and schedule),
split by dlc; both sides train on the same training split. Runs alternate; the median of the ratios
is reported. Trainer overhead: the same number of bare TrainStep calls on the same batch shapes,
timed in the same run, against dlc.train's wall (which adds shuffling, batching, the per-epoch
validation pass and the final train/test evaluation).

    python bench/e2e_vs_torch.py [RUNS=5] [EPOCHS=5]

torch is a test-time reference only: pip install torch==2.13.0 (CPU build, on local disk here).
Both sides use the machine's default thread counts.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path


import dlc
from dlc.runtime.data.splits import prepare
from dlc.runtime.trainer import train

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import LENET, MLP, torch_net  # noqa: E402

# the step benchmark's nets, with data and training lines
NETS = {kind: text.replace("optimizer adam lr=1e-3\n", f"data digits resize=28{reshape} scale=0.0625 test=0.2\n"
                           f"optimizer adam lr=1e-3\ntrain epochs=%d batch={batch} validation=0.1 seed=0\n")
        for kind, text, reshape, batch in (("mlp", MLP, " reshape=784", 128), ("lenet", LENET, "", 64))}
RESNET = (Path(__file__).resolve().parent.parent / "specs/resnet_digits.dl").read_text()
NETS["resnet"] = (RESNET.replace("regularize l2=5e-4\n", "").replace("schedule cosine\n", "")
                  .replace("epochs=60", "epochs=%d"))


def torch_resnet():
    """specs/resnet_digits.dl in PyTorch: stem, 2 basic blocks of 16, one of 32 with a projection, one of 32."""
    from torch import nn

    class Basic(nn.Module):
        def __init__(self, cin, c, stride):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(cin, c, 3, stride, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                                      nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
            self.short = (nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))
                          if stride != 1 or cin != c else nn.Identity())

        def forward(self, x):
            return (self.body(x) + self.short(x)).relu()

    return nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                         Basic(16, 16, 1), Basic(16, 16, 1), Basic(16, 32, 2), Basic(32, 32, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def torch_train(kind, splits, epochs, batch) -> tuple[float, float]:
    """(seconds, test accuracy): randperm batches, zero_grad, backward, step; a validation pass per epoch."""
    import torch
    torch.manual_seed(0)
    t0 = time.perf_counter()
    net = torch_resnet() if kind == "resnet" else torch_net(kind)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3 if kind == "resnet" else 1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = torch.from_numpy(splits.x_train), torch.from_numpy(splits.y_train)
    xv, yv = torch.from_numpy(splits.x_val), torch.from_numpy(splits.y_val)
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss_fn(net(x[idx]), y[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            loss_fn(net(xv), yv).item()
    net.eval()
    with torch.no_grad():
        acc = float((net(torch.from_numpy(splits.x_test)).argmax(1) == torch.from_numpy(splits.y_test)).float().mean())
    return time.perf_counter() - t0, acc


def dlc_train(spec, splits) -> tuple[float, float, float]:
    """(wall seconds, test accuracy, seconds of the epochs themselves: steps and validation passes)."""
    t0 = time.perf_counter()
    r = train(spec, write=False, progress=False, splits=splits)
    return time.perf_counter() - t0, r.metrics["test"]["accuracy"], sum(row["seconds"] for row in r.history)


def bare_steps(spec, splits, epochs) -> float:
    """Seconds for the engine steps alone that dlc.train makes (same batch shapes, no evaluation)."""
    from dlc.runtime.numpy_engine.network import init_params
    from dlc.runtime.numpy_engine.engine import NumpyEngine
    import numpy as np
    batch = spec["train"]["batch"]
    step = NumpyEngine(spec, init_params(spec.graph, 0))
    rng = np.random.default_rng(0)
    n = len(splits.x_train)
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(n)
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            step.step(splits.x_train[idx], splits.y_train[idx], 1e-3)
    return time.perf_counter() - t0


def main(runs: int = 5, epochs: int = 5) -> None:
    for kind, text in NETS.items():
        spec = dlc.compile(text % epochs)
        splits = prepare(spec)
        batch = spec["train"]["batch"]
        ratios, ours, theirs, overheads, epoch_overheads = [], [], [], [], []
        for _ in range(runs):
            (td, acc_d, t_epochs), (tt, acc_t) = dlc_train(spec, splits), torch_train(kind, splits, epochs, batch)
            ours.append(td)
            theirs.append(tt)
            ratios.append(tt / td)
            bare = bare_steps(spec, splits, epochs)
            overheads.append(td / bare - 1)
            epoch_overheads.append(t_epochs / bare - 1)
        print(f"{kind:6s} {len(splits.x_train)} samples x {epochs} epochs, batch {batch}: "
              f"dlc {statistics.median(ours):.2f} s (test {100 * acc_d:.1f}%), torch {statistics.median(theirs):.2f} s "
              f"(test {100 * acc_t:.1f}%); speed dlc/torch median {statistics.median(ratios):.2f}x "
              f"(range {min(ratios):.2f}-{max(ratios):.2f}, {runs} alternating runs); dlc.train over its bare "
              f"steps: median {100 * statistics.median(overheads):+.0f}% "
              f"(range {100 * min(overheads):+.0f}% to {100 * max(overheads):+.0f}%), of which the epochs "
              f"(steps, batching, validation pass) {100 * statistics.median(epoch_overheads):+.0f}% "
              f"(range {100 * min(epoch_overheads):+.0f}% to {100 * max(epoch_overheads):+.0f}%)", flush=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
