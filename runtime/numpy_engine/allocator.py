"""Keep freed memory in the process for the next training step.

Every step allocates the same large temporaries (im2col columns, activations, gradients: up to
megabytes each). glibc's malloc serves large blocks with fresh mmap'ed pages and hands freed heap
tops back to the OS, so each step page-faults the same memory in again. Raising the mmap
threshold to its maximum (32 MB) and the trim threshold to 1 GB keeps those pages mapped.
On this project's 2-core VM it took LeNet training from about 1,500-1,800 to 2,100-2,900
samples/s (bench/train_throughput.py). Elsewhere (macOS, musl) this does nothing; a user's own
MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ settings are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit
TRIM_THRESHOLD = 1 << 30

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Tune glibc's malloc once per process; True when it took effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux") or any(k in os.environ for k in
                                                   ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
