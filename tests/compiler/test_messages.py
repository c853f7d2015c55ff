"""What a user reads: one error per mistake, hints that name a fix that works, the option a rewritten
line came from."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DIGITS_DROPOUT_MLP

import dlc
from dlc.cli import main


@pytest.mark.parametrize("text, message, hint", [
    ("block basic(c, stride) {\n dense c relu\n}\nmodel m {\n input 4\n basic 16\n dense 3 softmax\n}\ndata iris\n",
     "error: block basic needs stride", "hint: block basic(c, stride) has no default for stride: write e.g. "
                                        "basic 16 stride=..."),
    ("model m {\n input 1x8x8\n residual {\n flatten\n dense 4\n }\n dense 10 softmax\n}\ndata digits\n",
     "error: the residual body changes the shape from 1x8x8 to 4, so x + body(x) is undefined",
     "hint: no projection shortcut maps 1x8x8 to 4: keep the body's output of the input's kind (1x8x8), "
     "and flatten after the residual"),
])
def test_hints_name_a_fix_that_works(spec_file, tmp_path, capsys, text, message, hint):
    assert main(["check", str(spec_file(text))]) == 2
    err = capsys.readouterr().err
    assert message in err and hint in err


@pytest.mark.parametrize("text, count", [
    ("model m {\n input 1x8x8\n conv 4 kernel=3\n flaten\n dense 10 softmax\n}\ndata digits\n", 1),
    ("model m {\n input 4\n parallel concat {\n branch { dense 2 } branch { dense 3 }\n }\n dense 3 softmax\n}\n"
     "data iris\n", 1),
])
def test_one_mistake_is_one_error(spec_file, tmp_path, capsys, text, count):
    assert main(["check", str(spec_file(text))]) == 2
    assert capsys.readouterr().err.count("error:") == count


def test_a_value_may_be_written_as_a_ratio(spec_file, tmp_path, capsys):
    spec = dlc.compile("model m {\n input 64\n dense 10 rrelu lower=1/8 upper=1/3\n dense 10 softmax\n}\n"
                       "data digits scale=1/255\n")
    assert spec["data"]["scale"] == 1 / 255
    assert spec.graph.node("rrelu1").attrs["lower"] == 1 / 8
    bad = spec_file("model m {\n input 64\n dense 10 softmax\n}\ndata digits scale=1/0\n")
    assert main(["check", str(bad)]) == 2
    assert "s.dl:5:19: error: scale=1/0 divides by zero" in capsys.readouterr().err


def test_a_search_range_hint_sets_that_range_s_own_key(spec_file, tmp_path, capsys):
    spec = spec_file(DIGITS_DROPOUT_MLP.replace("dropout=0.4", "dropout=choice(0.2, 0.4)").replace(
        "lr=1e-3", "lr=loguniform(1e-4, 1e-2)"))
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "dense2.dropout is a search range (choice(0.2, 0.4)); train needs one value (and 1 more range(s))" in err
    assert "hint: run dlc search, or pick a value with --set dense2.dropout=0.2" in err


def test_a_device_refused_after_compile_says_the_line_is_the_option_s(spec_file, tmp_path, capsys):
    pytest.importorskip("torch")
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    spec = spec_file(DIGITS_DROPOUT_MLP)
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "r"), "--engine", "torch", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "error: device cuda: this machine has no CUDA GPU that torch can use" in err
    assert "note: this line is as --engine torch --device cuda made it; the file says: train epochs=1 batch=64 " \
           "seed=0" in err


def test_images_fed_to_a_flat_input_are_told_how_to_flatten(spec_file, tmp_path, capsys):
    spec = spec_file(DIGITS_DROPOUT_MLP)
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "r")]) == 0
    np.savez(tmp_path / "images.npz", x=np.zeros((5, 8, 8), np.float32), y=np.zeros(5, np.int64))
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "r"), str(tmp_path / "images.npz")]) == 2
    err = capsys.readouterr().err
    assert "images.npz samples are 8x8 but the model's input is 64" in err
    assert "hint: flatten each sample: x.reshape(len(x), 64)" in err


def test_data_mnist_lists_the_built_in_sets_and_how_to_read_a_download(spec_file, tmp_path, capsys):
    spec = spec_file(DIGITS_DROPOUT_MLP.replace("data digits standardize", "data mnist"))
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "error: unknown data set 'mnist'" in err and "moons" in err.split("hint:")[1].split(";")[0]
    assert "the built-in sets (nothing is downloaded): spiral, xor, moons" in err
    assert 'an MNIST download in its IDX form is read as is: data "train-images-idx3-ubyte.gz"' in err
    assert "did you mean" not in err


def test_dropout_out_of_range_hint_says_what_dropout_is(capsys):
    with pytest.raises(dlc.DLError) as e:
        dlc.compile("model m {\n input 4\n dense 8 relu dropout=1.5\n dense 3 softmax\n}\n")
    d = e.value.diagnostics[0]
    assert d.message == "dropout=1.5 is out of range: dropout must be in [0, 1)"
    assert d.hint == "the probability of dropping a unit, from 0 up to (not including) 1; keep=0.8 is dropout=0.2"
