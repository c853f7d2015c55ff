"""The checkpoint: the whole training state of the last completed epoch, as one .npz."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dlc.compiler.diagnostics import DLError

from .files import CHECKPOINT, _error, _json_default, load_npz, save_npz


def save_checkpoint(run_dir: Path, groups: dict[str, dict[str, np.ndarray]], state: dict) -> None:
    """Write the epoch's whole training state as one .npz: `groups` {"weights": {...}, "optimizer": {...},
    "best": {...}} become arrays "group/name", `state` (JSON) the uint8 array "state"."""
    arrays = {f"{g}/{k}": v for g, d in groups.items() for k, v in d.items()}
    arrays["state"] = np.frombuffer(json.dumps(state, default=_json_default).encode(), np.uint8)
    save_npz(Path(run_dir) / CHECKPOINT, arrays)


def checkpoint_damaged(path: Path, why: str) -> DLError:
    """The refusal of a checkpoint that cannot be resumed from, naming the file and what is wrong."""
    return _error(f"{path} (the training checkpoint) is damaged: {why}", "restore it, or train again without --resume")


def load_checkpoint(run_dir: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict] | None:
    """(groups, state) of the last completed epoch, None when no epoch completed; a damaged
    checkpoint is a `DLError` naming the file."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    arrays = load_npz(path, "the training checkpoint")

    def damaged(why):
        return checkpoint_damaged(path, why)

    if "state" not in arrays or arrays["state"].dtype != np.uint8:
        raise damaged("it has no training state")
    try:
        state = json.loads(arrays.pop("state").tobytes().decode())
    except RecursionError:
        raise damaged("the training state's JSON is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise damaged(f"the training state is not JSON ({e})") from None
    groups: dict[str, dict[str, np.ndarray]] = {"weights": {}, "optimizer": {}, "best": {}}
    for key, v in arrays.items():
        g, _, name = key.partition("/")
        if g not in groups or not name:
            raise damaged(f"unexpected array '{key}'")
        groups[g][name] = v
    return groups, state
