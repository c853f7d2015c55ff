"""dlc search: ranges sampled into concrete specs, trials ranked on validation, the best spec written."""

import csv
import math

import numpy as np
import pytest

import dlc
from dlc.cli import main
from dlc.compiler.diagnostics import DLError
from dlc.compiler.search_space import dimensions, nominal_spec, substitute
from dlc.runtime.search import search

from conftest import ROOT

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


def test_ctrl_c_keeps_the_finished_trials(tmp_path, monkeypatch, capsys):
    from dlc.runtime import search as search_module

    real, calls = search_module._run_trial, []

    def interrupted_on_third(text, filename):
        calls.append(text)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(text, filename)

    monkeypatch.setattr(search_module, "_run_trial", interrupted_on_third)
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
