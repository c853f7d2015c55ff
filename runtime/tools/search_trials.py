"""What one search worker does (in this process or in a pool's): ask the study for a trial, write its
sampled values into the spec text where the ranges are written, train it with the spec's seed on the
shared split, report each epoch (for pruning) and tell the study the score. Coarse to fine: the last
trials sample ranges narrowed around the best coarse trial. runtime/tools/search.py drives the workers."""

from __future__ import annotations

import time
from dataclasses import dataclass

from dlc.compiler.diagnostics import DLError
from dlc.compiler.overrides import apply_overrides
from dlc.compiler.search_space import Dimension, format_value, substitute
from dlc.compiler.spec import compile
from dlc.runtime.tools import search_workers as workers
from dlc.runtime.tools.study import (WORKERS_SUFFIX, load_optuna, make_pruner, make_sampler, new_trial_slot,
                                      open_storage, slot_of, worker_seed)


@dataclass
class SearchConfig:
    """What a worker needs to run trials of one study (picklable: sent to worker processes)."""

    study: str
    storage: str
    sampler: str
    seed: int
    prune: bool
    trials: int  # trial numbers below this are the search's (the rest are surplus, not run)
    coarse: int  # trial numbers below this are the coarse stage
    text: str
    filename: str
    dims: list
    classify: bool
    threads: bool  # parallel trials: the spec says train.threads=1


def score(classify: bool, val_loss, val_acc) -> float:
    """What the study minimizes: -accuracy (ties broken by the loss) for classification, else the loss."""
    if classify and val_acc is not None:
        return -val_acc + 1e-6 * val_loss
    return val_loss


# ---- one trial -------------------------------------------------------------------
def _run_trial(text: str, filename: str, report=None) -> dict:
    """Train one concrete spec; `report(row)` sees each epoch (and may stop the trial by raising)."""
    from dlc.runtime.trainer import TrainingDiverged, train

    try:
        spec = compile(text, filename, lint=False)
    except DLError as e:
        return {"status": "invalid", "message": e.format().splitlines()[0]}
    try:
        r = train(spec, write=False, progress=False, splits=workers.shared_splits(), on_epoch=report)
    except TrainingDiverged as e:
        return {"status": "diverged", "message": str(e)}
    except DLError as e:
        return {"status": "invalid", "message": e.format().splitlines()[0]}
    if r.interrupted:
        return {"status": "interrupted", "message": "stopped by Ctrl-C"}
    m = r.metrics
    return {"status": "ok", "val_loss": m["validation"]["loss"], "val_acc": m["validation"]["accuracy"],
            "train_loss": m["train"]["loss"], "train_acc": m["train"]["accuracy"], "epochs": m["epochs_run"],
            "seconds": m["seconds"]}


def _suggest(trial, d: Dimension, fixed: dict):
    """The trial's value for one dimension, through Optuna (log scale for loguniform)."""
    r = d.range
    if r.kind == "choice":
        if d.key in fixed:  # the fine stage fixes a choice to the best coarse trial's
            trial.set_user_attr(f"fixed:{d.key}", fixed[d.key])
            return fixed[d.key]
        return trial.suggest_categorical(d.key, list(r.args))
    lo, hi = r.args
    if r.kind == "randint":
        return trial.suggest_int(d.key, int(lo), int(hi))
    return trial.suggest_float(d.key, float(lo), float(hi), log=r.kind == "loguniform")


def _fine_stage(study, cfg: SearchConfig) -> tuple[list[Dimension], dict] | None:
    """The ranges narrowed around the best coarse trial, once every coarse trial has finished
    (None: no coarse trial succeeded, so there is no fine stage)."""
    optuna = load_optuna()
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    while True:  # every coarse place has a finished trial (a re-run of an interrupted one takes its place)
        trials = study.get_trials(deepcopy=False)
        coarse = [t for t in trials if t.user_attrs.get("stage") == "coarse" and not t.user_attrs.get("surplus")
                  and t.state in done and t.user_attrs.get("status") not in (None, "interrupted")]
        if set(range(cfg.coarse)) <= {slot_of(trials, t) for t in coarse}:
            break
        workers.check_stop()
        time.sleep(0.2)
    ok = [t for t in coarse if t.state == optuna.trial.TrialState.COMPLETE]
    if not ok:
        return None
    best = min(ok, key=lambda t: (t.value, t.number))
    values = trial_values(best, cfg.dims)
    narrow = [d.narrowed(values[d.key]) for d in cfg.dims]
    fixed = {d.key: values[d.key] for d in cfg.dims if d.range.kind == "choice"}
    return [n if d.range.kind != "choice" else d for d, n in zip(cfg.dims, narrow)], fixed


def trial_values(frozen, dims) -> dict:
    return {d.key: frozen.params.get(d.key, frozen.user_attrs.get(f"fixed:{d.key}")) for d in dims}


def trial_text(cfg: SearchConfig, values: dict) -> str:
    text = substitute(cfg.text, {d: values[d.key] for d in cfg.dims})
    # parallel trials run with one BLAS thread each; the spec says so, so that best.dl reproduces its trial
    return apply_overrides(text, cfg.filename, ["train.threads=1"]) if cfg.threads else text


def _worker_number(cfg: SearchConfig) -> int:
    """This worker's number among every worker that ever ran this study -- pool processes, other
    `dlc search` processes and machines on the same storage: a trial number of a companion study
    that counts workers (the storage hands out each number once). The first worker is 0."""
    optuna = load_optuna()
    workers = optuna.create_study(study_name=f"{cfg.study}{WORKERS_SUFFIX}", storage=open_storage(cfg.storage),
                                  load_if_exists=True)
    ticket = workers.ask()
    workers.tell(ticket, 0.0)
    return ticket.number


def work(cfg: SearchConfig, on_trial=None) -> None:
    """Run trials of the study until its trial numbers reach cfg.trials: in this process, in a worker
    process, or in a `dlc search` on another machine sharing the storage."""
    optuna = load_optuna()
    # random search seeds each trial by its place; the model-based samplers need a seed per worker
    seed = cfg.seed if cfg.sampler == "random" else worker_seed(cfg.seed, _worker_number(cfg))
    study = optuna.load_study(study_name=cfg.study, storage=open_storage(cfg.storage),
                              sampler=make_sampler(cfg.sampler, seed), pruner=make_pruner(cfg.prune))
    fine: list = []  # the fine stage's ranges, once made
    while True:
        workers.check_stop()
        trial = study.ask()
        try:
            if not _ask_told(optuna, study, trial, cfg, fine, on_trial):
                return
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another process popped the same queued trial (a re-run of an interrupted one): SQLite has no
            # row locks, so two workers can both take a waiting trial. The first to record it wins; this
            # copy is dropped, and the loop goes on to a trial of its own.
            continue


def _ask_told(optuna, study, trial, cfg: SearchConfig, fine: list, on_trial) -> bool:
    """Give an asked trial its stage and values, run it and record it. -> False when the search has all
    its trials (this one was surplus)."""
    stage = trial.user_attrs.get("stage")  # set on a re-run of an interrupted trial
    if stage is None:
        slot = new_trial_slot(study, trial.number)
        if slot >= cfg.trials:  # the search has all its trials: this one is surplus
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return False
        # random search has a coarse and a fine stage; tpe and genetic trials are labelled by their sampler
        stage = ("coarse" if slot < cfg.coarse else "fine") if cfg.sampler == "random" else cfg.sampler
        trial.set_user_attr("stage", stage)
        trial.set_user_attr("slot", slot)
    dims, fixed = cfg.dims, {}
    if stage == "fine":
        if not fine:
            made = _fine_stage(study, cfg)
            if made is None:
                trial.set_user_attr("surplus", True)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                return False
            fine.append(made)
        dims, fixed = fine[0]
        study.set_user_attr("fine_ranges", {d.key: d.range.text for d in dims if d.key not in fixed}
                            | {k: f"choice({format_value(v)})" for k, v in fixed.items()})
    values = {d.key: _suggest(trial, d, fixed) for d in dims}

    def report(row, trial=trial):
        workers.check_stop()  # Ctrl-C in a pool worker: the trial ends here, as at Ctrl-C in dlc train
        trial.set_user_attr("epochs", row["epoch"])
        if row["val_loss"] is not None:
            trial.report(score(cfg.classify, row["val_loss"], row["val_accuracy"]), row["epoch"])
            if trial.should_prune():
                trial.set_user_attr("val_loss", row["val_loss"])
                trial.set_user_attr("val_acc", row["val_accuracy"])
                raise optuna.TrialPruned()

    t0 = time.perf_counter()
    _one_trial(optuna, study, trial, cfg, values, report, t0, on_trial)
    return True


def _one_trial(optuna, study, trial, cfg: SearchConfig, values: dict, report, t0: float, on_trial) -> None:
    """Run one asked trial and record it: pruned, failed, interrupted (then KeyboardInterrupt) or done."""
    try:
        result = _run_trial(trial_text(cfg, values), cfg.filename, report)
    except optuna.TrialPruned:
        trial.set_user_attr("status", "pruned")
        trial.set_user_attr("message", f"stopped after epoch {trial.user_attrs.get('epochs')}: behind the "
                                       "median of the trials before it at that epoch")
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        if on_trial:
            on_trial()
        return
    except KeyboardInterrupt:
        result = {"status": "interrupted", "message": "stopped by Ctrl-C"}
    for k, v in result.items():
        trial.set_user_attr(k, v)
    if result["status"] == "ok":
        study.tell(trial, score(cfg.classify, result["val_loss"], result["val_acc"]))
    else:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    if result["status"] == "interrupted":
        raise KeyboardInterrupt
    if on_trial:
        on_trial()


def work_in_pool(cfg: SearchConfig) -> None:
    try:
        work(cfg)
    except KeyboardInterrupt:
        pass  # the parent collects what finished
