"""The NumPy and torch engines stepped side by side from one shared state (tests/runtime/test_torch_engine.py,
tests/runtime/test_finetune.py and each torchrun process of tests/torchrun_steps.py use it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import dlc
from dlc.runtime.numpy_engine.engine import NumpyEngine
from dlc.runtime.torch_engine.engine import TorchEngine
from dlc.runtime.weights import init_params

CPU = torch.device("cpu")


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-30))


# ---- whole runs --------------------------------------------------------------------------------
def noiseless(path: Path) -> dlc.Spec:
    """A spec of specs/ with its noise off (dropout 0, rrelu as leaky_relu: each engine draws noise from
    its own generator) and its search ranges at their nominal values."""
    import re
    from dlc.compiler.search_space import nominal_spec
    text = re.sub(r"dropout=(choice\([^)]*\)|[\d.]+)", "dropout=0", path.read_text())
    text = re.sub(r"keep=[\d.]+", "keep=1", text)
    text = re.sub(r"(^\s*|[;{]\s*)dropout\s+[\d.]+", r"\1dropout 0", text, flags=re.M).replace("rrelu", "leaky_relu")
    spec = dlc.compile(text, str(path), lint=False)
    return nominal_spec(spec) if spec.ranges else spec


def engines(spec, dtype):
    values = init_params(spec.graph, spec["train"]["seed"], dtype=np.float64 if dtype == torch.float64 else np.float32)
    ne = NumpyEngine(spec, {k: v.copy() for k, v in values.items()})
    te = TorchEngine(spec, {k: v.copy() for k, v in values.items()}, dtype=dtype, device=CPU)
    return ne, te


def batches(spec, splits, dtype, steps):
    """The spec's training batches in the trainer's shuffled order, with the schedule's learning rate."""
    from dlc.compiler.schedules import learning_rate
    tr = spec["train"]
    n = len(splits.x_train)
    batch = n if tr["batch"] == "all" else min(tr["batch"], n)
    rng = np.random.default_rng([tr["seed"], 1])
    epoch = 0
    while True:
        order = rng.permutation(n)
        lr = learning_rate(spec["optimizer"]["lr"], spec["schedule"].kind, spec["schedule"].values, epoch, tr["epochs"])
        for i in range(0, n, batch):
            y = splits.y_train[order[i:i + batch]]
            yield splits.x_train[order[i:i + batch]].astype(dtype), (y.astype(dtype) if y.dtype.kind == "f" else y), lr
            steps -= 1
            if not steps:
                return
        epoch += 1


def compare(path, dtype, steps, bound):
    from dlc.runtime.data.splits import prepare
    spec = noiseless(path)
    splits = prepare(spec)
    ne, te = engines(spec, dtype)
    for step, (x, y, lr) in enumerate(batches(spec, splits, np.float64 if dtype == torch.float64 else np.float32,
                                               steps), 1):
        ln, on = ne.step(x, y, lr)
        lt, ot = te.step(x, y, lr)
        assert rel(ln, lt) <= bound and rel(on, ot) <= bound, step
    w_np, w_t = ne.weights(), te.weights()
    worst = max((rel(w_np[k], w_t[k]), k) for k in w_np)
    assert worst[0] <= bound, worst
    assert ne.opt.t == te.t == steps
    s_np, s_t = ne.optimizer_state(), te.optimizer_state()
    assert sorted(s_np) == sorted(s_t)
    if dtype == torch.float64:  # in float32 a gradient that cancels to ~0 (a bias before batchnorm) is rounding
        assert max((rel(s_np[k], s_t[k]) for k in s_np if k != "__t__"), default=0.0) <= bound
