"""Keep the C allocator from returning freed pages to the OS after every batch chunk.

The emulator allocates and frees many arrays of a few MiB per batch chunk. With
glibc's defaults the top of the heap is trimmed after each free, so every chunk
page-faults its working set back in: the CNN benchmark runs about twice as slowly.
Asking glibc to keep ``TOP_PAD_BYTES`` of slack at the top of the heap
(``mallopt(M_TOP_PAD)``) removes that churn at the cost of at most that much
memory kept reserved by the process.

Setting any such parameter also freezes glibc's *dynamic* mmap threshold at its
128 KiB start, so every array above it would be mmap'ed and unmapped on each use, a
page-fault storm that made the CNN emulator 6x slower in a process that had run Keras
first (2.4k against 14k samples/s). ``MMAP_THRESHOLD_BYTES`` (glibc's 64-bit maximum,
32 MiB) keeps chunk-sized arrays in the heap.

Done once per process, on glibc only; ``NNFAB_MALLOC_TUNING=0`` turns it off, and
explicit ``MALLOC_TOP_PAD_`` / ``MALLOC_MMAP_THRESHOLD_`` in the environment are
respected.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

TOP_PAD_BYTES = 64 << 20
"""Heap slack glibc keeps instead of returning it to the OS (``M_TOP_PAD``)."""
M_TOP_PAD = -2
"""glibc's ``mallopt`` parameter number for ``M_TOP_PAD`` (malloc.h)."""
MMAP_THRESHOLD_BYTES = 32 << 20
"""Arrays below this come from the heap, not from a fresh mmap (``M_MMAP_THRESHOLD``)."""
M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter number for ``M_MMAP_THRESHOLD`` (malloc.h)."""

_done = False


def tune_allocator() -> bool:
    """Set glibc's ``M_TOP_PAD`` once; returns whether this call changed it."""
    global _done
    if _done:
        return False
    _done = True
    if (
        not sys.platform.startswith("linux")
        or os.environ.get("NNFAB_MALLOC_TUNING", "1") == "0"
        or "MALLOC_TOP_PAD_" in os.environ
    ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(M_TOP_PAD, TOP_PAD_BYTES))
    log.debug("mallopt(M_TOP_PAD, %d): %s", TOP_PAD_BYTES, "ok" if ok else "refused")
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        mmap_ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
        log.debug("mallopt(M_MMAP_THRESHOLD, %d): %s", MMAP_THRESHOLD_BYTES,
                  "ok" if mmap_ok else "refused")
    return ok
