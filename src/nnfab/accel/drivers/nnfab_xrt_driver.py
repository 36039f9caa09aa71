"""nnfab host driver for Alveo cards: runs the network's Vitis kernel through XRT.

Needs numpy, XRT's Python bindings (``pyxrt``, installed with XRT on the host: source
``/opt/xilinx/xrt/setup.sh``; the pip package named ``xrt`` is unrelated) and
``nnfab_driver.py`` beside this file (the shared lane format, ``docs/axi_stream.md``).

    from nnfab_xrt_driver import AlveoOverlay
    nn = AlveoOverlay("nnfab_nn.xclbin", X_test.shape, y_test.shape)
    y, latency_s, throughput_per_s = nn.predict(X_test, profile=True)

The kernel ``<project>_kernel(in, out, n_samples)`` reads ``n_samples`` samples from
the input buffer and writes their outputs, both in the lane format of memory buffers.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nnfab_driver import Codec, load_description, run_in_chunks

MAX_BATCH = 1 << 20
"""Samples per kernel run at most (device buffers are sized for this or x_shape[0])."""


def _import_pyxrt() -> Any:
    try:
        import pyxrt
    except ImportError as e:
        raise ImportError("pyxrt not found: it comes with XRT on the host (source "
                          "/opt/xilinx/xrt/setup.sh); the pip package 'xrt' is unrelated") from e
    return pyxrt


class AlveoOverlay:
    """The network on an Alveo card (one compute unit of ``<project>_kernel``)."""

    def __init__(self, xclbin: str = "nnfab_nn.xclbin", x_shape: tuple[int, ...] | None = None,
                 y_shape: tuple[int, ...] | None = None, *, device_index: int = 0,
                 max_batch: int | None = None) -> None:
        xrt = _import_pyxrt()
        self.xrt = xrt
        self.desc = load_description(xclbin)
        self.codec = Codec(self.desc)
        self.codec.check_shapes(x_shape, y_shape)
        self.max_batch = int(max_batch or (x_shape[0] if x_shape else MAX_BATCH))
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {self.max_batch}")
        self.device = xrt.device(device_index)
        uuid = self.device.load_xclbin(xclbin)
        name = f"{self.desc['project']}_kernel"
        self.kernel = xrt.kernel(self.device, uuid, name, xrt.kernel.shared)
        self.bo_in = xrt.bo(self.device, self.codec.in_bytes(self.max_batch), xrt.bo.normal,
                            self.kernel.group_id(0))
        self.bo_out = xrt.bo(self.device, self.codec.out_bytes(self.max_batch), xrt.bo.normal,
                             self.kernel.group_id(1))

    def _run_chunk(self, x: np.ndarray) -> np.ndarray:
        xrt = self.xrt
        n = len(x)
        data = self.codec.encode(x)
        self.bo_in.write(data.tobytes(), 0)
        self.bo_in.sync(xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE, int(data.size), 0)
        run = self.kernel(self.bo_in, self.bo_out, np.uint32(n))
        run.wait()
        n_out = self.codec.out_bytes(n)
        self.bo_out.sync(xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE, n_out, 0)
        raw = np.frombuffer(bytes(self.bo_out.read(n_out, 0)), dtype=np.uint8)
        return self.codec.decode(raw, n)

    def predict(self, x: Any, profile: bool = False) -> Any:
        """Outputs for a batch; with ``profile=True`` also (latency in s, samples per s)."""
        x = self.codec.check_input(x)
        return run_in_chunks(self._run_chunk, x, self.max_batch, self.codec.out_shape, profile)

    def free(self) -> None:
        """Buffers are released with the object (XRT frees them)."""
        self.bo_in = self.bo_out = None
