"""What changes from epoch to epoch of a training run, and its checkpoint.

A `TrainingState` holds the weights, the optimizer's state, both random generators (shuffling and
dropout/rrelu noise), the early-stopping counters, the best weights and the history. A snapshot of it
after each completed epoch is the checkpoint (runtime/run_folder.py writes it as one file); `restore`
reads one back, refusing by name anything that does not fit, and `rewind` goes back to one after Ctrl-C.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.compiler.spec import Spec
from dlc.runtime import run_folder as rf
from dlc.runtime.network import WeightsMismatch, check_weights
from dlc.runtime.optimizers import Optimizer


@dataclass
class TrainingState:
    values: dict[str, np.ndarray]
    opt: Optimizer
    shuffle_rng: np.random.Generator
    noise_rng: np.random.Generator
    epoch: int = 0  # completed epochs
    best: float = math.inf  # the best monitored loss so far (validation loss, or training loss without one)
    best_epoch: int = -1
    wait: int = 0  # epochs since the best
    history: list[dict] = field(default_factory=list)
    best_values: dict[str, np.ndarray] | None = None  # a copy of the best epoch's weights (early_stop only)

    @classmethod
    def fresh(cls, values, opt, seed: int) -> "TrainingState":
        return cls(values, opt, np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2]))

    def finished(self, epochs: int, patience: int) -> bool:
        return self.epoch >= epochs or bool(patience and self.wait >= patience)

    def end_epoch(self, row: dict, monitor: float, keep_best: bool) -> None:
        self.history.append(row)
        self.epoch += 1
        if monitor < self.best - 1e-12:
            self.best, self.best_epoch, self.wait = monitor, self.epoch, 0
            if keep_best:
                self.best_values = {k: v.copy() for k, v in self.values.items()}  # replaced, never modified
        else:
            self.wait += 1

    def final_values(self, patience: int) -> dict[str, np.ndarray]:
        """The weights a run keeps: the best epoch's with early stopping, else the last epoch's (in place)."""
        if patience and self.best_values:
            for k, v in self.best_values.items():
                self.values[k][...] = v
        return self.values

    # ---- checkpoints ---------------------------------------------------------------------------
    def snapshot(self) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
        """(array groups, JSON state) of this moment, as copies, so training can go on."""
        groups = {"weights": {k: v.copy() for k, v in self.values.items()},
                  "optimizer": {k: np.array(v, copy=True) for k, v in self.opt.state_dict().items()}}
        if self.best_values:
            groups["best"] = self.best_values
        state = {"epoch": self.epoch, "best": self.best if math.isfinite(self.best) else None,
                 "best_epoch": self.best_epoch, "wait": self.wait,
                 "shuffle_rng": self.shuffle_rng.bit_generator.state,
                 "noise_rng": self.noise_rng.bit_generator.state, "history": [dict(r) for r in self.history]}
        return groups, state

    def rewind(self, snapshot) -> None:
        """Back to a snapshot taken at the end of an epoch (Ctrl-C mid-epoch)."""
        groups, state = snapshot
        for k, v in groups["weights"].items():
            self.values[k][...] = v
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
        expected = {"epoch": int, "best_epoch": int, "wait": int, "history": list, "shuffle_rng": dict,
                    "noise_rng": dict}
        for key, kind in expected.items():
            if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
                raise damaged(f"'{key}' is missing or not a {kind.__name__}")
        if not (isinstance(state.get("best"), (int, float)) or state.get("best") is None):
            raise damaged("'best' is not a number")
        if state["epoch"] < 1 or len(state["history"]) != state["epoch"] or state["wait"] < 0:
            raise damaged(f"epoch {state['epoch']} does not match its {len(state['history'])} history rows")
        for k, v in groups["optimizer"].items():
            param, _, role = k.rpartition(".")
            if k != "__t__" and (param not in self.values or tuple(v.shape) != self.opt.rule.state_shape(
                    role, self.values[param].shape, self.opt.hp)):
                raise damaged(f"optimizer array '{k}' {tuple(v.shape)} fits no parameter")
        try:
            self.shuffle_rng.bit_generator.state = state["shuffle_rng"]
            self.noise_rng.bit_generator.state = state["noise_rng"]
        except (TypeError, ValueError, KeyError) as e:
            raise damaged(f"a random-generator state is invalid ({e})") from None
        self.opt.load_state(groups["optimizer"])
        self.rewind((groups, state))
