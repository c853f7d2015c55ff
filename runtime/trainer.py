"""The training loop: mini-batches, validation, early stopping, NaN guard, checkpoints, resume."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.compiler.spec import Spec
from dlc.runtime import data_record
from dlc.runtime import run_folder as rf
from dlc.runtime.data import Preprocess, Splits, prepare
from dlc.runtime.losses import fused_activation, loss_and_grad, predicted_class, probabilities
from dlc.runtime.network import Network, WeightsMismatch, check_weights, init_params
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
    complete: bool = False  # resumed a run that had already finished: nothing was trained


def _check_concrete(spec: Spec):
    if spec.ranges:
        where, r = spec.ranges[0]
        raise DLError(Diagnostic("error", f"{where} is a search range ({r.text}); train needs one value", r.span,
                                 "run dlc search, or pick a value with --set (e.g. --set optimizer.lr=0.001)"),
                      spec.source)


def train(spec: Spec, out: str | Path | None = None, resume: bool = False, progress: bool = True,
          splits: Splits | None = None, write: bool = True, max_steps: int | None = None,
          notify=None) -> RunResult:
    """Train `spec`; write the run folder (unless write=False); return the trained model and history.

    Every completed epoch is one checkpoint (weights, optimizer state, best weights, counters, both
    random streams, history) written as one file, so `resume=True` continues exactly where the last
    completed epoch ended, whatever was kept as the best. `notify(message)` receives notes for the user.
    """
    _check_concrete(spec)
    notify = notify or (lambda message: None)
    run_dir = Path(out) if out else rf.default_run_dir(spec.name)
    if not write:
        return _train(spec, run_dir, None, progress, splits, False, max_steps)
    existed = run_dir.exists()
    rf.make_dir(run_dir)
    with rf.RunLock(run_dir):
        rf.remove_stale_temp_files(run_dir)
        ckpt = None
        if resume:
            ckpt = rf.load_checkpoint(run_dir)
            if ckpt is None:
                notify(f"{run_dir}: no epoch completed before the run stopped; starting it over" if existed
                       else f"{run_dir} does not exist yet: starting a new run")
            else:
                spec = data_record.load_for_run(spec, run_dir)
        if ckpt is None:  # a new run here: nothing of an earlier one may be resumed or mixed in by mistake
            for name in rf.RUN_FILES:
                (run_dir / name).unlink(missing_ok=True)
        return _train(spec, run_dir, ckpt, progress, splits, True, max_steps)


def _train(spec: Spec, run_dir: Path, ckpt, progress: bool, splits: Splits | None, write: bool,
           max_steps: int | None) -> RunResult:
    graph = spec.graph
    tr = spec["train"]
    seed = tr["seed"]
    epochs = tr["epochs"]
    patience = tr["early_stop"]
    values = init_params(graph, seed)
    opt_set = spec["optimizer"]
    shuffle_rng = np.random.default_rng([seed, 1])
    noise_rng = np.random.default_rng([seed, 2])
    model = Model(spec, values, None, [])
    learner = TrainStep(model)
    opt, fused = learner.opt, model.fused
    counters = {"epoch": 0, "best": None, "best_epoch": -1, "wait": 0}
    history: list[dict] = []
    best_values = None
    if ckpt is not None:
        history, best_values = _restore(run_dir, ckpt, spec, values, opt, counters, shuffle_rng, noise_rng)
    finished = ckpt is not None and (counters["epoch"] >= epochs or bool(patience and counters["wait"] >= patience))
    if finished and all((run_dir / f).exists() for f in (rf.WEIGHTS, rf.METRICS, rf.PREPROCESS)):
        return _complete(run_dir, spec, values, best_values, history, counters, epochs, patience)
    splits = splits or prepare(spec)
    model.preprocess, model.classes = splits.preprocess, splits.classes
    n = len(splits.x_train)
    batch = n if tr["batch"] == "all" else min(tr["batch"], n)
    has_val = len(splits.x_val) > 0
    if write:
        rf.atomic_write_text(run_dir / rf.SPEC, spec.source.text)
        rf.save_npz(run_dir / rf.PREPROCESS, {"mul": splits.preprocess.mul, "add": splits.preprocess.add})
        record = data_record.record(spec)
        if record is not None:
            rf.save_json(run_dir / rf.DATA, record)
    best = math.inf if counters["best"] is None else counters["best"]
    best_epoch, wait, start_epoch = counters["best_epoch"], counters["wait"], counters["epoch"]
    last = _snapshot(values, opt, best_values, history, start_epoch, best, best_epoch, wait, shuffle_rng,
                     noise_rng) if ckpt is not None else None
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=epochs, initial=start_epoch, desc=spec.name, unit="epoch", dynamic_ncols=True, leave=True)
    interrupted = False
    t_start = time.perf_counter()
    steps = 0
    saved_err = np.seterr(over="ignore", invalid="ignore")  # divergence is caught and reported below
    threads = _thread_limit(tr.get("threads"))
    try:
        # a run killed after its last checkpoint only lacks its final files: no epoch is left to train
        for epoch in range(start_epoch, start_epoch if finished else epochs):
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
            snap = _snapshot(values, opt, best_values if patience else None, history, epoch + 1, best, best_epoch,
                             wait, shuffle_rng, noise_rng)
            if write:
                rf.save_checkpoint(run_dir, snap["groups"], snap["state"])
            last = snap  # what Ctrl-C goes back to: the epoch whose checkpoint is on disk
            if write:
                rf.save_history(run_dir / rf.HISTORY, history)
            if bar is not None:
                bar.set_postfix(_progress_fields(row, has_val), refresh=False)
                bar.update(1)
            if patience and wait >= patience:
                break
            if max_steps and steps >= max_steps:
                break
    except KeyboardInterrupt:
        interrupted = True
        if last is None:  # not one epoch completed: nothing is kept
            if bar is not None:
                bar.close()
            np.seterr(**saved_err)
            return RunResult(run_dir, model, [], {"epochs_run": 0, "interrupted": True}, True)
        # back to the last completed epoch: its weights, history and counters
        for k, v in last["groups"]["weights"].items():
            values[k][...] = v
        history = last["state"]["history"]
        best_values = last["groups"].get("best") or None
        best_epoch, wait = last["state"]["best_epoch"], last["state"]["wait"]
    finally:
        np.seterr(**saved_err)
        if bar is not None:
            bar.close()
    metrics_threads = blas_threads()
    if threads is not None:
        threads.restore_original_limits()
    if patience and best_values:
        for k, v in best_values.items():
            values[k][...] = v
    metrics = {
        "model": spec.name, "task": spec.task, "loss": spec.loss, "classes": splits.classes, "data": splits.name,
        "epochs_run": len(history), "best_epoch": best_epoch if best_epoch > 0 else None,
        "stopped_early": bool(patience and wait >= patience), "interrupted": interrupted,
        "seconds": round(time.perf_counter() - t_start, 3), "blas_threads": metrics_threads,
        "samples": {"train": len(splits.x_train), "validation": len(splits.x_val), "test": len(splits.x_test)},
        "train": model.evaluate(splits.x_train, splits.y_train),
        "validation": model.evaluate(splits.x_val, splits.y_val),
        "test": model.evaluate(splits.x_test, splits.y_test),
    }
    if write:
        rf.save_npz(run_dir / rf.WEIGHTS, values)
        rf.save_history(run_dir / rf.HISTORY, history)
        rf.save_json(run_dir / rf.METRICS, metrics)
        if history:
            rf.save_curves(run_dir / rf.CURVES, {spec.name: history}, spec.name)
    return RunResult(run_dir, model, history, metrics, interrupted)


def _thread_limit(threads: int | None):
    """train threads=N: BLAS uses N threads for this run (a threadpoolctl limit to restore), else None."""
    if not threads:
        return None
    from threadpoolctl import threadpool_limits
    return threadpool_limits(threads, user_api="blas")


def blas_threads() -> int | None:
    """The BLAS thread count in force: results agree bit for bit only at the same count."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


def _progress_fields(row: dict, has_val: bool) -> dict:
    post = {"loss": f"{row['loss']:.4f}"}
    if row["accuracy"] is not None:
        post["acc"] = f"{row['accuracy']:.3f}"
    if has_val:
        post["val_loss"] = f"{row['val_loss']:.4f}"
        if row["val_accuracy"] is not None:
            post["val_acc"] = f"{row['val_accuracy']:.3f}"
    return post


def _snapshot(values, opt, best_values, history, epoch, best, best_epoch, wait, shuffle_rng, noise_rng) -> dict:
    """The whole training state after `epoch` completed epochs (copies, so training can go on)."""
    groups = {"weights": {k: v.copy() for k, v in values.items()},
              "optimizer": {k: np.array(v, copy=True) for k, v in opt.state_dict().items()}}
    if best_values:
        groups["best"] = best_values  # already a copy, replaced (never modified) when a better epoch comes
    state = {"epoch": epoch, "best": best if math.isfinite(best) else None, "best_epoch": best_epoch,
             "wait": wait, "shuffle_rng": shuffle_rng.bit_generator.state,
             "noise_rng": noise_rng.bit_generator.state, "history": [dict(r) for r in history]}
    return {"groups": groups, "state": state}


def _restore(run_dir: Path, ckpt, spec: Spec, values, opt, counters: dict, shuffle_rng, noise_rng):
    """Load a checkpoint into the fresh training state; anything that does not fit is a DLError
    naming the checkpoint file."""
    groups, state = ckpt
    path = run_dir / rf.CHECKPOINT

    def damaged(why):
        return DLError(Diagnostic("error", f"{path} (the training checkpoint) is damaged: {why}", None,
                                  "restore it, or train again without --resume"))

    try:
        check_weights(spec.graph, groups["weights"])
        if groups["best"]:
            check_weights(spec.graph, groups["best"])
    except WeightsMismatch as e:
        raise DLError(Diagnostic("error", f"cannot resume {run_dir}: {e}", None,
                                 "the model block changed since the run started; start a new run")) from None
    for group in ("weights", "best"):
        for k, v in groups[group].items():
            if not np.all(np.isfinite(v)):
                raise damaged(f"{group} array '{k}' holds NaN or inf")
    for k, v in groups["weights"].items():
        values[k][...] = v
    expected = {"epoch": int, "best_epoch": int, "wait": int, "history": list, "shuffle_rng": dict,
                "noise_rng": dict}
    for key, kind in expected.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise damaged(f"'{key}' is missing or not a {kind.__name__}")
    if not (isinstance(state.get("best"), (int, float)) or state.get("best") is None):
        raise damaged("'best' is not a number")
    if state["epoch"] < 1 or len(state["history"]) != state["epoch"] or state["wait"] < 0:
        raise damaged(f"epoch {state['epoch']} does not match its {len(state['history'])} history rows")
    try:
        shuffle_rng.bit_generator.state = state["shuffle_rng"]
        noise_rng.bit_generator.state = state["noise_rng"]
    except (TypeError, ValueError, KeyError) as e:
        raise damaged(f"a random-generator state is invalid ({e})") from None
    opt_state = groups["optimizer"]
    for k, v in opt_state.items():
        if k == "__t__":
            continue
        param = k.rsplit(".", 1)[0]
        if param not in values or values[param].shape != v.shape:
            raise damaged(f"optimizer array '{k}' {tuple(v.shape)} fits no parameter")
    opt.load_state(opt_state)
    counters.update(epoch=state["epoch"], best=state["best"], best_epoch=state["best_epoch"], wait=state["wait"])
    return state["history"], (groups["best"] or None)


def _complete(run_dir, spec, values, best_values, history, counters, epochs, patience) -> RunResult:
    """A resumed run with nothing left to do: the folder is left as it is."""
    if patience and best_values:
        for k, v in best_values.items():
            values[k][...] = v
    metrics_path = run_dir / rf.METRICS
    metrics = rf.load_json(metrics_path, "the run's metrics") if metrics_path.exists() else {}
    metrics["epochs_run"] = counters["epoch"]
    pre = Preprocess(**rf.load_npz(run_dir / rf.PREPROCESS, "the input preprocessing", finite=True))
    model = Model(spec, values, pre, metrics.get("classes", []))
    return RunResult(run_dir, model, history, metrics, complete=True)
