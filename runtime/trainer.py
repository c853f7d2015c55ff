"""The training loop, once for every engine: mini-batches, validation, early stopping, NaN guard,
checkpoints, resume. It drives an engine (runtime/engine.py) and never looks inside one."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.compiler.spec import Spec, portable_text
from dlc.runtime.data import record as data_record
from dlc.runtime import run_folder as rf
from dlc.runtime.data.splits import Splits, for_spec, prepare
from dlc.runtime import init_from, interrupts
from dlc.runtime.class_weight import class_weights, imbalance
from dlc.runtime.data.lazy import LazyInputs, Prefetch
from dlc.runtime.engine import Engine, engine_class, make_engine, process_rank
from dlc.runtime.inference import Model
from dlc.runtime.weights import init_params
from dlc.compiler.schedules import learning_rate
from dlc.runtime.scores import correct, scores
from dlc.runtime.progress import EpochBar, Silent
from dlc.runtime.training_state import TrainingState


class TrainingDiverged(Exception):
    """The loss stopped being finite. `history` holds the epochs completed before it did."""

    def __init__(self, message: str, history: list[dict] | None = None):
        super().__init__(message)
        self.history = history or []


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
        more = f" (and {len(spec.ranges) - 1} more range(s))" if len(spec.ranges) > 1 else ""
        raise DLError(Diagnostic("error", f"{where} is a search range ({r.text}); train needs one value{more}", r.span,
                                 f"run dlc search, or pick a value with --set {where}={_example(r)}"),
                      spec.source)


def _example(r) -> str:
    """A value inside a search range, for the hint: its nominal value (a choice's first, a range's middle)."""
    from dlc.compiler.search_space import format_value
    return format_value(r.nominal())


def train(spec: Spec, out: str | Path | None = None, resume: bool = False, progress: bool = True,
          splits: Splits | None = None, write: bool = True, max_steps: int | None = None,
          notify=None, on_epoch=None, overwrite: bool = False) -> RunResult:
    """Train `spec`; write the run folder (unless write=False); return the trained model and history.

    Every completed epoch is one checkpoint (weights, optimizer state, best weights, counters, both
    random streams, history) written as one file, so `resume=True` continues exactly where the last
    completed epoch ended, whatever was kept as the best. `notify(message)` receives notes for the user;
    `on_epoch(row)` is called with each epoch's history row after its checkpoint (a search's pruner
    stops a trial by raising from it). A new run goes into a folder that is new or empty; `overwrite`
    replaces an earlier run there (only the files its manifest names) or writes beside the user's files.
    """
    _check_concrete(spec)
    engine_class(spec).check(spec)  # torch installed, the device present: before any folder is made
    # init from "RUN": the run to start from exists and fits (read once: its headers and sha256)
    origin = init_from.plan(spec) if "init" in spec.settings and not resume else None
    if spec["train"].get("log") == "tensorboard" and write:
        from dlc.runtime.live_view import writer_class
        writer_class()  # tensorboardX installed
    notify = notify or (lambda message: None)
    run_dir = Path(out) if out else rf.default_run_dir(spec.name)
    if write:
        init_from.check_target(spec, origin, run_dir)  # before --overwrite deletes anything
    if not write:
        return _train(spec, run_dir, None, progress, splits, False, max_steps, on_epoch, notify, origin)
    if process_rank() != 0:  # one of several torchrun processes: rank 0 writes the folder; this one reads
        ckpt = rf.load_checkpoint(run_dir) if resume and os.path.exists(run_dir) else None  # what it resumes from
        if ckpt is not None:
            spec = data_record.load_for_run(spec, run_dir)
        return _train(spec, run_dir, ckpt, False, splits, False, max_steps, on_epoch, lambda message: None, origin)
    note = contention_note(spec) if progress else None  # a warning: not with -q
    if note:
        notify(note)
    existed = os.path.exists(run_dir)  # (False for a name the system refuses: make_dir says why)
    rf.make_dir(run_dir)
    with rf.RunLock(run_dir):
        ckpt = None
        if resume:
            rf.remove_stale_temp_files(run_dir)
            ckpt = rf.load_checkpoint(run_dir)
            if ckpt is None:
                notify(f"{run_dir}: no epoch completed before the run stopped; starting it over" if existed
                       else f"{run_dir} does not exist yet: starting a new run")
            else:
                spec = data_record.load_for_run(spec, run_dir)
        if ckpt is None:  # a new run here: nothing of an earlier one may be resumed or mixed in by mistake
            rf.claim(run_dir, spec.name, overwrite=overwrite or (resume and rf.is_run(run_dir)))
        return _train(spec, run_dir, ckpt, progress, splits, True, max_steps, on_epoch, notify, origin)


def _train(spec: Spec, run_dir: Path, ckpt, progress: bool, splits: Splits | None, write: bool,
           max_steps: int | None, on_epoch=None, notify=None, origin=None) -> RunResult:
    values = init_params(spec.graph, spec["train"]["seed"])
    # a resumed run's weights are the checkpoint's: the run it started from is not read again
    start = init_from.apply(spec, values, origin) if ckpt is None else None
    engine = make_engine(spec, values)
    try:
        with interrupts.remembered():
            return _run(engine, spec, run_dir, ckpt, progress, splits, write, max_steps, on_epoch, notify, start)
    finally:
        engine.close()


def _run(engine: Engine, spec: Spec, run_dir: Path, ckpt, progress: bool, splits: Splits | None, write: bool,
         max_steps: int | None, on_epoch=None, notify=None, start=None) -> RunResult:
    tr = spec["train"]
    epochs, patience = tr["epochs"], tr["early_stop"]
    st = TrainingState.fresh(engine, spec)
    st.init_from = start.to_json() if start is not None else None
    if ckpt is not None:
        st.restore(ckpt, spec, run_dir)
    # a run killed after its last checkpoint only lacks its final files: no epoch is left to train
    finished = ckpt is not None and st.finished(epochs, patience)
    if finished and all((run_dir / f).exists() for f in (rf.WEIGHTS, rf.METRICS, rf.PREPROCESS)):
        return _complete(run_dir, spec, st, patience)
    surveyed = getattr(spec.data_report, "splits_for", None)  # texts dlc check already read and tokenized
    if splits is None and surveyed is not None:
        splits = surveyed(run_dir if ckpt is not None else None)
    if splits is None:  # a resumed text run tokenizes with the vocabulary it was trained with
        from dlc.runtime.data.tokenize import run_encoder
        splits = prepare(spec, encoder=run_encoder(run_dir, spec) if ckpt is not None else None)
    splits = for_spec(splits, spec)  # (shared splits: this spec's augment)
    weights = class_weights(spec, splits.y_train, splits.classes)
    engine.set_class_weight(weights)
    # DL113, unless check already said it of the data file: a warning, so not with -q
    warned = any(w.code == "DL113" for w in spec.warnings)
    warning = imbalance(spec, splits.y_train, splits.classes) if progress and notify and not warned else None
    if warning is not None:
        notify(warning)
    if splits.skipped and progress and notify:
        from dlc.compiler.diagnostics import Diagnostic
        data = spec.settings.get("data")
        first, why = splits.skipped[0]
        notify(Diagnostic("note", f"skip_bad: {len(splits.skipped)} image file(s) left out; the first: {why}",
                          data.kind_span if data is not None else None))
    if write:
        rf.atomic_write_text(run_dir / rf.SPEC, portable_text(spec))  # trains as written from the run folder too
        from dlc.compiler.picture import render
        rf.atomic_write_text(run_dir / rf.NETWORK, render(spec.graph, ".svg"))
        rf.save_npz(run_dir / rf.PREPROCESS, rf.preprocess_arrays(splits.preprocess, splits.classes))
        if splits.encoder is not None:  # vocab.json (and tokenizer.json): predict, eval and export read them
            splits.encoder.save(run_dir, rf.atomic_write_text)
        record = data_record.record(spec)
        if record is not None:
            rf.save_json(run_dir / rf.DATA, record)
    last = st.snapshot() if ckpt is not None else None  # what Ctrl-C goes back to: the checkpoint on disk
    bar = EpochBar(spec.name, epochs, st.epoch) if progress else Silent()
    live = None
    if write and tr.get("log") == "tensorboard":
        from dlc.runtime.live_view import TensorBoardLog
        live = TensorBoardLog(run_dir, st.epoch + 1)
        engine.track()
        weight_names = [p.name for p in spec.graph.params() if p.role == "weight"]
    interrupted = False
    t_start = time.perf_counter()
    saved_err = np.seterr(over="ignore", invalid="ignore")  # divergence is caught and reported below
    threads = _thread_limit(tr.get("threads"))
    try:
        steps = 0
        while not finished and st.epoch < epochs:
            row, steps = _epoch(spec, engine, st, splits, steps, max_steps)
            st.end_epoch(row, monitored(row, tr["monitor"]), keep_best=bool(patience))
            snap = st.snapshot()
            if write:
                rf.save_checkpoint(run_dir, *snap)
            last = snap
            if write:
                rf.save_history(run_dir / rf.HISTORY, st.history)
            if live is not None:
                live.epoch(row, {k: snap[0]["weights"][k] for k in weight_names}, engine.pop_stats())
            bar.epoch(row)
            if on_epoch is not None:
                on_epoch(row)
            if st.finished(epochs, patience) or (max_steps and steps >= max_steps):
                break
            interrupts.check()  # a Ctrl-C swallowed where it landed (a garbage-collection callback) stops here
    except KeyboardInterrupt:
        interrupted = True
        interrupts.taken()
        if last is not None:
            st.rewind(last)
    finally:
        np.seterr(**saved_err)
        bar.close()
        if live is not None:
            live.close()
        metrics_threads = blas_threads()
        if threads is not None:
            threads.restore_original_limits()
    if interrupted and last is None:  # not one epoch completed: nothing is kept
        model = Model(spec, engine.weights(), splits.preprocess, splits.classes, splits.encoder)
        return RunResult(run_dir, model, [], {"epochs_run": 0, "interrupted": True}, True)
    values = st.final_values(patience)
    model = Model(spec, values, splits.preprocess, splits.classes, splits.encoder)
    metrics = {
        "model": spec.name, "task": spec.task, "loss": spec.loss, "classes": splits.classes, "data": splits.name,
        "epochs_run": len(st.history), "best_epoch": st.best_epoch if st.best_epoch > 0 else None,
        "stopped_early": bool(patience and st.wait >= patience), "interrupted": interrupted,
        "seconds": round(time.perf_counter() - t_start, 3), "blas_threads": metrics_threads,
        **engine.describe(),
        **({"class_weight": [float(w) for w in weights]} if weights is not None else {}),
        **({"init_from": st.init_from} if st.init_from is not None else {}),
        "samples": {"train": len(splits.x_train), "validation": len(splits.x_val), "test": len(splits.x_test)},
        "skipped_files": len(splits.skipped),
        "train": scores(spec, engine.outputs(splits.x_train), splits.y_train),
        "validation": _final_validation(spec, engine, splits, st, patience),
        **_test_metrics(model, engine, splits),
    }
    if write:
        rf.save_npz(run_dir / rf.WEIGHTS, values)
        rf.save_history(run_dir / rf.HISTORY, st.history)
        rf.save_json(run_dir / rf.METRICS, metrics)
        if st.history:
            rf.save_curves(run_dir / rf.CURVES, {spec.name: st.history}, spec.name)
    return RunResult(run_dir, model, st.history, metrics, interrupted)


def _test_metrics(model: Model, engine: Engine, splits: Splits) -> dict:
    """The test split's loss and accuracy, and its per-class report (runtime/tools/class_report.py: precision,
    recall, F1, support, averages, top-k, confusion matrix; MAE/MSE/R² for regression), from one pass."""
    if not len(splits.x_test):
        return {"test": {"loss": None, "accuracy": None}}
    from dlc.runtime.tools.class_report import model_report
    out = engine.outputs(splits.x_test)
    metrics = {"test": scores(model.spec, out, splits.y_test)}
    if np.all(np.isfinite(out)):  # a run whose outputs overflow: eval and export say so by name
        metrics["test_report"] = model_report(model, splits.y_test, out)
    return metrics


def _final_validation(spec: Spec, engine: Engine, splits: Splits, st: TrainingState, patience: int) -> dict:
    """The kept weights' validation metrics: the history row of the epoch they come from was measured
    on exactly these weights (and batchnorm statistics), so it is reused, not recomputed; regression
    (which also reports MAE) and a run with no row for them are evaluated."""
    kept = st.best_epoch if patience and st.best_values else len(st.history)
    row = st.history[kept - 1] if 0 < kept <= len(st.history) else None
    if row is None or row.get("val_loss") is None or row.get("val_accuracy") is None:
        return scores(spec, engine.outputs(splits.x_val), splits.y_val)
    return {"loss": row["val_loss"], "accuracy": row["val_accuracy"]}


def _epoch(spec: Spec, engine: Engine, st: TrainingState, splits: Splits, steps: int,
           max_steps: int | None) -> tuple[dict, int]:
    """One pass over the training split in a fresh shuffled order -> (the history row, steps so far)."""
    tr = spec["train"]
    t0 = time.perf_counter()
    n = len(splits.x_train)
    batch = n if tr["batch"] == "all" else min(tr["batch"], n)
    epoch, epochs = st.epoch, tr["epochs"]
    lr = learning_rate(spec["optimizer"]["lr"], spec["schedule"].kind_name, spec["schedule"].values, epoch, epochs,
                       [monitored(r, tr["monitor"]) for r in st.history])
    order = st.shuffle_rng.permutation(n) if tr["shuffle"] else np.arange(n)
    augment_rng = splits.augment.rng(tr["seed"], epoch) if splits.augment is not None else None
    classify = spec.task == "classification"
    total_loss, right, seen = 0.0, 0, 0

    def batches():  # read (and augment) in order: the same batches with or without the prefetch thread
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            yield idx, splits.train_batch(idx, augment_rng)

    # images on disk, or augmentation: the next batch is made while the engine steps on this one
    ahead = Prefetch(batches()) if isinstance(splits.x_train, LazyInputs) or splits.augment is not None else None
    try:
        for step, (idx, xb) in enumerate(ahead if ahead is not None else batches()):
            yb = splits.y_train[idx]
            loss, out_b = engine.step(xb, yb, lr)
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"the loss became {loss} at epoch {epoch + 1}, step {step + 1} (lr={lr:g}): "
                    f"the learning rate is likely too high; try lr={lr / 10:g}, gradient clipping "
                    f"(optimizer ... clip_norm=5) or batchnorm", st.history)
            total_loss += loss * len(idx)
            seen += len(idx)
            if classify:
                right += correct(spec, out_b, yb)
            steps += 1
            if max_steps and steps >= max_steps:
                break
    finally:
        if ahead is not None:
            ahead.close()
    row = {"epoch": epoch + 1, "lr": lr, "loss": total_loss / seen, "accuracy": right / seen if classify else None,
           "val_loss": None, "val_accuracy": None}
    if len(splits.x_val):
        v = scores(spec, engine.outputs(splits.x_val), splits.y_val)
        row["val_loss"], row["val_accuracy"] = v["loss"], v["accuracy"]
    row["seconds"] = round(time.perf_counter() - t0, 4)
    return row, steps


def monitored(row: dict, monitor: str | None = None) -> float:
    """What early stopping, the best epoch kept and the plateau schedule watch (train monitor=), as a
    value to minimise: the validation loss, or minus the validation accuracy; the training split's when
    there is no validation split."""
    if monitor == "val_accuracy":
        accuracy = row["val_accuracy"] if row.get("val_accuracy") is not None else row["accuracy"]
        return -accuracy
    return row["val_loss"] if row["val_loss"] is not None else row["loss"]


def _thread_limit(threads: int | None):
    """train threads=N: BLAS uses N threads for this run (a threadpoolctl limit to restore), else None."""
    if not threads:
        return None
    from threadpoolctl import threadpool_limits
    return threadpool_limits(threads, user_api="blas")


def contention_note(spec: Spec) -> str | None:
    """A note when other processes keep this machine's cores busy and BLAS would start a thread per core:
    threads that wait on a descheduled peer make training several times slower (bench/contention.py:
    resnet_digits 2.0 s idle, 11.1 s beside two busy processes, 3.3 s with threads=1). The default stays
    one thread per core, so that a spec and seed give the same weights bit for bit on a machine."""
    import os
    if spec["train"].get("threads") or not hasattr(os, "getloadavg"):
        return None
    cores = os.cpu_count() or 1
    busy = os.getloadavg()[0]
    if cores < 2 or busy < cores - 0.5:
        return None
    return (f"the machine is busy (load {busy:.1f} on {cores} cores): BLAS threads compete with other processes "
            f"and training can be several times slower; --set train.threads=1 avoids that (results are "
            f"bit-identical only at the same thread count)")


def blas_threads() -> int | None:
    """The BLAS thread count in force: results agree bit for bit only at the same count."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


def _complete(run_dir: Path, spec: Spec, st: TrainingState, patience: int) -> RunResult:
    """A resumed run with nothing left to do: the folder is left as it is."""
    values = st.final_values(patience)
    metrics_path = run_dir / rf.METRICS
    metrics = rf.load_json(metrics_path, "the run's metrics") if metrics_path.exists() else {}
    metrics["epochs_run"] = st.epoch
    from dlc.runtime.runs import read_preprocess
    pre, classes = read_preprocess(run_dir, spec)
    from dlc.runtime.data.tokenize import run_encoder
    model = Model(spec, values, pre, classes, run_encoder(run_dir, spec))
    return RunResult(run_dir, model, st.history, metrics, complete=True)
