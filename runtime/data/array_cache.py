"""Small arrays kept between runs in the user's cache folder (`$XDG_CACHE_HOME/dlc/arrays`): a built-in
set as scikit-learn loads it, and the rows of a split as scikit-learn's `train_test_split` draws them.
A second run reads them back and imports no scikit-learn (its import, with scipy.stats, is about 0.8 s
of a 1-epoch run's start; bench/cold_start.py).

An entry is `NAME.npz` and, written after it, `NAME.sha256` (the digest of the .npz's bytes). It is
used only when the .npz is a regular file (opened without following a link), at most MAX_BYTES, its
digest matches and it holds plain numeric arrays (never unpickled); anything else is a miss, computed
again and written over. A cache folder that is not safe to use (compiler/files.user_cache_dir) means
no cache: everything is computed, as on a first run.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
from pathlib import Path

import numpy as np

from dlc.compiler.files import open_regular, user_cache_subdir

MAX_BYTES = 256 << 20


def folder() -> Path | None:
    return user_cache_subdir("arrays")


def key(*parts) -> str:
    """A name for an entry from what its arrays depend on (strings, numbers, arrays)."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(f"{p.dtype.str}{p.shape}".encode())
            h.update(np.ascontiguousarray(p).view(np.uint8).tobytes() if p.dtype.kind != "U"
                     else "\x00".join(map(str, p.ravel())).encode())
        else:
            h.update(repr(p).encode())
        h.update(b"|")
    return h.hexdigest()[:32]


def _read_regular(path: Path) -> bytes | None:
    """A regular file's bytes (never through a link), or None; more than MAX_BYTES is not one dlc wrote."""
    f = open_regular(path)
    if f is None:
        return None
    with f:
        try:
            data = f.read(MAX_BYTES + 1)
        except OSError:
            return None
    return data if len(data) <= MAX_BYTES else None


def load(name: str) -> dict[str, np.ndarray] | None:
    """The arrays of a verified entry, or None (a miss)."""
    where = folder()
    if where is None:
        return None
    data, digest = _read_regular(where / f"{name}.npz"), _read_regular(where / f"{name}.sha256")
    if data is None or digest is None or hashlib.sha256(data).hexdigest().encode() != digest.strip():
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception:  # a file that verifies but is no .npz numpy reads: not one dlc wrote
        return None
    if not all(a.dtype.kind in "biufU" for a in arrays.values()):
        return None
    return arrays


def save(name: str, arrays: dict[str, np.ndarray]) -> None:
    """Write an entry (a cache that cannot be written is no error: the next run computes it again)."""
    where = folder()
    if where is None:
        return
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # (the stub reads a dict of arrays as allow_pickle=)
    data = buf.getvalue()
    tmp = where / f".{name}.{os.getpid()}.tmp"
    try:
        (where / f"{name}.sha256").unlink(missing_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, where / f"{name}.npz")
        tmp.write_bytes(hashlib.sha256(data).hexdigest().encode())
        os.replace(tmp, where / f"{name}.sha256")
    except OSError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


@functools.lru_cache(maxsize=1)
def sklearn_version() -> str:
    """The installed scikit-learn's version, read from its metadata (importing it costs 0.8 s)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("scikit-learn")
    except PackageNotFoundError:
        return "none"
