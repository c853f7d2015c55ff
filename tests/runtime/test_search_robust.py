"""dlc search under interruption, several processes and careless input: it stops on Ctrl-C, resumes
to the end, never spends trials on duplicates, and refuses what it cannot use by name."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import dlc
from dlc.cli import main
from dlc.runtime.tools.search import search

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))

SPEC = """model m {{
    input 2
    dense {width} relu
    dense 3 softmax
}}
data spiral n={n}
optimizer adam lr=loguniform(1e-3, 1e-1)
train epochs={epochs} batch=30 seed=0 validation=0.3
"""


def _spec(tmp_path, epochs=2, n=90, width=8, name="s.dl"):
    p = tmp_path / name
    p.write_text(SPEC.format(epochs=epochs, n=n, width=width))
    return p


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_storage_is_refused(tmp_path, capsys, url):
    assert main(["search", str(_spec(tmp_path)), "--trials", "2", "-q", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert f"dlc: error: --storage {url} is an in-memory database: the search's worker processes and a later " \
           "resume would each see an empty one" in err
    assert "hint: give a file, e.g. --storage sqlite:///study.db" in err


@pytest.mark.parametrize("seed", ["-1", str(2 ** 40)])
@pytest.mark.parametrize("sampler", ["tpe", "genetic"])
def test_a_seed_out_of_range_is_refused(tmp_path, capsys, seed, sampler):
    args = ["search", str(_spec(tmp_path)), "--trials", "2", "-q", "--seed", seed, "--sampler", sampler,
            "-o", str(tmp_path / "s")]
    assert main(args) == 2
    assert f"dlc: error: --seed {seed}: a seed is a whole number from 0 to 4,294,967,295" in capsys.readouterr().err


def test_a_study_file_of_something_else_is_refused_by_name(tmp_path, capsys):
    import sqlite3
    (tmp_path / "s").mkdir()
    con = sqlite3.connect(tmp_path / "s" / "study.db")
    con.execute("create table trials (x int)")  # someone else's table where optuna keeps its trials
    con.commit()
    con.close()
    assert main(["search", str(_spec(tmp_path)), "--trials", "2", "--jobs", "1", "-q", "-o", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert f"dlc: error: the study storage sqlite:///{tmp_path / 's' / 'study.db'} failed: " in err
    assert "internal error" not in err


def test_a_shared_study_refuses_a_search_of_another_spec(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a = ["search", str(_spec(tmp_path)), "--trials", "1", "--jobs", "1", "-q", "--storage", url, "--study", "x"]
    assert main(a + ["-o", str(tmp_path / "a")]) == 0
    b = ["search", str(_spec(tmp_path, width=16, name="b.dl")), "--trials", "1", "--jobs", "1", "-q", "--storage",
         url, "--study", "x", "-o", str(tmp_path / "b")]
    capsys.readouterr()
    assert main(b) == 2
    err = capsys.readouterr().err
    assert f"dlc: error: study 'x' in {url} holds another search (another spec: model dense1 (dense bias=True " \
           "units=8 <- input -> dense bias=True units=16 <- input))" in err


def test_sampled_values_are_written_so_that_they_read_back(tmp_path):
    text = SPEC.format(epochs=1, n=90, width=8).replace("dense 8 relu", "dense 8 relu dropout=uniform(0.9999, 0.99999)")
    text = text.replace("optimizer adam lr=loguniform(1e-3, 1e-1)",
                        "optimizer sgd lr=0.01 momentum=uniform(0.99995, 0.999999)")
    spec = dlc.compile(text, str(tmp_path / "s.dl"))
    result = search(spec, 3, fine=0, jobs=1, out=tmp_path / "s", progress=False)
    assert [t.status for t in result.trials] == ["ok"] * 3
    for t in result.trials:
        written = dlc.compile(t.text)
        assert written["optimizer"]["momentum"] == t.values["optimizer.momentum"]
        assert [n.attrs["p"] for n in written.graph.nodes if n.op == "dropout"] == [t.values["dense1.dropout"]]


def test_rerunning_a_search_without_o_resumes_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    spec = _spec(tmp_path)
    assert main(["search", str(spec), "--trials", "2", "--jobs", "1", "-q"]) == 0
    assert main(["search", str(spec), "--trials", "3", "--jobs", "1", "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["m-search"]
    rows = json.loads((tmp_path / "runs" / "m-search" / "results.json").read_text())["trials"]
    assert sorted(r["trial"] for r in rows) == [1, 2, 3]


def _distinct(out_dir) -> int:
    rows = json.loads((out_dir / "results.json").read_text())["trials"]
    return len({json.dumps({k: v for k, v in r.items() if k in ("optimizer.lr",)}) for r in rows}), len(rows)


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["tpe", "genetic"])
def test_parallel_workers_of_a_model_based_sampler_do_not_repeat_each_other(tmp_path, sampler):
    spec = dlc.compile_file(_spec(tmp_path, epochs=2))
    search(spec, 8, jobs=2, sampler=sampler, out=tmp_path / "s", progress=False)
    assert _distinct(tmp_path / "s") == (8, 8)


@pytest.mark.slow
def test_two_processes_on_one_study_with_tpe_do_not_repeat_each_other(tmp_path):
    spec = _spec(tmp_path, epochs=3)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    cmd = [sys.executable, "-m", "dlc", "search", str(spec), "--trials", "6", "--jobs", "1", "--sampler", "tpe",
           "-q", "--storage", url, "--study", "shared"]
    procs = [subprocess.Popen(cmd + ["-o", str(tmp_path / name)], env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for name in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    assert _distinct(tmp_path / "a") == (6, 6)


def _wait_for(predicate, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _finished_trials(db) -> int:
    import sqlite3
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(db, timeout=5)
        n = con.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
        con.close()
        return n
    except sqlite3.Error:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_stops_a_search_at_once_and_the_rerun_finishes_every_trial(tmp_path, jobs):
    # trials of ~1 s each: Ctrl-C (SIGINT to the main process alone) lands mid-trial, coarse trials are left
    # interrupted, and the rerun must replace them and reach the fine stage (it used to wait for ever)
    spec = _spec(tmp_path, epochs=60, n=600, width=32)
    cmd = [sys.executable, "-m", "dlc", "search", str(spec), "--trials", "8", "--fine", "2", "--jobs", str(jobs),
           "-q", "-o", str(tmp_path / "s")]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert _wait_for(lambda: _finished_trials(tmp_path / "s" / "study.db") >= 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)  # a search that does not stop fails here (it used to run on)
    assert proc.returncode == 130, err.decode()
    rerun = subprocess.run(cmd, env=ENV, capture_output=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr.decode()
    rows = json.loads((tmp_path / "s" / "results.json").read_text())["trials"]
    assert sorted(r["trial"] for r in rows) == list(range(1, 9))
    assert sorted(r["stage"] for r in rows) == ["coarse"] * 6 + ["fine"] * 2


def test_best_dl_of_a_search_on_a_data_file_trains_as_written_from_anywhere(tmp_path, monkeypatch, capsys):
    import numpy as np
    project = tmp_path / "project"
    project.mkdir()
    rng = np.random.default_rng(0)
    np.savez(project / "heldout.npz", x=rng.normal(size=(90, 2)).astype("float32"), y=np.arange(90) % 3)
    spec = project / "s.dl"
    spec.write_text(SPEC.format(epochs=1, n=90, width=8).replace("data spiral n=90", 'data "heldout.npz"'))
    monkeypatch.chdir(project)
    assert main(["search", "s.dl", "--trials", "2", "--jobs", "1", "-q", "-o", str(tmp_path / "S")]) == 0
    assert f'data "{project / "heldout.npz"}"' in (tmp_path / "S" / "best.dl").read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["train", str(tmp_path / "S" / "best.dl"), "-q", "-o", "run"]) == 0


def test_a_read_only_study_database_is_refused_by_name(tmp_path, capsys):
    spec = _spec(tmp_path)
    assert main(["search", str(spec), "--trials", "1", "--jobs", "1", "-q", "-o", str(tmp_path / "a")]) == 0
    url = f"sqlite:///file:{tmp_path / 'a' / 'study.db'}?mode=ro&uri=true"  # read-only, even for root
    capsys.readouterr()
    assert main(["search", str(spec), "--trials", "3", "--jobs", "1", "-q", "-o", str(tmp_path / "b"),
                 "--storage", url]) == 2
    err = capsys.readouterr().err
    assert f"dlc: error: cannot open the study storage {url}: " in err and "internal error" not in err


def test_a_search_into_a_folder_of_other_files_is_refused(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "results.csv").write_text("my own table\n")
    assert main(["search", str(_spec(tmp_path)), "--trials", "1", "--jobs", "1", "-q", "-o", str(tmp_path / "mine")]) == 2
    assert f"dlc: error: {tmp_path / 'mine'} is not empty and holds no search (no study.db)" in capsys.readouterr().err
    assert (tmp_path / "mine" / "results.csv").read_text() == "my own table\n"


@pytest.mark.parametrize("status, requeued", [("ok", False), ("interrupted", True)])
def test_a_trial_that_ends_while_a_rerun_requeues_it_is_not_an_internal_error(tmp_path, status, requeued):
    """The rerun lists a trial as running; a worker of the interrupted run ends it before the rerun marks
    it failed (seen once in CI: UpdateFinishedTrialError, exit 3). Finished, it is kept; ended as
    interrupted, it is run again."""
    import optuna
    from dlc.runtime.tools.study import requeue_unfinished
    st = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="s")
    trial = st.ask()
    trial.suggest_float("lr", 1e-3, 1e-1)
    real = st._storage.set_trial_state_values

    def worker_finishes_first(trial_id, state, values=None):
        st._storage.set_trial_user_attr(trial_id, "status", status)
        real(trial_id, optuna.trial.TrialState.COMPLETE, [0.5])  # the old worker's tell
        return real(trial_id, state, values)

    st._storage.set_trial_state_values = worker_finishes_first
    requeue_unfinished(st)
    st._storage.set_trial_state_values = real
    assert (st.user_attrs["replaced"] == [0]) is requeued
    waiting = [t for t in st.get_trials() if t.state == optuna.trial.TrialState.WAITING]
    assert len(waiting) == (1 if requeued else 0)


def test_a_queued_trial_that_another_worker_took_and_finished_is_not_an_internal_error(tmp_path, monkeypatch):
    """Two workers can both pop one queued re-run (SQLite has no row locks): the one that records it
    second met UpdateFinishedTrialError (exit 3, seen once after a kill and a rerun). Its copy is
    dropped and it goes on to trials of its own; the search ends with every trial."""
    import optuna
    real_ask = optuna.study.Study.ask
    taken = []

    def ask_a_trial_another_worker_finishes(self, *a, **k):
        trial = real_ask(self, *a, **k)
        if not taken:  # the other worker records this trial (as its own run of it) while this one still runs it
            taken.append(trial.number)
            for k, v in {"stage": "coarse", "slot": 0, "status": "ok", "val_loss": 0.25, "val_acc": 0.75,
                         "train_loss": 0.25, "train_acc": 0.75, "epochs": 2, "seconds": 0.1}.items():
                self._storage.set_trial_user_attr(trial._trial_id, k, v)
            self._storage.set_trial_param(trial._trial_id, "optimizer.lr", 0.01,
                                          optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True))
            self._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.COMPLETE, [0.25])
        return trial
    monkeypatch.setattr(optuna.study.Study, "ask", ask_a_trial_another_worker_finishes)
    result = search(dlc.compile(_spec(tmp_path).read_text()), trials=3, jobs=1, out=tmp_path / "s")
    assert taken == [0]
    assert [t.status for t in result.trials] == ["ok"] * 3
    assert [t.val_loss for t in result.trials if t.index == 1] == [0.25]  # the other worker's record, once


@pytest.mark.slow
def test_ctrl_c_at_random_moments_always_ends_the_search(tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) at random moments -- while the
    pool starts, mid-trial, between trials, during the shutdown -- always ends the search with 130 (or 0
    when it had finished) within the epoch: it used to hang now and then in the interpreter's exit, the
    pool never shut down and its idle workers waiting for work."""
    import random
    spec = _spec(tmp_path, epochs=30, n=300, width=16)
    rng = random.Random(0)
    codes = []
    for k in range(8):
        cmd = [sys.executable, "-m", "dlc", "search", str(spec), "--trials", "6", "--jobs", "2", "-q",
               "-o", str(tmp_path / f"s{k}")]
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        time.sleep(rng.uniform(0.2, 6.0))
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail(f"try {k}: the search did not end within 60 s of Ctrl-C")
        assert proc.returncode in (130, 0), err.decode()
        assert b"internal error" not in err and b"Traceback" not in err, err.decode()
        codes.append(proc.returncode)
    assert 130 in codes
