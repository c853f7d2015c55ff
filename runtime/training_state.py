"""What changes from epoch to epoch of a training run, and its checkpoint.

A `TrainingState` holds the engine (the weights, the optimizer's state and the noise generator of
dropout/rrelu live there: runtime/engine.py), the shuffling generator, the early-stopping counters,
the best weights and the history. A snapshot of it
after each completed epoch is the checkpoint (runtime/run_folder.py writes it as one file); `restore`
reads one back, refusing by name anything that does not fit, and `rewind` goes back to one after Ctrl-C.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.compiler.spec import Spec, key_changes, settings_key
from dlc.runtime import run_folder as rf
from dlc.compiler.optimizers import OPTIMIZERS
from dlc.runtime.engine import ENGINES, Engine, check_pcg64_state
from dlc.runtime.weights import WeightsMismatch, check_weights, expected_shapes


HISTORY_KEYS = ("epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy")


def _check_floats(damaged, what: str, v: np.ndarray, dtype) -> None:
    """A checkpoint array must have the dtype training uses and hold finite values."""
    if v.dtype != dtype:
        raise damaged(f"{what} is {v.dtype}, not {np.dtype(dtype)}")
    if not np.all(np.isfinite(v)):
        raise damaged(f"{what} holds NaN or inf")


RESUMABLE = {"train.epochs", "train.early_stop", "train.threads", "train.device"}  # what resuming may change


def resume_key(spec: Spec) -> dict[str, str]:
    """What a run's numbers depend on besides its length (compiler.spec.settings_key without
    train.epochs, train.early_stop, train.threads and train.device): a run resumes only under the same
    key, else the resumed epochs would be another training's. (A run may move from a GPU to the CPU:
    the numbers differ by rounding only, docs/engines.md.)"""
    return settings_key(spec, RESUMABLE)


def _check_unchanged(saved, now: dict[str, str], run_dir: Path, damaged) -> bool:
    """Refuse a resume under another spec than the run's, naming what changed (True: the same spec).
    A checkpoint written before dlc recorded the key has none, and is not checked here."""
    if not isinstance(saved, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in saved.items()):
        raise damaged("'resume_key' is not a table of settings")
    changes = key_changes(saved, now)
    if changes is None:
        return True
    raise DLError(Diagnostic(
        "error", f"cannot resume {run_dir}: the spec changed since the run started: {changes}",
        None, "a resumed run continues the same training: only train.epochs, train.early_stop, train.threads and "
              "train.device may change; restore the spec, or train it as a new run with -o"))


@dataclass
class TrainingState:
    engine: Engine
    shuffle_rng: np.random.Generator
    epoch: int = 0  # completed epochs
    best: float = math.inf  # the best monitored loss so far (validation loss, or training loss without one)
    best_epoch: int = -1
    wait: int = 0  # epochs since the best
    history: list[dict] = field(default_factory=list)
    best_values: dict[str, np.ndarray] | None = None  # a copy of the best epoch's weights (early_stop only)
    key: dict[str, str] = field(default_factory=dict)  # what resuming must not change (resume_key)
    init_from: dict | None = None  # init from "RUN": what was loaded, and the sha256 of the weights it read

    @classmethod
    def fresh(cls, engine: Engine, spec: Spec) -> "TrainingState":
        return cls(engine, np.random.default_rng([spec["train"]["seed"], 1]), key=resume_key(spec))

    def finished(self, epochs: int, patience: int) -> bool:
        return self.epoch >= epochs or bool(patience and self.wait >= patience)

    def end_epoch(self, row: dict, monitor: float, keep_best: bool) -> None:
        self.history.append(row)
        self.epoch += 1
        if monitor < self.best - 1e-12:
            self.best, self.best_epoch, self.wait = monitor, self.epoch, 0
            if keep_best:
                self.best_values = self.engine.weights()  # copies: replaced, never modified
        else:
            self.wait += 1

    def final_values(self, patience: int) -> dict[str, np.ndarray]:
        """The weights a run keeps: the best epoch's with early stopping (loaded into the engine too),
        else the last epoch's."""
        if patience and self.best_values:
            self.engine.load_weights(self.best_values)
        return self.engine.weights()

    # ---- checkpoints ---------------------------------------------------------------------------
    def snapshot(self) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
        """(array groups, JSON state) of this moment, as copies, so training can go on."""
        groups = {"weights": self.engine.weights(), "optimizer": self.engine.optimizer_state()}
        if self.best_values:
            groups["best"] = self.best_values
        state = {"epoch": self.epoch, "best": self.best if math.isfinite(self.best) else None,
                 "best_epoch": self.best_epoch, "wait": self.wait,
                 "shuffle_rng": self.shuffle_rng.bit_generator.state,
                 "noise_rng": self.engine.noise_state(), "history": [dict(r) for r in self.history],
                 "resume_key": self.key, "engine": self.engine.name, "init_from": self.init_from}
        return groups, state

    def rewind(self, snapshot) -> None:
        """Back to a snapshot taken at the end of an epoch (Ctrl-C mid-epoch)."""
        groups, state = snapshot
        self.engine.load_weights(groups["weights"])
        self.best_values = groups.get("best") or None
        self.epoch, self.best_epoch, self.wait = state["epoch"], state["best_epoch"], state["wait"]
        self.best = math.inf if state["best"] is None else state["best"]
        self.history = [dict(r) for r in state["history"]]

    def restore(self, checkpoint, spec: Spec, run_dir: Path) -> None:
        """Load a checkpoint read from `run_dir`; anything that does not fit is a DLError naming the file."""
        groups, state = checkpoint
        path = run_dir / rf.CHECKPOINT

        def damaged(why):
            return rf.checkpoint_damaged(path, why)

        if not isinstance(state, dict):
            raise damaged(f"the training state is a JSON {type(state).__name__}, not an object")
        keyed = "resume_key" in state and _check_unchanged(state["resume_key"], self.key, run_dir, damaged)
        try:
            check_weights(spec.graph, groups["weights"])
            if groups["best"]:
                check_weights(spec.graph, groups["best"])
        except WeightsMismatch as e:
            if keyed:  # the spec is the one the run started with: the arrays are what is wrong
                raise damaged(str(e)) from None
            raise DLError(Diagnostic("error", f"cannot resume {run_dir}: {e}", None,
                                     "the model block changed since the run started; start a new run")) from None
        for group in ("weights", "best"):
            for k, v in groups[group].items():
                _check_floats(damaged, f"{group} array '{k}'", v, np.float32)
        self._check_counters(state, damaged)
        self._check_optimizer(groups["optimizer"], spec, damaged)
        written_by = state.get("engine", "numpy")  # checkpoints before the torch engine have no tag
        if not isinstance(written_by, str) or written_by not in ENGINES:
            raise damaged(f"'engine' is not one of {', '.join(ENGINES)}")
        if written_by != self.engine.name:
            raise DLError(Diagnostic(
                "error", f"cannot resume {run_dir} on the {self.engine.name} engine: it was trained on {written_by!r}",
                None, f"resume it with --engine {written_by}, or train a new run with -o"))
        try:
            check_pcg64_state(state["shuffle_rng"])
            self.shuffle_rng.bit_generator.state = state["shuffle_rng"]
            self.engine.load_noise_state(state["noise_rng"])
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            raise damaged(f"a random-generator state is invalid ({e})") from None
        self.engine.load_optimizer_state(groups["optimizer"])
        origin = state.get("init_from")
        if origin is not None and (not isinstance(origin, dict) or not isinstance(origin.get("sha256"), str)):
            raise damaged("'init_from' is not the record of the run it started from")
        self.init_from = origin
        self.rewind((groups, state))

    @staticmethod
    def _check_counters(state: dict, damaged) -> None:
        expected = {"epoch": int, "best_epoch": int, "wait": int, "history": list, "shuffle_rng": dict,
                    "noise_rng": dict}
        for key, kind in expected.items():
            if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
                raise damaged(f"'{key}' is missing or not a {kind.__name__}")
        best = state.get("best")
        if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float)) or not math.isfinite(best)):
            raise damaged("'best' is not a finite number")
        if state["epoch"] < 1 or len(state["history"]) != state["epoch"] or state["wait"] < 0:
            raise damaged(f"epoch {state['epoch']} does not match its {len(state['history'])} history rows")
        no_best = best is None
        if not (state["best_epoch"] == -1 if no_best else 1 <= state["best_epoch"] <= state["epoch"]) \
                or state["wait"] > state["epoch"]:
            raise damaged(f"best_epoch {state['best_epoch']} or wait {state['wait']} is outside epochs 1 to "
                          f"{state['epoch']}")
        for i, row in enumerate(state["history"], 1):
            if not isinstance(row, dict) or not set(HISTORY_KEYS) <= set(row) or row.get("epoch") != i:
                raise damaged(f"history row {i} is not an epoch record")
            for k in HISTORY_KEYS[1:]:
                v = row[k]
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                    raise damaged(f"history row {i}: '{k}' is not a number")
        if best is not None:  # the best monitored loss is the one its epoch's history row holds
            row = state["history"][state["best_epoch"] - 1]
            recorded = row["val_loss"] if row["val_loss"] is not None else row["loss"]
            if recorded is None or abs(best - recorded) > 1e-9 * max(1.0, abs(recorded)):
                raise damaged(f"'best' {best} is not the monitored loss of its epoch {state['best_epoch']} ({recorded})")

    def _check_optimizer(self, arrays: dict, spec: Spec, damaged) -> None:
        """Exactly the buffers the optimizer keeps for these weights, of their shapes, float and finite,
        and a step count: anything missing would silently start from zeros, and resume be inexact."""
        opt = spec["optimizer"]
        rule, hp = OPTIMIZERS[opt.kind_name], opt.values
        trained = [p.name for p in spec.graph.trained_params()]
        shapes = expected_shapes(spec.graph)
        want = {f"{name}.{role}": rule.state_shape(role, shapes[name], hp)
                for name in trained for role in rule.roles(hp)}
        for k in arrays:
            if k != "__t__" and k not in want:
                raise damaged(f"optimizer array '{k}' {tuple(arrays[k].shape)} fits no parameter")
        missing = [k for k in want if k not in arrays] + ([] if "__t__" in arrays else ["__t__"])
        if missing:
            raise damaged(f"the optimizer state lacks {', '.join(missing[:5])}"
                          + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
        t = arrays["__t__"]
        if t.shape != () or t.dtype.kind not in "iu" or int(t) < 1:
            raise damaged(f"the optimizer's step count '__t__' is not a whole number >= 1 ({t.dtype} {t.shape})")
        for k, shape in want.items():
            if tuple(arrays[k].shape) != shape:
                raise damaged(f"optimizer array '{k}' {tuple(arrays[k].shape)} fits no parameter")
            _check_floats(damaged, f"optimizer array '{k}'", arrays[k], np.float32)
