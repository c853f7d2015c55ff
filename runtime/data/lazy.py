"""Inputs larger than memory: a split that stays on disk and is read a batch at a time.

`LazyInputs` is some rows of a uint8 array memory-mapped from the decoded-image cache
(runtime/data/images.py), with the run's preprocessing applied as a batch is read: it answers `len`,
`.shape`, `[i:j]` and `[index array]` with float32 arrays, which is all the training loop, the
engines' `outputs` (which go through it in slices) and the tools ask of a split. Rows are read with
pread, not through the map, so the resident memory stays one batch and not the whole set however long
the epoch.

`Prefetch` runs a batch generator one or two batches ahead on a thread (reading and augmenting the next
batch while the engine steps on this one; NumPy and Pillow release the GIL for their loops), in the
same order, so a run is the same with or without it.
"""

from __future__ import annotations

import os
import queue
import threading

from typing import Any

import numpy as np

CHUNK_BYTES = 16 << 20  # float32 bytes per chunk when statistics are computed over a lazy split


class LazyInputs:
    def __init__(self, source: Any, rows: np.ndarray, preprocess=None):
        self.source = source  # (N, ...) uint8, usually a np.memmap
        self.rows = np.asarray(rows, np.int64)
        self.preprocess = preprocess
        self.dtype = np.dtype(np.float32)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows),) + tuple(self.source.shape[1:])

    @property
    def ndim(self) -> int:
        return self.source.ndim

    def __len__(self) -> int:
        return len(self.rows)

    def with_preprocess(self, preprocess) -> "LazyInputs":
        return LazyInputs(self.source, self.rows, preprocess)

    def raw(self, index) -> np.ndarray:
        """The samples as stored, as float32 (no preprocessing)."""
        rows = self.rows[index]
        if np.ndim(rows) == 0:
            return self._read(np.array([rows]))[0]
        return self._read(rows)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        """Rows of the source as float32. From a file-backed memory map they are read with pread, front
        to back, rather than through the map: a page fault maps a whole large folio of the page cache
        (about 2 MB here), so 64 scattered rows would put some 120 MB in the process's memory."""
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows),) + tuple(self.source.shape[1:]), np.float32)
        fd = self._fd()
        if fd is None:
            out[order] = self.source[rows[order]]
            return out
        per = int(np.prod(self.source.shape[1:])) * self.source.dtype.itemsize
        buf = np.empty((len(rows),) + tuple(self.source.shape[1:]), self.source.dtype)
        flat = buf.reshape(len(rows), -1).view(np.uint8)
        for j, r in enumerate(rows[order]):  # one read per sample: I/O, not arithmetic
            if os.preadv(fd, [flat[j]], self.source.offset + int(r) * per) != per:
                raise OSError(f"{self.source.filename} is shorter than its header says")
        out[order] = buf
        return out

    def _fd(self) -> int | None:
        if getattr(self, "_file", None) is None:
            name = getattr(self.source, "filename", None)
            if not isinstance(self.source, np.memmap) or name is None or not self.source.flags.c_contiguous:
                return None
            self._file = open(name, "rb", buffering=0)
        return self._file.fileno()

    def __del__(self):
        f = getattr(self, "_file", None)
        if f is not None:
            f.close()

    def __getitem__(self, index) -> np.ndarray:
        x = self.raw(index)
        return self.preprocess.apply(x) if self.preprocess is not None else x

    def __array__(self, dtype=None, copy=None):
        x = self[:]
        return x if dtype is None else x.astype(dtype)

    def chunks(self):
        """The split's samples as stored, in order, CHUNK_BYTES of float32 at a time."""
        step = max(1, CHUNK_BYTES // (4 * int(np.prod(self.source.shape[1:]))))
        for i in range(0, len(self), step):
            yield self.raw(slice(i, i + step))


class Prefetch:
    """Iterate `items` on a thread, up to `depth` items ahead; exceptions are raised where the item
    would have been; closing (or leaving the loop early) stops the thread."""

    _DONE = object()

    def __init__(self, items, depth: int = 2):
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(items,), daemon=True, name="dlc-prefetch")
        self.thread.start()

    def _run(self, items):
        try:
            for item in items:
                if self.stop.is_set():
                    return
                self._put((True, item))
        except BaseException as e:  # noqa: BLE001 -- handed to the consumer
            self._put((False, e))
            return
        self._put((True, self._DONE))

    def _put(self, item):
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self):
        try:
            while True:
                ok, item = self.queue.get()
                if not ok:
                    raise item
                if item is self._DONE:
                    return
                yield item
        finally:
            self.close()

    def close(self):
        self.stop.set()
        while self.thread.is_alive():
            try:
                self.queue.get_nowait()
            except queue.Empty:
                self.thread.join(timeout=0.05)
