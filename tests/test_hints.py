"""Hints that point the right way (issue 26, item 9): each names what the user can act on."""

from __future__ import annotations

import numpy as np
import pytest

from dlc.cli import main

MLP = """model m {
    input 64
    dense 32 relu
    dense 128 relu dropout=0.4
    dense 10 softmax
}
data digits standardize
optimizer adam lr=1e-3
train epochs=1 batch=64 seed=0
"""


def _spec(tmp_path, text=MLP, name="s.dl"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_search_range_hint_sets_that_range_s_own_key(tmp_path, capsys):
    spec = _spec(tmp_path, MLP.replace("dropout=0.4", "dropout=choice(0.2, 0.4)").replace(
        "lr=1e-3", "lr=loguniform(1e-4, 1e-2)"))
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "dense2.dropout is a search range (choice(0.2, 0.4)); train needs one value (and 1 more range(s))" in err
    assert "hint: run dlc search, or pick a value with --set dense2.dropout=0.2" in err


def test_a_device_refused_after_compile_says_the_line_is_the_option_s(tmp_path, capsys):
    pytest.importorskip("torch")
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    spec = _spec(tmp_path)
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "r"), "--engine", "torch", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "error: device cuda: this machine has no CUDA GPU that torch can use" in err
    assert "note: this line is as --engine torch --device cuda made it; the file says: train epochs=1 batch=64 " \
           "seed=0" in err


def test_diagnose_names_the_spec_line_of_each_layer(tmp_path, capsys):
    spec = _spec(tmp_path)
    assert main(["diagnose", str(spec), "-o", str(tmp_path / "d")]) in (0, 1)
    out = capsys.readouterr().out
    assert "relu2 (line 4) dead units" in out and "dense2 (line 4) |grad|" in out


def test_images_fed_to_a_flat_input_are_told_how_to_flatten(tmp_path, capsys):
    spec = _spec(tmp_path)
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "r")]) == 0
    np.savez(tmp_path / "images.npz", x=np.zeros((5, 8, 8), np.float32), y=np.zeros(5, np.int64))
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "r"), str(tmp_path / "images.npz")]) == 2
    err = capsys.readouterr().err
    assert "images.npz samples are 8x8 but the model's input is 64" in err
    assert "hint: flatten each sample: x.reshape(len(x), 64)" in err


def test_data_mnist_lists_the_built_in_sets_and_how_to_read_a_download(tmp_path, capsys):
    spec = _spec(tmp_path, MLP.replace("data digits standardize", "data mnist"))
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "error: unknown data set 'mnist'" in err and "moons" in err.split("hint:")[1].split(";")[0]
    assert "the built-in sets (nothing is downloaded): spiral, xor, moons" in err
    assert 'an MNIST download in its IDX form is read as is: data "train-images-idx3-ubyte.gz"' in err
    assert "did you mean" not in err


def test_diagnose_runs_on_the_engine_the_spec_names(tmp_path, capsys):
    """It ran on the NumPy engine whatever the spec named (issue 27): now through the engine seam."""
    spec = _spec(tmp_path, MLP.replace("seed=0", "seed=0 engine=torch"))
    assert main(["diagnose", str(spec), "-o", str(tmp_path / "d")]) in (0, 1)
    assert "note: the checks ran on engine=torch" in capsys.readouterr().out


def test_diagnose_refuses_a_device_this_machine_lacks(tmp_path, capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: nothing to refuse")
    spec = _spec(tmp_path, MLP.replace("seed=0", "seed=0 engine=torch device=cuda"))
    assert main(["diagnose", str(spec), "-o", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "device=cuda" in err and "Traceback" not in err and not (tmp_path / "d").exists()


