"""`dlc diagnose`: the babysitting checklist run for you before a long training run.

Each check returns a verdict (ok / warn / fail), a one-line finding with the figures,
and a fix. The checks, in order:

    initial loss     at init, with regularization off, against ln(classes) (or the loss of
                     predicting zero for regression): a wrong value means a badly scaled
                     output layer or a data/label problem.
    overfit          20 training samples, regularization off, up to 300 full-batch steps:
                     a net that cannot drive their loss near zero has a bug, a dead or
                     symmetric init, or a learning rate that is far off.
    gradient flow    per weight layer, the gradient norm over the first steps of real
                     training: layers that get none, vanishing (the input side gets
                     < 1e-3 of the output side's) or exploding (> 1e3) gradients.
    symmetry         after those steps, the units of every weight layer must differ;
                     identical units (zero or constant init) stay identical forever.
    through time     (sequences) the loss's gradient at each series's first step against its last,
                     at init: the first steps barely moving the loss (< 1e-3 of the last's) is a
                     gradient vanishing through the recurrence; > 1e3, one exploding.
    update / weight  ||dW|| / ||W|| per step; about 1e-3 is healthy.
    activations      dead ReLU units (never positive on a batch) and saturated
                     sigmoid / tanh outputs after the first steps.
    lr range test    the learning rate grows geometrically from 1e-6 to 10 over a fresh
                     init; the loss curve (PNG) shows where training is fastest and where
                     it blows up; the spec's rate is judged against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, asdict
from pathlib import Path

import numpy as np

from dlc.compiler.engines import DEFAULT_ENGINE
from dlc.compiler.losses import LOSSES
from dlc.compiler.spec import Spec
from dlc.runtime.data.splits import Splits, prepare
from dlc.compiler.schedules import learning_rate
from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.compiler.ops import REGISTRY
from dlc.runtime.engine import Engine, engine_class
from dlc.runtime.scores import scores
from dlc.runtime.tools.diagnose_probe import (FAIL, OK, WARN, Check, fresh_model, layer_label, training_batches,
                                              weight_params)
from dlc.runtime.tools.lr_range import check_lr, lr_range_test, save_lr_plot


OVERFIT_SAMPLES = 20
OVERFIT_STEPS = 300
FIRST_STEPS = 20
STATS_BATCH = 512
HEALTHY_UPDATE = (1e-4, 3e-2)  # update/weight ratio outside this band warns; 1e-3 is the textbook value
DEAD_WARN = 0.4  # fraction of dead ReLU units in a layer
SATURATED_WARN = 0.3  # fraction of saturated sigmoid/tanh outputs in a layer


@dataclass
class Report:
    spec_name: str
    checks: list[Check]
    lr_curve: dict = field(default_factory=dict)
    out_dir: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.verdict == OK for c in self.checks)

    def render(self) -> str:
        lines = [f"dlc diagnose {self.spec_name}"]
        lines += [f"  note: {n}" for n in self.notes]
        width = max(len(c.name) for c in self.checks)
        for c in self.checks:
            lines.append(f"  [{c.verdict.upper():>4}] {c.name:<{width}}  {c.finding}")
            lines += [f"         {'':<{width}}  {d}" for d in c.details]
            if c.fix and c.verdict != OK:
                lines.append(f"         {'':<{width}}  fix: {c.fix}")
        bad = [c for c in self.checks if c.verdict != OK]
        verdict = "all checks passed" if not bad else \
            f"{sum(c.verdict == FAIL for c in bad)} failed, {sum(c.verdict == WARN for c in bad)} warned"
        lines.append(f"verdict: {verdict}")
        if self.out_dir is not None:
            lines.append(f"lr range test plot: {self.out_dir / 'lr_range.png'}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"model": self.spec_name, "ok": self.ok, "notes": self.notes,
                "checks": [asdict(c) for c in self.checks], "lr_range": self.lr_curve,
                "out_dir": str(self.out_dir) if self.out_dir else None}


# ---- the checks ----------------------------------------------------------------
def check_initial_loss(spec: Spec, splits: Splits) -> Check:
    m = fresh_model(spec, splits, regularize=False)
    x, y = splits.x_train[:STATS_BATCH], splits.y_train[:STATS_BATCH]
    loss = m.training_loss(x, y)
    expected, formula = LOSSES[spec.loss].expected_initial_loss(spec.graph.output_shape[0], y)
    ratio = loss / expected if expected > 0 else math.inf
    finding = f"loss {loss:.4g} at init; expected about {expected:.4g} = {formula} (ratio {ratio:.2f})"
    if not math.isfinite(loss):
        return Check("initial loss", FAIL, f"the loss is {loss} before any step",
                     "the forward pass overflows: check the input scaling (standardize) and the init")
    classify = spec.task == "classification"
    lo, hi = (0.7, 1.5) if classify else (0.0, 3.0)
    if ratio > hi:
        return Check("initial loss", WARN, finding,
                     "the output layer starts too confident: start the last layer smaller "
                     "(e.g. init=normal(std=0.01) on it) or standardize the inputs" if classify else
                     "the outputs start large: standardize the inputs or scale the targets")
    if ratio < lo:
        return Check("initial loss", WARN, finding,
                     "lower than chance before training: check that labels are not constant or leaked")
    return Check("initial loss", OK, finding)


def check_overfit(spec: Spec, splits: Splits) -> Check:
    n = min(OVERFIT_SAMPLES, len(splits.x_train))
    x, y = splits.x_train[:n], splits.y_train[:n]
    step = fresh_model(spec, splits, regularize=False)
    step.reseed_noise(1)
    lr = spec["optimizer"]["lr"]
    # the starting loss is the first step's, in training mode, as the initial-loss check measures it
    # (an inference-mode pass at init uses batchnorm's initial statistics: 11.1 against 2.5 on resnet_digits)
    first, worst = math.nan, 0.0
    for s in range(1, OVERFIT_STEPS + 1):
        loss, _ = step.step(x, y, lr)
        steps_run = s
        first = loss if s == 1 else first
        worst = max(worst, loss)
        if not math.isfinite(loss):
            return Check("overfit 20 samples", FAIL, f"the loss became {loss} at step {s} (lr={lr:g})",
                         f"the learning rate is too high: try lr={lr / 10:g}, or add batchnorm / clip_norm")
        if s % 25 == 0 or s == OVERFIT_STEPS:  # the last step always lands here
            ev = scores(spec, step.outputs(x), y)
            if ev["loss"] < 0.01 * max(first, 1e-12):
                break
    last, acc = ev["loss"], ev.get("accuracy")
    acc_text = f", accuracy {100 * acc:.0f}%" if acc is not None else ""
    finding = f"loss {first:#.3g} -> {last:#.3g} in {steps_run} steps on {n} samples{acc_text}"
    fitted = last < 0.05 * first and (acc is None or acc == 1.0)
    if fitted:
        return Check("overfit 20 samples", OK, finding)
    if worst > 1.5 * first:
        return Check("overfit 20 samples", FAIL, finding + f": unstable, the loss rose to {worst:.3g} on the way",
                     f"the learning rate is too high: try lr={lr / 10:g}")
    if last > 0.5 * first:
        return Check("overfit 20 samples", FAIL, finding + ": it barely learns",
                     "check the init (zero or constant weights cannot learn), the learning rate "
                     "(try 10x larger or smaller) and the labels")
    return Check("overfit 20 samples", WARN, finding + ": not near zero",
                 "it fits, slowly: raise the learning rate or the width, or check the data")


@dataclass
class _FirstSteps:
    losses: list[float]
    grad_norms: dict[str, list[float]]
    ratios: dict[str, list[float]]
    weights: dict[str, str]  # parameter name -> its layer (dense1 ...)
    diverged_at: int | None
    model: Engine


def run_first_steps(spec: Spec, splits: Splits, steps: int = FIRST_STEPS) -> _FirstSteps:
    """Real training steps (regularization on, the spec's batch size and lr) with per-layer records."""
    step = m = fresh_model(spec, splits, regularize=True)
    weights = {p.name: layer for layer, p in weight_params(spec)}
    lr = learning_rate(spec["optimizer"]["lr"], spec["schedule"].kind_name, spec["schedule"].values, 0,
                       spec["train"]["epochs"])
    batches = training_batches(spec, splits)
    gnorms: dict[str, list[float]] = {k: [] for k in weights}
    ratios: dict[str, list[float]] = {k: [] for k in weights}
    losses, diverged = [], None
    for s in range(steps):
        before = {k: v for k, v in m.weights().items() if k in weights}
        xb, yb = next(batches)
        loss, _, grads = step.step_with_gradients(xb, yb, lr)
        losses.append(loss)
        if not math.isfinite(loss):
            diverged = s + 1
            break
        after = m.weights()
        for k in weights:
            gnorms[k].append(float(np.linalg.norm(grads[k])))
            wn = float(np.linalg.norm(before[k]))
            dn = float(np.linalg.norm(after[k] - before[k]))
            ratios[k].append(dn / wn if wn > 0 else (math.inf if dn > 0 else math.nan))
    return _FirstSteps(losses, gnorms, ratios, weights, diverged, m)


def check_gradient_flow(fs: _FirstSteps) -> Check:
    if fs.diverged_at:
        return Check("gradient flow", FAIL, f"the loss became non-finite at step {fs.diverged_at} of training",
                     "lower the learning rate 10x, or add batchnorm or gradient clipping (clip_norm=5)")
    names = list(fs.weights)
    means = {k: float(np.mean(fs.grad_norms[k])) for k in names}
    width = max([12] + [len(fs.weights[k]) for k in names])
    details = [f"{fs.weights[k]:<{width}} |grad| {means[k]:.2e}   |dW|/|W| {_median(fs.ratios[k]):.2e}" for k in names]
    dead = [fs.weights[k] for k in names if means[k] == 0.0]
    if dead:
        return Check("gradient flow", FAIL, f"no gradient reaches {', '.join(dead)}", details=details,
                     fix="a layer whose weights and inputs are all zero gets no gradient: use a random init "
                         "(he_normal for relu, xavier for tanh/sigmoid)")
    first, last = means[names[0]], means[names[-1]]
    spread = first / last if last > 0 else math.inf
    finding = f"|grad| {first:.2e} at the first layer, {last:.2e} at the last (ratio {spread:.1e})"
    if max(means.values()) > 1e3:
        return Check("gradient flow", FAIL, finding + ": exploding", details=details,
                     fix="lower the learning rate, add batchnorm, or clip gradients (optimizer ... clip_norm=5)")
    if spread < 1e-3:
        return Check("gradient flow", WARN, finding + ": vanishing towards the input", details=details,
                     fix="use relu-family activations with he init, add batchnorm, or make the net shallower")
    return Check("gradient flow", OK, finding, details=details)


def check_gradient_through_time(spec: Spec, splits: Splits) -> Check | None:
    """The loss's gradient norm at each series's first input step against its last valid one, averaged
    over a batch of training series at init (None: the input is not a sequence of numbers -- token ids
    have no gradient, a text's is its embedding's)."""
    if len(spec.graph.input_shape) != 2 or spec.graph.input_dtype != "float32":
        return None
    from dlc.runtime.data.series import lengths
    from dlc.runtime.tools.diagnose_probe import fresh_model
    x, y = splits.x_train[:STATS_BATCH], splits.y_train[:STATS_BATCH]
    grad = fresh_model(spec, splits, regularize=False).input_gradient(x, y)
    rows = np.arange(len(x))
    first = float(np.mean(np.linalg.norm(grad[:, :, 0], axis=1)))
    last = float(np.mean(np.linalg.norm(grad[rows, :, lengths(x) - 1], axis=1)))
    ratio = first / last if last > 0 else math.inf
    finding = f"|grad| {first:.2e} at the first step, {last:.2e} at the last (ratio {ratio:.1e})"
    if ratio < 1e-3:
        return Check("through time", WARN, finding + ": the early steps barely move the loss (vanishing)",
                     "shorten the sequence first (conv1d with stride=, maxpool), make the layer bidirectional, "
                     "or read every step ('sequences', then globalavgpool)")
    if ratio > 1e3:
        return Check("through time", WARN, finding + ": the early steps dominate (exploding)",
                     "clip gradients (optimizer ... clip_norm=1) or lower the learning rate")
    return Check("through time", OK, finding)


def check_symmetry(fs: _FirstSteps) -> Check:
    same = []
    values = fs.model.weights()
    for k, layer in fs.weights.items():
        w = values[k]
        units = w.reshape(w.shape[0], -1) if w.ndim >= 3 else w.T  # dense (in, out); conv (out, in, kh, kw), conv1d (out, in, k)
        if units.shape[0] > 1 and float(np.max(np.ptp(units, axis=0))) <= 1e-7 * (1 + float(np.abs(units).max())):
            same.append(layer)
    if same:
        return Check("symmetry", FAIL, f"all units of {', '.join(same)} are identical after {len(fs.losses)} steps",
                     "zero or constant init gives every unit the same gradient forever: use a random init "
                     "(he_normal / xavier_uniform)")
    return Check("symmetry", OK, f"units differ in all {len(fs.weights)} weight layers")


def _median(v):
    v = [x for x in v if not math.isnan(x)]
    return float(np.median(v)) if v else math.nan


def check_update_ratio(fs: _FirstSteps, lr: float) -> Check:
    if fs.diverged_at:
        return Check("update / weight", FAIL, f"diverged at step {fs.diverged_at}", f"lower the learning rate (now {lr:g})")
    per_layer = {fs.weights[k]: _median(r) for k, r in fs.ratios.items()}
    finite = [v for v in per_layer.values() if math.isfinite(v)]
    if not finite:
        zero = any(math.isinf(v) for v in per_layer.values())
        return Check("update / weight", FAIL, "weights start at zero" if zero else "no layer is updated",
                     "use a random init (he_normal / xavier_uniform)")
    med = float(np.median(finite))
    lo, hi = HEALTHY_UPDATE
    # the layer farthest from the textbook 1e-3 (in decades)
    worst = max(per_layer.items(),
                key=lambda kv: abs(math.log10(kv[1]) + 3) if kv[1] > 0 and math.isfinite(kv[1]) else 99)
    finding = f"median {med:.1e} per step (healthy about 1e-3); {worst[0]} {worst[1]:.1e}"
    first = {fs.weights[k]: r[0] for k, r in fs.ratios.items() if r and math.isfinite(r[0])}
    jump = max(first.items(), key=lambda kv: kv[1], default=(None, 0.0))
    if jump[1] > 0.5:
        return Check("update / weight", FAIL, f"the first step changes {jump[0]} by {jump[1]:.2g}x its size",
                     f"lower the learning rate about {jump[1] / 1e-3:.0g}x (lr={lr * 1e-3 / jump[1]:.2g})")
    if med > 10 * hi:
        return Check("update / weight", FAIL, finding + ": each step rewrites the weights",
                     f"lower the learning rate about {med / 1e-3:.0f}x (lr={lr * 1e-3 / med:.2g})")
    if med > hi:
        return Check("update / weight", WARN, finding + ": high", f"try a lower learning rate (lr={lr * 1e-3 / med:.2g})")
    if med < lo:
        return Check("update / weight", WARN, finding + ": training will crawl",
                     f"raise the learning rate (lr={lr * 1e-3 / max(med, 1e-12):.2g})")
    return Check("update / weight", OK, finding)


def check_activations(spec: Spec, splits: Splits, fs: _FirstSteps) -> Check:
    if fs.diverged_at:
        return Check("activations", FAIL, "skipped: training diverged", "lower the learning rate")
    x = splits.x_train[:STATS_BATCH]
    details, bad = [], []
    width = max([12] + [len(layer_label(n)) for n in spec.graph.nodes if REGISTRY[n.op].dies or REGISTRY[n.op].saturating])
    for node, out in fs.model.trace(x):
        op, label = node.op, layer_label(node)
        if REGISTRY[op].dies:
            dead = float(np.mean(REGISTRY[op].dead(out)))
            details.append(f"{label:<{width}} dead units {100 * dead:.0f}%")
            if dead >= DEAD_WARN:
                bad.append(f"{label} {100 * dead:.0f}% dead")
        elif REGISTRY[op].saturating and node is not spec.graph.nodes[-1]:
            sat = float(np.mean(REGISTRY[op].saturated(out)))
            details.append(f"{label:<{width}} saturated {100 * sat:.0f}%")
            if sat >= SATURATED_WARN:
                bad.append(f"{label} {100 * sat:.0f}% saturated")
    if not details:
        return Check("activations", OK, "no relu, sigmoid or tanh hidden layers to inspect")
    if bad:
        return Check("activations", WARN, "; ".join(bad), details=details,
                     fix="dead relu: lower the learning rate, use he init or leaky_relu; "
                         "saturation: standardize inputs, use xavier init or batchnorm")
    return Check("activations", OK, f"{len(details)} layer(s): no dead or saturated layer", details=details)


def diagnose(spec: Spec, out: str | Path | None = None, splits: Splits | None = None, plot: bool = True) -> Report:
    """Run every check on `spec`; write lr_range.png and report.json to `out` (unless plot=False).
    Search ranges take their middle value."""
    from dlc.runtime import run_folder as rf

    from dlc.compiler.optimizers import OPTIMIZERS

    opt = spec["optimizer"]
    if not OPTIMIZERS[opt.kind_name].uses_gradients:
        raise DLError(Diagnostic("error", f"dlc diagnose follows gradients and the learning rate, and optimizer "
                                          f"{opt.kind} uses no gradients", opt.span,
                                 "to check the network itself, diagnose it with a gradient optimizer: "
                                 "--set optimizer=adam"), spec.source)
    if spec.ranges:
        from dlc.compiler.search_space import nominal_spec
        spec = nominal_spec(spec)
    engine_class(spec).check(spec)  # a device this machine lacks: refused before the data is read
    splits = splits or prepare(spec)
    lr = spec["optimizer"]["lr"]
    saved = np.seterr(over="ignore", invalid="ignore", divide="ignore")  # divergence is what we look for
    try:
        checks = [check_initial_loss(spec, splits), check_overfit(spec, splits)]
        fs = run_first_steps(spec, splits)
        through_time = check_gradient_through_time(spec, splits)
        checks += [check_gradient_flow(fs)] + ([through_time] if through_time else []) + [
            check_symmetry(fs), check_update_ratio(fs, lr), check_activations(spec, splits, fs)]
        curve = lr_range_test(spec, splits)
        checks.append(check_lr(curve, lr))
    finally:
        np.seterr(**saved)
    report = Report(spec.name, checks, curve)
    engine = spec["train"].get("engine")
    if engine and engine != DEFAULT_ENGINE:
        device = spec["train"].get("device")
        report.notes.append(f"the checks ran on engine={engine}" + (f" device={device}" if device else ""))
    if plot:
        report.out_dir = Path(out) if out else rf.default_run_dir(f"{spec.name}-diagnose")
        report.out_dir.mkdir(parents=True, exist_ok=True)
        save_lr_plot(report.out_dir / "lr_range.png", curve, lr, spec.name)
        rf.save_json(report.out_dir / "report.json", report.to_json())
    return report
