"""What kind of file a path is, before anything opens it: a FIFO, a device (`/dev/zero`,
`/dev/urandom`) or a socket would block or never end, so every file dlc reads -- specs, data,
run-folder files, ONNX models -- must be a regular file (a symbolic link to one is fine)."""

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
