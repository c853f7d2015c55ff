"""What kind of file a path is, before anything opens it: a FIFO, a device (`/dev/zero`,
`/dev/urandom`) or a socket would block or never end, so every file dlc reads -- specs, data,
run-folder files, ONNX models -- must be a regular file (a symbolic link to one is fine). And dlc's own
cache folder: where it is, whether it is safe, and how its entries are opened (never through a link)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def not_regular(path: str | Path) -> str | None:
    """None for a regular file (or a link to one); else what the path is ('a FIFO (named pipe)', ...).
    A path that does not exist or cannot be looked at is None: opening it reports that."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def user_cache_dir() -> Path | None:
    """dlc's cache folder ($XDG_CACHE_HOME/dlc or ~/.cache/dlc, made mode 0700), or None when it is not
    safe: it must be the user's, writable by no one else, under folders that only the user or root can
    write (as ssh checks its own; a sticky folder of root's such as /tmp is fine), else another user
    could swap what dlc reads from it (the grammar's compiled tables, decoded images)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dlc"
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not owned_safe(base, stat.S_ISDIR) or not _safe_parents(base):
            return None
    except OSError:
        return None
    return base


def user_cache_subdir(name: str) -> Path | None:
    """A folder of dlc's cache (`images`, `arrays`), made mode 0700; None where the cache is not safe or
    the folder cannot be made (then nothing is cached)."""
    base = user_cache_dir()
    if base is None:
        return None
    folder = base / name
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return None
    return folder


def open_regular(path: Path):
    """`path` opened for reading (unbuffered) if it is a regular file and not a link, else None: a cache
    entry is never read through a link, and a FIFO is opened without blocking, then refused by its type."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        f = open(path, "rb", buffering=0, opener=lambda p, _: os.open(p, flags))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            f.close()
            return None
    except OSError:
        f.close()
        return None
    return f


def owned_safe(path: Path, kind, owners=None) -> bool:
    """Is `path` of `kind` (stat.S_ISDIR, S_ISREG), owned by the user (or `owners`), not a link, and
    writable by no one else?"""
    st = os.lstat(path)
    owned = not hasattr(os, "getuid") or st.st_uid in (owners or (os.getuid(),))
    return kind(st.st_mode) and owned and not st.st_mode & 0o022


def _safe_parents(path: Path) -> bool:
    owners = (os.getuid(), 0) if hasattr(os, "getuid") else None

    def ok(p: Path) -> bool:
        st = os.lstat(p)
        sticky = st.st_mode & stat.S_ISVTX and st.st_uid == 0
        return owned_safe(p, stat.S_ISDIR, owners) or bool(stat.S_ISDIR(st.st_mode) and sticky)
    return all(ok(p) for p in path.resolve().parents)


def is_folder(path: str | Path) -> bool:
    """Is `path` a folder (or a link to one)? False for anything that cannot be looked at (a name too
    long, a loop of links): opening it as a file then reports why."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False
