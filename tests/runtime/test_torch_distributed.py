"""torchrun: several processes train one model (DistributedDataParallel over gloo on the CPU).

The maths equals one process's (float64: <= 1e-9 after 20 steps of resnet_digits, batchnorm and an
uneven last batch included); whole runs in float32 agree to <= 1e-5 where training is not chaotic
(digits_mlp); only rank 0 writes; a run whose rank is SIGKILLed resumes to the uninterrupted result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SHARED_DATA

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.slow

HERE = ROOT / "tests"  # torchrun_steps.py
SPECS = ROOT / "specs"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]


def _env():
    # C++ stack traces: a process that aborts says where
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(HERE), TORCH_SHOW_CPP_STACKTRACES="1")


def rel(a, b) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b) / max(np.linalg.norm(a.astype(np.float64)), 1e-30))


def _run(args, cwd, **kw):
    r = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.mark.parametrize("spec, steps", [("resnet_digits", 20), ("digits_gap", 20)])
def test_two_processes_compute_what_one_does_in_float64(tmp_path, spec, steps):
    script = str(HERE / "torchrun_steps.py")
    _run([sys.executable, script, str(SPECS / f"{spec}.dl"), str(steps), "one.npz"], tmp_path)
    _run(TORCHRUN + ["--standalone", script, str(SPECS / f"{spec}.dl"), str(steps), "two.npz"], tmp_path)
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert sorted(one.files) == sorted(two.files)
    assert max(rel(one[k], two[k]) for k in one.files) <= 1e-9


def _one_process_and_two(spec: Path, steps: int, tmp_path: Path) -> None:
    """`steps` steps of `spec` in one process and under torchrun with two: the same weights (float64, 1e-9)."""
    script = str(HERE / "torchrun_steps.py")
    _run([sys.executable, script, str(spec), str(steps), "one.npz"], tmp_path)
    _run(TORCHRUN + ["--standalone", script, str(spec), str(steps), "two.npz"], tmp_path)
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert sorted(one.files) == sorted(two.files)
    assert max(rel(one[k], two[k]) for k in one.files) <= 1e-9


def test_two_processes_compute_what_one_does_on_series_of_different_lengths(tmp_path):
    # batchnorm's statistics over both processes' valid steps only, and packed recurrent layers
    pytest.importorskip("sktime")
    spec = tmp_path / "jv.dl"
    spec.write_text("model jv {\n    input 12x29 variable\n    conv1d 16 kernel=3 pad=same batchnorm relu\n"
                    "    gru 8 bidirectional\n    dense 9 softmax\n}\ndata japanese_vowels standardize\n"
                    "optimizer adam lr=3e-3\ntrain batch=16 seed=0\n")
    _one_process_and_two(spec, 10, tmp_path)


def test_two_processes_compute_what_one_does_on_texts(tmp_path):
    # token ids of different lengths: the embedding, the masked attention and pool in each process's slice
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is not here (CI copies ../shared beside the clone)")
    spec = tmp_path / "t.dl"
    spec.write_text("model t {\n    input 24 tokens\n    embedding 16 vocab=3000\n    position\n"
                    "    residual { layernorm; attention heads=2 }\n    globalavgpool\n    dense 2 softmax\n}\n"
                    f'data "{SHARED_DATA / "rotten_tomatoes.csv"}" text=text label=label\n'
                    "optimizer adam lr=3e-3\ntrain batch=16 seed=0\n")
    _one_process_and_two(spec, 10, tmp_path)


def _mlp(tmp_path) -> Path:
    """digits_mlp without dropout (noise is drawn per process)."""
    text = (SPECS / "digits_mlp.dl").read_text()
    import re
    path = tmp_path / "mlp.dl"
    path.write_text(re.sub(r"dropout=[\d.]+", "dropout=0", text))
    return path


def _weights(run: Path) -> dict:
    with np.load(run / "weights.npz") as w:
        return {k: w[k] for k in w.files}


def test_two_processes_train_the_weights_one_does_and_only_rank_0_writes(tmp_path):
    spec = _mlp(tmp_path)
    args = ["-m", "dlc", "train", str(spec), "--engine", "torch", "--device", "cpu", "-q", "--set", "train.epochs=5"]
    _run([sys.executable, *args, "-o", "one"], tmp_path)
    r = _run(TORCHRUN + ["--standalone", *args, "-o", "two"], tmp_path)
    assert r.stdout.count("run folder: two") == 1  # rank 0 alone reports
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert max(rel(one[k], two[k]) for k in one) <= 1e-5
    m = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert (m["engine"], m["world_size"], m["device"]) == ("torch", 2, "cpu")
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


def test_a_process_other_than_rank_0_writes_nothing(tmp_path, monkeypatch):
    from dlc import api
    monkeypatch.setenv("RANK", "1")  # what torchrun sets; WORLD_SIZE unset: no process group is needed
    api.train(SPECS / "digits_fast.dl", out=tmp_path / "run", overrides=["train.epochs=1"])
    assert not (tmp_path / "run").exists()


def _rank_pid(launcher: subprocess.Popen, rank: int) -> int | None:
    """The pid of the torchrun worker with RANK=rank (a descendant of the launcher)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text().split()
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"TORCHELASTIC_RUN_ID" in b"".join(env) and \
                int(stat[3]) != os.getpid() and int(pid) != launcher.pid:
            return int(pid)
    return None


def test_a_killed_rank_then_resume_gives_the_uninterrupted_run_bit_for_bit(tmp_path):
    """Dropout on (each process's own generator is checkpointed): SIGKILL rank 1 after some epochs,
    resume with the same world size, and the weights equal an uninterrupted run's exactly."""
    spec = SPECS / "digits_mlp.dl"
    args = ["-m", "dlc", "train", str(spec), "--engine", "torch", "--device", "cpu", "-q",
            "--set", "train.epochs=40", "--set", "train.early_stop=0"]
    _run(TORCHRUN + ["--standalone", *args, "-o", "full"], tmp_path)
    launcher = subprocess.Popen(TORCHRUN + ["--standalone", *args, "-o", "cut"], cwd=tmp_path, env=_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    history = tmp_path / "cut" / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline and not (history.exists() and len(history.read_text().splitlines()) > 3):
        time.sleep(0.05)
    pid = _rank_pid(launcher, 1)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    launcher.communicate(timeout=120)
    assert launcher.returncode != 0
    kept = len(history.read_text().splitlines()) - 1
    assert 3 <= kept < 40
    _run(TORCHRUN + ["--standalone", "-m", "dlc", "train", "cut", "--resume", "-q"], tmp_path)
    full, cut = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    for k in full:
        assert np.array_equal(full[k], cut[k]), k


def test_a_two_process_run_resumes_on_one_process(tmp_path):
    spec = _mlp(tmp_path)
    args = ["-m", "dlc", "train", str(spec), "--engine", "torch", "--device", "cpu", "-q"]
    _run(TORCHRUN + ["--standalone", *args, "-o", "run", "--set", "train.epochs=2"], tmp_path)
    _run([sys.executable, "-m", "dlc", "train", "run", "--resume", "-q", "--set", "train.epochs=3"], tmp_path)
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (m["epochs_run"], m["world_size"]) == (3, 1)
