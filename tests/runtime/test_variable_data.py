"""Series of different lengths end to end: an .npz with `lengths`, the archive's JapaneseVowels, the exported
model at each series's own length, and the refusals for what cannot be read or computed."""

import json

import numpy as np
import pytest

import dlc
from dlc.cli import main

CHIRPS = """model chirps {{
    input 2x{steps} variable
    conv1d 8 kernel=3 pad=same batchnorm relu
    gru 8 bidirectional
    dense 2 softmax
}}
data "chirps.npz" standardize
optimizer adam lr=1e-2 clip_norm=1
train epochs=15 batch=16 seed=0
"""


@pytest.fixture
def chirps(tmp_path):
    """Two classes of noisy two-channel series of 5 to 20 steps: a rising or a falling ramp; x holds 20 steps
    of which `lengths` says how many are the series's own (the rest is junk that must be ignored)."""
    rng = np.random.default_rng(0)
    n = 160
    y = rng.integers(0, 2, n)
    lengths = rng.integers(5, 21, n)
    x = rng.normal(0, 5, (n, 2, 20))  # junk after each series's steps
    for k in range(n):
        ramp = np.linspace(-1, 1, lengths[k]) * (1 if y[k] else -1)
        x[k, :, :lengths[k]] = np.stack([ramp, -ramp]) + rng.normal(0, 0.3, (2, lengths[k]))
    np.savez(tmp_path / "chirps.npz", x=x.astype(np.float32), y=y, lengths=lengths)
    (tmp_path / "chirps.dl").write_text(CHIRPS.format(steps=20))
    return tmp_path


def test_an_npz_with_lengths_trains_exports_and_predicts_each_series_at_its_own_length(chirps, capsys):
    assert main(["train", str(chirps / "chirps.dl"), "-q", "-o", str(chirps / "run")]) == 0
    m = json.loads((chirps / "run" / "metrics.json").read_text())
    assert m["test"]["accuracy"] >= 0.9
    assert main(["export", str(chirps / "run"), "-o", str(chirps / "m.onnx")]) == 0
    from dlc.runtime.tools.onnx_runner import OnnxModel
    from dlc.runtime.data.files import read_npz
    onnx_model = OnnxModel.load(chirps / "m.onnx")
    x, _ = read_npz(chirps / "chirps.npz")
    steps = 20 - np.isnan(x[:, 0, :]).sum(axis=1)
    alone = [int(onnx_model.run(x[k:k + 1, :, :steps[k]])["label"][0]) for k in range(len(x))]  # one at a time
    assert main(["predict", str(chirps / "run"), str(chirps / "chirps.npz"), "-o", str(chirps / "p.npz")]) == 0
    assert np.load(chirps / "p.npz")["class_index"].tolist() == alone


def test_series_of_different_lengths_need_a_variable_input(chirps, capsys):
    (chirps / "fixed.dl").write_text(CHIRPS.format(steps=20).replace(" variable", ""))
    assert main(["train", str(chirps / "fixed.dl"), "-q", "-o", str(chirps / "r")]) == 2
    err = capsys.readouterr().err
    assert "chirps.npz holds series of 5 to 20 steps, but the model's input is a fixed 2x20" in err
    assert "hint: write input 2x20 variable" in err


def test_a_series_too_short_for_the_model_is_refused_with_the_minimum(chirps, capsys):
    text = CHIRPS.format(steps=20).replace("pad=same", "kernel=7").replace("kernel=3 ", "")
    (chirps / "short.dl").write_text(text)
    assert main(["train", str(chirps / "short.dl"), "-q", "-o", str(chirps / "r")]) == 2
    assert "steps; this model's ops need at least 7" in capsys.readouterr().err


@pytest.mark.parametrize("lengths, message", [
    (np.full(4, 3.5), "'lengths' must hold one whole number per series (4)"),
    (np.array([3, 0, 2, 1]), "series 1 has length 0; lengths run from 1 to 6"),
    (np.array([3, 7, 2, 1]), "series 1 has length 7; lengths run from 1 to 6"),
])
def test_bad_lengths_are_refused(tmp_path, capsys, lengths, message):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2, 6), np.float32), y=np.array([0, 1, 0, 1]), lengths=lengths)
    (tmp_path / "m.dl").write_text('model m {\n    input 2x6 variable\n    gru 4\n    dense 2 softmax\n}\n'
                                   'data "d.npz"\n')
    assert main(["train", str(tmp_path / "m.dl"), "-q", "-o", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err


def test_nan_inside_a_series_is_refused_not_read_as_padding(tmp_path, capsys):
    x = np.zeros((4, 2, 6), np.float32)
    x[2, :, 3] = np.nan  # a gap, then values again
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 0, 1]))
    (tmp_path / "m.dl").write_text('model m {\n    input 2x6 variable\n    gru 4\n    dense 2 softmax\n}\n'
                                   'data "d.npz"\n')
    assert main(["train", str(tmp_path / "m.dl"), "-q", "-o", str(tmp_path / "r")]) == 2
    assert "inputs hold NaN or inf (first at sample 2)" in capsys.readouterr().err


@pytest.mark.parametrize("body, message", [
    ("input 3x10 variable\nconv1d 4\nflatten\ndense 2 softmax", "flatten cannot take a variable-length sequence"),
    ("input 3x10 variable\nmaxpool 3 pad=1\nglobalavgpool\ndense 2 softmax",
     "maxpool over a variable-length sequence cannot pad"),
    ("input 3x10 variable\nconv1d 4 stride=2 pad=same\nglobalavgpool\ndense 2 softmax",
     "conv1d pad=same with a stride over a variable-length sequence pads each length differently"),
    ("input 1x8x8 variable\nflatten\ndense 2 softmax", "'variable' is a sequence's word"),
])
def test_what_cannot_honour_a_padding_mask_is_a_located_refusal(body, message):
    with pytest.raises(dlc.DLError) as e:
        dlc.compile("model m {\n" + body + "\n}\n")
    assert message in e.value.format()


def test_a_recurrent_line_carries_dropout_between_stacked_layers():
    spec = dlc.compile("model m {\ninput 3x10 variable\nlstm 8 sequences dropout=0.3\ngru 4 layernorm\n"
                       "dense 2 softmax\n}\n")
    assert [n.op for n in spec.graph.nodes] == ["lstm", "dropout", "gru", "layernorm", "dense", "softmax"]


def test_japanese_vowels_needs_a_variable_input():
    pytest.importorskip("sktime")
    with pytest.raises(dlc.DLError) as e:
        dlc.compile("model m {\ninput 12x29\nlstm 8\ndense 9 softmax\n}\ndata japanese_vowels\n")
    assert "hint: write input 12x29 variable" in e.value.format()


@pytest.mark.slow
def test_japanese_vowels_lstm_on_both_engines_within_a_point_and_its_onnx_labels_equal_predicts(tmp_path, capsys):
    pytest.importorskip("sktime")
    pytest.importorskip("torch")
    from pathlib import Path
    spec = Path(__file__).parents[2] / "specs" / "lstm_japanese_vowels.dl"
    acc = {}
    for engine in ("numpy", "torch"):
        assert main(["train", str(spec), "-q", "-o", str(tmp_path / engine), "--engine", engine]) == 0
        acc[engine] = json.loads((tmp_path / engine / "metrics.json").read_text())["test"]["accuracy"]
    assert acc["numpy"] >= 0.94 and abs(acc["numpy"] - acc["torch"]) <= 0.01, acc
    assert main(["export", str(tmp_path / "numpy"), "-o", str(tmp_path / "m.onnx")]) == 0
    from dlc.runtime.data.datasets import load
    from dlc.runtime.data.series import lengths
    from dlc.runtime.tools.onnx_runner import OnnxModel
    data = load("japanese_vowels", {}, None, 0)
    test = data.x[data.test_from:]
    steps = lengths(test)
    onnx_model = OnnxModel.load(tmp_path / "m.onnx")
    alone = [int(onnx_model.run(test[k:k + 1, :, :steps[k]])["label"][0]) for k in range(len(test))]
    assert main(["predict", str(tmp_path / "numpy"), "japanese_vowels", "-o", str(tmp_path / "p.npz")]) == 0
    assert np.load(tmp_path / "p.npz")["class_index"][data.test_from:].tolist() == alone


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_a_variable_length_run_stopped_mid_epoch_resumes_bit_identically(chirps, engine, monkeypatch):
    from helpers import stopped_and_resumed
    text = CHIRPS.format(steps=20).replace('"chirps.npz"', f'"{chirps / "chirps.npz"}"').replace(
        "epochs=15", f"epochs=3 engine={engine}")
    # 8 steps an epoch (batches of 16): Ctrl-C at step 12, in the second epoch
    full, part, resumed, a, b = stopped_and_resumed(text, chirps, engine, monkeypatch, 12)
    assert part.interrupted and len(part.history) == 1
    assert [(r["loss"], r["val_loss"]) for r in resumed.history] == [(r["loss"], r["val_loss"]) for r in full.history]
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_znorm_makes_each_series_mean_0_std_1_over_its_own_steps_on_both_runtimes(chirps):
    # each series shifted and scaled on its own (as sensors with different gains): znorm undoes it, in the
    # NumPy runtime and in the exported model alike, at each series's own length
    from dlc.runtime.data.files import read_npz
    from dlc.runtime.data.splits import znormalize
    x, y = read_npz(chirps / "chirps.npz")
    rng = np.random.default_rng(1)
    raw = x * rng.uniform(0.5, 20, (len(x), 1, 1)) + rng.uniform(-50, 50, (len(x), 2, 1))
    z = znormalize(raw)
    k = 3
    steps = int(20 - np.isnan(raw[k, 0]).sum())
    assert np.allclose(z[k, :, :steps].mean(axis=1), 0, atol=1e-5) and np.allclose(z[k, :, :steps].std(axis=1), 1)
    np.savez(chirps / "raw.npz", x=raw.astype(np.float32), y=y)
    (chirps / "z.dl").write_text(CHIRPS.format(steps=20).replace("chirps.npz", "raw.npz").replace("standardize", "znorm"))
    assert main(["train", str(chirps / "z.dl"), "-q", "-o", str(chirps / "run")]) == 0
    assert json.loads((chirps / "run" / "metrics.json").read_text())["test"]["accuracy"] >= 0.9
    assert main(["export", str(chirps / "run"), "-o", str(chirps / "m.onnx")]) == 0
    from dlc.runtime.tools.onnx_runner import OnnxModel
    got = OnnxModel.load(chirps / "m.onnx").run(raw.astype(np.float32))["output"]
    assert main(["predict", str(chirps / "run"), str(chirps / "raw.npz"), "-o", str(chirps / "p.npz")]) == 0
    np.testing.assert_allclose(got, np.load(chirps / "p.npz")["output"], atol=1e-5)


def test_lengths_without_sequences_are_refused(tmp_path, capsys):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 6), np.float32), y=np.array([0, 1, 0, 1]), lengths=np.array([1, 2, 3, 4]))
    (tmp_path / "m.dl").write_text('model m {\n    input 6\n    dense 2 softmax\n}\ndata "d.npz"\n')
    assert main(["train", str(tmp_path / "m.dl"), "-q", "-o", str(tmp_path / "r")]) == 2
    assert "d.npz: 'lengths' goes with sequences, x of N x C x L, not 4x6" in capsys.readouterr().err


def test_znorm_on_a_model_that_takes_no_sequence_is_refused_at_its_word(tmp_path, capsys):
    (tmp_path / "m.dl").write_text("model m {\n    input 4\n    dense 3 softmax\n}\ndata iris znorm\n")
    assert main(["check", str(tmp_path / "m.dl")]) == 2
    err = capsys.readouterr().err
    assert "m.dl:5:11: error: znorm z-normalises each series over its steps, but the model's input is 4, not a " \
           "sequence CxL" in err
    assert "hint: use standardize for features and images" in err
