"""The trainer: determinism, the NaN guard, refusal of misfit data and weights, resume, the run folder."""

import json

import numpy as np
import pytest
from conftest import ROOT  # noqa: E402
from dlc.compiler.diagnostics import DLError
from dlc.compiler.schedules import learning_rate
from dlc.runtime import run_folder as rf
from dlc.runtime.numpy_engine.network import Network
from dlc.runtime.numpy_engine.optimizers import Optimizer, clip_gradients
from dlc.runtime.trainer import TrainingDiverged, train
from dlc.runtime.weights import WeightsMismatch, init_params

import dlc
from dlc.cli import main

SMALL = """model small {
    input 2
    dense 16 relu batchnorm dropout=0.1
    dense 3 softmax
}
data blobs n=120
optimizer adam lr=0.01
train epochs=3 batch=16 seed=%d
"""


def test_same_spec_and_seed_give_identical_weights(tmp_path):
    a = train(dlc.compile(SMALL % 0), out=tmp_path / "a", progress=False)
    b = train(dlc.compile(SMALL % 0), out=tmp_path / "b", progress=False)
    c = train(dlc.compile(SMALL % 1), out=tmp_path / "c", progress=False)
    wa, wb, wc = (rf.load_npz(r.run_dir / "weights.npz") for r in (a, b, c))
    assert wa.keys() == wb.keys()
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert not all(np.array_equal(wa[k], wc[k]) for k in wa)


def test_run_folder_contents(tmp_path):
    r = train(dlc.compile(SMALL % 0), out=tmp_path / "run", progress=False)
    files = {p.name for p in r.run_dir.iterdir()}
    assert {"spec.dl", "weights.npz", "preprocess.npz", "history.csv", "metrics.json", "curves.png",
            "checkpoint.npz"} <= files
    assert not [f for f in files if f.endswith(".tmp")]
    w = rf.load_npz(r.run_dir / "weights.npz")
    assert set(w) == {"dense1.weight", "batchnorm1.gamma", "batchnorm1.beta", "batchnorm1.running_mean",
                      "batchnorm1.running_var", "dense2.weight", "dense2.bias"}
    assert all(v.dtype == np.float32 for v in w.values())
    m = json.loads((r.run_dir / "metrics.json").read_text())
    assert m["epochs_run"] == 3 and m["classes"] == ["0", "1", "2"] and 0 <= m["test"]["accuracy"] <= 1
    assert len((r.run_dir / "history.csv").read_text().strip().splitlines()) == 4
    assert (r.run_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_nan_stops_training_with_epoch_step_and_cause(tmp_path):
    spec = dlc.compile(SMALL.replace("adam lr=0.01", "sgd lr=1e30").replace("relu batchnorm", "relu") % 0)
    with pytest.raises(TrainingDiverged, match=r"at epoch 1, step \d+ \(lr=1e\+30\): the learning rate is likely too high"):
        train(spec, out=tmp_path / "r", progress=False)


def test_cli_reports_divergence_with_exit_2(tmp_path, capsys):
    spec = tmp_path / "bad.dl"
    spec.write_text(SMALL.replace("adam lr=0.01", "sgd lr=1e30").replace("relu batchnorm", "relu") % 0)
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "r")]) == 2
    assert "the learning rate is likely too high" in capsys.readouterr().err


def test_data_that_does_not_fit_the_input_is_refused(tmp_path):
    f = tmp_path / "d.npz"
    np.savez(f, x=np.zeros((20, 5), np.float32), y=np.arange(20) % 3)
    text = (SMALL % 0).replace("data blobs n=120", f'data "{f}"')
    with pytest.raises(DLError, match=r"d.npz samples are 5 but the model's input is 2"):
        train(dlc.compile(text), out=tmp_path / "r", progress=False)


def test_csv_with_label_column(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["a,b,kind"] + [f"{x:.3f},{y:.3f},{'cat' if x > 0 else 'dog'}" for x, y in rng.normal(size=(60, 2))]
    (tmp_path / "d.csv").write_text("\n".join(rows))
    text = (SMALL % 0).replace("data blobs n=120", f'data "{tmp_path / "d.csv"}" label=kind').replace("dense 3", "dense 2")
    r = train(dlc.compile(text), out=tmp_path / "r", progress=False)
    assert r.metrics["classes"] == ["cat", "dog"]


def test_search_range_refused_by_train(tmp_path):
    spec = dlc.compile((SMALL % 0).replace("lr=0.01", "lr=loguniform(1e-4, 1e-1)"))
    with pytest.raises(DLError, match="optimizer.lr is a search range"):
        train(spec, out=tmp_path / "r", progress=False)


def test_weights_that_do_not_match_are_refused_with_names():
    graph = dlc.compile(SMALL % 0).graph
    values = init_params(graph, 0)
    values["dense9.weight"] = values.pop("dense2.weight")
    values["dense1.weight"] = np.zeros((3, 16), np.float32)
    with pytest.raises(WeightsMismatch) as e:
        Network(graph, values)
    msg = str(e.value)
    assert "missing: dense2.weight" in msg and "not in the spec: dense9.weight" in msg
    assert "dense1.weight (3, 16) (spec: (2, 16))" in msg


def test_resume_continues_to_the_same_weights(tmp_path):
    full = train(dlc.compile(SMALL % 0), out=tmp_path / "full", progress=False)
    part = train(dlc.compile((SMALL % 0).replace("epochs=3", "epochs=2")), out=tmp_path / "part", progress=False)
    assert len(part.history) == 2
    resumed = train(dlc.compile(SMALL % 0), out=tmp_path / "part", resume=True, progress=False)
    assert len(resumed.history) == 3
    a, b = rf.load_npz(full.run_dir / "weights.npz"), rf.load_npz(resumed.run_dir / "weights.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a), "resume must continue exactly where the run stopped"


def test_resume_refuses_a_changed_model(tmp_path):
    train(dlc.compile(SMALL % 0), out=tmp_path / "r", progress=False)
    with pytest.raises(DLError, match=r"the spec changed since the run started: model dense1 \(dense bias=False units=16 <- input -> dense bias=False units=8 <- input\)"):
        train(dlc.compile((SMALL % 0).replace("dense 16", "dense 8")), out=tmp_path / "r", resume=True, progress=False)


def test_default_run_dir_never_overwrites(tmp_path):
    (tmp_path / "m").mkdir()
    assert rf.default_run_dir("m", tmp_path) == tmp_path / "m-2"


def test_sgd_momentum_matches_pytorch_convention():
    w = {"w": np.array([1.0])}
    opt = Optimizer("sgd", {"momentum": 0.9, "nesterov": False}, w)
    opt.step({"w": np.array([1.0])}, lr=0.1)  # buf = g = 1
    opt.step({"w": np.array([1.0])}, lr=0.1)  # buf = 0.9 + 1 = 1.9
    assert w["w"][0] == pytest.approx(1 - 0.1 - 0.19)


def test_adam_first_step_is_lr_times_sign():
    w = {"w": np.array([1.0, -2.0])}
    Optimizer("adam", {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}, w).step({"w": np.array([0.5, -3.0])}, lr=0.01)
    assert w["w"] == pytest.approx([0.99, -1.99])


def test_schedules():
    assert learning_rate(1.0, "step", {"every": 10, "gamma": 0.5, "warmup": 0}, 25, 30) == 0.25
    assert learning_rate(1.0, "exponential", {"gamma": 0.9, "warmup": 0}, 2, 30) == pytest.approx(0.81)
    assert learning_rate(1.0, "cosine", {"min_lr": 0.0, "warmup": 0}, 0, 10) == 1.0
    assert learning_rate(1.0, "cosine", {"min_lr": 0.0, "warmup": 0}, 5, 10) == pytest.approx(0.5)
    assert learning_rate(1.0, "constant", {"warmup": 3}, 0, 10) == 0.25


def test_eval_cli(tmp_path, capsys):
    r = train(dlc.compile(SMALL % 0), out=tmp_path / "r", progress=False)
    assert main(["eval", str(r.run_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["splits"]["test"]["accuracy"] == pytest.approx(r.metrics["test"]["accuracy"])


@pytest.mark.slow
def test_digits_mlp_reaches_98_percent(tmp_path):
    r = train(dlc.compile_file(ROOT / "specs/digits_mlp.dl"), out=tmp_path / "r", progress=False)
    assert r.metrics["test"]["accuracy"] >= 0.98


@pytest.mark.slow
def test_spiral_reaches_97_percent_training_accuracy(tmp_path):
    r = train(dlc.compile_file(ROOT / "specs/spiral.dl"), out=tmp_path / "r", progress=False)
    assert r.metrics["train"]["accuracy"] >= 0.97


@pytest.mark.slow
def test_lenet_learns(tmp_path):
    spec = dlc.compile_file(ROOT / "specs/lenet.dl", overrides=["train.epochs=2"])
    r = train(spec, out=tmp_path / "r", progress=False)
    assert r.history[-1]["loss"] < r.history[0]["loss"]
    assert r.metrics["test"]["accuracy"] > 0.8


@pytest.mark.parametrize("kind", sorted(__import__("dlc.compiler.optimizers", fromlist=["x"]).OPTIMIZERS))
def test_every_registered_optimizer_descends_and_keeps_its_declared_state(kind):
    from dlc.compiler.optimizers import OPTIMIZERS
    rule = OPTIMIZERS[kind]
    hp = {k: a.default for k, a in rule.attrs.items()}
    if "momentum" in hp:
        hp["momentum"] = 0.9  # exercise the momentum buffer too
    w = {"w": np.array([3.0, -2.0], np.float32)}
    opt = Optimizer(kind, hp, w)
    rng = np.random.default_rng(0)
    for _ in range(200):
        if rule.uses_gradients:
            opt.step({"w": 2 * w["w"]}, lr=min(rule.lr_range[1], 0.05), decoupled={"w"})  # f = |w|^2
        else:  # a gradient-free rule sees only the loss of candidate weights
            opt.evolve(lambda candidate: float(np.sum(candidate["w"].astype(np.float64) ** 2)), rng, 0.05, ["w"])
    assert float(np.sum(w["w"] ** 2)) < 13.0 * 0.5
    assert {k.rsplit(".", 1)[1] for k in opt.state_dict() if k != "__t__"} <= set(rule.state)
    lo, hi = rule.lr_range
    assert 0 < lo < hi


_LOSSES = __import__("dlc.compiler.losses", fromlist=["x"]).LOSSES


@pytest.mark.parametrize("name, fused", [(n, f) for n in sorted(_LOSSES) for f in (False, True)
                                         if not f or _LOSSES[n].fuses])  # the logits form: fused losses only
def test_every_registered_loss_gradient_matches_finite_differences(name, fused):
    loss, rule = _LOSSES[name], __import__("dlc.runtime.losses", fromlist=["x"]).FORMULAS[name]
    rng = np.random.default_rng(0)
    out = rng.uniform(0.1, 0.9, (4, 3))
    if not fused and loss.fuses == "softmax":
        out = out / out.sum(axis=1, keepdims=True)
    y = rng.integers(0, 3, 4) if loss.task == "classification" else rng.normal(size=(4, 3))
    _, grad = rule.value_and_grad(out, y, fused)
    num = np.zeros_like(out)
    for idx in np.ndindex(out.shape):
        d = np.zeros_like(out)
        d[idx] = 1e-6
        num[idx] = (rule.value_and_grad(out + d, y, fused)[0] - rule.value_and_grad(out - d, y, fused)[0]) / 2e-6
    assert np.allclose(grad, num, atol=1e-6)


@pytest.mark.parametrize("early_stop", [0, 3], ids=["last-epoch", "best-epoch"])
def test_final_validation_metrics_equal_a_fresh_evaluation(early_stop):
    """The final validation metrics are reused from the kept epoch's history row: they must be
    exactly what evaluating the kept weights gives."""
    from dlc.compiler.spec import compile
    from dlc.runtime.trainer import train
    spec = compile(f"""model m {{
    input 2
    dense 16 relu batchnorm
    dense 3 softmax
}}
data spiral
optimizer adam lr=0.3
train epochs=30 batch=32 validation=0.2 early_stop={early_stop} seed=3
""")
    r = train(spec, write=False, progress=False)
    if early_stop:  # the kept weights are an earlier epoch's (8 of 11 run)
        assert r.metrics["best_epoch"] < r.metrics["epochs_run"]
    fresh = r.model.evaluate(*_val(spec))
    assert r.metrics["validation"]["loss"] == fresh["loss"]
    assert r.metrics["validation"]["accuracy"] == fresh["accuracy"]


def _val(spec):
    from dlc.runtime.data.splits import prepare
    s = prepare(spec)
    return s.x_val, s.y_val


def test_genetic_trains_xor_and_resumes_exactly(tmp_path):
    """The genetic optimizer (no gradients) learns xor; its population is optimizer state, so a run
    stopped after 3 epochs and resumed ends bit-identical to a straight run."""
    from dlc.compiler.spec import compile
    from dlc.runtime.trainer import train
    text = (ROOT / "specs/experiments/genetic_xor.dl").read_text()
    straight = train(compile(text, overrides=["train.epochs=6"]), out=tmp_path / "a", progress=False)
    train(compile(text, overrides=["train.epochs=3"]), out=tmp_path / "b", progress=False)
    resumed = train(compile(text, overrides=["train.epochs=6"]), out=tmp_path / "b", resume=True, progress=False)
    for k, v in straight.model.values.items():
        np.testing.assert_array_equal(resumed.model.values[k], v)
    full = train(compile(text), write=False, progress=False)
    assert full.metrics["test"]["accuracy"] >= 0.85
    assert full.history[-1]["loss"] < full.history[0]["loss"] / 2


def test_multistep_poly_and_plateau_give_their_documented_rates():
    assert [learning_rate(1.0, "multistep", {"milestones": (2, 4), "gamma": 0.5, "warmup": 1}, e, 10)
            for e in range(7)] == [0.5, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert learning_rate(2.0, "poly", {"power": 2.0, "warmup": 0}, 5, 10) == pytest.approx(0.5)
    hp = {"patience": 2, "factor": 0.5, "threshold": 0.01, "min_lr": 0.2, "warmup": 0}
    losses = [1.0, 0.9, 0.895, 0.9, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    # epoch 4: two epochs (0.895 is not 1 % better than 0.9; 0.9) without improvement -> one reduction;
    # from 0.5, two more without -> another, then two more -> a third, held at min_lr
    rates = [learning_rate(1.0, "plateau", hp, e, 20, losses) for e in range(11)]
    assert rates == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2]


@pytest.mark.parametrize("schedule", ["plateau patience=2 factor=0.5", "multistep milestones=(2, 5) gamma=0.3"])
def test_resume_with_a_reacting_schedule_is_bit_identical(tmp_path, schedule):
    """The plateau's reductions come from the history the checkpoint holds: stopping after 6 epochs and
    resuming to 14 gives the uninterrupted run's rates and weights exactly."""
    text = ("model m {\n input 4\n dense 16 relu\n dense 3 softmax\n}\ndata iris\noptimizer sgd lr=0.3\n"
            f"schedule {schedule}\ntrain epochs=14 batch=16 seed=0 validation=0.2\n")
    full = train(dlc.compile(text), out=tmp_path / "full", progress=False)
    train(dlc.compile(text, overrides=["train.epochs=6"]), out=tmp_path / "cut", progress=False)
    resumed = train(dlc.compile(text), out=tmp_path / "cut", resume=True, progress=False)
    assert [r["lr"] for r in resumed.history] == [r["lr"] for r in full.history]
    assert len({r["lr"] for r in full.history}) > 1  # the schedule did change the rate
    for k, v in full.model.values.items():
        assert np.array_equal(v, resumed.model.values[k]), k


# ---- early stopping watches what monitor= names (issue 26, item 11) -------------------------------------
def test_early_stop_with_monitor_val_accuracy_keeps_the_most_accurate_epoch():
    text = (SMALL % 0).replace("epochs=3", "epochs=25 early_stop=6 validation=0.3").replace("n=120", "n=300 noise=3")
    by_loss = train(dlc.compile(text), write=False, progress=False)
    by_acc = train(dlc.compile(text.replace("early_stop=6", "early_stop=6 monitor=val_accuracy")), write=False,
                   progress=False)
    history = by_acc.history
    best = by_acc.metrics["best_epoch"]
    assert history[best - 1]["val_accuracy"] == max(r["val_accuracy"] for r in history[:best])
    assert all(r["val_accuracy"] <= history[best - 1]["val_accuracy"] for r in history)  # the most accurate kept
    losses = [r["val_loss"] for r in by_loss.history]
    assert by_loss.metrics["best_epoch"] == losses.index(min(losses)) + 1  # the default: the lowest loss


def test_monitor_val_accuracy_on_a_regression_is_refused_at_the_key(capsys):
    with pytest.raises(DLError) as e:
        dlc.compile("model m {\n input 1\n dense 1\n}\ndata sine\ntrain monitor=val_accuracy early_stop=3\n")
    assert "<spec>:6:7: error: monitor=val_accuracy with loss mse: a regression has no accuracy" in e.value.format()


def test_clip_value_applies_before_clip_norm():
    """The issue's example: entries clipped to 0.02 first; their norm 0.036 is below 0.05, so no rescale."""
    g = {"a": np.array([0.3, -0.04], np.float32), "b": np.array([0.01, 0.2], np.float32)}
    clip_gradients(g, clip_norm=0.05, clip_value=0.02)
    assert np.allclose(np.concatenate([g["a"], g["b"]]), [0.02, -0.02, 0.01, 0.02])
    g = {"a": np.array([3.0, 4.0], np.float32)}
    clip_gradients(g, clip_norm=1.0, clip_value=3.5)  # (3, 3.5): norm 4.61 > 1, rescaled to norm 1
    assert np.linalg.norm(g["a"]) == pytest.approx(1.0, rel=1e-5) and g["a"][0] / g["a"][1] == pytest.approx(3 / 3.5)
