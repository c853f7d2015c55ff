"""A run folder's files are trusted only after they are checked: tampered checkpoints, a changed spec on
resume, lying .npy headers, deep JSON, FIFOs -- each refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
from dlc.runtime import run_folder as rf
from helpers import DIGITS_MLP, npz_with_header

from dlc.cli import main

RUN_SPEC = """model tamper {{
    input 2
    dense 8 relu batchnorm
    dense 3 softmax
}}
data spiral n=90
optimizer {optimizer}
train epochs=2 batch=30 seed=0 validation=0.2 early_stop=5
"""


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory):
    """A run trained for 2 epochs per optimizer (its checkpoint is what the cases tamper with)."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, optimizer in [("adam", "adam lr=0.01"), ("sgd", "sgd lr=0.1 momentum=0.9"),
                            ("genetic", "genetic population=6")]:
        spec = root / f"{name}.dl"
        spec.write_text(RUN_SPEC.format(optimizer=optimizer))
        assert main(["train", str(spec), "-q", "-o", str(root / name)]) == 0
        out[name] = root / name
    return out


def _copy_run(src, tmp_path):
    import shutil
    dst = tmp_path / "run"
    shutil.copytree(src, dst)
    return dst


def _tamper_checkpoint(run, change):
    """Rewrite run/checkpoint.npz with change(arrays, state) applied."""
    import json

    import numpy as np
    with np.load(run / "checkpoint.npz") as z:
        arrays = {k: z[k] for k in z.files}
    state = json.loads(arrays.pop("state").tobytes())
    state = change(arrays, state)
    text = state if isinstance(state, str) else json.dumps(state)
    arrays["state"] = np.frombuffer(text.encode(), np.uint8)
    np.savez(run / "checkpoint.npz", **arrays)


def _set(key, value):
    def change(arrays, state):
        state[key] = value
        return state
    return change


def _arrays(fn):
    def change(arrays, state):
        fn(arrays)
        return state
    return change


def _history(value):
    def change(arrays, state):
        state["history"] = [value] * len(state["history"])
        return state
    return change


def _rng(**inner):
    def change(arrays, state):
        state["shuffle_rng"]["state"].update(inner)
        return state
    return change


TAMPERED = [
    ("adam", lambda a, s: [], "the training state is a JSON list, not an object"),
    ("adam", lambda a, s: None, "the training state is a JSON NoneType, not an object"),
    ("adam", lambda a, s: "[" * 100_000 + "]" * 100_000, "the training state's JSON is nested too deeply"),
    ("adam", _history(1), "history row 1 is not an epoch record"),
    ("adam", _history({}), "history row 1 is not an epoch record"),
    ("adam", _history("x"), "history row 1 is not an epoch record"),
    ("adam", _rng(state=2 ** 200), "a random-generator state is invalid ('state' is not a 128-bit number)"),
    ("adam", _rng(inc=-1), "a random-generator state is invalid ('inc' is not a 128-bit number)"),
    ("adam", _set("best", float("nan")), "'best' is not a finite number"),
    ("adam", _arrays(lambda a: a.update({"optimizer/__t__": np.array([1, 2])})),
     "the optimizer's step count '__t__' is not a whole number >= 1"),
    ("adam", _arrays(lambda a: a.update({"optimizer/__t__": np.array(float("nan"))})),
     "the optimizer's step count '__t__' is not a whole number >= 1"),
    ("adam", _arrays(lambda a: a.pop("optimizer/__t__")), "the optimizer state lacks __t__"),
    ("adam", _arrays(lambda a: a.pop("optimizer/dense1.weight.m")), "the optimizer state lacks dense1.weight.m"),
    ("adam", _arrays(lambda a: a.update({"optimizer/dense1.weight.v": a["optimizer/dense1.weight.v"] * np.nan})),
     "optimizer array 'dense1.weight.v' holds NaN or inf"),
    ("adam", _arrays(lambda a: a.update({"weights/dense1.weight": a["weights/dense1.weight"].astype(int)})),
     "weights array 'dense1.weight' is int64, not float32"),
    ("adam", _arrays(lambda a: a.update({"weights/dense1.weight": a["weights/dense1.weight"] > 0})),
     "weights array 'dense1.weight' is bool, not float32"),
    ("adam", _arrays(lambda a: a.update({"weights/dense1.weight": a["weights/dense1.weight"].astype("float16")})),
     "weights array 'dense1.weight' is float16, not float32"),
    ("sgd", _arrays(lambda a: a.pop("optimizer/dense2.bias.momentum")), "the optimizer state lacks dense2.bias.momentum"),
    ("genetic", _arrays(lambda a: [a.pop(k) for k in list(a) if k.endswith(".population")]),
     "the optimizer state lacks dense1.weight.population"),
    ("genetic", _arrays(lambda a: a.update({"optimizer/dense1.weight.population":
                                            a["optimizer/dense1.weight.population"].astype(int)})),
     "optimizer array 'dense1.weight.population' is int64, not float32"),
    ("genetic", _arrays(lambda a: a.update({"optimizer/dense1.weight.population":
                                            a["optimizer/dense1.weight.population"] * np.nan})),
     "optimizer array 'dense1.weight.population' holds NaN or inf"),
]


@pytest.mark.parametrize("run, change, message", TAMPERED, ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(TAMPERED)])
def test_a_tampered_checkpoint_is_refused_as_damaged(trained_runs, tmp_path, capsys, run, change, message):
    run_dir = _copy_run(trained_runs[run], tmp_path)
    _tamper_checkpoint(run_dir, change)
    assert main(["train", str(run_dir), "--resume", "-q", "--set", "train.epochs=3"]) == 2
    err = capsys.readouterr().err
    assert f"dlc: error: {run_dir / 'checkpoint.npz'} (the training checkpoint) is damaged: {message}" in err, err
    assert "learning rate" not in err


def test_random_tampering_of_every_checkpoint_field_is_refused(trained_runs, tmp_path, capsys):
    """A generated family: each array of the checkpoint replaced by a random wrong dtype, shape or value,
    or each state field by a random JSON value; every case is a refusal naming the checkpoint (exit 2)."""
    import json
    rng = np.random.default_rng(21)
    src = trained_runs["adam"]
    with np.load(src / "checkpoint.npz") as z:
        names = [k for k in z.files if k != "state"]
    state = json.loads(np.load(src / "checkpoint.npz")["state"].tobytes())
    state_keys = list(state)
    junk = [None, -1, 2 ** 70, "x", [], {}, [1, "a"], {"state": 1}, 1.5, True]
    bad_arrays = [lambda a: a.astype(np.float64), lambda a: a.reshape(-1)[:1], lambda a: np.full_like(a, np.inf),
                  lambda a: a.astype(np.int32), lambda a: np.zeros((3, 3, 3), np.float32)]
    for case in range(30):
        run_dir = tmp_path / f"r{case}"
        import shutil
        shutil.copytree(src, run_dir)
        if case % 2:
            key = state_keys[rng.integers(len(state_keys))]
            value = junk[rng.integers(len(junk))]
            while value == state[key] and type(value) is type(state[key]):  # a change, not the value it holds
                value = junk[rng.integers(len(junk))]
            _tamper_checkpoint(run_dir, _set(key, value))
        else:
            name = names[rng.integers(len(names))]
            fn = bad_arrays[rng.integers(len(bad_arrays))]
            _tamper_checkpoint(run_dir, _arrays(lambda a: a.update({name: fn(a[name])})))
        code = main(["train", str(run_dir), "--resume", "-q", "--set", "train.epochs=3"])
        err = capsys.readouterr().err
        assert "internal error" not in err
        what = (key, value) if case % 2 else (name, fn)
        assert code == 2 and f"{run_dir / 'checkpoint.npz'} (the training checkpoint) is damaged" in err, (case, what, err)


@pytest.mark.parametrize("edit, message", [
    (("data spiral n=90", "data spiral n=91"), "changed since the run started: data.n (90 -> 91)\n"),
    (("seed=0", "seed=1"), "changed since the run started: train.seed (0 -> 1)\n"),
    (("adam lr=0.01", "sgd lr=0.01"), "optimizer (adam -> sgd)"),
    (("dense 8 relu batchnorm", "dense 8 tanh batchnorm"), "model tanh1 (absent -> tanh <- batchnorm1)"),
])
def test_resume_under_a_changed_spec_says_what_changed(trained_runs, tmp_path, capsys, edit, message):
    run_dir = _copy_run(trained_runs["adam"], tmp_path)
    spec = run_dir / "spec.dl"
    spec.write_text(spec.read_text().replace(*edit))
    assert main(["train", str(run_dir), "--resume", "-q", "--set", "train.epochs=3"]) == 2
    err = capsys.readouterr().err
    assert f"dlc: error: cannot resume {run_dir}: the spec changed since the run started: " in err
    assert message in err, err
    assert "hint: a resumed run continues the same training: only train.epochs, train.early_stop, " \
           "train.threads and train.device may change" in err


def test_a_changed_population_is_a_changed_spec_not_a_damaged_checkpoint(trained_runs, tmp_path, capsys):
    run_dir = _copy_run(trained_runs["genetic"], tmp_path)
    assert main(["train", str(run_dir), "--resume", "-q", "--set", "optimizer.population=8"]) == 2
    err = capsys.readouterr().err
    assert "the spec changed since the run started: optimizer.population (6 -> 8)" in err and "damaged" not in err


@pytest.mark.parametrize("file, what", [("weights.npz", "the trained weights"),
                                        ("preprocess.npz", "the input preprocessing"),
                                        ("checkpoint.npz", "the training checkpoint")])
def test_an_npy_header_claiming_1e12_floats_is_refused_before_allocating(trained_runs, tmp_path, capsys, file, what):
    run_dir = _copy_run(trained_runs["adam"], tmp_path)
    with np.load(run_dir / file) as z:
        arrays = {k: z[k] for k in z.files}
    first = next(k for k in arrays if k != "state")
    npz_with_header(run_dir / file, arrays, {first: (10 ** 12,)})
    command = ["train", str(run_dir), "--resume", "-q"] if file == "checkpoint.npz" else \
        ["eval", str(run_dir)]
    if file == "checkpoint.npz":
        (run_dir / "weights.npz").unlink()
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"{run_dir / file} ({what}) is damaged: array '{first}' claims 1000000000000 (" in err, err


@pytest.mark.parametrize("file", ["data.json", "metrics.json", ".dlc-run.json"])
def test_run_json_nested_1e5_deep_is_refused(trained_runs, tmp_path, capsys, file):
    run_dir = _copy_run(trained_runs["adam"], tmp_path)
    (run_dir / file).write_text("[" * 100_000 + "]" * 100_000)
    code = main(["eval", str(run_dir)])
    err = capsys.readouterr().err
    assert "internal error" not in err
    if file == ".dlc-run.json":  # only says whether dlc made the folder: eval does not need it
        assert code == 0
    else:
        assert code == 2 and f"{run_dir / file}" in err and "is damaged" in err


def test_edited_class_names_in_metrics_json_are_refused(trained_runs, tmp_path, capsys):
    import json
    run_dir = _copy_run(trained_runs["adam"], tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["classes"] = list(reversed(metrics["classes"]))
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    for command in (["predict", str(run_dir), "spiral"], ["eval", str(run_dir)],
                    ["export", str(run_dir), "-o", str(tmp_path / "m.onnx")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert f"dlc: error: {run_dir / 'metrics.json'} is damaged: its class names differ from the run's " \
               "(0, 1, 2 in preprocess.npz)" in err


@pytest.mark.parametrize("command", ["predict", "eval", "export"])
def test_weights_that_overflow_in_use_are_refused_everywhere(trained_runs, tmp_path, capsys, command):
    run_dir = _copy_run(trained_runs["adam"], tmp_path)
    with np.load(run_dir / "weights.npz") as z:
        w = {k: z[k] for k in z.files}
    w["dense2.weight"] = np.full_like(w["dense2.weight"], 3e38)  # finite, but the products overflow
    np.savez(run_dir / "weights.npz", **w)
    args = {"predict": ["predict", str(run_dir), "spiral"], "eval": ["eval", str(run_dir)],
            "export": ["export", str(run_dir), "-o", str(tmp_path / "m.onnx")]}[command]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "dlc: error: the model computes NaN or inf for " in err
    assert "hint: its weights overflow on these inputs: retrain the run" in err
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("file", ["spec.dl", "checkpoint.npz", "weights.npz"])
def test_a_run_file_that_is_a_fifo_is_refused_without_reading(trained_runs, tmp_path, capsys, file):
    import os
    run_dir = _copy_run(trained_runs["adam"], tmp_path)
    (run_dir / file).unlink()
    os.mkfifo(run_dir / file)
    args = ["train", str(run_dir), "--resume", "-q", "--set", "train.epochs=3"] if file != "weights.npz" else \
        ["eval", str(run_dir)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{run_dir / file}" in err and "is a FIFO (named pipe), not a" in err


def test_a_torch_generator_state_torch_refuses_is_a_damaged_checkpoint(spec_file, tmp_path, capsys):
    pytest.importorskip("torch")
    spec = spec_file(DIGITS_MLP)
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


@pytest.mark.parametrize("name", ["preprocess.npz", "metrics.json"])
def test_a_damaged_run_file_is_refused_by_name(spiral_run, tmp_path, capsys, name):
    import shutil
    copy = tmp_path / "run"
    shutil.copytree(spiral_run, copy)
    (copy / name).write_bytes(b"\x00garbage")
    assert main(["eval", str(copy)]) == 2
    err = capsys.readouterr().err
    assert f"{copy / name}" in err and "internal error" not in err
