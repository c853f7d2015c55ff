"""Which folder is a run's (the manifest) and which process writes it (the lock)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from .files import LOCK, MANIFEST, RUN_FILES, _error, _file_mode, _os_error, remove, save_json


def _manifest(run_dir: Path) -> dict | None:
    path = Path(run_dir) / MANIFEST
    if os.path.islink(path) or not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None  # not a manifest dlc wrote: the folder is not a run's
    return obj if isinstance(obj, dict) and isinstance(obj.get("files"), list) else None


def is_run(run_dir: Path) -> bool:
    return _manifest(run_dir) is not None


def _foreign(run_dir: Path, owned: set[str]) -> list[str]:
    """The folder's entries that are not the run's: not in the manifest, not its lock or temp files."""
    out = []
    for entry in sorted(os.listdir(run_dir)):
        if entry in (LOCK, MANIFEST) or entry in owned:
            continue
        if owned and entry.endswith(".tmp") and any(entry.startswith(f".{n}.") for n in RUN_FILES):
            continue
        out.append(entry)
    return out


def _listed(names: list[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def claim(run_dir: Path, model: str, overwrite: bool = False) -> None:
    """Make `run_dir` (which exists, lock held) the folder of a new run: refuse a folder that holds an
    earlier run or files of the user's unless `overwrite`; then delete the earlier run's files (only
    those its manifest names) and write this run's manifest. Nothing is deleted from a folder dlc did
    not create as a run, and a file of the user's that takes a run file's name is never replaced."""
    run_dir = Path(run_dir)
    manifest = _manifest(run_dir)
    owned = set(manifest["files"]) & set(RUN_FILES) if manifest else set()
    present = {n for n in owned if os.path.lexists(run_dir / n)}
    foreign = _foreign(run_dir, owned)
    if not overwrite and present:
        recorded = (manifest or {}).get("model")
        earlier = recorded if isinstance(recorded, str) else "another model"
        raise _error(f"{run_dir} holds a run of {earlier}; dlc does not overwrite a run",
                     f"continue it with dlc train {run_dir} --resume, write this run to a new folder with -o, "
                     "or replace it with --overwrite")
    if not overwrite and foreign:
        raise _error(f"{run_dir} is not empty ({_listed(foreign)}) and is not a dlc run folder",
                     "write the run to a new folder with -o, or beside these files with --overwrite")
    taken = [n for n in foreign if n in RUN_FILES]
    if taken:
        raise _error(f"{run_dir} holds {_listed(taken)}, which dlc did not write; a run would replace "
                     f"{'it' if len(taken) == 1 else 'them'}", "move the file(s) away, or write the run to a new "
                                                                  "folder with -o")
    remove(run_dir, sorted(present))
    remove_stale_temp_files(run_dir)
    save_json(run_dir / MANIFEST, {"dlc": "run folder", "files": list(RUN_FILES), "model": model})


# ---- the lock: one writer per run folder -------------------------------------------------------

class RunLock:
    """An exclusive, non-blocking lock on RUN/.lock, held while a dlc process writes the folder.
    The OS releases it when the process ends, however it ends."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self.fd: int | None = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock
            return self
        try:  # never through a link: a planted .lock -> ~/file would be truncated
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, _file_mode())
        except OSError as e:
            if os.path.islink(self.path):
                raise _error(f"{self.path} is a symbolic link; dlc does not follow links in a run folder",
                             "remove the link, or write the run to another folder with -o") from None
            raise _os_error(self.path, e, "create") from None
        if not stat.S_ISREG(os.fstat(self.fd).st_mode):
            os.close(self.fd)
            self.fd = None
            raise _error(f"{self.path} is not a regular file", "remove it, or write the run to another folder with -o")
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                owner = os.pread(self.fd, 32, 0).decode(errors="replace").strip()
            except OSError:
                owner = ""
            os.close(self.fd)
            self.fd = None
            raise _error(f"{self.path.parent} is in use by another dlc process"
                         + (f" (pid {owner})" if owner else ""),
                         "wait for it to finish, or write this run to another folder with -o") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def remove_stale_temp_files(run_dir: Path) -> None:
    """Temporary files a killed writer of the run left behind (only called with the folder's lock held):
    `.NAME.XXXX.tmp` for the run's own file names, in a folder the manifest says is a run's."""
    if not is_run(run_dir):
        return
    remove(run_dir, [p.name for name in RUN_FILES for p in Path(run_dir).glob(f".{name}.*.tmp")])
