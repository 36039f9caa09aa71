"""Keep the C allocator from returning freed pages to the OS after every batch chunk.

The emulator allocates and frees many arrays of a few MiB per batch chunk. With
glibc's defaults the top of the heap is trimmed after each free, so every chunk
page-faults its working set back in: the CNN benchmark runs about twice as slowly.
Asking glibc to keep ``TOP_PAD_BYTES`` of slack at the top of the heap
(``mallopt(M_TOP_PAD)``) removes that churn at the cost of at most that much
memory kept reserved by the process.

Done once per process, on glibc only; ``NNFAB_MALLOC_TUNING=0`` turns it off, and
an explicit ``MALLOC_TOP_PAD_`` in the environment is respected.
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
    return ok
