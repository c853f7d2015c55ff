"""Runs resume exactly: after Ctrl-C, after a kill at any moment, and not at all when complete."""

import itertools
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import dlc
from dlc.cli import main
from dlc.runtime import run_folder as rf
from dlc.runtime.numpy_engine.engine import NumpyEngine
from dlc.runtime.trainer import train

# early_stop with a patience that ends the run early, so the best epoch is not the last one
EARLY = """model early {
    input 2
    dense 16 relu batchnorm dropout=0.2
    dense 3 softmax
}
data blobs n=150 noise=2.5
optimizer adam lr=0.05
train epochs=40 batch=16 early_stop=4 seed=0
"""


def _weights(run_dir):
    return rf.load_npz(run_dir / "weights.npz")


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _rows(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return train(dlc.compile(EARLY), out=tmp_path_factory.mktemp("full") / "run", progress=False)


def _interrupt_at_step(monkeypatch, step):
    real = NumpyEngine.step
    calls = {"n": 0}

    def call(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == step:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(NumpyEngine, "step", call)


@pytest.mark.parametrize("step", [3, 30, 50, 75])
def test_ctrl_c_then_resume_is_bit_identical_with_early_stop(tmp_path, monkeypatch, uninterrupted, step):
    assert uninterrupted.metrics["stopped_early"] and uninterrupted.metrics["best_epoch"] < len(uninterrupted.history)
    with monkeypatch.context() as m:
        _interrupt_at_step(m, step)
        part = train(dlc.compile(EARLY), out=tmp_path / "run", progress=False)
    assert part.interrupted
    done = (step - 1) // 7  # 7 steps per epoch (108 training samples, batch 16): the epochs completed before
    assert len(part.history) == done
    if done:  # what Ctrl-C keeps is the best epoch's weights, and the state of the last epoch
        state = rf.load_checkpoint(tmp_path / "run")[1]
        assert state["epoch"] == done and len(state["history"]) == done
    resumed = train(dlc.compile(EARLY), out=tmp_path / "run", resume=True, progress=False)
    assert _rows(resumed.history) == _rows(uninterrupted.history)
    assert _same(_weights(resumed.run_dir), _weights(uninterrupted.run_dir))


def test_resume_with_no_completed_epoch_starts_over(tmp_path, monkeypatch, uninterrupted, capsys):
    with monkeypatch.context() as m:
        _interrupt_at_step(m, 2)
        code = main(["train", str(_spec_file(tmp_path)), "-o", str(tmp_path / "run"), "-q"])
    assert code == 130
    assert "interrupted before the first epoch completed: nothing kept" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoint.npz").exists()
    assert main(["train", str(tmp_path / "run"), "--resume", "-q"]) == 0
    err = capsys.readouterr().err
    assert f"{tmp_path / 'run'}: no epoch completed before the run stopped; starting it over" in err
    assert _same(_weights(tmp_path / "run"), _weights(uninterrupted.run_dir))


def _spec_file(tmp_path, text=EARLY):
    p = tmp_path / "early.dl"
    p.write_text(text)
    return p


def _train_killed(monkeypatch, tmp_path, owner, name, dies):
    """Train EARLY into tmp_path/run, dying (as a kill would) on the call of owner.name for which dies(*args)."""
    real = getattr(owner, name)

    def dying(*args):
        if dies(*args):
            raise SystemExit("killed")
        return real(*args)

    with monkeypatch.context() as m:
        m.setattr(owner, name, dying)
        with pytest.raises(SystemExit):
            train(dlc.compile(EARLY), out=tmp_path / "run", progress=False)


def _nth(n, match=lambda *args: True):
    calls = itertools.count(1)
    return lambda *args: match(*args) and next(calls) == n


def test_a_kill_between_checkpoint_and_history_resumes_exactly(tmp_path, monkeypatch, uninterrupted):
    """The checkpoint is the one file resume reads: whatever else the kill left half-done is rewritten."""
    _train_killed(monkeypatch, tmp_path, rf, "save_history", _nth(5))  # checkpoint 5 is on disk, history 5 not
    assert rf.load_checkpoint(tmp_path / "run")[1]["epoch"] == 5
    resumed = train(dlc.compile(EARLY), out=tmp_path / "run", resume=True, progress=False)
    assert _rows(resumed.history) == _rows(uninterrupted.history)
    assert _same(_weights(resumed.run_dir), _weights(uninterrupted.run_dir))


def test_a_kill_during_the_checkpoint_write_keeps_the_previous_epoch(tmp_path, monkeypatch, uninterrupted):
    # the 4th checkpoint's temporary file is written, not yet renamed
    _train_killed(monkeypatch, tmp_path, os, "replace", _nth(4, lambda src, dst: str(dst).endswith("checkpoint.npz")))
    assert rf.load_checkpoint(tmp_path / "run")[1]["epoch"] == 3
    resumed = train(dlc.compile(EARLY), out=tmp_path / "run", resume=True, progress=False)
    assert not list((tmp_path / "run").glob(".*.tmp"))
    assert _same(_weights(resumed.run_dir), _weights(uninterrupted.run_dir))


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path, uninterrupted):
    spec = _spec_file(tmp_path, EARLY.replace("epochs=40", "epochs=400").replace("early_stop=4", "early_stop=0")
                      .replace("n=150", "n=600"))
    ref = train(dlc.compile(spec.read_text()), out=tmp_path / "ref", progress=False)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    rng = np.random.default_rng(7)
    for k in range(4):
        run = tmp_path / f"run{k}"
        cmd = [sys.executable, "-m", "dlc", "train", str(spec), "-o", str(run), "-q"]
        killed = 0
        while True:  # kill again and again at random moments until a resume gets to finish
            p = subprocess.Popen(cmd + (["--resume"] if run.exists() else []), env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                p.wait(timeout=float(rng.uniform(1.0, 4.0)))
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.wait()
                killed += 1
            if p.returncode == 0:
                break
        assert killed >= 1
        assert _same(_weights(run), _weights(ref.run_dir)), f"run {k} after {killed} kill(s)"
        assert not list(run.glob(".*.tmp"))


def test_resuming_a_complete_run_changes_nothing(tmp_path, capsys, uninterrupted):
    spec = _spec_file(tmp_path)
    assert main(["train", str(spec), "-o", str(tmp_path / "run"), "-q"]) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    assert main(["train", str(tmp_path / "run"), "--resume", "-q"]) == 0
    out = capsys.readouterr().out
    n = len(uninterrupted.history)
    assert (f"{tmp_path / 'run'} is complete: {n} epoch(s), stopped early; nothing changed. Train longer with: "
            f"dlc train {tmp_path / 'run'} --resume --set train.early_stop=N") in out
    after = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    assert after == before


def test_a_complete_run_is_extended_with_set_epochs(tmp_path):
    short = EARLY.replace("early_stop=4", "early_stop=0").replace("epochs=40", "epochs=3")
    train(dlc.compile(short), out=tmp_path / "run", progress=False)
    done = train(dlc.compile(short), out=tmp_path / "run", resume=True, progress=False)
    assert done.complete and len(done.history) == 3
    longer = dlc.compile(short, overrides=["train.epochs=5"])
    extended = train(longer, out=tmp_path / "run", resume=True, progress=False)
    assert len(extended.history) == 5
    straight = train(dlc.compile(short.replace("epochs=3", "epochs=5")), out=tmp_path / "ref", progress=False)
    assert _same(_weights(extended.run_dir), _weights(straight.run_dir))


def _damage(run, how):
    path = run / "checkpoint.npz"
    if how == "garbage":
        path.write_bytes(b"not a zip at all")
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:300])
    else:
        groups, state = rf.load_checkpoint(run)
        if how == "state key":
            del state["shuffle_rng"]
        elif how == "state json":
            arrays = {f"{g}/{k}": v for g, d in groups.items() for k, v in d.items()}
            arrays["state"] = np.frombuffer(b"{not json", np.uint8)
            rf.save_npz(path, arrays)
            return
        elif how == "optimizer shape":
            key = next(k for k in groups["optimizer"] if k != "__t__")
            groups["optimizer"][key] = np.zeros((7, 7), np.float32)
        elif how == "best nan":
            key = next(iter(groups["best"]))
            groups["best"][key] = groups["best"][key] * np.nan
        elif how == "rng":
            state["noise_rng"] = {"bit_generator": "PCG64", "state": "nonsense"}
        rf.save_checkpoint(run, groups, state)


@pytest.mark.parametrize("how, message", [
    ("garbage", "checkpoint.npz (the training checkpoint) is not a readable .npz file: BadZipFile"),
    ("truncated", "checkpoint.npz (the training checkpoint) is not a readable .npz file"),
    ("state key", "checkpoint.npz (the training checkpoint) is damaged: 'shuffle_rng' is missing or not a dict"),
    ("state json", "checkpoint.npz (the training checkpoint) is damaged: the training state is not JSON"),
    ("optimizer shape", "checkpoint.npz (the training checkpoint) is damaged: optimizer array"),
    ("best nan", "checkpoint.npz (the training checkpoint) is damaged: best array"),
    ("rng", "checkpoint.npz (the training checkpoint) is damaged: a random-generator state is invalid"),
])
def test_a_damaged_checkpoint_is_refused_by_name(tmp_path, capsys, how, message):
    run = tmp_path / "run"
    assert main(["train", str(_spec_file(tmp_path, EARLY.replace("epochs=40", "epochs=3"))), "-o", str(run), "-q"]) == 0
    _damage(run, how)
    capsys.readouterr()
    assert main(["train", str(run), "--resume", "--set", "train.epochs=5", "-q"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "internal error" not in err


def test_a_second_writer_is_refused_while_the_first_holds_the_folder(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    with rf.RunLock(run):
        assert main(["train", str(_spec_file(tmp_path)), "-o", str(run), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"dlc: error: {run} is in use by another dlc process (pid {os.getpid()})" in err
    assert main(["train", str(_spec_file(tmp_path)), "-o", str(run), "-q", "--set", "train.epochs=1"]) == 0


def test_output_below_or_equal_to_a_file_is_refused(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    spec = str(_spec_file(tmp_path))
    assert main(["train", spec, "-o", str(f), "-q"]) == 2
    assert f"dlc: error: {f} is a file, not a folder" in capsys.readouterr().err
    assert main(["train", spec, "-o", str(f / "run"), "-q"]) == 2
    assert f"dlc: error: cannot create {f / 'run'}: {f} is a file" in capsys.readouterr().err


def test_an_unwritable_folder_is_refused_and_leaves_no_temp_files(tmp_path, monkeypatch, capsys):
    import tempfile

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    assert main(["train", str(_spec_file(tmp_path)), "-o", str(tmp_path / "run"), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"dlc: error: cannot write {tmp_path / 'run' / '.dlc-run.json'}: Permission denied" in err


def test_a_file_size_limit_is_refused_and_leaves_no_temp_files(tmp_path):
    spec = _spec_file(tmp_path, EARLY.replace("dense 16", "dense 4096"))
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000)); "
            "from dlc.cli import main; sys.exit(main(sys.argv[1:]))")
    p = subprocess.run([sys.executable, "-c", code, "train", str(spec), "-o", str(tmp_path / "run"), "-q"],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert p.returncode == 2, p.stderr
    assert "cannot write" in p.stderr and "File too large" in p.stderr and "Traceback" not in p.stderr
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_run_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        r = train(dlc.compile(EARLY.replace("epochs=40", "epochs=1")), out=tmp_path / "run", progress=False)
    finally:
        os.umask(old)
    for name in ("weights.npz", "spec.dl", "checkpoint.npz", "metrics.json"):
        assert oct((r.run_dir / name).stat().st_mode & 0o777) == oct(0o644), name


def test_metrics_record_the_blas_thread_count(tmp_path):
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):
        r = train(dlc.compile(EARLY.replace("epochs=40", "epochs=1")), out=tmp_path / "run", progress=False)
    assert json.loads((r.run_dir / "metrics.json").read_text())["blas_threads"] == 1


def test_a_kill_after_the_last_checkpoint_is_finished_by_resume(tmp_path, monkeypatch, uninterrupted):
    # every epoch is checkpointed; the final files are not written
    _train_killed(monkeypatch, tmp_path, rf, "save_npz", lambda path, arrays: path.name == "weights.npz")
    assert not (tmp_path / "run" / "weights.npz").exists()
    resumed = train(dlc.compile(EARLY), out=tmp_path / "run", resume=True, progress=False)
    assert not resumed.complete and _rows(resumed.history) == _rows(uninterrupted.history)
    assert _same(_weights(resumed.run_dir), _weights(uninterrupted.run_dir))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["stopped_early"]


def test_resume_of_a_folder_without_a_spec_says_what_to_do(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(["train", str(tmp_path / "run"), "--resume", "-q"]) == 2
    assert (f"dlc: error: {tmp_path / 'run'} holds no spec.dl: the run stopped before its first epoch; "
            f"start it again with dlc train SPEC -o {tmp_path / 'run'}") in capsys.readouterr().err


def test_a_new_run_in_an_old_folder_leaves_nothing_of_the_old_one(tmp_path, monkeypatch):
    train(dlc.compile(EARLY.replace("epochs=40", "epochs=2")), out=tmp_path / "run", progress=False)
    with monkeypatch.context() as m:
        _interrupt_at_step(m, 2)
        train(dlc.compile(EARLY.replace("dense 16", "dense 8")), out=tmp_path / "run", progress=False,
              overwrite=True)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".dlc-run.json", ".lock", "network.svg",
                                                                     "preprocess.npz", "spec.dl"]
    assert "dense 8" in (tmp_path / "run" / "spec.dl").read_text()


def test_ctrl_c_during_a_checkpoint_write_keeps_what_is_on_disk(tmp_path, monkeypatch, uninterrupted):
    real = rf.save_checkpoint
    calls = itertools.count(1)

    def interrupted(run_dir, groups, state):
        if next(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C while the 4th checkpoint is written: the 3rd stays
        real(run_dir, groups, state)

    with monkeypatch.context() as m:
        m.setattr(rf, "save_checkpoint", interrupted)
        part = train(dlc.compile(EARLY), out=tmp_path / "run", progress=False)
    assert part.interrupted and len(part.history) == 3 == rf.load_checkpoint(tmp_path / "run")[1]["epoch"]
    assert len((tmp_path / "run" / "history.csv").read_text().strip().splitlines()) == 1 + 3
    resumed = train(dlc.compile(EARLY), out=tmp_path / "run", resume=True, progress=False)
    assert _same(_weights(resumed.run_dir), _weights(uninterrupted.run_dir))


def test_train_of_a_run_folder_without_resume_never_overwrites_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(_spec_file(tmp_path, EARLY.replace("epochs=40", "epochs=2"))), "-o", "runs/early",
                 "-q"]) == 0
    before = (tmp_path / "runs/early/weights.npz").read_bytes()
    capsys.readouterr()
    assert main(["train", "runs/early", "-q", "--set", "train.seed=1"]) == 0
    assert "run folder: runs/early-2" in capsys.readouterr().out
    assert (tmp_path / "runs/early/weights.npz").read_bytes() == before
