"""Embedding in Verilog: a ROM per column in a vector design, Verilator == emulator bit for
bit (out-of-range indices give zeros), latency as reported. Conv1D/2DTranspose: the Dense
of the equivalent matrix, Verilator == emulator (the emulator is checked against a scatter
reference in tests/emulate/test_zoo.py). Layer norms are refused at ``to_rtl()``
(tests/backends/hls/test_zoo_csim.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rtl_helpers import needs_verilator, needs_yosys
from tests.graphs import ZOO_NARROW_CONFIG

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


# ------------------------------------------------------------------ ConvTranspose
TRANSPOSE_CASES: dict[str, dict[str, Any]] = {
    # 1-D, stride 3 > k, output padding, products rounded into a narrow wrapping accum
    "1d_rounded_products": {"op": "Conv1DTranspose", "in": (4, 2), "k": (2,), "f": 3,
                            "strides": (3,), "pads": (0, 1), "extra": (2,),
                            "prec": {"weight": "ap_fixed<6,1,AP_RND_CONV,AP_SAT>",
                                     "bias": "ap_fixed<6,2>",
                                     "accum": "ap_fixed<9,4,AP_RND_CONV>",
                                     "result": "ap_fixed<7,3,AP_RND,AP_SAT>"}},
    # 2-D, cropped borders, exact (auto) accumulator, fused relu, a Dense after it
    "2d_auto_accum": {"op": "Conv2DTranspose", "in": (3, 4, 2), "k": (3, 2), "f": 2,
                      "strides": (2, 1), "pads": (1, 1, 0, 1), "extra": (1, 0),
                      "activation": "relu",
                      "prec": {"weight": "ap_fixed<8,2,AP_RND_CONV,AP_SAT>",
                               "bias": "ap_fixed<8,3>", "result": "ap_fixed<8,3>"}},
}


def transpose_graph(case: str) -> Graph:
    c = TRANSPOSE_CASES[case]
    rng = np.random.default_rng(2)
    g = Graph("ct")
    g.add_node(Node("x", "Input", [], attrs={"shape": c["in"]}), c["in"])
    attrs = {"strides": c["strides"], "pads": c["pads"], "output_padding": c["extra"]}
    if "activation" in c:
        attrs["activation"] = c["activation"]
    g.add_node(Node("ct", c["op"], ["x"], attrs=attrs,
                    weights={"kernel": rng.normal(0, 1.2, (*c["k"], c["in"][-1], c["f"])),
                             "bias": rng.normal(0, 1, c["f"])}), (1,))
    last = "ct"
    if "activation" in c:
        g.add_node(Node("flat", "Flatten", ["ct"]), (1,))
        infer_shapes(g)
        n = g.tensors["flat"].size
        g.add_node(Node("fc", "Dense", ["flat"], weights={"kernel": rng.normal(0, 0.5, (n, 3)),
                                                          "bias": rng.normal(0, 1, 3)}), (1,))
        last = "fc"
    g.outputs = [last]
    infer_shapes(g)
    return g


def transpose_model(case: str) -> Any:
    cfg = {"Model": {"Precision": "ap_fixed<12,5,AP_RND,AP_SAT>"},
           "LayerName": {"x": {"Precision": {"result": "ap_fixed<7,3,AP_RND,AP_SAT>"}},
                         "ct": {"Precision": TRANSPOSE_CASES[case]["prec"]}}}
    return nnfab.convert_graph(transpose_graph(case), cfg)


def test_transpose_matrix_places_each_tap_once() -> None:
    """Every kernel value appears once per input position whose tap lands in the output."""
    from nnfab.backends.rtl.zoo import transpose_matrix

    kernel = np.arange(1, 2 * 3 * 2 + 1, dtype=np.float64).reshape(2, 3, 2)  # k=2, C=3, F=2
    m = transpose_matrix(kernel, (4, 3), (9, 2), (2,), (0, 1))  # (4-1)*2 + 2 - 0 - 1 = 7 (+2)
    assert m.shape == (12, 18)
    assert np.count_nonzero(m) == 4 * 2 * 3 * 2  # no tap is cropped here
    # input position 1, channel 2 -> output positions 2 (tap 0) and 3 (tap 1)
    assert m[1 * 3 + 2, 2 * 2:2 * 2 + 2].tolist() == kernel[0, 2].tolist()
    assert m[1 * 3 + 2, 3 * 2:3 * 2 + 2].tolist() == kernel[1, 2].tolist()
    cropped = transpose_matrix(kernel, (4, 3), (6, 2), (2,), (1, 1))
    assert np.count_nonzero(cropped) == (8 - 2) * 3 * 2  # the first and last tap fall off


@with_verilator
@pytest.mark.parametrize("case", sorted(TRANSPOSE_CASES))
@pytest.mark.parametrize("style", ["lut", "dsp"])
def test_conv_transpose_verilator_matches_emulator(case: str, style: str,
                                                   tmp_path: Path) -> None:
    model = transpose_model(case)
    project = RTLProject(model, tmp_path, style=style)
    layer = {m.node: m for m in project.design.layers}["ct"]
    assert layer.op == TRANSPOSE_CASES[case]["op"] and "the Dense of its" in layer.text
    shape = model.graph.tensors["x"].shape
    rng = np.random.default_rng(4)
    x = rng.integers(-80, 80, (300, *shape)) / 16.0  # beyond the input range too
    result = project.simulate(x)
    assert np.array_equal(np.asarray(result.outputs), model.predict(x, warn_overflow=False))
    assert result.latency == project.latency
    if case == "1d_rounded_products":
        model.predict(x, warn_overflow=False)
        assert model.overflow_report()["ct"]["accum"] > 0  # the wrap is really exercised


@with_verilator
def test_embedding_transpose_and_layernorm_chain(tmp_path: Path) -> None:
    """indices -> Embedding -> Conv1DTranspose -> LayerNormalization (the HLS zoo graph's
    first branch) with narrow rounding and saturating types, Verilator == emulator."""
    rng = np.random.default_rng(0)
    g = Graph("zoo")
    g.add_node(Node("idx", "Input", [], attrs={"shape": (5,)}), (5,))
    g.add_node(Node("emb", "Embedding", ["idx"],
                    weights={"embeddings": rng.normal(0, 1.5, (11, 4))}), (1,))
    g.add_node(Node("ct1", "Conv1DTranspose", ["emb"],
                    attrs={"strides": (2,), "pads": (1, 0), "output_padding": (1,)},
                    weights={"kernel": rng.normal(0, 0.8, (3, 4, 3)),
                             "bias": rng.normal(0, 0.5, 3)}), (1,))
    g.add_node(Node("ln", "LayerNormalization", ["ct1"], attrs={"epsilon": 1e-3, "table_bits": 4},
                    weights={"gamma": rng.normal(1, 0.4, 3), "beta": rng.normal(0, 0.4, 3)}),
               (1,))
    g.outputs = ["ln"]
    infer_shapes(g)
    model = nnfab.convert_graph(g, ZOO_NARROW_CONFIG)
    project = RTLProject(model, tmp_path, style="dsp")
    x = rng.integers(0, 16, (300, 5)).astype(np.float64)  # 11..15: outside the table
    result = project.simulate(x)
    assert np.array_equal(np.asarray(result.outputs), model.predict(x, warn_overflow=False))
    assert result.latency == project.latency
