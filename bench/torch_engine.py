"""The torch engine's step against a hand-written PyTorch loop of the same net (torch.optim.Adam,
nn.CrossEntropyLoss, the same batch), and the NumPy engine against the torch engine, on this CPU.

For each net (the MLP and LeNet of bench/train_throughput.py, specs/resnet_digits.dl, and the
sequence FCN of specs/fcn_gunpoint.dl: conv1d 128/256/128 over 150 steps, and the LSTM of
specs/lstm_basic_motions.dl: 32 units over 6 channels x 100 steps, without its clipping, and the same
with a GRU; and the LSTM of specs/lstm_japanese_vowels.dl on a batch of series of 7 to 29 steps, against
nn.LSTM over packed sequences): STEPS steps
per timing, timings alternating engine / hand loop / NumPy engine; the fastest of RUNS (as timeit
reports: on a shared machine the other timings measure its neighbours), and the median. The engine's
step includes what the trainer needs from it: the batch from NumPy, the loss as a Python float (the
NaN guard) and the outputs back as NumPy (accuracy).

    python bench/torch_engine.py [RUNS=5] [STEPS=30]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import dlc
from dlc.runtime.numpy_engine.engine import NumpyEngine
from dlc.runtime.numpy_engine.network import init_params
from dlc.runtime.torch_engine.engine import TorchEngine

sys.path.insert(0, str(Path(__file__).parent))
from e2e_vs_torch import torch_resnet  # noqa: E402
from train_throughput import LENET, MLP, torch_net  # noqa: E402

# specs/resnet_digits.dl without its l2 (the hand loop has none)
RESNET = (Path(__file__).resolve().parent.parent / "specs/resnet_digits.dl").read_text().replace("regularize l2=5e-4\n", "")
FCN = (Path(__file__).resolve().parent.parent / "specs/fcn_gunpoint.dl").read_text()
NETS = {"mlp": (MLP, 128, (784,)), "lenet": (LENET, 64, (1, 28, 28)), "resnet_digits": (RESNET, 64, (1, 8, 8)),
        "fcn_gunpoint": (FCN, 16, (1, 150)),
        "lstm_basic_motions": ((Path(__file__).resolve().parent.parent / "specs/lstm_basic_motions.dl").read_text()
                               .replace(" clip_norm=1", ""), 8, (6, 100))}
NETS["gru_basic_motions"] = (NETS["lstm_basic_motions"][0].replace("lstm 32", "gru 32"), 8, (6, 100))
NETS["lstm_japanese_vowels"] = ((Path(__file__).resolve().parent.parent / "specs/lstm_japanese_vowels.dl").read_text()
                                .replace(" clip_norm=1", ""), 16, (12, 29))
CLASSES = {"fcn_gunpoint": 2, "lstm_basic_motions": 4, "gru_basic_motions": 4, "lstm_japanese_vowels": 9}
VARIABLE = {"lstm_japanese_vowels": (7, 29)}  # series lengths drawn from this range, NaN after each


class TorchPackedLSTM(torch.nn.Module):
    """specs/lstm_japanese_vowels.dl by hand: nn.LSTM over packed sequences (x with zeros after each series's
    steps, and the lengths), each series's last state into a linear layer."""

    def __init__(self, lengths):
        super().__init__()
        self.lengths = torch.as_tensor(lengths)
        self.lstm = torch.nn.LSTM(12, 64)
        self.out = torch.nn.Linear(64, 9)

    def forward(self, x):
        packed = torch.nn.utils.rnn.pack_padded_sequence(x.permute(2, 0, 1), self.lengths, enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)
        return self.out(h_n[0])


class TorchRecurrent(torch.nn.Module):
    """specs/lstm_basic_motions.dl by hand (and its GRU variant): torch.nn.LSTM or GRU over (L, N, C), its
    last step into a linear layer."""

    def __init__(self, kind: str = "LSTM"):
        super().__init__()
        self.rnn = getattr(torch.nn, kind)(6, 32)
        self.out = torch.nn.Linear(32, 4)

    def forward(self, x):
        _, state = self.rnn(x.permute(2, 0, 1))
        h_n = state[0] if isinstance(state, tuple) else state  # an LSTM's (h_n, c_n), a GRU's h_n
        return self.out(h_n[0])


def torch_fcn() -> torch.nn.Module:
    """specs/fcn_gunpoint.dl by hand: torch's padding='same' pads an even kernel as dlc does (3 before, 4
    after for 8); no conv bias before batchnorm, as dlc drops it."""
    nn = torch.nn
    layers: list = []
    for c_in, c_out, k in ((1, 128, 8), (128, 256, 5), (256, 128, 3)):
        layers += [nn.Conv1d(c_in, c_out, k, padding="same", bias=False), nn.BatchNorm1d(c_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(128, 2))


def _timed(step, steps: int) -> float:
    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def main(runs: int = 5, steps: int = 30) -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ms per step, the fastest of {runs}")
    for name, (text, batch, shape) in NETS.items():
        spec = dlc.compile(text)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(batch,) + shape).astype(np.float32)
        y = rng.integers(0, CLASSES.get(name, 10), batch)
        lengths = rng.integers(VARIABLE[name][0], VARIABLE[name][1] + 1, batch) if name in VARIABLE else None
        x_hand = x
        if lengths is not None:
            after = np.arange(shape[1])[None, None, :] >= lengths[:, None, None]
            x, x_hand = np.where(after, np.nan, x).astype(np.float32), np.where(after, 0, x).astype(np.float32)
        values = init_params(spec.graph, 0)
        engine = TorchEngine(spec, {k: v.copy() for k, v in values.items()}, device=torch.device("cpu"))
        numpy_engine = NumpyEngine(spec, {k: v.copy() for k, v in values.items()})
        torch.manual_seed(0)
        net = {"resnet_digits": torch_resnet, "fcn_gunpoint": torch_fcn, "lstm_basic_motions": TorchRecurrent,
               "gru_basic_motions": lambda: TorchRecurrent("GRU"), "lstm_japanese_vowels": lambda: TorchPackedLSTM(lengths)}.get(
                   name, lambda: torch_net(name))()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()
        xt, yt = torch.from_numpy(x_hand), torch.from_numpy(y)
        net.train()

        def hand():
            opt.zero_grad()
            loss = loss_fn(net(xt), yt)
            loss.backward()
            opt.step()

        ours, theirs, numpy_ms = [], [], []
        for _ in range(runs):
            ours.append(1e3 * _timed(lambda: engine.step(x, y, 1e-3), steps))
            theirs.append(1e3 * _timed(hand, steps))
            numpy_ms.append(1e3 * _timed(lambda: numpy_engine.step(x, y, 1e-3), max(5, steps // 3)))
        o, t, n = (min(v) for v in (ours, theirs, numpy_ms))
        mo, mt = statistics.median(ours), statistics.median(theirs)
        print(f"{name:20s} batch {batch}: torch engine {o:.2f} ms, hand-written torch loop {t:.2f} ms "
              f"(engine overhead {100 * (o / t - 1):+.1f}%; medians {100 * (mo / mt - 1):+.1f}%), numpy engine "
              f"{n:.2f} ms (numpy/torch engine {n / o:.2f}x)", flush=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
