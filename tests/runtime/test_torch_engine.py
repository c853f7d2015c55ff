"""The torch engine against the NumPy engine, walking every registry: each op's forward and gradients,
each loss, each optimizer rule, and whole training runs of the specs in specs/ (float64: <= 1e-9
relative; float32 after 100 steps: <= 1e-4). An op, loss or optimizer without a torch lowering fails."""

from __future__ import annotations


import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dlc.cli import main  # noqa: E402
from dlc.compiler.losses import LOSSES  # noqa: E402
from dlc.runtime.losses import FORMULAS  # noqa: E402
from dlc.compiler.ops import REGISTRY  # noqa: E402
from dlc.runtime.numpy_engine.layouts import Context
from dlc.compiler.optimizers import OPTIMIZERS  # noqa: E402
from dlc.runtime.torch_engine.engine import TORCH_OPS  # noqa: E402
from dlc.runtime.torch_engine.losses import LOSS_LOWERINGS  # noqa: E402
from dlc.runtime.torch_engine.ops import LOWERINGS, Ctx  # noqa: E402

from opcheck import cases, first_shape, make_input, make_params  # noqa: E402
from engine_parity import compare, noiseless, rel  # noqa: E402
from conftest import ROOT

pytestmark = pytest.mark.usefixtures("digit_pngs")  # specs/digits_images.dl reads them

CASES = list(cases())
SPECS = ROOT / "specs"


def test_every_op_loss_and_optimizer_has_a_torch_lowering():
    assert sorted(op.name for op in REGISTRY if op.name not in LOWERINGS) == []
    assert sorted(set(LOSSES) - set(LOSS_LOWERINGS)) == []
    assert sorted(set(LOWERINGS) - {op.name for op in REGISTRY}) == []  # nothing lowered that is not an op


NOISY = {"dropout", "rrelu"}  # training draws noise from each engine's own generator


# training-mode noise differs by design (each engine's generator): test_noise_ops_follow_their_distribution
OP_CASES = [(c, training) for c in CASES for training in (True, False) if not (training and c[1].name in NOISY)]


@pytest.mark.parametrize("case, training", OP_CASES, ids=[f"{c[0]}-{'train' if tr else 'infer'}" for c, tr in OP_CASES])
def test_op_forward_and_gradients_equal_numpy_in_float64(case, training):
    _, op, shape, a = case
    rng = np.random.default_rng(3)
    x = make_input(op, shape, 4, rng, a=a)
    p = make_params(op, first_shape(op, shape), a, rng)
    p_np = {k: v.copy() for k, v in p.items()}
    y, cache = op.forward(x, p_np, a, Context(training=training, rng=np.random.default_rng(0)))
    r = rng.normal(0, 1, y.shape)
    dx, grads = op.backward(r, cache, {k: v.copy() for k, v in p.items()}, a)

    xs = [torch.tensor(v, requires_grad=True) for v in (x if op.arity is None else [x])]
    pt = {k: torch.tensor(v, requires_grad=k in grads) for k, v in p.items()}
    yt = LOWERINGS[op.name](xs if op.arity is None else xs[0], pt, a,
                            Ctx(training, None, [tuple(s) for s in shape] if op.arity is None else tuple(shape)))
    assert rel(y, yt.detach().numpy()) <= 1e-12, op.name
    (yt * torch.tensor(r)).sum().backward()
    for want, got in zip(dx if op.arity is None else [dx], xs):
        if op.reads != "int64":  # (token ids have no gradient)
            assert rel(want, got.grad.numpy()) <= 1e-9, f"{op.name} dx"
    for role, g in grads.items():
        assert rel(g, pt[role].grad.numpy()) <= 1e-9, f"{op.name} d{role}"
    for name in op.buffers(first_shape(op, shape), a):  # batchnorm's running statistics move alike
        assert rel(p_np[name], pt[name].detach().numpy()) <= 1e-12, f"{op.name} {name}"


def test_noise_ops_follow_their_distribution():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 50, dtype=torch.float64, generator=g)
    y = LOWERINGS["dropout"](x, {}, {"p": 0.25}, Ctx(True, g, (50,)))
    ratio = (y / x).numpy()
    assert set(np.round(np.unique(ratio), 12)) == {0.0, round(1 / 0.75, 12)}
    assert abs(np.mean(ratio == 0) - 0.25) < 0.01
    y = LOWERINGS["rrelu"](x, {}, {"lower": 0.1, "upper": 0.3}, Ctx(True, g, (50,)))
    slopes = (y / x).numpy()[x.numpy() < 0]
    assert 0.1 <= slopes.min() and slopes.max() <= 0.3 and abs(slopes.mean() - 0.2) < 0.01
    assert np.array_equal((y / x).numpy()[x.numpy() > 0], np.ones(int((x > 0).sum())))


LOSS_CASES = [(loss, fused, weighted) for loss in sorted(LOSSES) for fused in (True, False)
              for weighted in (False, True) if not weighted or "class_weight" in LOSSES[loss].attrs]


@pytest.mark.parametrize("loss, fused, weighted", LOSS_CASES,
                         ids=[f"{l}-{'fused' if f else 'probabilities'}{'-class_weight' if w else ''}" for l, f, w in LOSS_CASES])
def test_loss_value_and_gradient_equal_numpy(loss, fused, weighted):
    rng = np.random.default_rng(5)
    rule = LOSSES[loss]
    units = {"cross_entropy": 4, "binary_cross_entropy": 1}.get(loss, 3)
    out = rng.normal(0, 1.5, (6, units))
    if not fused and rule.fuses:
        out = FORMULAS[loss].probabilities(out, True)  # what the network's output activation gives
        if loss == "cross_entropy":
            out[0, 0] = 1e-9  # below the clip: the gradient is taken at the clipped value, as NumPy's
    y = rng.integers(0, 2 if units == 1 else units, 6) if rule.task == "classification" else rng.normal(0, 1, (6, units))
    w = rng.uniform(0.2, 3.0, max(units, 2)) if weighted else None
    value, grad = FORMULAS[loss].value_and_grad(out.copy(), y, fused and rule.fuses is not None, w)
    ot = torch.tensor(out, requires_grad=True)
    yt = torch.tensor(y)
    vt = LOSS_LOWERINGS[loss](ot, yt, fused and rule.fuses is not None, None if w is None else torch.tensor(w))
    vt.backward()
    assert rel(value, vt.item()) <= 1e-12
    assert rel(grad, ot.grad.numpy()) <= 1e-12


GRADIENT_RULES = [name for name, rule in OPTIMIZERS.items() if rule.uses_gradients]
SETTINGS = {"sgd": [{"momentum": 0.0, "nesterov": False}, {"momentum": 0.9, "nesterov": False},
                    {"momentum": 0.9, "nesterov": True}],
            "rmsprop": [{"momentum": 0.0}, {"momentum": 0.5}]}


@pytest.mark.parametrize("name", GRADIENT_RULES)
def test_every_gradient_optimizer_rule_runs_on_torch_tensors_as_on_numpy(name):
    rule = OPTIMIZERS[name]
    for extra in SETTINGS.get(name, [{}]):
        hp = {**{k: a.default for k, a in rule.attrs.items()}, **extra}
        rng = np.random.default_rng(2)
        w = rng.normal(0, 1, (5, 3))
        wt = torch.tensor(w)
        s_np, s_t = {}, {}
        tmp, tmp_t = np.empty_like(w), torch.empty_like(wt)
        for t in range(1, 6):
            g = rng.normal(0, 1, w.shape)
            rule.update(w, g.copy(), s_np, tmp, 0.01, hp, t, True)
            rule.update(wt, torch.tensor(g), s_t, tmp_t, 0.01, hp, t, True, TORCH_OPS)
        assert rel(w, wt.numpy()) <= 1e-14, (name, extra)
        assert sorted(s_np) == sorted(s_t)
        for role in s_np:
            assert rel(s_np[role], s_t[role].numpy()) <= 1e-14


def test_the_genetic_optimizer_is_refused_on_torch_where_it_is_written(tmp_path, capsys):
    spec = tmp_path / "g.dl"
    spec.write_text("model m {\n input 4\n dense 3 softmax\n}\ndata iris\noptimizer genetic\ntrain engine=torch\n")
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"{spec}:6:11: error: optimizer genetic runs on the numpy engine only" in err


GRADIENT_SPECS = [p for p in sorted(SPECS.glob("*.dl")) if "genetic" not in p.read_text()]


@pytest.mark.parametrize("path", GRADIENT_SPECS, ids=lambda p: p.stem)
def test_three_steps_from_a_shared_state_equal_numpy_in_float64(path):
    compare(path, torch.float64, 3, 1e-9)  # the optimizer's state enters from the second step


# digits_images: images with a blank background give maxpool windows of equal values after batchnorm,
# whose max is then picked by float32 rounding (with avgpool, or without batchnorm, it agrees to 1e-5;
# in float64 to 1e-9, below): a tie, not the maths
FLOAT32_SPECS = [p for p in GRADIENT_SPECS if p.stem != "digits_images"]


# The FCNs on the archive's series: a batchnorm's beta and the conv before it get gradients that are sums
# over batch x steps (16 x 150 = 2,400 terms) which nearly cancel; in float32 the two libraries' summation
# orders leave up to 5e-4 of relative difference in them (with adam or sgd alike), while float64 agrees to
# 1e-9 (test_three_steps_..._in_float64): rounding, not the maths
FLOAT32_BOUND = {"fcn_gunpoint": 2e-3, "fcn_italy_power": 2e-3}


@pytest.mark.parametrize("path", FLOAT32_SPECS, ids=lambda p: p.stem)
def test_one_step_from_a_shared_state_equals_numpy_in_float32(path):
    compare(path, torch.float32, 1, FLOAT32_BOUND.get(path.stem, 1e-5))  # float32 rounding only


# the long comparison's cost, in forward FLOPs (multiply-adds x 2) per test: 100 steps of the small specs,
# fewer (never under 12: an epoch boundary in most specs, the optimizer's state well under way) of the conv
# nets, whose every op the three-step test already covers; it took 11 minutes of CI at 100 steps each
LONG_RUN_FLOPS = 2e9


def _long_run_steps(spec) -> int:
    batch = spec["train"]["batch"]
    per_step = sum(n.flops for n in spec.graph.nodes) * (64 if batch == "all" else batch)
    return max(12, min(100, int(LONG_RUN_FLOPS / per_step)))


@pytest.mark.slow
@pytest.mark.parametrize("path", GRADIENT_SPECS, ids=lambda p: p.stem)
def test_many_steps_of_every_spec_equal_numpy_in_float64(path):
    """The same maths over many steps (schedules, warm-up, shuffling, clipping, regularizers): float64
    keeps rounding out of it. (In float32, 100 steps of a conv net drift apart by chaos, not by the
    maths: NumPy float32 against NumPy float64 differ by 9 % on a batchnorm beta of resnet_digits.)"""
    compare(path, torch.float64, _long_run_steps(noiseless(path)), 1e-9)


def test_the_cli_trains_exports_and_resumes_on_torch(tmp_path):
    """--engine torch writes the same run folder; export passes its parity check; a run stopped after
    2 epochs and resumed equals the uninterrupted one bit for bit."""
    import json
    spec = SPECS / "digits_gap.dl"
    base = ["train", str(spec), "--engine", "torch", "--device", "cpu", "-q", "--set", "train.early_stop=0"]
    assert main(base + ["-o", str(tmp_path / "full"), "--set", "train.epochs=4"]) == 0
    assert main(base + ["-o", str(tmp_path / "part"), "--set", "train.epochs=2"]) == 0
    assert main(["train", str(tmp_path / "part"), "--resume", "-q", "--set", "train.epochs=4"]) == 0
    full, part = (np.load(tmp_path / r / "weights.npz") for r in ("full", "part"))
    assert sorted(full.files) == sorted(part.files)
    for k in full.files:
        assert np.array_equal(full[k], part[k]), k
    m = json.loads((tmp_path / "part" / "metrics.json").read_text())
    assert (m["engine"], m["device"], m["world_size"], m["torch"]) == ("torch", "cpu", 1, torch.__version__)
    assert main(["export", str(tmp_path / "full"), "-o", str(tmp_path / "m.onnx")]) == 0


def test_a_torch_run_does_not_resume_on_numpy(tmp_path, capsys):
    spec = SPECS / "digits_fast.dl"
    assert main(["train", str(spec), "--engine", "torch", "--device", "cpu", "-q", "-o", str(tmp_path / "r"),
                 "--set", "train.epochs=1"]) == 0
    run_spec = tmp_path / "r" / "spec.dl"
    run_spec.write_text(run_spec.read_text().replace(" engine=torch device=cpu", ""))
    assert main(["train", str(tmp_path / "r"), "--resume", "-q", "--set", "train.epochs=2"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "train.engine ('torch' -> None)" in err, err


@pytest.mark.parametrize("device, message", [
    ("cuda", "device cuda: this machine has no CUDA GPU that torch can use"),
    ("tpu", "unknown device 'tpu'"),
])
def test_a_device_this_machine_lacks_is_refused_where_it_is_written(tmp_path, capsys, device, message):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    spec = tmp_path / "s.dl"
    spec.write_text("model m {\n input 4\n dense 3 softmax\n}\ndata iris\ntrain epochs=1 engine=torch device=%s\n"
                    % device)
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"{spec}:6:29: error: {message}" in err
    assert not (tmp_path / "r").exists()  # refused before anything was made


def test_device_without_the_torch_engine_is_refused(tmp_path, capsys):
    spec = tmp_path / "s.dl"
    spec.write_text("model m {\n input 4\n dense 3 softmax\n}\ndata iris\ntrain epochs=1 device=cpu\n")
    assert main(["check", str(spec)]) == 2
    assert "device= is the torch engine's: the numpy engine runs on the CPU" in capsys.readouterr().err


def test_without_torch_the_engine_is_refused_with_the_install_command(tmp_path):
    import subprocess
    import sys
    code = ("import sys; sys.modules['torch'] = None\n"
            "from dlc.cli import main\n"
            f"sys.exit(main(['train', {str(SPECS / 'digits_fast.dl')!r}, '--engine', 'torch', '-q', '-o', "
            f"{str(tmp_path / 'r')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert "error: the torch engine needs PyTorch, which is not installed" in r.stderr
    assert 'pip install "dlc[torch]"' in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "r").exists()


TRAINING_LINES = [
    "optimizer sgd lr=0.05\nschedule step every=1 gamma=0.5",
    "optimizer sgd lr=0.05 momentum=0.9\nschedule exponential gamma=0.8 warmup=1",
    "optimizer sgd lr=0.05 momentum=0.9 nesterov clip_value=0.05\nregularize l1=1e-3",
    "optimizer adagrad lr=0.05 clip_norm=0.5\nregularize max_norm=1.5",
    "optimizer rmsprop lr=0.01 momentum=0.5\nregularize l2=1e-2 l1=1e-4\nschedule cosine min_lr=1e-3",
    "optimizer rmsprop lr=0.01\nschedule constant warmup=2",
    "optimizer adam lr=0.01 clip_value=0.1 clip_norm=1\nregularize l2=1e-3 max_norm=2",
    "optimizer adamw lr=0.01 weight_decay=0.1\nschedule step every=2 gamma=0.1 warmup=1",
]
SMALL_NET = """model small {
    input 1x8x8
    conv 6 kernel=3 pad=same relu batchnorm
    conv 8 kernel=3 stride=2 pad=same prelu l2=1e-3
    maxpool 2
    flatten
    dense 16 tanh max_norm=1
    dense 10 softmax
}
data digits test=0.2 scale=0.0625
train epochs=4 batch=100 seed=3
"""


@pytest.mark.parametrize("lines", TRAINING_LINES, ids=lambda s: s.replace("\n", " ").replace(" ", "_"))
def test_every_optimizer_schedule_clipping_and_regularizer_trains_alike_in_float64(tmp_path, lines):
    """40 steps over 4 epochs (the schedule and warm-up change the rate each epoch) on both engines.
    (No batchnorm after the conv stack: it would make some conv biases' gradients exactly 0 in exact
    arithmetic, rounding noise in float, which adagrad's g/|g| turns into steps of lr either way.)"""
    path = tmp_path / "small.dl"
    path.write_text(SMALL_NET + lines + "\n")
    compare(path, torch.float64, 40, 1e-9)
