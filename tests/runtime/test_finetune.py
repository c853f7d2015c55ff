"""Fine-tuning: `init from "RUN"` loads a trained run's arrays by name and shape; `frozen` keeps a line's,
a group's or a block use's parameters (and batchnorm statistics) as they start, on both engines; resume
stays bit-identical."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import DIGITS_MLP, NAME_TOO_LONG

import dlc
from dlc import api
from dlc.cli import main

BASE = """model base {
    input 1x8x8
    conv 8 kernel=3 pad=same relu batchnorm
    maxpool 2
    flatten
    dense 10 softmax
}
data digits scale=1/16
optimizer adam lr=3e-3
train epochs=3 batch=32 seed=0
"""

FINE = """init from "base"

block head(c) {
    dense c relu
}

model fine {
    input 1x8x8
    conv 8 kernel=3 pad=same relu batchnorm frozen
    maxpool 2
    flatten
    dense 16 relu
    head 12 frozen
    dense 10 softmax
}
data digits scale=1/16
optimizer adam lr=3e-3
train epochs=4 batch=32 seed=1
"""


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finetune")
    (folder / "base.dl").write_text(BASE)
    assert main(["train", str(folder / "base.dl"), "-o", str(folder / "base"), "-q"]) == 0
    return folder


def _fine(folder: Path, text: str = FINE, name: str = "fine.dl") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_check_reports_what_is_loaded_new_and_skipped(base_run, capsys):
    assert main(["check", str(_fine(base_run))]) == 0
    out = capsys.readouterr().out
    sha = hashlib.sha256((base_run / "base" / "weights.npz").read_bytes()).hexdigest()
    assert f"init from {base_run / 'base'} (weights sha256 {sha[:12]}): 5 array(s) loaded, 4 new, 2 skipped" in out
    assert "new (dlc's init): head1.dense1.weight, head1.dense1.bias, dense2.weight, dense2.bias" in out
    assert "skipped, another shape: dense1.weight: run 128x10, spec 128x16; dense1.bias: run 10, spec 16" in out


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_frozen_arrays_keep_the_loaded_values_and_get_no_optimizer_state(base_run, engine):
    if engine == "torch":
        pytest.importorskip("torch")
    out = base_run / f"fine-{engine}"
    assert main(["train", str(_fine(base_run)), "-o", str(out), "-q", "--engine", engine]
                + (["--device", "cpu"] if engine == "torch" else [])) == 0
    base = np.load(base_run / "base" / "weights.npz")
    fine = np.load(out / "weights.npz")
    for k in ("conv1.weight", "batchnorm1.gamma", "batchnorm1.beta", "batchnorm1.running_mean", "batchnorm1.running_var"):
        assert np.array_equal(fine[k], base[k]), k  # loaded, then frozen: batchnorm's statistics too
    from dlc.runtime.weights import init_params
    start = init_params(api.check(_fine(base_run)).graph, 1)
    assert np.array_equal(fine["head1.dense1.weight"], start["head1.dense1.weight"])  # a frozen block use: dlc's init
    assert not np.array_equal(fine["dense1.weight"], start["dense1.weight"])  # trained
    ckpt = np.load(out / "checkpoint.npz")
    moments = {k.split("/", 1)[1].rsplit(".", 1)[0] for k in ckpt.files if k.startswith("optimizer/") and "__t__" not in k}
    assert moments == {"dense1.weight", "dense1.bias", "dense2.weight", "dense2.bias"}
    m = json.loads((out / "metrics.json").read_text())
    assert m["init_from"]["sha256"] == hashlib.sha256((base_run / "base" / "weights.npz").read_bytes()).hexdigest()
    assert len(m["init_from"]["loaded"]) == 5


def test_a_frozen_run_resumes_bit_identically_and_keeps_its_origin(base_run):
    spec = api.check(_fine(base_run))
    full = dlc.train(spec, out=base_run / "full")
    dlc.train(api.check(_fine(base_run), ["train.epochs=2"]), out=base_run / "cut")
    resumed = dlc.train(spec, out=base_run / "cut", resume=True)
    for k, v in full.model.values.items():
        assert np.array_equal(v, resumed.model.values[k]), k
    assert resumed.metrics["init_from"] == full.metrics["init_from"]


def test_the_run_folder_spec_names_the_base_run_absolutely(base_run):
    dlc.train(api.check(_fine(base_run), ["train.epochs=1"]), out=base_run / "portable")
    text = (base_run / "portable" / "spec.dl").read_text()
    assert f'init from "{base_run / "base"}"' in text
    assert main(["check", str(base_run / "portable" / "spec.dl")]) == 0  # from any folder


@pytest.mark.parametrize("first_line, message", [
    ('init from "nowhere"', "no such run folder: "),
    ('init from "empty"', "empty is not a dlc run folder (it has no .dlc-run.json, which dlc train writes)"),
    ('init from "stopped"', "holds no weights.npz: it is not a trained run"),
    ('init from "other"', "no parameter of the run has a name and shape of this spec"),
    ("init he_normal", 'outside the model block, init takes the run to start from: init from "RUN"'),
])
def test_init_from_what_cannot_be_used_is_refused_where_it_is_written(base_run, capsys, first_line, message):
    (base_run / "empty").mkdir(exist_ok=True)
    _copy_run(base_run, "stopped", lambda f: (f / "weights.npz").unlink())
    if not (base_run / "other").exists():
        (base_run / "o.dl").write_text(BASE.replace("conv 8", "conv 4"))  # every array of another shape
        assert main(["train", str(base_run / "o.dl"), "-o", str(base_run / "other"), "-q",
                     "--set", "train.epochs=1"]) == 0
    path = _fine(base_run, FINE.replace('init from "base"', first_line).replace("dense 16 relu", "dense 5 relu")
                 .replace("conv 8", "conv 2"), "bad.dl")
    assert main(["train", str(path), "-q", "-o", str(base_run / "never")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:1:" in err and message in err, err
    assert not (base_run / "never").exists()


def test_frozen_trains_alike_on_both_engines_in_float64(base_run):
    torch = pytest.importorskip("torch")
    from engine_parity import compare
    text = FINE.replace('init from "base"\n', "")
    compare(_fine(base_run, text, "nofrom.dl"), torch.float64, 20, 1e-9)


# ---- what careless use of the source run must not break (issue 31, items 2, 3, 6, 9) ---------------------
def test_a_fine_tuned_run_into_its_own_source_is_refused_before_anything_is_deleted(base_run, capsys):
    source = base_run / "source"
    assert main(["train", str(base_run / "base.dl"), "-o", str(source), "-q", "--set", "train.epochs=1"]) == 0
    before = {p.name: p.read_bytes() for p in source.iterdir() if p.is_file()}
    path = _fine(base_run, FINE.replace('init from "base"', 'init from "source"'), "into_source.dl")
    assert main(["train", str(path), "-o", str(source), "--overwrite", "-q"]) == 2
    assert f"{path}:1:11: error: init from {source} is the folder this run would be written to" \
        in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in source.iterdir() if p.is_file()} == before


def test_a_fine_tuned_run_resumes_from_its_checkpoint_after_its_source_moved(base_run):
    source = base_run / "moving"
    assert main(["train", str(base_run / "base.dl"), "-o", str(source), "-q", "--set", "train.epochs=1"]) == 0
    path = _fine(base_run, FINE.replace('init from "base"', 'init from "moving"'), "from_moving.dl")
    run = base_run / "ft_moved"
    assert main(["train", str(path), "-o", str(run), "-q", "--set", "train.epochs=1"]) == 0
    source.rename(base_run / "moved_away")
    assert main(["train", str(run), "--resume", "--set", "train.epochs=2", "-q"]) == 0
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == 2


def _copy_run(base_run, name, change):
    import shutil
    folder = base_run / name
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(base_run / "base", folder)
    change(folder)
    return folder


def _weights_as(folder, dtype):
    w = dict(np.load(folder / "weights.npz"))
    w["conv1.weight"] = w["conv1.weight"].astype(dtype)
    (folder / "weights.npz").unlink()
    np.savez(folder / "weights.npz", **w)


@pytest.mark.parametrize("case, change, message", [
    ("int32", lambda f: _weights_as(f, np.int32), "array 'conv1.weight' is int32; weights are float32 or float64"),
    ("float16", lambda f: _weights_as(f, np.float16), "array 'conv1.weight' is float16; weights are float32"),
    ("bool", lambda f: _weights_as(f, bool), "array 'conv1.weight' is bool; weights are float32 or float64"),
    ("no manifest", lambda f: (f / ".dlc-run.json").unlink(), "is not a dlc run folder (it has no .dlc-run.json"),
    ("a FIFO", lambda f: ((f / "weights.npz").unlink(), __import__("os").mkfifo(f / "weights.npz")),
     "weights.npz (the run's weights) is a FIFO (named pipe), not a regular file"),
    ("a link to /dev/zero", lambda f: ((f / "weights.npz").unlink(), (f / "weights.npz").symlink_to("/dev/zero")),
     "weights.npz (the run's weights) is a character device, not a regular file"),
])
@pytest.mark.parametrize("command", ["check", "train"])
def test_a_source_run_dlc_did_not_write_is_refused_by_name(base_run, capsys, case, change, message, command):
    source = _copy_run(base_run, f"odd-{case.replace(' ', '_').replace('/', '')}", change)
    path = _fine(base_run, FINE.replace('init from "base"', f'init from "{source.name}"'), f"odd_{command}.dl")
    args = [command, str(path)] + (["-q", "-o", str(base_run / "never")] if command == "train" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{path}:1:11: error: " in err and message in err, err


def test_check_says_which_weights_are_loaded_or_frozen_and_counts_trainable_ones(base_run, capsys):
    """Issue 26, item 10: the init column said he_normal (auto) for weights loaded from the run."""
    assert main(["check", str(_fine(base_run))]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()[:1].isdigit()}
    table = "\n".join(rows.values())
    assert "loaded, frozen" in rows["9"]  # conv 8 ... frozen: loaded from base and kept
    assert "frozen" in rows["13"] and "loaded" not in rows["13"]  # head 12 frozen: dlc's init, kept
    assert "loaded" not in rows["12"] and "frozen" not in rows["12"]  # dense 16 relu: another shape, trained
    spec = api.check(_fine(base_run))
    frozen = sum(p.size for p in spec.graph.params() if p.frozen)
    from dlc.compiler.summary import render
    assert f"total: {spec.graph.param_count:,} parameters ({spec.graph.param_count - frozen:,} trainable, " \
           f"{frozen:,} frozen)" in render(spec), table


def test_init_from_a_name_past_the_limit_is_no_such_run(tmp_path, capsys):
    path = tmp_path / "fine.dl"
    path.write_text(f'init from "{NAME_TOO_LONG}"\n' + DIGITS_MLP)
    assert main(["check", str(path)]) == 2
    assert f"{path}:1:11: error: no such run folder: " in capsys.readouterr().err
