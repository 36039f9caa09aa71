"""Shared steps of the frontend tests: the backend rungs of the ladder for a converted
model (C simulation == emulator, Verilator == emulator) and random Keras weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import nnfab


def assert_backends_match(hm: nnfab.NnfabModel, x: np.ndarray, tmp_path: Path,
                          verilog: bool = True, min_unique: int = 20,
                          rtl_dir: str = "rtl") -> np.ndarray:
    """The emulator's outputs on ``x`` (more than ``min_unique`` distinct values: not a
    saturated constant), checked equal to the g++ C simulation and, with ``verilog`` and
    Verilator present, to the Verilog (in ``tmp_path / rtl_dir``) on the first 6
    samples; returns them."""
    from nnfab.backends.hls import CSimLibrary
    from nnfab.tools.verilator import verilator_available

    want = hm.predict(x)
    assert np.unique(want).size > min_unique  # not a saturated constant
    np.testing.assert_array_equal(CSimLibrary(hm, cache_dir=tmp_path / "csim").predict(x),
                                  want)
    if verilog and verilator_available():
        rtl = hm.to_rtl(tmp_path / rtl_dir, style="lut", pipeline=None)
        np.testing.assert_array_equal(np.asarray(rtl.simulate(x[:6])), want[:6])
    return want


def uniform_weights(model: Any, seed: int, trainable_only: bool = False) -> None:
    """The weights of a Keras model's layers drawn uniformly from ``[-0.9, 0.9]``
    (``trainable_only``: only layers with trainable weights, so a ``Normalization``
    keeps its statistics)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if trainable_only and not layer.trainable_weights:
            continue
        layer.set_weights([rng.uniform(-0.9, 0.9, w.shape) for w in layer.get_weights()])
