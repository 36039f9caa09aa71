"""Batch chunks run in worker threads: same outputs, traces and overflow counts as one chunk."""

from __future__ import annotations

import numpy as np
import pytest

import nnfab.emulate.interpreter as interpreter
from nnfab.emulate import Emulator
from nnfab.errors import EmulationError
from nnfab.ir import fixed
from tests.emulate.helpers import random_on_grid, single_op_graph


def narrow_dense():
    rng = np.random.default_rng(3)
    g = single_op_graph(
        "Dense", [(12,)], ["ap_fixed<8,3>"], "ap_fixed<6,2,AP_RND,AP_SAT>",
        weights={"kernel": rng.normal(0, 1, (12, 9)), "bias": rng.normal(0, 1, 9)},
        precision={"weight": "ap_fixed<6,2>", "bias": "ap_fixed<6,2>",
                   "accum": "ap_fixed<12,4>"},  # narrow on purpose: wraps
    )
    x = random_on_grid(rng, fixed("ap_fixed<8,3>"), (5000, 12))
    return g, x


def test_threaded_chunks_match_a_single_chunk(monkeypatch):
    g, x = narrow_dense()
    whole = Emulator(g, threads=1).run(x, trace=True)
    monkeypatch.setattr(interpreter, "CHUNK_BYTES", 64 * 12 * 32)  # 64-sample chunks
    for threads in (1, 3):
        parts = Emulator(g, threads=threads).run(x, trace=True)
        np.testing.assert_array_equal(parts.outputs["op"], whole.outputs["op"])
        np.testing.assert_array_equal(parts.traces["op"], whole.traces["op"])
        assert parts.overflows == whole.overflows
        assert parts.totals == whole.totals
    accum = whole.overflows["op"]["accum"]
    result = whole.overflows["op"]["result"]
    assert 0 < accum < x.shape[0] * 9 and 0 < result < x.shape[0] * 9  # the test can fail
    assert whole.totals["op"]["accum"] == x.shape[0] * 9


def test_thread_count_from_the_environment(monkeypatch):
    monkeypatch.setenv("NNFAB_THREADS", "2")
    assert interpreter.default_threads() == 2
    monkeypatch.setenv("NNFAB_THREADS", "many")
    with pytest.raises(EmulationError, match="NNFAB_THREADS"):
        interpreter.default_threads()
