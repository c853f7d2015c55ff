"""train log=tensorboard: the events are read back with TensorBoard's own reader, with the expected
tags and one value per epoch, also after a resume; the run folder owns the event folder."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorboardX")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from dlc.cli import main  # noqa: E402

SPEC = ("model m {\n input 64\n dense 32 relu\n dense 10 softmax\n}\ndata digits standardize\n"
        "optimizer adam lr=1e-3\ntrain epochs=4 batch=64 seed=0 log=tensorboard early_stop=0\n")


def _scalars(run):
    ea = EventAccumulator(str(run / "tensorboard"))
    ea.Reload()
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


def test_every_epoch_writes_the_losses_the_rate_and_each_weight_s_health(tmp_path):
    spec = tmp_path / "s.dl"
    spec.write_text(SPEC)
    assert main(["train", str(spec), "-o", str(tmp_path / "run"), "-q"]) == 0
    s = _scalars(tmp_path / "run")
    assert sorted(s) == sorted(["epoch/loss", "epoch/accuracy", "epoch/val_loss", "epoch/val_accuracy", "epoch/lr"]
                               + [f"{k}/{w}" for k in ("weight_norm", "grad_norm", "update_ratio")
                                  for w in ("dense1.weight", "dense2.weight")])
    for tag, values in s.items():
        assert [step for step, _ in values] == [1, 2, 3, 4], tag
    import csv
    history = list(csv.DictReader((tmp_path / "run" / "history.csv").open()))
    assert [v for _, v in s["epoch/val_loss"]] == pytest.approx([float(r["val_loss"]) for r in history], rel=1e-6)
    weights = np.load(tmp_path / "run" / "weights.npz")
    assert s["weight_norm/dense1.weight"][-1][1] == pytest.approx(float(np.linalg.norm(weights["dense1.weight"])),
                                                                rel=1e-6)
    assert all(1e-5 < v < 1e-1 for _, v in s["update_ratio/dense1.weight"])  # Adam at lr 1e-3: about 1e-3


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_a_resumed_run_continues_the_stream_without_duplicate_epochs(tmp_path, engine):
    if engine == "torch":
        pytest.importorskip("torch")
    spec = tmp_path / "s.dl"
    spec.write_text(SPEC)
    extra = ["--engine", engine] + (["--device", "cpu"] if engine == "torch" else [])
    assert main(["train", str(spec), "-o", str(tmp_path / "run"), "-q", "--set", "train.epochs=2", *extra]) == 0
    assert main(["train", str(tmp_path / "run"), "--resume", "-q", "--set", "train.epochs=4"]) == 0
    assert main(["train", str(spec), "-o", str(tmp_path / "full"), "-q", *extra]) == 0
    resumed, full = _scalars(tmp_path / "run"), _scalars(tmp_path / "full")
    assert sorted(resumed) == sorted(full)
    for tag in full:
        assert [step for step, _ in resumed[tag]] == [1, 2, 3, 4], tag
    # the resumed run is the uninterrupted one: the same losses (the statistics of the step that
    # straddles the stop are the only ones not kept: grad/update means restart with the resumed epoch)
    assert [v for _, v in resumed["epoch/loss"]] == [v for _, v in full["epoch/loss"]]


def test_overwrite_replaces_the_earlier_run_s_events(tmp_path):
    spec = tmp_path / "s.dl"
    spec.write_text(SPEC)
    assert main(["train", str(spec), "-o", str(tmp_path / "run"), "-q"]) == 0
    assert main(["train", str(spec), "-o", str(tmp_path / "run"), "-q", "--overwrite", "--set", "train.epochs=2"]) == 0
    assert [step for step, _ in _scalars(tmp_path / "run")["epoch/loss"]] == [1, 2]
    assert len(list((tmp_path / "run" / "tensorboard").iterdir())) == 1


def test_a_linked_event_folder_is_refused(tmp_path, capsys):
    spec = tmp_path / "s.dl"
    spec.write_text(SPEC.replace("epochs=4", "epochs=1"))
    assert main(["train", str(spec), "-o", str(tmp_path / "run"), "-q"]) == 0
    import shutil
    shutil.rmtree(tmp_path / "run" / "tensorboard")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "run" / "tensorboard").symlink_to(tmp_path / "elsewhere")
    assert main(["train", str(tmp_path / "run"), "--resume", "-q", "--set", "train.epochs=2"]) == 2
    assert "is not a folder dlc made; dlc does not write through links" in capsys.readouterr().err
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_without_tensorboardx_log_is_refused_with_the_install_command(tmp_path):
    spec = tmp_path / "s.dl"
    spec.write_text(SPEC)
    code = ("import sys; sys.modules['tensorboardX'] = None\nfrom dlc.cli import main\n"
            f"sys.exit(main(['train', {str(spec)!r}, '-q', '-o', {str(tmp_path / 'r')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 2
    assert "error: train log=tensorboard needs tensorboardX, which is not installed" in r.stderr
    assert 'pip install "dlc[live]"' in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r").exists()


def test_overwrite_keeps_a_file_of_the_user_s_inside_the_event_folder(tmp_path):
    spec = tmp_path / "s.dl"
    spec.write_text(SPEC.replace("epochs=4", "epochs=1"))
    assert main(["train", str(spec), "-o", str(tmp_path / "run"), "-q"]) == 0
    (tmp_path / "run" / "tensorboard" / "my notes.txt").write_text("mine")
    assert main(["train", str(spec), "-o", str(tmp_path / "run"), "-q", "--overwrite"]) == 0
    assert (tmp_path / "run" / "tensorboard" / "my notes.txt").read_text() == "mine"
    assert len([p for p in (tmp_path / "run" / "tensorboard").iterdir() if p.name.startswith("events.")]) == 1


def test_an_event_folder_that_cannot_be_written_is_a_located_refusal(tmp_path, capsys, monkeypatch):
    spec = tmp_path / "s.dl"
    spec.write_text(SPEC.replace("epochs=4", "epochs=1"))
    assert main(["train", str(spec), "-o", str(tmp_path / "run"), "-q"]) == 0
    import tensorboardX
    folder = tmp_path / "run" / "tensorboard"

    def denied(*a, **k):  # (root ignores permission bits: what a user without write access meets)
        raise PermissionError(13, "Permission denied", str(folder / "events.out.tfevents.x"))
    monkeypatch.setattr(tensorboardX, "SummaryWriter", denied)
    assert main(["train", str(tmp_path / "run"), "--resume", "-q", "--set", "train.epochs=2"]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {folder / 'events.out.tfevents.x'}: Permission denied" in err and "internal" not in err
