"""Overflow is never silent: predict/trace warn once per overflowing layer, with counts.

Expected counts are computed here from the inputs and the types' ranges (integer
mantissas), not read back from the emulator. Also: the weight warnings of the precision
pass say what a weight rounding to zero does to its layer.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

import nnfab.emulate.interpreter as interpreter
from nnfab.ir import Graph, Node, infer_shapes
from nnfab.model import NnfabModel
from nnfab.passes import assign_precision
from tests.emulate.helpers import single_op_graph
from tests.graphs import mlp_graph

IN_T = "ap_fixed<8,3>"  # wraps: [-4, 4 - 1/32]
OUT_T = "ap_fixed<6,2,AP_TRN,AP_SAT>"  # saturates: [-2, 1.9375]


def relu_model() -> NnfabModel:
    g = single_op_graph("Activation", [(10,)], [IN_T], OUT_T, attrs={"function": "relu"})
    return NnfabModel(g, {})


def expected_counts(x: np.ndarray) -> tuple[int, int]:
    """(input values outside ap_fixed<8,3>, relu outputs above ap_fixed<6,2>'s max)."""
    m = np.floor(x * 32).astype(np.int64)  # truncation onto the 2**-5 grid
    n_in = int(np.count_nonzero((m < -128) | (m > 127)))
    wrapped = (m + 128) % 256 - 128
    relu = np.maximum(wrapped, 0)  # still on the 2**-5 grid
    n_out = int(np.count_nonzero(np.floor(relu / 2) > 31))  # truncated to 2**-4, max 31/16
    return n_in, n_out


def warnings_from(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and r.name == "nnfab.model"]


def test_one_warning_per_overflowing_layer_with_counts(caplog):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, size=(400, 10))
    n_in, n_out = expected_counts(x)
    assert 0 < n_in < x.size and 0 < n_out < x.size  # the test can fail
    hm = relu_model()
    with caplog.at_level(logging.WARNING):
        hm.predict(x)
    messages = warnings_from(caplog)
    assert len(messages) == 2
    by_layer = {m.split("'")[1]: m for m in messages}
    assert set(by_layer) == {"in0", "op"}
    assert f"result cast to {IN_T}: {n_in} of {x.size} values wrapped around" in by_layer["in0"]
    assert (f"result cast to ap_fixed<6,2,AP_TRN,AP_SAT>: {n_out} of {x.size} values saturated"
            in by_layer["op"])
    assert "warn_overflow=False" in messages[0]
    assert hm.overflow_report()["in0"]["result"] == n_in


def test_no_warning_without_overflow(caplog):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1.9, 1.9, size=(300, 10))
    hm = relu_model()
    with caplog.at_level(logging.WARNING):
        hm.predict(x)
        hm.trace(x)
    assert warnings_from(caplog) == []


def test_quiet_by_argument_attribute_and_environment(caplog, monkeypatch):
    x = np.full((4, 10), 5.0)  # every input wraps
    hm = relu_model()
    with caplog.at_level(logging.WARNING):
        hm.predict(x, warn_overflow=False)
        hm.trace(x, warn_overflow=False)
        assert warnings_from(caplog) == []
        hm.warn_overflow = False
        hm.predict(x)
        assert warnings_from(caplog) == []
        hm.warn_overflow = None
        monkeypatch.setenv("NNFAB_WARN_OVERFLOW", "0")
        hm.predict(x)
        assert warnings_from(caplog) == []
        hm.predict(x, warn_overflow=True)  # the argument wins over the environment
        assert len(warnings_from(caplog)) == 1
        monkeypatch.setenv("NNFAB_WARN_OVERFLOW", "1")
        hm.trace(x)
        assert len(warnings_from(caplog)) == 2
    assert hm.overflow_report()["in0"]["result"] == x.size  # still counted when quiet


def test_once_per_call_whatever_the_chunks(caplog, monkeypatch):
    monkeypatch.setattr(interpreter, "CHUNK_BYTES", 10 * 8 * 4 * 16)  # 16-sample chunks
    rng = np.random.default_rng(2)
    x = rng.normal(0, 3, size=(500, 10))
    n_in, _ = expected_counts(x)
    hm = relu_model()
    with caplog.at_level(logging.WARNING):
        hm.predict(x)
        assert len(warnings_from(caplog)) == 2
        hm.predict(x)
    messages = [m for m in warnings_from(caplog) if "'in0'" in m]
    assert len(messages) == 2  # once per call, never once per chunk
    assert all(f"{n_in} of {x.size}" in m for m in messages)


def test_accumulator_wrap_is_named_with_its_type(caplog):
    rng = np.random.default_rng(3)
    x_m = rng.integers(-128, 128, size=(300, 12))  # ap_fixed<8,3> mantissas, frac 5
    w_m = rng.integers(-32, 32, size=(12, 4))  # ap_fixed<6,2> mantissas, frac 4
    b_m = rng.integers(-32, 32, size=4)
    g = single_op_graph(
        "Dense", [(12,)], [IN_T], "ap_fixed<16,6>",
        weights={"kernel": w_m / 16.0, "bias": b_m / 16.0},
        precision={"weight": "ap_fixed<6,2>", "bias": "ap_fixed<6,2>",
                   "accum": "ap_fixed<12,3>"},  # frac 9: sums exact, range [-4, 4)
    )
    acc = x_m @ w_m + b_m * 32  # mantissas at frac 9
    n_acc = int(np.count_nonzero((acc < -2048) | (acc > 2047)))
    assert 0 < n_acc < acc.size
    with caplog.at_level(logging.WARNING):
        NnfabModel(g, {}).predict(x_m / 32.0)
    (message,) = warnings_from(caplog)
    assert "'op'" in message
    assert f"accum cast to ap_fixed<12,3>: {n_acc} of {acc.size} values wrapped around" in message
    assert "result cast" not in message  # the wrapped sums fit ap_fixed<16,6>


# ------------------------------------------------------------- weight warnings
def precision_warnings(g: Graph, caplog: pytest.LogCaptureFixture) -> str:
    with caplog.at_level(logging.WARNING):
        assign_precision(g, {"Model": {"Precision": "ap_fixed<8,3>"}})
    return "\n".join(r.getMessage() for r in caplog.records if "rounds to zero" in r.getMessage())


def test_kernel_rounding_to_zero_means_constant_outputs(caplog):
    g = mlp_graph((3, 2))
    g.node("fc1").weights["kernel"][:] = 1e-4
    text = precision_warnings(g, caplog)
    assert "'fc1'" in text and "every kernel value" in text
    assert "constant given by its bias" in text and "bias is dropped" not in text


def test_bias_rounding_to_zero_only_drops_the_bias(caplog):
    g = mlp_graph((3, 2))
    g.node("fc1").weights["bias"][:] = 1e-4
    text = precision_warnings(g, caplog)
    assert "every bias value" in text and "the bias is dropped" in text
    assert "constant" not in text


def batchnorm_graph(scale: np.ndarray, bias: np.ndarray) -> Graph:
    g = Graph("bn")
    g.add_node(Node("input", "Input", [], attrs={"shape": (3,)}), (3,))
    g.add_node(Node("bn", "BatchNormalization", ["input"],
                    weights={"scale": scale, "bias": bias}), (3,))
    g.outputs = ["bn"]
    infer_shapes(g)
    return g


def test_batchnorm_scale_and_bias_rounding_to_zero(caplog):
    text = precision_warnings(batchnorm_graph(np.full(3, 1e-4), np.ones(3)), caplog)
    assert "every scale value" in text and "per-channel output is the constant" in text
    caplog.clear()
    text = precision_warnings(batchnorm_graph(np.ones(3), np.full(3, 1e-4)), caplog)
    assert "every bias value" in text and "offset is dropped" in text
    assert "constant" not in text
