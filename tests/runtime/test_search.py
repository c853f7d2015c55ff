"""dlc search: ranges sampled into concrete specs, trials ranked on validation, the best spec written."""

import csv
import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from dlc.compiler.diagnostics import DLError
from dlc.compiler.search_space import dimensions, nominal_spec, substitute
from dlc.runtime.tools.search import search

import dlc
from dlc.cli import main

IRIS = ROOT / "specs/iris_search.dl"
FAST = ["train.epochs=15"]


def test_dimensions_one_per_place_in_the_text():
    text = ("model m {\n    input 4\n    repeat 3 { dense 8 relu dropout=choice(0.1, 0.3) }\n    dense 3 softmax\n}\n"
            "data iris\noptimizer adam lr=loguniform(1e-4, 1e-1)\ntrain validation=0.2\n")
    spec = dlc.compile(text)
    dims = dimensions(spec)
    assert [d.key for d in dims] == ["dense1.dropout", "optimizer.lr"]
    concrete = substitute(text, {dims[0]: 0.3, dims[1]: 0.00123})
    assert "dropout=0.3 }" in concrete and "lr=0.00123\n" in concrete
    spec2 = dlc.compile(concrete)
    assert not spec2.ranges and [n.attrs["p"] for n in spec2.graph.nodes if n.op == "dropout"] == [0.3] * 3


def test_nominal_is_the_middle_and_loguniform_samples_in_log_space():
    spec = dlc.compile_file(IRIS)
    nominal = nominal_spec(spec)
    assert math.isclose(nominal["optimizer"]["lr"], math.sqrt(1e-4 * 1e-1), rel_tol=1e-3)
    lr = next(d for d in dimensions(spec) if d.key == "optimizer.lr")
    logs = np.log10([lr.range.sample(np.random.default_rng(i)) for i in range(2000)])
    assert logs.min() >= -4 and logs.max() <= -1
    assert abs(np.mean(logs < -2.5) - 0.5) < 0.05  # half the samples below the geometric middle


def test_narrowed_ranges_stay_inside_and_shrink():
    spec = dlc.compile_file(IRIS)
    lr = next(d for d in dimensions(spec) if d.key == "optimizer.lr").narrowed(0.09)
    lo, hi = lr.range.args
    assert 1e-4 <= lo < 0.09 < hi <= 1e-1
    assert math.log(hi / lo) < 0.25 * math.log(1e3) + 1e-9
    drop = next(d for d in dimensions(spec) if d.key == "dense1.dropout").narrowed(0.2)
    assert drop.range.args == (0.2,)


def test_search_ranks_by_validation_and_writes_best_spec(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["search", str(IRIS), "--trials", "5", "--fine", "2", "--jobs", "1", "-o", str(out), "-q",
                 "--set", FAST[0]]) == 0
    text = capsys.readouterr().out
    assert "fine stage: optimizer.lr in loguniform(" in text
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 5 and [r["stage"] for r in rows].count("fine") == 2  # --trials is the total
    accs = [float(r["val_acc"]) for r in rows]
    assert accs == sorted(accs, reverse=True)
    assert (out / "search.png").stat().st_size > 10_000
    best = (out / "best.dl").read_text()
    assert best.startswith("# dlc search: best of 5 trials")
    spec = dlc.compile(best)  # concrete: trains as it is
    assert not spec.ranges
    assert math.isclose(spec["optimizer"]["lr"], float(rows[0]["optimizer.lr"]), rel_tol=1e-3)
    # the best trial is reproducible from best.dl
    r = dlc.runtime.trainer.train(spec, write=False, progress=False)
    assert math.isclose(r.metrics["validation"]["accuracy"], float(rows[0]["val_acc"]))


def test_parallel_trials_match_sequential(tmp_path):
    spec = dlc.compile_file(IRIS, overrides=FAST)
    seq = search(spec, 3, jobs=1, seed=5, out=tmp_path / "a", progress=False)
    par = search(spec, 3, jobs=2, seed=5, out=tmp_path / "b", progress=False)
    assert [(t.index, t.val_loss) for t in seq.trials] == [(t.index, t.val_loss) for t in par.trials]
    assert par.jobs == 2


def test_search_errors(tmp_path):
    with pytest.raises(DLError, match="no ranges to search"):
        search(dlc.compile_file(ROOT / "specs/spiral.dl"), 2, out=tmp_path / "x", progress=False)
    with pytest.raises(DLError, match="search ranks trials on the validation split, and this spec has none"):
        search(dlc.compile_file(IRIS, overrides=["train.validation=0"]), 2, out=tmp_path / "y", progress=False)
    with pytest.raises(DLError, match="at least 1"):
        search(dlc.compile_file(IRIS), 0, out=tmp_path / "z", progress=False)
    with pytest.raises(DLError, match="--fine 4: must be from 0 to 3"):
        search(dlc.compile_file(IRIS), 4, fine=4, out=tmp_path / "w", progress=False)


def test_default_is_coarse_to_fine(tmp_path):
    result = search(dlc.compile_file(IRIS, overrides=["train.epochs=5"]), 8, jobs=1, out=tmp_path / "f",
                    progress=False)
    assert sorted(t.stage for t in result.trials).count("fine") == 2 and len(result.trials) == 8
    assert set(result.fine_ranges) == {"dense1.dropout", "optimizer.lr", "regularize.l2"}


def ctrl_c_on_third_trial(monkeypatch):
    """Make the third trial of a search raise KeyboardInterrupt, as Ctrl-C would; returns the real runner."""
    from dlc.runtime.tools import search_trials as search_module

    real, calls = search_module._run_trial, []

    def interrupted_on_third(text, filename, report=None):
        calls.append(text)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(text, filename, report)

    monkeypatch.setattr(search_module, "_run_trial", interrupted_on_third)
    return real


def test_ctrl_c_keeps_the_finished_trials(tmp_path, monkeypatch, capsys):
    ctrl_c_on_third_trial(monkeypatch)
    out = tmp_path / "i"
    code = main(["search", str(IRIS), "--trials", "6", "--jobs", "1", "-o", str(out), "-q", "--set", FAST[0]])
    assert code == 130
    assert "interrupted: the finished trials are kept" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 2 and (out / "best.dl").exists()


def test_diverged_trials_rank_last(tmp_path):
    text = (ROOT / "specs/iris_search.dl").read_text().replace("adam lr=loguniform(1e-4, 1e-1)", "sgd lr=choice(0.01, 1e6)")
    spec = dlc.compile(text, "iris.dl", overrides=FAST)
    result = search(spec, 6, jobs=1, seed=0, out=tmp_path / "d", progress=False)
    statuses = [t.status for t in result.trials]
    assert "diverged" in statuses and "ok" in statuses
    assert statuses.index("diverged") > max(i for i, s in enumerate(statuses) if s == "ok")
    assert "diverged" in result.render()


def test_command_line_mistakes_name_dlc_not_a_file(capsys):
    assert main(["search", str(IRIS), "--trials", "0"]) == 2
    assert capsys.readouterr().err.startswith("dlc: error: --trials must be at least 1")
    assert main(["compare", str(IRIS)]) == 2
    assert "dlc: error: compare needs at least two specs" in capsys.readouterr().err


@pytest.mark.parametrize("sampler", ["tpe", "genetic"])
def test_other_samplers_search_the_same_ranges(tmp_path, sampler):
    spec = dlc.compile_file(IRIS, overrides=["train.epochs=5"])
    result = search(spec, 6, jobs=1, seed=1, out=tmp_path / sampler, progress=False, sampler=sampler)
    assert len(result.trials) == 6 and {t.stage for t in result.trials} == {sampler}  # no fine stage: labelled by the sampler
    lr = [t.values["optimizer.lr"] for t in result.trials]
    assert all(1e-4 <= v <= 1e-1 for v in lr) and len(set(lr)) == 6
    assert (tmp_path / sampler / "best.dl").exists()


def test_sampler_mistakes_are_refused(tmp_path):
    spec = dlc.compile_file(IRIS, overrides=FAST)
    with pytest.raises(DLError, match="--fine is random search's second stage; the tpe sampler narrows"):
        search(spec, 4, fine=1, sampler="tpe", out=tmp_path / "a", progress=False)
    with pytest.raises(DLError, match="unknown sampler 'grid'"):
        search(spec, 4, sampler="grid", out=tmp_path / "b", progress=False)
    with pytest.raises(DLError, match="cannot open the study storage nosuchdb://x"):
        search(spec, 2, storage="nosuchdb://x", out=tmp_path / "c", progress=False)


def test_pruned_trials_are_rows_with_the_epochs_they_ran(tmp_path):
    spec = dlc.compile_file(IRIS, overrides=["train.epochs=30", "train.early_stop=0"])
    result = search(spec, 16, fine=0, jobs=1, seed=0, out=tmp_path / "p", progress=False, prune=True)
    pruned = [t for t in result.trials if t.status == "pruned"]
    assert pruned and len(result.trials) == 16
    assert all(3 <= t.epochs < 30 for t in pruned)  # stopped after the warm-up, before the end
    assert all(t.epochs == 30 for t in result.trials if t.status == "ok")
    statuses = [t.status for t in result.trials]
    assert statuses.index("pruned") > max(i for i, s in enumerate(statuses) if s == "ok")  # ranked after
    rows = list(csv.DictReader((tmp_path / "p" / "results.csv").open()))
    assert sum(r["status"] == "pruned" for r in rows) == len(pruned)


def test_running_the_same_search_again_resumes_its_study(tmp_path, monkeypatch):
    from dlc.runtime.tools import search_trials as search_module

    spec = dlc.compile_file(IRIS, overrides=FAST)
    real = ctrl_c_on_third_trial(monkeypatch)
    first = search(spec, 5, fine=0, jobs=1, seed=3, out=tmp_path / "r", progress=False)
    assert first.interrupted and len(first.trials) == 2
    monkeypatch.setattr(search_module, "_run_trial", real)
    again = search(spec, 5, fine=0, jobs=1, seed=3, out=tmp_path / "r", progress=False)
    assert not again.interrupted and sorted(t.index for t in again.trials) == [1, 2, 3, 4, 5]
    # the interrupted trial 3 ran again with the values it had; the resumed search is the uninterrupted one
    fresh = search(spec, 5, fine=0, jobs=1, seed=3, out=tmp_path / "f", progress=False)
    assert [(t.index, t.values, t.val_loss) for t in again.trials] == \
        [(t.index, t.values, t.val_loss) for t in fresh.trials]


@pytest.mark.slow
def test_two_processes_share_one_study(tmp_path):
    """Two dlc search processes on one SQLite study finish the trials together, each trial once."""
    import sys
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    cmd = [sys.executable, "-m", "dlc", "search", str(IRIS), "--trials", "8", "--fine", "0", "--jobs", "1",
           "--storage", db, "--study", "iris", "-q", "--set", FAST[0]]
    procs = [subprocess.Popen(cmd + ["-o", str(tmp_path / name)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for name in ("a", "b")]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    rows = [list(csv.DictReader((tmp_path / name / "results.csv").open())) for name in ("a", "b")]
    # each table covers the study: the same 8 distinct trials, whichever process ran them
    assert [sorted(int(r["trial"]) for r in t) for t in rows] == [list(range(1, 9))] * 2
    import optuna
    study = optuna.load_study(study_name="iris", storage=db)
    ran = [t for t in study.get_trials() if not t.user_attrs.get("surplus")]
    assert len(ran) == 8 and len({t.number for t in ran}) == 8
    assert len({tuple(sorted(t.params.items())) for t in ran}) == 8


def test_a_missing_optuna_is_a_message_with_the_install_command(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    assert main(["search", str(IRIS), "--trials", "2", "-q"]) == 2
    err = capsys.readouterr().err
    assert "dlc: error: dlc search needs optuna, which is not installed" in err
    assert 'hint: pip install "optuna>=4"' in err and "Traceback" not in err


def test_a_study_of_another_search_is_refused(tmp_path):
    spec = dlc.compile_file(IRIS, overrides=["train.epochs=2"])
    search(spec, 1, fine=0, jobs=1, out=tmp_path / "s", progress=False)
    other = dlc.compile(IRIS.read_text().replace("regularize l2=loguniform(1e-6, 1e-2)", "regularize l2=1e-4"),
                        str(IRIS), overrides=["train.epochs=2"])
    with pytest.raises(DLError, match=r"study 'iris' in sqlite:///.* holds another search \(other ranges: "
                                      r"regularize.l2 \(loguniform\(1e-6, 1e-2\) -> absent\)\)"):
        search(other, 1, fine=0, jobs=1, out=tmp_path / "s", progress=False)


def test_api_search_takes_the_samplers_and_shared_studies(tmp_path):
    spec = tmp_path / "s.dl"
    spec.write_text("model m {\n input 2\n dense 3 softmax\n}\ndata spiral n=90\n"
                    "optimizer adam lr=loguniform(1e-3, 1e-1)\ntrain epochs=1 batch=30 seed=0 validation=0.3\n")
    r = dlc.search(spec, 3, jobs=1, sampler="tpe", prune=True, storage=f"sqlite:///{tmp_path / 'st.db'}",
                   study="mine", out=tmp_path / "s")
    assert len(r.trials) == 3 and r.study == "mine" and r.storage.endswith("st.db")


def test_parallel_search_winner_says_its_thread_count(tmp_path):
    from dlc.runtime.tools.search import search
    spec = dlc.compile_file(ROOT / "specs/iris_search.dl", overrides=["train.epochs=3"])
    result = search(spec, 2, fine=0, jobs=2, seed=1, out=tmp_path / "s", progress=False)
    best = (tmp_path / "s" / "best.dl").read_text()
    assert "threads=1" in best
    again = dlc.train(dlc.compile(best, str(tmp_path / "s" / "best.dl")), write=False)
    assert again.metrics["validation"]["loss"] == result.best.val_loss
    assert again.metrics["blas_threads"] == 1


def test_search_results_use_the_layer_keys(tmp_path):
    from dlc.runtime.tools.search import search
    result = search(dlc.compile_file(IRIS, overrides=["train.epochs=2"]), 2, fine=0, jobs=1,
                    out=tmp_path / "s", progress=False)
    header = (tmp_path / "s" / "results.csv").read_text().splitlines()[0]
    assert "dense1.dropout" in header.split(",") and result.keys[0] == "dense1.dropout"
