"""Paths and states that the system refuses are located refusals, never internal errors (issue 31:
11, 12): a name past the file system's limit on every path argument and in `init from`; a torch
checkpoint whose generator state has the right length but is not one torch takes."""

from __future__ import annotations

import json

import pytest

from dlc.cli import main

SPEC = """model m {
    input 64
    dense 16 relu
    dense 10 softmax
}
data digits test=0.2 standardize
optimizer adam lr=1e-3
train epochs=1 batch=64 seed=0
"""
LONG = "a" * 300


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "s.dl"
    path.write_text(SPEC)
    return path


@pytest.mark.parametrize("args, argument", [
    (["train", "{spec}", "-o", LONG], "-o/--output"),
    (["train", "{spec}", "-o", f"x/{LONG}/y", "--resume"], "-o/--output"),
    (["train", LONG, "--resume"], "SPEC"),
    (["check", LONG + ".dl"], "SPEC"),
    (["eval", LONG], "RUN"),
    (["export", LONG, "-o", "m.onnx"], "RUN"),
    (["export", "run", "-o", LONG + ".onnx"], "-o/--output"),
    (["predict", "run", LONG], "DATA"),
    (["compare", "{spec}", "{spec}", "-o", LONG], "-o/--output"),
    (["diagnose", "{spec}", "-o", LONG], "-o/--output"),
    (["fmt", LONG + ".dl"], "SPEC"),
])
def test_a_name_past_the_file_system_s_limit_is_refused_at_its_argument(spec, tmp_path, capsys, monkeypatch, args,
                                                                          argument):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main([a.format(spec=spec) for a in args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {argument}: a name in this path is " in err
    assert "bytes ('aaaaaaaaaaaaaaaaaaaaaaaa...'); file names here are at most 255 bytes" in err


def test_init_from_a_name_past_the_limit_is_no_such_run(tmp_path, capsys):
    path = tmp_path / "fine.dl"
    path.write_text(f'init from "{LONG}"\n' + SPEC)
    assert main(["check", str(path)]) == 2
    assert f"{path}:1:11: error: no such run folder: " in capsys.readouterr().err


def test_a_torch_generator_state_torch_refuses_is_a_damaged_checkpoint(spec, tmp_path, capsys):
    pytest.importorskip("torch")
    from dlc.runtime import run_folder as rf
    run = tmp_path / "run"
    assert main(["train", str(spec), "-o", str(run), "-q", "--engine", "torch", "--device", "cpu"]) == 0
    groups, state = rf.load_checkpoint(run)
    states = state["noise_rng"]["torch_generators"]
    state["noise_rng"]["torch_generators"] = ["00" * (len(s) // 2) for s in states]  # the right length, all zeros
    rf.save_checkpoint(run, groups, state)
    capsys.readouterr()
    assert main(["train", str(run), "--resume", "--set", "train.epochs=2", "-q"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint.npz (the training checkpoint) is damaged: a random-generator state is invalid (torch refuses " \
           "the generator state" in err and "internal error" not in err
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == 1


def test_a_path_past_the_system_s_length_is_refused_at_its_argument(capsys):
    path = "/".join(["b" * 200] * 25)  # every name fits; the whole is 5,024 bytes
    with pytest.raises(SystemExit) as e:
        main(["eval", path])
    assert e.value.code == 2
    assert "error: argument RUN: the path is 5,024 bytes; paths here are shorter than 4,096 bytes" in \
        capsys.readouterr().err
