"""MultiThreshold in Verilog: Verilator == emulator, bit for bit, in vector designs and in
pixel streams.

Thresholds off the input grid, on it, outside its range and unsorted; levels that the
result type rounds and saturates; shared, per-channel and per-element rows. The emulator
is checked against Fraction arithmetic in tests/frontends/test_onnx_idioms.py and the
C++ against the emulator in tests/backends/hls/test_threshold_csim.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from rtl_helpers import convert, needs_verilator
from test_rtl_stream import check

from nnfab.backends.rtl import RTLProject, generate
from nnfab.backends.rtl.layers import RtlOptions
from nnfab.backends.rtl.threshold import threshold_mantissas
from nnfab.errors import BackendError
from nnfab.ir import FixedType, Graph, Node, infer_shapes
from nnfab.tools.verilator import lint

X_TYPE = "ap_fixed<8,3>"  # grid 1/32, range [-4, 4 - 1/32]


def with_verilator(fn):
    for mark in needs_verilator:
        fn = mark(fn)
    return fn


def vector_graph(per_element: bool) -> Graph:
    rng = np.random.default_rng(3)
    g = Graph("thr")
    g.add_node(Node("x", "Input", [], attrs={"shape": (6, 3)}), (6, 3))
    if per_element:
        t = rng.uniform(-4.5, 4.5, (18, 3))  # unsorted, some outside the range
        g.add_node(Node("mt_e", "MultiThreshold", ["x"], attrs={"out_scale": -0.75},
                        weights={"thresholds": t}), (6, 3))
        g.outputs = ["mt_e"]
    else:
        per_channel = np.sort(rng.uniform(-3, 3, (3, 4)), axis=1)
        per_channel[0, 0] = 0.5  # on the grid: x == t counts
        per_channel[1, 3] = 100.0  # never reached
        per_channel[2, 0] = -100.0  # always reached
        per_channel[2, 1:] = per_channel[2, 1:][::-1]  # unsorted
        g.add_node(Node("mt_c", "MultiThreshold", ["x"],
                        attrs={"out_scale": 1.3, "out_bias": -2.0},
                        weights={"thresholds": per_channel}), (6, 3))
        g.add_node(Node("mt_s", "MultiThreshold", ["mt_c"], attrs={"out_scale": 0.5},
                        weights={"thresholds": np.array([[-1.0, 0.1, 1.7]])}), (6, 3))
        g.add_node(Node("flat", "Flatten", ["mt_s"]), (18,))
        g.add_node(Node("fc", "Dense", ["flat"],
                        weights={"kernel": rng.normal(size=(18, 4)), "bias": rng.normal(size=4)}),
                   (4,))
        g.outputs = ["fc"]
    infer_shapes(g)
    return g


CONFIG = {"Model": {"Precision": "ap_fixed<16,6>"},
          "LayerName": {"x": {"Precision": {"result": X_TYPE}},
                        # levels -2, -0.7, 0.6, 1.9, 3.2: rounded and saturated
                        "mt_c": {"Precision": {"result": "ap_fixed<5,2,AP_RND,AP_SAT>"}}}}


def _inputs(n: int) -> np.ndarray:
    rng = np.random.default_rng(9)
    x = rng.integers(-128, 128, (n, 6, 3)) / 32.0  # every value of ap_fixed<8,3>
    x[0, 0, 0] = 0.5  # exactly the on-grid threshold of channel 0
    x[1] = -4.0
    x[2] = 4.0 - 1 / 32
    return x


def test_thresholds_become_input_mantissas() -> None:
    t = FixedType.parse(X_TYPE)
    assert threshold_mantissas(np.array([[0.5, 0.51, -0.51, 100.0, -100.0]]), t) == [
        [16, 17, -16, 128, -128]]  # x >= t  <=>  m >= ceil(32 t); never: max + 1; always: min


def test_comparators_only_for_thresholds_inside_the_range() -> None:
    model = convert(vector_graph(False), CONFIG)
    layers = {m.node: m for m in generate(model.graph, RtlOptions()).layers}
    # mt_c: 12 thresholds per 3 channels, one never and one always reached: 10 per
    # pixel row of 3 elements, 6 rows
    assert layers["mt_c"].stats["comparators"] == 6 * 10
    text = layers["mt_c"].text
    assert len(re.findall(r"_ge\d+ = ", text)) == 60
    assert layers["mt_c"].latency == 1
    piped = {m.node: m for m in generate(model.graph, RtlOptions("lut", 2)).layers}
    assert piped["mt_c"].latency == 2


@with_verilator
@pytest.mark.parametrize(("per_element", "per_stage"), [(False, None), (True, None),
                                                        (False, 2)])
def test_multithreshold_verilog_matches_emulator(per_element: bool, per_stage: int | None,
                                                 tmp_path: Path) -> None:
    config = {"Model": CONFIG["Model"], "LayerName": {"x": CONFIG["LayerName"]["x"]}}
    model = convert(vector_graph(per_element), config if per_element else CONFIG)
    project = RTLProject(model, tmp_path, adders_per_stage=per_stage)
    x = _inputs(400)
    result = project.simulate(x)
    assert np.array_equal(result.outputs, model.predict(x, warn_overflow=False))
    assert result.latency == project.latency
    assert lint(project.write(), project.top, tmp_path / "lint.log") == []
    if not per_element:  # the saturating levels do occur
        levels = np.unique(model.trace(x, warn_overflow=False)["mt_c"])
        assert levels.tolist() == [-2.0, -0.75, 0.625, 1.875]


def stream_graph(rows: int) -> Graph:
    rng = np.random.default_rng(5)
    g = Graph("thr_cnn")
    g.add_node(Node("inp", "Input", [], attrs={"shape": (6, 6, 2)}), (6, 6, 2))
    g.add_node(Node("c1", "Conv2D", ["inp"], weights={"kernel": rng.normal(size=(3, 3, 2, 3)),
                                                      "bias": rng.normal(size=3)}), (4, 4, 3))
    g.add_node(Node("mt", "MultiThreshold", ["c1"], attrs={"out_scale": 2.0, "out_bias": -3.0},
                    weights={"thresholds": np.sort(rng.normal(size=(rows, 3)) * 2, axis=1)}),
               (4, 4, 3))
    g.add_node(Node("p1", "Pooling2D", ["mt"], attrs={"mode": "max", "pool_size": (2, 2)}),
               (2, 2, 3))
    g.add_node(Node("flat", "Flatten", ["p1"]), (12,))
    g.add_node(Node("fc", "Dense", ["flat"], weights={"kernel": rng.normal(size=(12, 4)),
                                                      "bias": rng.normal(size=4)}), (4,))
    g.outputs = ["fc"]
    infer_shapes(g)
    return g


STREAM_CONFIG = {"Model": {"Precision": "ap_fixed<12,5,AP_RND,AP_SAT>"},
                 "LayerName": {"inp": {"Precision": {"result": "ap_fixed<8,3>"}},
                               "mt": {"Precision": {"result": "ap_fixed<4,3>"}}}}


@with_verilator
@pytest.mark.parametrize("rows", [1, 3])
def test_multithreshold_in_a_pixel_stream(rows: int, tmp_path: Path) -> None:
    """Per pixel over the channels: shared or per-channel thresholds."""
    check(convert(stream_graph(rows), STREAM_CONFIG), tmp_path, "lut")


def test_per_element_thresholds_are_refused_in_a_stream() -> None:
    model = convert(stream_graph(48), STREAM_CONFIG)
    with pytest.raises(BackendError, match=r"'mt' \(MultiThreshold\): 48 threshold rows .*"
                                           r"shared \(1 row\) or per channel \(3 rows\)"):
        generate(model.graph, RtlOptions())
