"""`train log=tensorboard`: a live view of training in TensorBoard (tensorboardX, an optional extra:
pip install "dlc[live]"), written under RUN/tensorboard/ after every epoch.

Per epoch (the step is the epoch number, 1-based): `epoch/loss`, `epoch/accuracy`, `epoch/val_loss`,
`epoch/val_accuracy`, `epoch/lr`; per weight (dense and conv weights, by their dlc names):
`weight_norm/NAME` (its L2 norm at the end of the epoch), `grad_norm/NAME` (the mean over the epoch's
steps of its gradient's L2 norm) and `update_ratio/NAME` (the mean over the epoch's steps of
|ΔW| / |W|: about 1e-3 is healthy, docs/babysitting.md). A resumed run appends to the same stream:
its first event tells TensorBoard to drop what an interrupted run wrote past the last checkpoint, so
no epoch appears twice.

    tensorboard --logdir runs/      # every run under runs/, side by side
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

from dlc.compiler.diagnostics import Diagnostic, DLError

from dlc.runtime.run_folder import TENSORBOARD as FOLDER


def writer_class():
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise DLError(Diagnostic("error", "train log=tensorboard needs tensorboardX, which is not installed",
                                 hint='pip install "dlc[live]"  (or pip install tensorboardX)')) from None
    return SummaryWriter


class TensorBoardLog:
    def __init__(self, run_dir: Path, first_epoch: int):
        SummaryWriter = writer_class()
        folder = Path(run_dir) / FOLDER
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise DLError(Diagnostic("error", f"{folder} is not a folder dlc made; dlc does not write through links "
                                              "or over other files in a run folder",
                                     hint="remove it, or write the run to another folder with -o"))
        # purge_step: events at or after the epoch this run starts from are an interrupted run's: dropped
        # one event file per start, named for its first epoch (a resume in the same second must not
        # reuse the earlier file's name: it would be overwritten), read in that order
        self.folder = folder
        with self._writing():
            self.writer = SummaryWriter(str(folder), purge_step=first_epoch if first_epoch > 1 else None,
                                        flush_secs=3600, filename_suffix=f".from{first_epoch:06d}")

    @contextmanager
    def _writing(self):
        """An OSError of the event files (a folder not writable, a full disk) as a located refusal."""
        try:
            yield
        except OSError as e:
            from dlc.runtime.run_folder import _os_error
            raise _os_error(Path(e.filename) if e.filename else self.folder, e) from None

    def epoch(self, row: dict, weights: dict[str, np.ndarray], stats: dict[str, tuple[float, float]]) -> None:
        """One epoch's history row, the weights at its end, and (grad norm, update ratio) per weight."""
        with self._writing():
            self._epoch(row, weights, stats)

    def _epoch(self, row: dict, weights: dict[str, np.ndarray], stats: dict[str, tuple[float, float]]) -> None:
        step = row["epoch"]
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
            if row.get(key) is not None:
                self.writer.add_scalar(f"epoch/{key}", row[key], step)
        for name, w in weights.items():
            self.writer.add_scalar(f"weight_norm/{name}", float(np.linalg.norm(w)), step)
        for name, (grad, ratio) in stats.items():
            self.writer.add_scalar(f"grad_norm/{name}", grad, step)
            self.writer.add_scalar(f"update_ratio/{name}", ratio, step)
        self.writer.flush()  # a kill loses nothing the checkpoint kept

    def close(self) -> None:
        with self._writing():
            self.writer.close()
