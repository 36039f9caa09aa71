"""One module per family of ops; importing them registers their kernels."""

from __future__ import annotations

import importlib

KERNEL_MODULES = ("dense", "shape", "conv", "pool", "norm", "activation", "merge", "recurrent",
                  "zoo", "threshold", "element_cast", "vertex")


def load_all() -> None:
    """Import every kernel module (idempotent); missing modules are skipped."""
    for name in KERNEL_MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
