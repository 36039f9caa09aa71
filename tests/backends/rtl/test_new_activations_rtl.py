"""New activations, maximum / minimum merges and Dot in Verilog: Verilator == emulator.

One vector design holds every new function (one Verilator build in the default run, a
second with ``dsp`` style and one adder level per stage marked slow); the emulator is
checked against integer references in tests/emulate/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rtl_helpers import convert, needs_verilator, sample_inputs

from nnfab.backends.rtl import RtlOptions, RTLProject, generate
from nnfab.errors import BackendError
from nnfab.ir import Graph, Node

BRANCHES: list[tuple[str, dict[str, Any]]] = [
    ("elu", {"function": "elu", "alpha": 0.7}),
    ("celu", {"function": "celu", "alpha": 2.0}),
    ("selu", {"function": "selu"}),
    ("softplus", {"function": "softplus"}),
    ("softsign", {"function": "softsign"}),
    ("ncdf", {"function": "normal_cdf"}),
    ("ncdft", {"function": "normal_cdf_tanh"}),
    ("prelu", {"function": "prelu"}),
    ("thr", {"function": "thresholded_relu", "theta": 0.5}),
    ("thr3", {"function": "thresholded_relu", "theta": -1 / 3}),
    ("htanh", {"function": "hard_tanh", "min_val": -0.75, "max_val": 2.5}),
    ("hsig6", {"function": "hard_sigmoid", "slope": 1 / 6, "offset": 0.5}),
]

CONFIG: dict[str, Any] = {
    "Model": {"Precision": "ap_fixed<10,4,AP_RND_CONV,AP_SAT>"},
    "LayerName": {
        "x": {"Precision": {"result": "ap_fixed<8,3,AP_RND,AP_SAT>"}},
        "fc": {"Precision": {"accum": "ap_fixed<16,6>", "result": "ap_fixed<9,4,AP_RND,AP_SAT>"}},
        "elu": {"TableSize": 64, "TableRange": 4},
        "celu": {"TableSize": 32, "TableRange": 8,
                 "Precision": {"table": "ap_fixed<10,2,AP_RND,AP_SAT>"}},
        "selu": {"TableSize": 64, "TableRange": 4,
                 "Precision": {"param": "ap_fixed<8,2,AP_RND>",
                               "result": "ap_fixed<8,3,AP_TRN,AP_SAT_SYM>"}},
        "softplus": {"TableSize": 64, "TableRange": 4},
        "softsign": {"TableSize": 64, "TableRange": 8},
        "ncdf": {"TableSize": 64, "TableRange": 4},
        "ncdft": {"TableSize": 32, "TableRange": 2,
                  "Precision": {"table": "ap_ufixed<10,1,AP_RND,AP_SAT>"}},
        "prelu": {"Precision": {"param": "ap_fixed<6,1,AP_RND_CONV,AP_SAT>",
                                "result": "ap_fixed<8,3,AP_RND_ZERO,AP_SAT>"}},
        "thr": {"Precision": {"result": "ap_ufixed<6,3,AP_RND,AP_SAT>"}},
        "htanh": {"Precision": {"result": "ap_fixed<6,2,AP_RND_INF,AP_SAT>"}},
        "maxi": {"Precision": {"result": "ap_fixed<7,3,AP_RND,AP_SAT>"}},
        "dot": {"Precision": {"result": "ap_fixed<9,4,AP_RND_CONV,AP_SAT>"}},
    },
}


def new_activations_graph(seed: int = 0) -> Graph:
    """x (6) -> Dense -> every new activation; max / min merges; all concatenated."""
    rng = np.random.default_rng(seed)
    g = Graph(name="new_acts")
    g.add_node(Node("x", "Input", [], attrs={"shape": (6,)}), (6,))
    weights = {"kernel": rng.normal(0, 1, (6, 6)), "bias": rng.normal(0, 1, 6)}
    g.add_node(Node("fc", "Dense", ["x"], weights=weights), (6,))
    for name, attrs in BRANCHES:
        w = {"alpha": np.array([0.3, -0.4, 0.0, 0.9, 0.25, -1.0])} if name == "prelu" else {}
        g.add_node(Node(name, "Activation", ["fc"], attrs=dict(attrs), weights=w), (6,))
    g.add_node(Node("maxi", "Merge", ["fc", "softsign"], attrs={"mode": "maximum"}), (6,))
    g.add_node(Node("mini", "Merge", ["elu", "thr", "htanh"], attrs={"mode": "minimum"}), (6,))
    g.add_node(Node("dot", "Dot", ["fc", "prelu"]), (1,))
    parts = [name for name, _ in BRANCHES] + ["maxi", "mini", "dot"]
    g.add_node(Node("cat", "Concatenate", parts, attrs={"axis": 0}), (6 * len(parts) - 5,))
    g.outputs = ["cat"]
    return g


def test_every_new_function_generates_and_names_its_rule() -> None:
    design = generate(convert(new_activations_graph(), CONFIG).graph, RtlOptions("lut"))
    files = "\n".join(design.files.values())
    for text in ("Activation elu, x < 0: table of 64", "Activation selu", "theta 0.5",
                 "clip to [-0.75, 2.5]", "Merge maximum of 2 inputs", "Merge minimum of 3",
                 "Dot of two 6-vectors"):
        assert text in files, text


def test_prelu_alpha_over_positions_is_a_backend_error() -> None:
    g = Graph(name="p")
    g.add_node(Node("x", "Input", [], attrs={"shape": (2, 3)}), (2, 3))
    g.add_node(Node("p", "Activation", ["x"], attrs={"function": "prelu"},
                    weights={"alpha": np.array([0.1, 0.2])}), (2, 3))
    g.outputs = ["p"]
    model = convert(g, {})  # alpha (2,) does not broadcast to (2, 3)
    with pytest.raises(BackendError, match=r"'p'.*alpha.*\(2,\)"):
        model.to_rtl()


def _simulate(style: str, per_stage: int | None, tmp_path: Path) -> None:
    model = convert(new_activations_graph(), CONFIG)
    project = RTLProject(model, tmp_path, style=style, adders_per_stage=per_stage)
    x = sample_inputs(model.graph.tensors["x"].type, 6, 600, seed=4)
    result = project.simulate(x)
    expected = model.predict(x)
    bad = np.argwhere(result.outputs != expected)
    assert bad.size == 0, (f"{len(bad)} values differ, first at {bad[0]} (block "
                           f"{bad[0][1] // 6} of the concatenation)")
    assert result.latency == project.latency
    over = model.overflow_report()
    assert over["maxi"]["result"] > 0 and over["selu"]["result"] > 0
    assert over["dot"]["result"] > 0


def with_verilator(fn: Any) -> Any:
    for mark in needs_verilator:
        fn = mark(fn)
    return fn


@with_verilator
def test_new_activations_match_emulator_lut(tmp_path: Path) -> None:
    _simulate("lut", None, tmp_path)


@pytest.mark.slow
@with_verilator
def test_new_activations_match_emulator_dsp_pipelined(tmp_path: Path) -> None:
    _simulate("dsp", 1, tmp_path)


def cnn_graph(seed: int = 1) -> Graph:
    """Conv 3x3 -> prelu (per channel) -> elu -> MaxPool 2 -> Flatten -> Dense -> softsign:
    the activations as per-pixel stages of a pixel stream."""
    rng = np.random.default_rng(seed)
    g = Graph(name="cnn_acts")
    g.add_node(Node("img", "Input", [], attrs={"shape": (6, 6, 2)}), (6, 6, 2))
    g.add_node(Node("conv", "Conv2D", ["img"], weights={"kernel": rng.normal(size=(3, 3, 2, 3)),
                                                        "bias": rng.normal(size=3)}), (4, 4, 3))
    g.add_node(Node("pre", "Activation", ["conv"], attrs={"function": "prelu"},
                    weights={"alpha": np.array([0.25, -0.5, 0.75])}), (4, 4, 3))
    g.add_node(Node("elu", "Activation", ["pre"], attrs={"function": "elu", "alpha": 0.5}),
               (4, 4, 3))
    g.add_node(Node("pool", "Pooling2D", ["elu"], attrs={"mode": "max", "pool_size": (2, 2)}),
               (2, 2, 3))
    g.add_node(Node("flat", "Flatten", ["pool"]), (12,))
    g.add_node(Node("fc", "Dense", ["flat"], weights={"kernel": rng.normal(size=(12, 4)) * 0.5,
                                                      "bias": rng.normal(size=4)}), (4,))
    g.add_node(Node("out", "Activation", ["fc"], attrs={"function": "softsign"}), (4,))
    g.outputs = ["out"]
    return g


CNN_CONFIG: dict[str, Any] = {
    "Model": {"Precision": "ap_fixed<10,4,AP_RND,AP_SAT>"},
    "LayerName": {
        "img": {"Precision": {"result": "ap_fixed<8,3,AP_RND,AP_SAT>"}},
        "conv": {"Precision": {"weight": "ap_fixed<6,2>"}},
        "pre": {"Precision": {"param": "ap_fixed<6,1,AP_RND,AP_SAT>"}},
        "elu": {"TableSize": 64, "TableRange": 4},
        "fc": {"Precision": {"weight": "ap_fixed<6,1>"}},
        "out": {"TableSize": 64, "TableRange": 8},
    },
}


@with_verilator
def test_new_activations_in_a_pixel_stream(tmp_path: Path) -> None:
    model = convert(cnn_graph(), CNN_CONFIG)
    project = RTLProject(model, tmp_path, style="lut")
    kinds = [s["kind"] for s in project.design.manifest()["stream"]["stages"]]
    assert kinds.count("pixel") == 2  # prelu and elu run per pixel
    x = sample_inputs(model.graph.tensors["img"].type, 72, 40, seed=6).reshape(-1, 6, 6, 2)
    result = project.simulate(x)
    assert np.array_equal(result.outputs, model.predict(x))
