"""LayerNormalization in Verilog: Verilator == emulator, bit for bit, in lut and dsp style,
unpipelined and under a clock target. The emulator is checked against an independent
Fraction reference in tests/emulate/test_zoo.py, the C++ in tests/backends/hls/
test_zoo_csim.py. The narrow types make the mean, variance and norm casts saturate and
the result wrap; the inputs include constant vectors (variance 0: table entry 0)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rtl_helpers import needs_verilator

import nnfab
from nnfab.backends.rtl import RTLProject, generate
from nnfab.ir import Graph, Node, infer_shapes
from nnfab.ir.zoo import rsqrt_table
from nnfab.tools.verilator import lint

CONFIGS: dict[str, dict[str, Any]] = {
    "narrow": {"Model": {"Precision": "ap_fixed<10,4,AP_RND_CONV,AP_SAT>"},
               "LayerName": {"x": {"Precision": {"result": "ap_fixed<8,3>"}},
                             "ln": {"Precision": {
                                 "mean": "ap_fixed<9,4,AP_RND,AP_SAT>",
                                 "var": "ap_ufixed<8,2,AP_RND_CONV,AP_SAT>",  # saturates
                                 "table": "ap_ufixed<10,4,AP_RND_CONV,AP_SAT>",
                                 "norm": "ap_fixed<7,1,AP_RND,AP_SAT>",
                                 "scale": "ap_ufixed<8,1,AP_RND_CONV,AP_SAT>",
                                 "weight": "ap_fixed<7,2,AP_RND_CONV,AP_SAT>",
                                 "result": "ap_fixed<7,2,AP_RND_CONV,AP_WRAP>"}}}},
    "defaults": {"Model": {"Precision": "ap_fixed<16,6>"},
                 "LayerName": {"x": {"Precision": {"result": "ap_fixed<8,3>"}}}},
}


def layernorm_graph() -> Graph:
    rng = np.random.default_rng(0)
    g = Graph("ln")
    g.add_node(Node("x", "Input", [], attrs={"shape": (3, 6)}), (3, 6))
    g.add_node(Node("ln", "LayerNormalization", ["x"], attrs={"epsilon": 1e-3, "table_bits": 4},
                    weights={"gamma": rng.normal(1, 0.4, 6), "beta": rng.normal(0, 0.4, 6)}),
               (1,))
    g.outputs = ["ln"]
    infer_shapes(g)
    return g


def _inputs(n: int) -> np.ndarray:
    x = np.random.default_rng(1).integers(-128, 128, (n, 3, 6)) / 32.0  # all of ap_fixed<8,3>
    x[0] = 0.0
    x[1] = 1.0
    x[2, 0] = [-4.0, 3.96875, -4.0, 3.96875, -4.0, 3.96875]  # the largest variance
    return x


def test_table_index_is_a_priority_encoder() -> None:
    """One casez line per octave of the variance mantissa (leading one first), the
    default (m = 0) reading entry 0; the table has width * 2**B entries."""
    model = nnfab.convert_graph(layernorm_graph(), CONFIGS["narrow"])
    layer = {m.node: m for m in generate(model.graph).layers}["ln"]
    node = model.graph.node("ln")
    var_t = node.precision["var"]
    table = rsqrt_table(node.attrs, node.precision["table"], var_t)
    lines = [ln.strip() for ln in layer.text.splitlines()
             if f"{var_t.width}'b" in ln and "rsqrt_index =" in ln]
    patterns = [ln.split("'b")[1].split(":")[0] for ln in lines]
    assert patterns == ["0" * (var_t.width - 1 - p) + "1" + "?" * p
                        for p in range(var_t.width - 1, -1, -1)]
    assert layer.stats["table_entries"] == table.size == var_t.width << table.bits


def with_verilator(fn: Any) -> Any:
    for mark in needs_verilator:
        fn = mark(fn)
    return fn


@with_verilator
@pytest.mark.parametrize(("config", "style", "per_stage"), [
    ("narrow", "lut", None), ("narrow", "dsp", None), ("narrow", "lut", 2),
    ("defaults", "dsp", 3)])
def test_layernorm_verilator_matches_emulator(config: str, style: str, per_stage: int | None,
                                              tmp_path: Path) -> None:
    model = nnfab.convert_graph(layernorm_graph(), CONFIGS[config])
    project = RTLProject(model, tmp_path, style=style, adders_per_stage=per_stage)
    x = _inputs(400)
    result = project.simulate(x)
    assert np.array_equal(result.outputs, model.predict(x, warn_overflow=False))
    assert result.latency == project.latency
    if per_stage is not None:
        assert project.latency > 7  # every step ends in registers
    assert lint(project.write(), project.top, tmp_path / "lint.log") == []
    if config == "narrow":  # the casts really saturate
        report = model.overflow_report()["ln"]
        assert report["var"] > 0 and report["norm"] > 0
