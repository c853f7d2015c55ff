"""Sequences through the runtime: N x C x L data trains on both engines and exports verified; the
archive's sets load with their official split."""

import numpy as np
import pytest

from dlc.cli import main

SEQUENCE_NET = """model waves {{
    input 2x24
    conv1d 8 kernel=5 pad=same batchnorm relu
    maxpool 2
    conv1d 8 kernel=3 dilation=2 pad=causal relu
    globalavgpool
    dense 3 softmax
}}
data "waves.npz" standardize
optimizer adam lr=3e-3
train epochs=30 batch=32 seed=0{engine}
"""


@pytest.fixture
def waves(tmp_path):
    """Three classes of noisy two-channel waves of 24 steps: sines of 1, 2 or 3 periods, and cosines."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 240)
    t = np.linspace(0, 1, 24)
    phase = rng.normal(0, 0.3, (240, 1))
    f = (y + 1)[:, None]
    x = np.stack([np.sin(2 * np.pi * f * t + phase), np.cos(2 * np.pi * f * t)], axis=1)
    x += rng.normal(0, 0.3, x.shape)
    np.savez(tmp_path / "waves.npz", x=x.astype(np.float32), y=y)
    return tmp_path


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_a_conv1d_network_learns_sequences_and_exports_verified(waves, engine, capsys):
    if engine == "torch":
        pytest.importorskip("torch")
    spec = waves / "s.dl"
    spec.write_text(SEQUENCE_NET.format(engine=f" engine={engine}"))
    assert main(["train", str(spec), "-q", "-o", str(waves / "run")]) == 0
    out = capsys.readouterr().out
    test_acc = float(out.split("test loss")[1].split("acc ")[1].split("%")[0])
    assert test_acc >= 90.0, out
    assert main(["export", str(waves / "run"), "-o", str(waves / "m.onnx")]) == 0
    assert "max abs difference" in capsys.readouterr().out


def test_an_archive_set_loads_with_its_official_split():
    pytest.importorskip("sktime")
    import dlc
    from dlc.runtime.data.splits import prepare
    spec = dlc.compile("model m {\n input 1x24\n flatten\n dense 2 softmax\n}\ndata italy_power\n"
                       "train validation=0.1 seed=0\n")
    splits = prepare(spec)
    assert len(splits.x_train) + len(splits.x_val) == 67 and len(splits.x_test) == 1029
    assert splits.x_train.shape[1:] == (1, 24) and splits.classes == ["1", "2"]


@pytest.mark.parametrize("engine, layer", [("numpy", "lstm"), ("torch", "lstm"), ("numpy", "gru"), ("torch", "gru")])
def test_a_recurrent_layer_learns_sequences_and_exports_verified(waves, engine, layer, capsys):
    if engine == "torch":
        pytest.importorskip("torch")
    spec = waves / "s.dl"
    spec.write_text(f"model waves_rnn {{\n input 2x24\n {layer} 16\n dense 3 softmax\n}}\n"
                    f'data "waves.npz" standardize\noptimizer adam lr=1e-2 clip_norm=1\n'
                    f"train epochs=30 batch=32 seed=0 engine={engine}\n")
    assert main(["train", str(spec), "-q", "-o", str(waves / "run")]) == 0
    out = capsys.readouterr().out
    assert float(out.split("test loss")[1].split("acc ")[1].split("%")[0]) >= 90.0, out
    assert main(["export", str(waves / "run"), "-o", str(waves / "m.onnx")]) == 0


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_a_recurrent_run_stopped_mid_epoch_resumes_bit_identically(waves, engine, monkeypatch):
    """Ctrl-C in the middle of the third epoch, then --resume: the same history and weights, bit for bit,
    as the run that was never stopped."""
    from helpers import stopped_and_resumed
    text = (f"model waves_gru {{\n input 2x24\n gru 8 sequences\n lstm 8 bidirectional\n dense 3 softmax\n}}\n"
            f'data "{waves / "waves.npz"}" standardize\noptimizer adam lr=1e-2 clip_norm=1\n'
            f"train epochs=4 batch=32 seed=0 engine={engine}\n")
    # 6 steps per epoch (173 training series, batch 32): Ctrl-C at step 14, mid third epoch
    full, part, resumed, a, b = stopped_and_resumed(text, waves, engine, monkeypatch, 14)
    assert part.interrupted and len(part.history) == 2
    assert [(r["loss"], r["val_loss"]) for r in resumed.history] == [(r["loss"], r["val_loss"]) for r in full.history]
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_standardize_on_a_sequence_is_per_channel_over_every_step():
    """One mean and one deviation per channel (a pattern scaled the same wherever in time it occurs), as
    the preprocessing arrays of the input's shape that ONNX exports."""
    from dlc.runtime.data.splits import Preprocess
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (50, 2, 7)).astype(np.float32)
    x[:, 1] = x[:, 1] * 10 + np.arange(7)  # a trend over the steps in the second channel
    pre = Preprocess.fit(x, None, False, True)
    assert pre.mul.shape == (2, 7) and np.all(pre.mul == pre.mul[:, :1]) and np.all(pre.add == pre.add[:, :1])
    y = pre.apply(x)
    for c in (0, 1):
        assert abs(float(y[:, c].mean())) < 1e-5 and abs(float(y[:, c].std()) - 1) < 1e-5
    assert float(y[:, 1, -1].mean()) > float(y[:, 1, 0].mean())  # the trend survives


def test_an_archive_set_without_sktime_is_a_refusal_with_the_install_command(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sktime", None)  # import sktime raises ImportError
    spec = tmp_path / "s.dl"
    spec.write_text("model m {\n input 1x24\n flatten\n dense 2 softmax\n}\ndata italy_power\ntrain epochs=1\n")
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"{spec}:6:" in err
    assert 'data italy_power is read with sktime, which is not installed: pip install "dlc[series]"' in err
