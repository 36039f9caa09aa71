"""nnfab host driver for Coyote: streams batches through the network on a Coyote vFPGA.

Needs numpy, ``nnfab_driver.py`` beside this file (the lane format, ``docs/axi_stream.md``)
and the host library ``libnnfab_coyote.so`` that nnfab's project builds against Coyote
(``accel/coyote/sw``; copy it next to this file, or pass ``library=``).

    from nnfab_coyote_driver import CoyoteOverlay
    nn = CoyoteOverlay("nnfab_nn.bit", X_test.shape, y_test.shape)
    y = nn.predict(X_test, y_test.shape, batch_size=1024)
    y, latency_s, throughput_per_s = nn.predict(X_test, profile=True)

The bitstream is loaded with Coyote's own tools (see ``accel/coyote/README.md``); this
driver only moves data: one local transfer (host memory -> vFPGA -> host memory) per batch.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from nnfab_driver import Codec, load_description, run_in_chunks  # noqa: E402

LIBRARY = "libnnfab_coyote.so"
MAX_BATCH = 1 << 16
"""Samples per transfer by default (Coyote's transfer lengths are 32-bit byte counts)."""


class _Native:
    """``libnnfab_coyote.so`` through ctypes."""

    def __init__(self, path: str) -> None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found: build it in accel/coyote/sw (cmake, "
                                    f"against a Coyote checkout) and copy it next to the driver")
        lib = ctypes.CDLL(path)
        lib.nnfab_coyote_open.restype = ctypes.c_void_p
        lib.nnfab_coyote_open.argtypes = [ctypes.c_int]
        lib.nnfab_coyote_run.restype = ctypes.c_int64
        lib.nnfab_coyote_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64,
                                         ctypes.c_void_p, ctypes.c_uint64]
        lib.nnfab_coyote_close.argtypes = [ctypes.c_void_p]
        self.lib = lib

    def open(self, vfid: int) -> Any:
        return self.lib.nnfab_coyote_open(vfid)

    def run(self, session: Any, data: np.ndarray, out: np.ndarray) -> int:
        return int(self.lib.nnfab_coyote_run(session, data.ctypes.data, data.nbytes,
                                             out.ctypes.data, out.nbytes))

    def close(self, session: Any) -> None:
        self.lib.nnfab_coyote_close(session)


def _native(library: Any) -> Any:
    """The host library: an object with open/run/close, a path, or the default file.

    A module ``nnfab_coyote_native`` (nnfab's simulated board provides one) takes over.
    """
    if library is not None and not isinstance(library, str | os.PathLike):
        return library
    stand_in = sys.modules.get("nnfab_coyote_native")
    if stand_in is not None:
        return stand_in
    return _Native(str(library or os.path.join(HERE, LIBRARY)))


def _bitfile_in(path: str) -> str:
    """A bitfile path, or a project / deploy directory holding nnfab_nn.bit."""
    if not os.path.isdir(path):
        return path
    for candidate in (os.path.join(path, "deploy", "nnfab_nn.bit"),
                      os.path.join(path, "nnfab_nn.bit")):
        if os.path.isfile(os.path.splitext(candidate)[0] + ".json"):
            return candidate
    return os.path.join(path, "nnfab_nn.bit")


class CoyoteOverlay:
    """The network on a Coyote vFPGA (``vfid``), driven through the host library."""

    def __init__(self, bitfile: str = "nnfab_nn.bit", x_shape: tuple[int, ...] | None = None,
                 y_shape: tuple[int, ...] | None = None, *, vfid: int = 0,
                 library: Any = None, max_batch: int | None = None) -> None:
        self.desc = load_description(_bitfile_in(str(bitfile)))
        self.codec = Codec(self.desc)
        self.codec.check_shapes(x_shape, y_shape)
        self.max_batch = int(max_batch or (x_shape[0] if x_shape else MAX_BATCH))
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {self.max_batch}")
        self.native = _native(library)
        self.session = self.native.open(int(vfid))
        if not self.session:
            raise RuntimeError(f"Coyote: cannot open vFPGA {vfid} (driver loaded? bitstream?)")

    def _run_chunk(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        data = np.ascontiguousarray(self.codec.encode(x)[: self.codec.in_stream_bytes(n)])
        out = np.zeros(self.codec.out_stream_bytes(n), dtype=np.uint8)
        got = self.native.run(self.session, data, out)
        if got < 0:
            raise RuntimeError("Coyote: the transfer failed (host buffers not available)")
        return self.codec.decode(out, n)

    def predict(self, x: Any, y_shape: tuple[int, ...] | None = None,
                batch_size: int | None = None, profile: bool = False) -> Any:
        """Outputs for a batch (``batch_size`` samples per transfer); with
        ``profile=True`` also (latency in s, samples per s)."""
        x = self.codec.check_input(x)
        if y_shape is not None:
            self.codec.check_shapes(None, y_shape)
            if int(y_shape[0]) != len(x):
                raise ValueError(f"y_shape {tuple(y_shape)} does not match {len(x)} inputs")
        step = int(batch_size or self.max_batch)
        if step < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        return run_in_chunks(self._run_chunk, x, step, self.codec.out_shape, profile)

    def free(self) -> None:
        """Close the session (its host buffers go with it)."""
        if self.session:
            self.native.close(self.session)
            self.session = None
