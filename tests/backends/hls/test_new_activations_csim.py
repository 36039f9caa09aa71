"""New activations, maximum / minimum merges and Dot: C simulation == emulator, bit for bit.

One small model holds every new function (two g++ builds: io_parallel and io_stream); the
emulator is checked against integer references in tests/emulate/test_new_activations.py
and test_minmax_merge.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hls_helpers import edge_inputs, needs_gxx

import nnfab
from nnfab.backends.hls import CSimLibrary, write_project
from nnfab.errors import BackendError
from nnfab.ir import Graph, Node

pytestmark = needs_gxx

BRANCHES: list[tuple[str, dict[str, Any]]] = [
    ("elu", {"function": "elu", "alpha": 0.7}),
    ("celu", {"function": "celu", "alpha": 2.0}),
    ("selu", {"function": "selu"}),
    ("softplus", {"function": "softplus"}),
    ("softsign", {"function": "softsign"}),
    ("ncdf", {"function": "normal_cdf"}),
    ("ncdft", {"function": "normal_cdf_tanh"}),
    ("prelu", {"function": "prelu"}),
    ("thr", {"function": "thresholded_relu", "theta": 1 / 3}),
    ("htanh", {"function": "hard_tanh", "min_val": -0.75, "max_val": 2.5}),
    ("hsig6", {"function": "hard_sigmoid", "slope": 1 / 6, "offset": 0.5}),
]

CONFIG: dict[str, Any] = {
    "Model": {"Precision": "ap_fixed<12,5,AP_RND_CONV,AP_SAT>"},
    "LayerName": {
        "x": {"Precision": {"result": "ap_fixed<10,4,AP_RND,AP_SAT>"}},
        "fc": {"Precision": {"accum": "ap_fixed<16,6>", "result": "ap_fixed<11,5>"}},
        "elu": {"TableSize": 128, "TableRange": 4,
                "Precision": {"result": "ap_fixed<8,3,AP_RND,AP_SAT>"}},
        "celu": {"Precision": {"table": "ap_fixed<10,2,AP_RND,AP_SAT>"}},
        "selu": {"Precision": {"param": "ap_fixed<8,2,AP_RND>",
                               "result": "ap_fixed<9,4,AP_TRN,AP_SAT_SYM>"}},
        "softplus": {"TableSize": 256, "TableRange": 4},
        "ncdf": {"TableSize": 128, "TableRange": 4},
        "ncdft": {"TableSize": 64, "TableRange": 2,
                  "Precision": {"table": "ap_ufixed<10,1,AP_RND,AP_SAT>"}},
        "prelu": {"Precision": {"param": "ap_fixed<6,1,AP_RND_CONV,AP_SAT>",
                                "result": "ap_fixed<8,3,AP_RND_ZERO,AP_SAT>"}},
        "thr": {"Precision": {"result": "ap_ufixed<6,3,AP_RND,AP_SAT>"}},
        "htanh": {"Precision": {"result": "ap_fixed<6,2,AP_RND_INF,AP_SAT>"}},
        "maxi": {"Precision": {"result": "ap_fixed<7,3,AP_RND,AP_SAT>"}},
        "mini": {"Precision": {"result": "ap_fixed<12,5>"}},
        "dot": {"Precision": {"result": "ap_fixed<11,7,AP_RND_CONV,AP_SAT>"}},
    },
}


def new_activations_graph(seed: int = 0) -> Graph:
    """A Dense on a (3, 8) input feeding every new activation, then max / min merges."""
    rng = np.random.default_rng(seed)
    g = Graph(name="new_acts")
    g.add_node(Node("x", "Input", [], attrs={"shape": (3, 8)}), (3, 8))
    weights = {"kernel": rng.normal(0, 1, (8, 6)), "bias": rng.normal(0, 1, 6)}
    g.add_node(Node("fc", "Dense", ["x"], weights=weights), (3, 6))
    for name, attrs in BRANCHES:
        w = {"alpha": rng.uniform(-0.5, 0.9, 6)} if name == "prelu" else {}
        g.add_node(Node(name, "Activation", ["fc"], attrs=dict(attrs), weights=w), (3, 6))
    g.add_node(Node("maxi", "Merge", ["fc", "softsign"], attrs={"mode": "maximum"}), (3, 6))
    g.add_node(Node("mini", "Merge", ["elu", "thr", "htanh"], attrs={"mode": "minimum"}),
               (3, 6))
    g.add_node(Node("flat_a", "Flatten", ["fc"]), (18,))
    g.add_node(Node("flat_b", "Flatten", ["prelu"]), (18,))
    g.add_node(Node("dot", "Dot", ["flat_a", "flat_b"]), (1,))
    g.outputs = [name for name, _ in BRANCHES] + ["maxi", "mini", "dot"]
    return g


def _check(model: Any, cache: Path) -> None:
    lib = CSimLibrary(model, cache_dir=cache)
    rng = np.random.default_rng(2)
    x_type = model.graph.tensors["x"].type
    x = np.concatenate([rng.normal(0, 3, (800, 3, 8)), edge_inputs(x_type, (3, 8), 800)])
    got, want = lib.predict(x), model.predict(x)
    assert isinstance(got, list) and len(got) == len(want)
    for name, g_out, w_out in zip(model.graph.outputs, got, want, strict=True):
        bad = np.argwhere(g_out != w_out)
        assert bad.size == 0, (f"{name}: {len(bad)} values differ, first at {bad[0]}: C++ "
                               f"{g_out[tuple(bad[0])]!r}, emulator {w_out[tuple(bad[0])]!r}")
        assert np.unique(w_out).size > 3, f"{name}: the test inputs leave it nearly constant"
    if model.io_type == "io_parallel":
        assert model.overflow_report()["dot"]["result"] > 0  # saturates sometimes


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_new_activations_and_extrema_match_emulator(io_type: str, csim_cache: Path) -> None:
    model = nnfab.convert_graph(new_activations_graph(), CONFIG, io_type=io_type)
    assert model.graph.node("elu").attrs["table_size"] == 128
    _check(model, csim_cache)
    over = model.overflow_report()
    assert over["maxi"]["result"] > 0  # the saturation of the maximum is exercised


def test_prelu_alpha_over_positions_needs_io_parallel(tmp_path: Path) -> None:
    g = Graph(name="p")
    g.add_node(Node("x", "Input", [], attrs={"shape": (2, 3)}), (2, 3))
    g.add_node(Node("p", "Activation", ["x"], attrs={"function": "prelu"},
                    weights={"alpha": np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])}), (2, 3))
    g.outputs = ["p"]
    model = nnfab.convert_graph(g, io_type="io_stream")
    with pytest.raises(BackendError, match=r"'p'.*alpha.*\(2, 3\)"):
        write_project(model, tmp_path / "prj")
