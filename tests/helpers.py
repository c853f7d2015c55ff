"""Spec texts and file builders several test files share (fixtures are in conftest.py)."""

from __future__ import annotations

import io
import zipfile

import numpy as np

NAME_TOO_LONG = "a" * 300  # past every file system's 255-byte name limit
SPIRAL_DATA = "data spiral n=60\ntrain epochs=1 batch=16 seed=0\n"  # data and train lines for a spiral model

# a small MLP on scikit-learn's digits, one epoch
DIGITS_MLP = """model m {
    input 64
    dense 16 relu
    dense 10 softmax
}
data digits test=0.2 standardize
optimizer adam lr=1e-3
train epochs=1 batch=64 seed=0
"""

# digits with two hidden layers, the second with dropout (what the hints and diagnose tests edit)
DIGITS_DROPOUT_MLP = """model m {
    input 64
    dense 32 relu
    dense 128 relu dropout=0.4
    dense 10 softmax
}
data digits standardize
optimizer adam lr=1e-3
train epochs=1 batch=64 seed=0
"""


def spiral_text(model: str = "m") -> str:
    """A model for the spiral set (2 features, 3 classes) with SPIRAL_DATA."""
    return f"model {model} {{\n input 2\n dense 8 relu\n dense 3 softmax\n}}\n{SPIRAL_DATA}"


def npz_with_header(path, arrays, claims):
    """An .npz whose .npy headers claim the shapes in `claims` over the data of `arrays`."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for k, a in arrays.items():
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": a.dtype.str, "fortran_order": False,
                                                          "shape": claims.get(k, a.shape)})
            z.writestr(f"{k}.npy", header.getvalue() + a.tobytes())


def stopped_and_resumed(text: str, folder, engine: str, monkeypatch, stop_at_step: int):
    """`text` trained on `engine` twice: uninterrupted (folder/full), and with Ctrl-C at its `stop_at_step`-th
    step (folder/run) then resumed. (the full run, the stopped one, the resumed one, the two weights.npz)."""
    import pytest

    import dlc
    from dlc.runtime import run_folder as rf
    from dlc.runtime.trainer import train
    if engine == "torch":
        pytest.importorskip("torch")
        from dlc.runtime.torch_engine.engine import TorchEngine as engine_class
    else:
        from dlc.runtime.numpy_engine.engine import NumpyEngine as engine_class
    full = train(dlc.compile(text), out=folder / "full", progress=False)
    real, calls = engine_class.step, {"n": 0}

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == stop_at_step:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(engine_class, "step", interrupted)
        part = train(dlc.compile(text), out=folder / "run", progress=False)
    resumed = train(dlc.compile(text), out=folder / "run", resume=True, progress=False)
    return (full, part, resumed, rf.load_npz(folder / "run" / "weights.npz"),
            rf.load_npz(folder / "full" / "weights.npz"))


def assert_finite_differences(loss, grads: dict, values: dict, rng, picks: int = 6, eps: float = 1e-6) -> None:
    """Each gradient in `grads` against central differences of `loss()` at `picks` random entries of its
    parameter in `values` (changed in place and put back): within 1e-6 relative (float64)."""
    for name, g in grads.items():
        flat = values[name].reshape(-1)
        for i in rng.choice(flat.size, size=min(flat.size, picks), replace=False):
            old = flat[i]
            flat[i] = old + eps
            up = loss()
            flat[i] = old - eps
            down = loss()
            flat[i] = old
            numeric = (up - down) / (2 * eps)
            assert abs(numeric - g.reshape(-1)[i]) <= 1e-6 * max(1.0, abs(numeric)), (name, i, numeric, g.reshape(-1)[i])
