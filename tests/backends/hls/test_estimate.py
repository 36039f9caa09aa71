"""Analytic estimates: multipliers after the reuse factor without zero weights, DSPs,
block RAM, latency / II and the fit against the part table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hls_helpers import mlp_graph

import nnfab
from nnfab.backends.hls.estimate import LABEL, bram_18k, dsp_per_multiplier
from nnfab.ir import FixedType, Graph, Node


def dense_model(kernel: np.ndarray, config: dict, part: str | None = None) -> nnfab.NnfabModel:
    n_in, n_out = kernel.shape
    g = Graph(name="d")
    g.add_node(Node("x", "Input", [], attrs={"shape": (n_in,)}), (n_in,))
    g.add_node(Node("fc", "Dense", ["x"], weights={"kernel": kernel,
                                                   "bias": np.zeros(n_out)}), (n_out,))
    g.outputs = ["fc"]
    return nnfab.convert_graph(g, config, part=part)


def test_dsp_rule() -> None:
    f = FixedType.parse
    assert dsp_per_multiplier(f("ap_fixed<16,6>"), f("ap_fixed<16,6>")) == 1
    assert dsp_per_multiplier(f("ap_fixed<30,6>"), f("ap_fixed<20,6>")) == 2 * 2
    assert dsp_per_multiplier(f("ap_fixed<27,6>"), f("ap_fixed<18,6>")) == 1
    assert dsp_per_multiplier(f("ap_ufixed<27,6>"), f("ap_fixed<18,6>")) == 2  # +1 sign bit
    assert dsp_per_multiplier(f("ap_fixed<26,6>"), f("ap_fixed<18,2>"), "xc7") == 2  # 25 x 18
    assert dsp_per_multiplier(f("ap_fixed<16,6>"), f("ap_fixed<4,2>")) == 0  # LUTs


def test_bram_aspect_ratios() -> None:
    assert bram_18k(512, 36) == 1 and bram_18k(1024, 18) == 1 and bram_18k(513, 36) == 2
    assert bram_18k(64, 360) == 10  # 10 x (512 x 36), only 64 words used
    # 4096 x 5 bits: 8 x (512 x 36), 4 x (1024 x 18), 2 x (2048 x 9), 2 x (4096 x 4), ...
    assert bram_18k(4096, 5) == 2
    assert bram_18k(0, 10) == 0


def test_latency_dense_counts_nonzero_products_and_shifts() -> None:
    kernel = np.array([[0.0, 0.5, 0.3], [1.0, 0.0, -0.75], [0.1, 0.2, 0.0], [0.0, -2.0, 0.6]])
    config = {"Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 2}}
    model = dense_model(kernel, config)
    est = model.estimate()
    assert est.label == LABEL and "ESTIMATE" in est.label
    row = next(r for r in est.layers if r.name == "fc")
    w = model.graph.node("fc").precision["weight"]
    q = w.quantize(kernel)
    nonzero = int(np.count_nonzero(q))  # 8
    shifts = sum(1 for v in q.ravel() if v != 0 and math.log2(abs(v)).is_integer())  # 0.5, 1, 2
    assert (nonzero, shifts) == (8, 3)
    assert row.products == 12 and row.zero_weights == 4
    assert row.multipliers == math.ceil(nonzero / 2) == 4
    assert row.dsp == math.ceil((nonzero - shifts) / 2) * 1 == 3
    assert row.weight_bits == 12 * 16
    assert row.ii_cycles == 2 and est.ii_cycles == 2  # pipelined at II = ReuseFactor
    assert est.mode == "pipeline" and row.bram_18k == 0


def test_resource_dense_keeps_zero_products_and_uses_rom() -> None:
    rng = np.random.default_rng(0)
    kernel = rng.normal(0, 1, (64, 32))
    kernel[::3] = 0.0
    config = {"Model": {"Precision": "ap_fixed<16,6>"},
              "LayerName": {"fc": {"Strategy": "Resource", "ReuseFactor": 128}}}  # 64 x 2
    est = dense_model(kernel, config).estimate()
    row = next(r for r in est.layers if r.name == "fc")
    assert row.multipliers == 64 * 32 // 128 == 16 and row.dsp == 16
    # ROM: 128 words of 16 weights x 16 bits = 256 bits -> 8 blocks of 512 x 36 (256/36 -> 8)
    assert row.bram_18k == math.ceil(16 * 16 / 36) == 8
    assert row.ii_cycles == 128 and est.mode == "dataflow"


def test_totals_and_fit_against_the_part() -> None:
    model = nnfab.convert_graph(mlp_graph((16, 64, 32, 32, 5)), part="xc7z020clg400-1")
    est = model.estimate()
    totals = est.totals()
    assert totals["dsp"] == sum(r.dsp for r in est.layers)
    assert totals["dsp_available"] == 220 and totals["bram_18k_available"] == 280
    assert totals["dsp"] > 220 and est.fits() is False
    assert totals["dsp_percent"] == pytest.approx(100 * totals["dsp"] / 220)
    assert totals["latency_ns"] == pytest.approx(totals["latency_cycles"] * 5.0)
    small = nnfab.convert_graph(mlp_graph((4, 3), softmax=False), part="xcvu9p-flgb2104-2l-e")
    assert small.estimate().fits() is True
    unknown = nnfab.convert_graph(mlp_graph((4, 3), softmax=False), part="xc7a35t-unknown")
    assert unknown.estimate().fits() is None
    d = est.as_dict()
    assert d["label"] == LABEL and len(d["layers"]) == len(model.graph.nodes)
