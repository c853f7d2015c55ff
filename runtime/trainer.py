"""The training loop: mini-batches, validation, early stopping, NaN guard, checkpoints, resume."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.compiler.spec import Spec
from dlc.runtime import run_folder as rf
from dlc.runtime.data import Preprocess, Splits, prepare
from dlc.runtime.losses import fused_activation, loss_and_grad, predicted_class, probabilities
from dlc.runtime.network import Network, WeightsMismatch, init_params
from dlc.runtime.optimizers import Optimizer, Regularizer, clip_gradients, learning_rate


class TrainingDiverged(Exception):
    """The loss stopped being finite. `history` holds the epochs completed before it did."""

    def __init__(self, message: str, history: list[dict] | None = None):
        super().__init__(message)
        self.history = history or []


@dataclass
class Model:
    """A graph with values, ready for inference: the NumPy runtime's view of a trained model."""

    spec: Spec
    values: dict[str, np.ndarray]
    preprocess: Preprocess
    classes: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.net = Network(self.spec.graph, self.values)
        self.fused = _is_fused(self.spec)
        self.upto = len(self.spec.graph.nodes) - 1 if self.fused else None

    def outputs(self, x_prepared: np.ndarray, batch: int = 1024) -> np.ndarray:
        """Raw outputs (logits when the loss is fused) for already-preprocessed inputs."""
        return self.net.predict(x_prepared, batch, self.upto)

    def predict_proba(self, x_raw: np.ndarray) -> np.ndarray:
        """What the exported ONNX model computes: raw inputs -> the network's final outputs."""
        return probabilities(self.spec.loss, self.outputs(self.preprocess.apply(x_raw)), self.fused)

    def evaluate(self, x_prepared, y, batch: int = 1024) -> dict:
        if len(x_prepared) == 0:
            return {"loss": None, "accuracy": None}
        out = self.outputs(x_prepared, batch)
        loss, _ = loss_and_grad(self.spec.loss, out, y, self.fused)
        result = {"loss": loss}
        if self.spec.task == "classification":
            pred = predicted_class(self.spec.loss, probabilities(self.spec.loss, out, self.fused))
            result["accuracy"] = float(np.mean(pred == y))
        else:
            result["accuracy"] = None
            result["mae"] = float(np.mean(np.abs(out - y.reshape(out.shape))))
        return result


def _is_fused(spec: Spec) -> bool:
    act = fused_activation(spec.loss)
    return act is not None and spec.graph.nodes[-1].op == act


class TrainStep:
    """One optimisation step of a model: forward, loss, backward, penalties, clipping, update.

    `regularize=False` leaves out l1/l2 and max-norm (dlc diagnose checks the bare loss).
    A step whose loss is not finite returns it without updating the weights.
    """

    def __init__(self, model: Model, regularize: bool = True):
        spec = model.spec
        self.model = model
        self.spec = spec
        self.opt_set = spec["optimizer"]
        self.opt = Optimizer(self.opt_set.kind, self.opt_set.values, model.values)
        r = spec["regularize"]
        self.reg = (Regularizer(spec.graph, r["l1"], r["l2"], r.get("max_norm")) if regularize
                    else Regularizer(spec.graph, 0.0, 0.0, None))

    def __call__(self, xb, yb, lr: float, rng: np.random.Generator) -> tuple[float, np.ndarray, dict]:
        """-> (loss with penalties, the network's outputs for the batch, the gradients used)."""
        m = self.model
        out = m.net.forward(xb, training=True, rng=rng, upto=m.upto)
        loss, dout = loss_and_grad(self.spec.loss, out, yb, m.fused)
        grads = m.net.backward(dout)
        loss += self.reg.penalty_and_grads(m.values, grads)
        if math.isfinite(loss):
            clip_gradients(grads, self.opt_set.get("clip_norm"), self.opt_set.get("clip_value"))
            self.opt.step(grads, lr, self.reg.decayed)
            self.reg.constrain(m.values)
        return loss, out, grads


@dataclass
class RunResult:
    run_dir: Path
    model: Model
    history: list[dict]
    metrics: dict
    interrupted: bool = False


def _check_concrete(spec: Spec):
    if spec.ranges:
        where, r = spec.ranges[0]
        raise DLError(Diagnostic("error", f"{where} is a search range ({r.text}); train needs one value", r.span,
                                 "run dlc search, or pick a value with --set (e.g. --set optimizer.lr=0.001)"),
                      spec.source)


def train(spec: Spec, out: str | Path | None = None, resume: bool = False, progress: bool = True,
          splits: Splits | None = None, write: bool = True, max_steps: int | None = None) -> RunResult:
    """Train `spec`; write the run folder (unless write=False); return the trained model and history."""
    _check_concrete(spec)
    graph = spec.graph
    tr = spec["train"]
    seed = tr["seed"]
    run_dir = Path(out) if out else rf.default_run_dir(spec.name)
    splits = splits or prepare(spec)
    values = init_params(graph, seed)
    opt_set = spec["optimizer"]
    shuffle_rng = np.random.default_rng([seed, 1])
    noise_rng = np.random.default_rng([seed, 2])
    history: list[dict] = []
    start_epoch, best, best_epoch, wait = 0, math.inf, -1, 0
    best_values = None
    model = Model(spec, values, splits.preprocess, splits.classes)
    learner = TrainStep(model)
    opt, fused = learner.opt, model.fused
    if resume:
        state = _load_resume(run_dir, spec, values, opt)
        history = state["history"]
        start_epoch, best, best_epoch, wait = state["epoch"], state["best"], state["best_epoch"], state["wait"]
        shuffle_rng.bit_generator.state = state["shuffle_rng"]
        noise_rng.bit_generator.state = state["noise_rng"]
        if (run_dir / "best.npz").exists():
            best_values = rf.load_npz(run_dir / "best.npz")
    n = len(splits.x_train)
    batch = n if tr["batch"] == "all" else min(tr["batch"], n)
    epochs = tr["epochs"]
    patience = tr["early_stop"]
    has_val = len(splits.x_val) > 0
    if write:
        run_dir.mkdir(parents=True, exist_ok=True)
        rf.atomic_write_text(run_dir / "spec.dl", spec.source.text)
        rf.save_npz(run_dir / "preprocess.npz", {"mul": splits.preprocess.mul, "add": splits.preprocess.add})
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=epochs, initial=start_epoch, desc=spec.name, unit="epoch", dynamic_ncols=True, leave=True)
    interrupted = False
    t_start = time.perf_counter()
    steps = 0
    saved_err = np.seterr(over="ignore", invalid="ignore")  # divergence is caught and reported below
    try:
        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            lr = learning_rate(opt_set["lr"], spec["schedule"].kind, spec["schedule"].values, epoch, epochs)
            order = shuffle_rng.permutation(n) if tr["shuffle"] else np.arange(n)
            total_loss, correct, seen = 0.0, 0, 0
            for step, i in enumerate(range(0, n, batch)):
                idx = order[i:i + batch]
                xb, yb = splits.x_train[idx], splits.y_train[idx]
                loss, out_b, _ = learner(xb, yb, lr, noise_rng)
                if not math.isfinite(loss):
                    raise TrainingDiverged(
                        f"the loss became {loss} at epoch {epoch + 1}, step {step + 1} (lr={lr:g}): "
                        f"the learning rate is likely too high; try lr={lr / 10:g}, gradient clipping "
                        f"(optimizer ... clip_norm=5) or batchnorm", history)
                total_loss += loss * len(idx)
                seen += len(idx)
                if spec.task == "classification":
                    correct += int(np.sum(predicted_class(spec.loss, probabilities(spec.loss, out_b, fused)) == yb))
                steps += 1
                if max_steps and steps >= max_steps:
                    break
            row = {"epoch": epoch + 1, "lr": lr, "loss": total_loss / seen,
                   "accuracy": correct / seen if spec.task == "classification" else None,
                   "val_loss": None, "val_accuracy": None}
            if has_val:
                v = model.evaluate(splits.x_val, splits.y_val)
                row["val_loss"], row["val_accuracy"] = v["loss"], v["accuracy"]
            row["seconds"] = round(time.perf_counter() - t0, 4)
            history.append(row)
            monitor = row["val_loss"] if has_val else row["loss"]
            if monitor < best - 1e-12:
                best, best_epoch, wait = monitor, epoch + 1, 0
                if patience:
                    best_values = {k: v.copy() for k, v in values.items()}
            else:
                wait += 1
            if bar is not None:
                post = {"loss": f"{row['loss']:.4f}"}
                if row["accuracy"] is not None:
                    post["acc"] = f"{row['accuracy']:.3f}"
                if has_val:
                    post["val_loss"] = f"{row['val_loss']:.4f}"
                    if row["val_accuracy"] is not None:
                        post["val_acc"] = f"{row['val_accuracy']:.3f}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)
            if write:
                _checkpoint(run_dir, values, opt, history, epoch + 1, best, best_epoch, wait, shuffle_rng,
                            noise_rng, best_values if patience else None)
            if patience and wait >= patience:
                break
            if max_steps and steps >= max_steps:
                break
    except KeyboardInterrupt:
        interrupted = True
        if write and history:
            # the weights of the last completed epoch are in the run folder; restore them in memory too
            for k, v in rf.load_npz(run_dir / "weights.npz").items():
                values[k][...] = v
    finally:
        np.seterr(**saved_err)
        if bar is not None:
            bar.close()
    if patience and best_values is not None:
        for k, v in best_values.items():
            values[k][...] = v
    metrics = {
        "model": spec.name, "task": spec.task, "loss": spec.loss, "classes": splits.classes, "data": splits.name,
        "epochs_run": len(history), "best_epoch": best_epoch if best_epoch > 0 else None,
        "stopped_early": bool(patience and wait >= patience), "interrupted": interrupted,
        "seconds": round(time.perf_counter() - t_start, 3),
        "samples": {"train": len(splits.x_train), "validation": len(splits.x_val), "test": len(splits.x_test)},
        "train": model.evaluate(splits.x_train, splits.y_train),
        "validation": model.evaluate(splits.x_val, splits.y_val),
        "test": model.evaluate(splits.x_test, splits.y_test),
    }
    if write:
        rf.save_npz(run_dir / "weights.npz", values)
        rf.save_history(run_dir / "history.csv", history)
        rf.save_json(run_dir / "metrics.json", metrics)
        if history:
            rf.save_curves(run_dir / "curves.png", {spec.name: history}, spec.name)
    return RunResult(run_dir, model, history, metrics, interrupted)


def _checkpoint(run_dir, values, opt, history, epoch, best, best_epoch, wait, shuffle_rng, noise_rng, best_values):
    rf.save_npz(run_dir / "weights.npz", values)
    rf.save_npz(run_dir / "optimizer.npz", opt.state_dict())
    if best_values is not None:
        rf.save_npz(run_dir / "best.npz", best_values)
    rf.save_history(run_dir / "history.csv", history)
    rf.save_json(run_dir / "state.json", {
        "epoch": epoch, "best": best if math.isfinite(best) else None, "best_epoch": best_epoch, "wait": wait,
        "shuffle_rng": shuffle_rng.bit_generator.state, "noise_rng": noise_rng.bit_generator.state,
        "history": history})


def _load_resume(run_dir: Path, spec: Spec, values, opt) -> dict:
    import json
    state_path = run_dir / "state.json"
    if not state_path.exists():
        raise DLError(Diagnostic("error", f"{run_dir} has no training state to resume "
                                          "(state.json missing)", None, "train without --resume to start a new run"))
    weights = rf.load_npz(run_dir / "weights.npz")
    try:
        from dlc.runtime.network import check_weights
        check_weights(spec.graph, weights)
    except WeightsMismatch as e:
        raise DLError(Diagnostic("error", f"cannot resume {run_dir}: {e}", None,
                                 "the model block changed since the run started; start a new run")) from None
    for k, v in weights.items():
        values[k][...] = v
    if (run_dir / "optimizer.npz").exists():
        opt.load_state(rf.load_npz(run_dir / "optimizer.npz"))
    state = json.loads(state_path.read_text())
    state["best"] = math.inf if state["best"] is None else state["best"]
    return state
