"""What a new user hit (issue 20): each a test that failed before its fix."""

import numpy as np
import pytest

import dlc
from dlc.cli import main


def _write(tmp_path, text, name="s.dl"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.fixture
def npz(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(60, 2)).astype("float32"), y=np.arange(60) % 3)
    return tmp_path / "d.npz"


@pytest.mark.parametrize("key, value", [("n", "1000"), ("noise", "5.0"), ("classes", "3")])
def test_a_key_a_file_source_does_not_use_is_a_located_error(tmp_path, capsys, npz, key, value):
    spec = _write(tmp_path, 'model m {\n input 2\n dense 3 softmax\n}\ndata "d.npz"\n')
    assert main(["check", str(spec), "--set", f"data.{key}={value}"]) == 2
    err = capsys.readouterr().err
    assert f"s.dl:5:14: error: the file d.npz does not use {key}=" in err
    assert f"hint: {key}= is for the synthetic sets that take it (" in err


@pytest.mark.parametrize("data, key, message", [
    ("xor", "classes=3", "the built-in set xor does not use classes="),
    ("digits", "n=100", "the built-in set digits does not use n="),
    ("spiral", "label=y", "the built-in set spiral does not use label="),
    ('"d.npz"', "labels=\"l.idx\"", "the file d.npz does not use labels="),
])
def test_keys_are_checked_against_the_source(tmp_path, capsys, npz, data, key, message):
    out = "10" if data == "digits" else "2" if data == "xor" else "3"
    inp = "64" if data == "digits" else "2"
    spec = _write(tmp_path, f"model m {{\n input {inp}\n dense {out} softmax\n}}\ndata {data} {key}\n")
    assert main(["check", str(spec)]) == 2
    assert f"error: {message}" in capsys.readouterr().err
