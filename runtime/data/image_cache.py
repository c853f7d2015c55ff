"""The decoded-image cache: each image set decoded once into a uint8 array (N, C, H, W), kept as a .npy
file under the user's cache folder (`$XDG_CACHE_HOME/dlc/images`, or ~/.cache; made mode 0700) and read
back memory-mapped, so a second run, epoch or eval decodes nothing.

An entry is two files named by a key (a hash of the listing and the decoding settings):
- `KEY.npy` -- the decoded images;
- `KEY.json` -- written last, after the .npy is in place: the array's shape, the file's size, the rows
  that could not be decoded (under `skip_bad`) and a sha256 over the .npy's bytes and those rows.

Nothing in the cache is trusted because of its name. An entry is used only when its .npy is a regular
file (opened without following a link, so never a FIFO, a device or another file), its size, header and
shape are the ones expected, its dtype is uint8 (never unpickled) and its digest matches; anything else --
truncated, edited, swapped, pixels changed in place, a mask that drops rows -- is a miss, decoded again
and written over. Checking costs one read of the file (sha256 at ~1.7 GB/s here: 0.7 s for 1.2 GB).
The cache keeps at most CACHE_LIMIT bytes: the least recently used sets are removed after a new one is
written (only files the cache's own naming says dlc wrote).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Callable

import numpy as np

from dlc.compiler.files import open_regular, user_cache_subdir
from dlc.runtime.data.files import DataError

FORMAT = 1
CACHE_LIMIT = 20 * 10**9  # bytes of decoded images kept in the cache folder
META_LIMIT = 64 << 20  # bytes of an entry's .json: more is not one dlc wrote
_CHUNK = 16 << 20


def cache_dir() -> Path | None:
    """The cache's folder, or None where the user's cache folder is not safe to use (then nothing is cached)."""
    return user_cache_subdir("images")


def _digest(f, dropped: list[int]) -> str:
    h = hashlib.sha256()
    f.seek(0)
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    while True:
        n = f.readinto(buf)
        if not n:
            break
        h.update(view[:n])
    h.update(json.dumps(dropped).encode())
    return h.hexdigest()


def _meta(path: Path) -> dict | None:
    f = open_regular(path)
    if f is None:
        return None
    with f:
        data = f.read(META_LIMIT + 1)
    if len(data) > META_LIMIT:
        return None
    try:
        meta = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return meta if isinstance(meta, dict) else None


def read(folder: Path, key: str, shape: tuple[int, ...], skip_bad: bool):
    """(x memory-mapped read-only, the mask of rows decoded) from a verified entry, or None (a miss)."""
    meta = _meta(folder / f"{key}.json")
    dropped = meta.get("dropped") if meta else None
    if (meta is None or meta.get("format") != FORMAT or meta.get("shape") != list(shape)
            or not isinstance(dropped, list) or not all(isinstance(i, int) and 0 <= i < shape[0] for i in dropped)
            or (dropped and not skip_bad)):
        return None
    f = open_regular(folder / f"{key}.npy")
    if f is None:
        return None
    with f:
        try:
            size = os.fstat(f.fileno()).st_size
            if size != meta.get("bytes") or _digest(f, dropped) != meta.get("sha256"):
                return None
            f.seek(0)
            version = np.lib.format.read_magic(f)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)(f)
        except (OSError, ValueError):
            return None
        found_shape, fortran, dtype = header
        offset = f.tell()
        if (tuple(found_shape) != tuple(shape) or fortran or dtype != np.uint8
                or offset + int(np.prod(shape)) != size):
            return None
        x = np.memmap(f, dtype=np.uint8, mode="r", offset=offset, shape=tuple(shape))
    ok = np.ones(shape[0], bool)
    ok[dropped] = False
    try:
        os.utime(folder / f"{key}.npy", follow_symlinks=False)  # used now: the last to be pruned
    except OSError:
        pass
    return x, ok


def write(folder: Path, key: str, shape: tuple[int, ...], fill: Callable[[np.ndarray], np.ndarray]):
    """Decode into a new entry: `fill(x)` writes the images into a memory-mapped x and returns the mask of
    rows decoded; the .npy is put in place first, then its .json (so a crash leaves a miss, never an entry
    that verifies with other bytes). -> (x read back memory-mapped, the mask)."""
    target = folder / f"{key}.npy"
    for path in (target, folder / f"{key}.json"):
        try:
            if stat.S_ISDIR(os.lstat(path).st_mode):  # (not dlc's to remove, and no file can replace it)
                raise DataError(f"the image cache holds a folder {path}, where dlc keeps a decoded set: remove it")
        except FileNotFoundError:
            pass
    (folder / f"{key}.json").unlink(missing_ok=True)  # the old entry is void from here on
    tmp = folder / f".{key}.{os.getpid()}.tmp.npy"
    try:
        x = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        ok = fill(x)
        x.flush()
        del x
        dropped = [int(i) for i in np.flatnonzero(~ok)]
        with open(tmp, "rb", buffering=0) as f:
            meta = {"format": FORMAT, "shape": list(shape), "bytes": os.fstat(f.fileno()).st_size,
                    "dropped": dropped, "sha256": _digest(f, dropped)}
        os.replace(tmp, target)
        meta_tmp = folder / f".{key}.{os.getpid()}.tmp.json"
        meta_tmp.write_text(json.dumps(meta))
        os.replace(meta_tmp, folder / f"{key}.json")
    finally:
        tmp.unlink(missing_ok=True)
    prune(folder, keep=target)
    return np.load(target, mmap_mode="r", allow_pickle=False), ok


def prune(folder: Path, keep: Path | None = None, limit: int = CACHE_LIMIT) -> list[Path]:
    """Remove the least recently used decoded sets (by modification time, which a use renews) until the
    cache holds at most `limit` bytes; `keep` (the set just written) stays whatever its size. -> removed."""
    sets = []
    for f in folder.glob("*.npy"):
        if f.name.endswith(".kept.npy") or f.name.startswith("."):
            continue
        try:
            st = f.lstat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            sets.append((st.st_mtime_ns, st.st_size, f))
    total = sum(size for _, size, _ in sets)
    removed = []
    for _, size, f in sorted(sets):
        if total <= limit:
            break
        if keep is not None and f == keep:
            continue
        f.unlink(missing_ok=True)
        stem = f.name[:-len(".npy")]
        for other in (f"{stem}.json", f"{stem}.kept.npy"):  # (.kept.npy: the masks of dlc before FORMAT 1)
            f.with_name(other).unlink(missing_ok=True)
        total -= size
        removed.append(f)
    return removed
