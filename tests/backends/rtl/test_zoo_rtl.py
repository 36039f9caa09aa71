"""Embedding in Verilog: a ROM per column in a vector design, Verilator == emulator bit for
bit (out-of-range indices give zeros), latency as reported. Conv transposes and layer
norms are refused at ``to_rtl()`` (tests/backends/hls/test_zoo_csim.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rtl_helpers import needs_verilator, needs_yosys

import nnfab
from nnfab.backends.rtl import RTLProject, generate
from nnfab.errors import BackendError
from nnfab.ir import Graph, Node, infer_shapes

VOCAB, DIM, STEPS = 10, 3, 4


def embedding_graph(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph("emb")
    g.add_node(Node("idx", "Input", [], attrs={"shape": (STEPS,)}), (STEPS,))
    g.add_node(Node("emb", "Embedding", ["idx"],
                    weights={"embeddings": rng.normal(0, 2, (VOCAB, DIM))}), ())
    g.add_node(Node("flat", "Flatten", ["emb"]), ())
    g.add_node(Node("fc", "Dense", ["flat"], weights={"kernel": rng.normal(0, 1, (12, 2)),
                                                       "bias": rng.normal(0, 1, 2)}), ())
    g.outputs = ["fc"]
    infer_shapes(g)
    return g


CONFIG: dict[str, Any] = {
    "Model": {"Precision": "ap_fixed<10,4,AP_RND,AP_SAT>"},
    "LayerName": {"emb": {"Precision": {"weight": "ap_fixed<8,3,AP_RND_CONV,AP_SAT>",
                                        "result": "ap_fixed<6,2,AP_RND,AP_SAT>"}}},
}


def test_embedding_is_a_rom() -> None:
    model = nnfab.convert_graph(embedding_graph(), CONFIG)
    design = generate(model.graph)
    layer = {m.node: m for m in design.layers}["emb"]
    assert layer.latency == 0 and layer.text.count("function") == 2 * DIM  # one per column
    assert layer.stats["rom_entries"] == 64 * DIM  # index type ap_int<6>: 64 values


def test_embedding_index_type_too_wide() -> None:
    config = {**CONFIG, "LayerName": {**CONFIG["LayerName"],
                                      "idx": {"Precision": {"result": "ap_int<20>"}}}}
    model = nnfab.convert_graph(embedding_graph(), config)
    with pytest.raises(BackendError, match=r"layer 'emb' \(Embedding\).*at most 65536"):
        generate(model.graph)


def with_verilator(fn: Any) -> Any:
    for mark in needs_verilator:
        fn = mark(fn)
    return fn


@with_verilator
def test_embedding_verilator_matches_emulator(tmp_path: Path) -> None:
    model = nnfab.convert_graph(embedding_graph(), CONFIG)
    project = RTLProject(model, tmp_path)
    rng = np.random.default_rng(1)
    x = rng.integers(-40, 40, (200, STEPS)).astype(np.float64)
    x[0] = [0, VOCAB - 1, -1, VOCAB]
    result = project.simulate(x)
    assert np.array_equal(np.asarray(result.outputs), model.predict(x))
    assert result.latency == project.latency
    assert model.overflow_report()["emb"]["index"] > 0


def with_yosys(fn: Any) -> Any:
    for mark in needs_yosys:
        fn = mark(fn)
    return fn


@with_yosys
def test_embedding_synthesizes_to_luts_only(tmp_path: Path) -> None:
    """A ROM: LUTs, no carry chain, no DSP; registers only for the input and valid bit."""
    g = embedding_graph()
    g.outputs = ["emb"]
    for name in ("fc", "flat"):
        g.remove_node(name)
    model = nnfab.convert_graph(g, CONFIG)
    project = RTLProject(model, tmp_path)
    report = project.synthesize("xc7z020clg400-1")
    assert report.lut > 0 and (report.carry, report.dsp) == (0, 0)
