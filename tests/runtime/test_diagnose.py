"""dlc diagnose: passes a healthy spec, flags the classic mistakes with the right check."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ROOT
from dlc.runtime.tools.diagnose import FAIL, OK, WARN, diagnose
from helpers import DIGITS_DROPOUT_MLP

import dlc
from dlc.cli import main


def verdicts(report):
    return {c.name: c.verdict for c in report.checks}


@pytest.fixture(scope="module")
def digits_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("diag")
    return diagnose(dlc.compile_file(ROOT / "specs/digits_mlp.dl"), out=out), out


def test_digits_passes_every_check(digits_report):
    report, out = digits_report
    assert report.ok, report.render()
    assert len(report.checks) == 7
    assert (out / "lr_range.png").stat().st_size > 10_000
    saved = json.loads((out / "report.json").read_text())
    assert saved["ok"] and len(saved["lr_range"]["lr"]) > 50


def test_initial_loss_is_near_ln_classes(digits_report):
    report, _ = digits_report
    c = next(c for c in report.checks if c.name == "initial loss")
    assert "ln(10)" in c.finding


def test_learning_rate_of_10_is_flagged():
    spec = dlc.compile_file(ROOT / "specs/digits_mlp.dl", overrides=["optimizer.lr=10"])
    v = verdicts(diagnose(spec, plot=False))
    assert v["lr range test"] == FAIL
    assert v["update / weight"] == FAIL
    assert v["overfit 20 samples"] == FAIL


def test_lr_too_high_spec_is_flagged():
    v = verdicts(diagnose(dlc.compile_file(ROOT / "specs/experiments/lr_too_high.dl"), plot=False))
    assert v["update / weight"] == FAIL and v["lr range test"] == FAIL


def test_zero_init_is_flagged():
    v = verdicts(diagnose(dlc.compile_file(ROOT / "specs/experiments/init_zeros.dl"), plot=False))
    assert v["symmetry"] == FAIL
    assert v["gradient flow"] == FAIL
    assert v["overfit 20 samples"] == FAIL
    assert v["initial loss"] == OK  # zero logits give exactly ln(10): the check is not fooled into blaming it


def test_he_init_counterpart_passes_symmetry():
    v = verdicts(diagnose(dlc.compile_file(ROOT / "specs/experiments/init_he.dl"), plot=False))
    assert v["symmetry"] == OK and v["gradient flow"] == OK and v["overfit 20 samples"] == OK


def test_deep_sigmoid_shows_vanishing_gradients():
    report = diagnose(dlc.compile_file(ROOT / "specs/experiments/deep_sigmoid.dl"), plot=False)
    c = next(c for c in report.checks if c.name == "gradient flow")
    assert c.verdict == WARN and "vanishing" in c.finding
    assert len(c.details) == 9  # one line per weight layer


def test_cli_exit_codes_and_ranges(tmp_path, capsys):
    assert main(["diagnose", str(ROOT / "specs/experiments/init_zeros.dl"), "-o", str(tmp_path / "z")]) == 1
    assert "[FAIL] symmetry" in capsys.readouterr().out
    # a spec with search ranges is diagnosed at their middle values
    assert main(["diagnose", str(ROOT / "specs/iris_search.dl"), "-o", str(tmp_path / "i"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "iris" and len(report["checks"]) == 7 and report["warnings"] == []
    # lint findings come first, on stderr
    assert main(["diagnose", str(ROOT / "specs/experiments/deep_sigmoid.dl"), "-o", str(tmp_path / "d")]) == 1
    assert "[DL103]" in capsys.readouterr().err


def test_cli_bad_spec_is_a_located_error(tmp_path, capsys):
    bad = tmp_path / "bad.dl"
    bad.write_text("model m {\n    input 4\n    dense 3 softmaxx\n}\ndata iris\n")
    assert main(["diagnose", str(bad)]) == 2
    assert "bad.dl:3:13: error: unknown" in capsys.readouterr().err


def test_diagnose_refuses_a_gradient_free_optimizer_at_its_line(capsys):
    from conftest import ROOT

    from dlc.cli import main
    path = ROOT / "specs/experiments/genetic_xor.dl"
    assert main(["diagnose", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:10:1: error: dlc diagnose follows gradients and the learning rate, and optimizer genetic " \
           "uses no gradients" in err
    assert "hint: to check the network itself, diagnose it with a gradient optimizer: --set optimizer=adam" in err


def test_every_saturating_activation_says_which_outputs_are_saturated():
    from dlc.runtime.numpy_engine.kernels import KERNELS
    saturating = [op for op in KERNELS.values() if op.saturating]
    assert {op.name for op in saturating} >= {"sigmoid", "tanh"}
    for op in saturating:
        y = op.forward(np.array([[-20.0, 0.0, 20.0]]), {}, {}, __import__("dlc.runtime.numpy_engine.layouts", fromlist=["x"]).Context())[0]
        assert op.saturated(y).tolist() == [[True, False, True]], op.name


def test_the_torch_engine_gives_the_same_verdicts_and_figures(tmp_path):
    """diagnose goes through the engine seam: on engine=torch (float32, its own kernels) every verdict is
    the reference's and the initial loss agrees to 4 digits (no dropout: the engines draw different noise)."""
    pytest.importorskip("torch")
    text = (ROOT / "specs/digits_mlp.dl").read_text().replace(" dropout=0.2", "").replace(" dropout=0.5", "")
    (tmp_path / "plain.dl").write_text(text)
    reports = [diagnose(dlc.compile_file(tmp_path / "plain.dl", overrides=[f"train.engine={e}"]), plot=False)
               for e in ("numpy", "torch")]
    assert verdicts(reports[1]) == verdicts(reports[0])

    def initial(r):
        return next(c for c in r.checks if c.name == "initial loss").finding.split()[1]
    assert initial(reports[1]) == initial(reports[0])


def test_diagnose_names_the_spec_line_of_each_layer(spec_file, tmp_path, capsys):
    spec = spec_file(DIGITS_DROPOUT_MLP)
    assert main(["diagnose", str(spec), "-o", str(tmp_path / "d")]) in (0, 1)
    out = capsys.readouterr().out
    assert "relu2 (line 4) dead units" in out and "dense2 (line 4) |grad|" in out


def test_diagnose_runs_on_the_engine_the_spec_names(spec_file, tmp_path, capsys):
    """It ran on the NumPy engine whatever the spec named (issue 27): now through the engine seam."""
    spec = spec_file(DIGITS_DROPOUT_MLP.replace("seed=0", "seed=0 engine=torch"))
    assert main(["diagnose", str(spec), "-o", str(tmp_path / "d")]) in (0, 1)
    assert "note: the checks ran on engine=torch" in capsys.readouterr().out


def test_diagnose_refuses_a_device_this_machine_lacks(spec_file, tmp_path, capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: nothing to refuse")
    spec = spec_file(DIGITS_DROPOUT_MLP.replace("seed=0", "seed=0 engine=torch device=cuda"))
    assert main(["diagnose", str(spec), "-o", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "device=cuda" in err and "Traceback" not in err and not (tmp_path / "d").exists()


def test_identical_conv1d_filters_are_found(tmp_path):
    """A conv1d's units are its filters (out, in, k): zero init leaves them all the same."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "seq.npz", x=rng.normal(size=(64, 2, 16)).astype(np.float32), y=rng.integers(0, 2, 64))
    spec = tmp_path / "s.dl"
    spec.write_text("model m {\n input 2x16\n conv1d 4 kernel=3 init=zeros relu\n globalavgpool\n dense 2 softmax\n}\n"
                    'data "seq.npz"\ntrain epochs=1 batch=16 seed=0\n')
    report = diagnose(dlc.compile_file(spec), plot=False)
    assert verdicts(report)["symmetry"] == FAIL
    assert "conv1d1" in next(c for c in report.checks if c.name == "symmetry").finding


def _ramps(tmp_path, steps: int) -> None:
    """Two classes of one-channel series: a rising or a falling ramp with noise."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 64)
    x = np.linspace(-1, 1, steps)[None, None, :] * np.where(y, 1, -1)[:, None, None]
    np.savez(tmp_path / "ramps.npz", x=(x + rng.normal(0, 0.2, x.shape)).astype(np.float32), y=y)


@pytest.mark.parametrize("steps, verdict", [(12, OK), (150, WARN)])
def test_the_gradient_through_time_of_an_lstm_vanishes_over_a_long_sequence(tmp_path, steps, verdict):
    _ramps(tmp_path, steps)
    spec = dlc.compile(f'model m {{\n input 1x{steps}\n lstm 16\n dense 2 softmax\n}}\ndata "{tmp_path / "ramps.npz"}"\n'
                       "optimizer adam lr=1e-3 clip_norm=1\n")
    c = next(c for c in diagnose(spec, plot=False).checks if c.name == "through time")
    assert c.verdict == verdict, c.finding


def test_the_gradient_through_time_is_the_same_on_both_engines(tmp_path):
    pytest.importorskip("torch")
    _ramps(tmp_path, 30)
    text = (f'model m {{\n input 1x30\n gru 8\n dense 2 softmax\n}}\ndata "{tmp_path / "ramps.npz"}"\n'
            "optimizer adam lr=1e-3 clip_norm=1\ntrain engine=")
    findings = [next(c.finding for c in diagnose(dlc.compile(text + e + "\n"), plot=False).checks
                     if c.name == "through time") for e in ("numpy", "torch")]
    assert findings[0] == findings[1]
