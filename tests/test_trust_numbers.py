"""Numbers a user relies on: clipping order, non-finite weights refused, reproducible search winners."""

import numpy as np
import pytest

import dlc
from dlc.cli import main
from dlc.compiler.overrides import apply_overrides
from dlc.runtime import run_folder as rf
from dlc.runtime.numpy_engine.optimizers import clip_gradients

from conftest import ROOT  # noqa: E402


def test_clip_value_applies_before_clip_norm():
    """The issue's example: entries clipped to 0.02 first; their norm 0.036 is below 0.05, so no rescale."""
    g = {"a": np.array([0.3, -0.04], np.float32), "b": np.array([0.01, 0.2], np.float32)}
    clip_gradients(g, clip_norm=0.05, clip_value=0.02)
    assert np.allclose(np.concatenate([g["a"], g["b"]]), [0.02, -0.02, 0.01, 0.02])
    g = {"a": np.array([3.0, 4.0], np.float32)}
    clip_gradients(g, clip_norm=1.0, clip_value=3.5)  # (3, 3.5): norm 4.61 > 1, rescaled to norm 1
    assert np.linalg.norm(g["a"]) == pytest.approx(1.0, rel=1e-5) and g["a"][0] / g["a"][1] == pytest.approx(3 / 3.5)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("nan")
    assert main(["train", str(ROOT / "specs/spiral.dl"), "-q", "-o", str(d / "run"), "--set", "train.epochs=1"]) == 0
    return d / "run"


def test_weights_holding_nan_are_refused_by_predict_and_export(run, tmp_path, capsys):
    import shutil
    run = shutil.copytree(run, tmp_path / "run")
    w = rf.load_npz(run / "weights.npz")
    key = sorted(w)[0]
    w[key] = w[key] * np.nan
    rf.save_npz(run / "weights.npz", w)
    capsys.readouterr()
    assert main(["export", str(run), "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert f"weights.npz (the trained weights): array '{key}' holds {w[key].size} NaN or inf value(s)" in err
    assert not (tmp_path / "m.onnx").exists()
    assert main(["predict", str(run), "spiral"]) == 2
    assert "holds" in capsys.readouterr().err


def test_export_refuses_a_model_that_computes_nan(run, monkeypatch):
    from dlc.compiler.diagnostics import DLError
    from dlc.runtime.tools import export
    from dlc.runtime.runs import load_run

    model = load_run(run)
    onnx_model = export.build(model)
    x = export.real_inputs(model, 8)
    x[0, 0] = np.nan  # NaN in, NaN out on both sides: 'nan > tol' must not let it through
    with pytest.raises(DLError, match=r"the model computes NaN or inf for \d+ of \d+ input\(s\) of the run's own data; nothing written"):
        export.compare(model, onnx_model, x)


@pytest.mark.parametrize("name", ["preprocess.npz", "metrics.json"])
def test_a_damaged_run_file_is_refused_by_name(run, tmp_path, capsys, name):
    import shutil
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / name).write_bytes(b"\x00garbage")
    assert main(["eval", str(copy)]) == 2
    err = capsys.readouterr().err
    assert f"{copy / name}" in err and "internal error" not in err


def test_parallel_search_winner_says_its_thread_count(tmp_path):
    from dlc.runtime.tools.search import search
    spec = dlc.compile_file(ROOT / "specs/iris_search.dl", overrides=["train.epochs=3"])
    result = search(spec, 2, fine=0, jobs=2, seed=1, out=tmp_path / "s", progress=False)
    best = (tmp_path / "s" / "best.dl").read_text()
    assert "threads=1" in best
    again = dlc.train(dlc.compile(best, str(tmp_path / "s" / "best.dl")), write=False)
    assert again.metrics["validation"]["loss"] == result.best.val_loss
    assert again.metrics["blas_threads"] == 1


def test_set_appends_a_statement_after_the_last_line():
    text = "model m {\n input 2\n dense 2 softmax\n}\n\n\n"
    assert apply_overrides(text, "x", ["regularize.l2=0.1"]) == \
        "model m {\n input 2\n dense 2 softmax\n}\nregularize l2=0.1\n\n\n"
    assert apply_overrides("model m {\n input 2\n dense 2 softmax\n}", "x", ["regularize.l2=0.1"]) == \
        "model m {\n input 2\n dense 2 softmax\n}\nregularize l2=0.1\n"
