"""End to end: `dlc.train` against a plain PyTorch loop on the same data, epochs and batch size
(the issue-11 baseline). Data: scikit-learn's digits upsampled to 28x28 (real images), split by dlc;
both sides train on the same training split. Runs alternate; the median of the ratios is reported.

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
from dlc.runtime.data import prepare
from dlc.runtime.trainer import train

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import LENET, MLP, torch_net  # noqa: E402

# the step benchmark's nets, with data and training lines
NETS = {kind: text.replace("optimizer adam lr=1e-3\n", f"data digits resize=28{reshape} scale=0.0625 test=0.2\n"
                           f"optimizer adam lr=1e-3\ntrain epochs=%d batch={batch} validation=0.1 seed=0\n")
        for kind, text, reshape, batch in (("mlp", MLP, " reshape=784", 128), ("lenet", LENET, "", 64))}


def torch_train(kind, splits, epochs, batch) -> tuple[float, float]:
    """(seconds, test accuracy): randperm batches, zero_grad, backward, step; a validation pass per epoch."""
    import torch
    torch.manual_seed(0)
    t0 = time.perf_counter()
    net = torch_net(kind)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
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


def dlc_train(spec, splits) -> tuple[float, float]:
    t0 = time.perf_counter()
    r = train(spec, write=False, progress=False, splits=splits)
    return time.perf_counter() - t0, r.metrics["test"]["accuracy"]


def main(runs: int = 5, epochs: int = 5) -> None:
    for kind, text in NETS.items():
        spec = dlc.compile(text % epochs)
        splits = prepare(spec)
        batch = spec["train"]["batch"]
        ratios, ours, theirs = [], [], []
        for _ in range(runs):
            (td, acc_d), (tt, acc_t) = dlc_train(spec, splits), torch_train(kind, splits, epochs, batch)
            ours.append(td)
            theirs.append(tt)
            ratios.append(tt / td)
        print(f"{kind:6s} {len(splits.x_train)} samples x {epochs} epochs, batch {batch}: "
              f"dlc {statistics.median(ours):.2f} s (test {100 * acc_d:.1f}%), torch {statistics.median(theirs):.2f} s "
              f"(test {100 * acc_t:.1f}%); speed dlc/torch median {statistics.median(ratios):.2f}x "
              f"(range {min(ratios):.2f}-{max(ratios):.2f}, {runs} alternating runs)", flush=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
