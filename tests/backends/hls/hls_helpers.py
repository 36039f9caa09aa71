"""Graph builders and edge-case inputs shared by the HLS backend tests."""

from __future__ import annotations

import itertools
import shutil
from typing import Any

import numpy as np
import pytest

from nnfab.ir import FixedType, Graph, Node

GXX = shutil.which("g++")
needs_gxx = pytest.mark.skipif(GXX is None, reason="g++ not installed")


def mlp_graph(
    sizes: tuple[int, ...] = (16, 64, 32, 32, 5), seed: int = 0, softmax: bool = True
) -> Graph:
    """Dense layers with relu activations between them, optionally a softmax at the end."""
    rng = np.random.default_rng(seed)
    g = Graph(name="mlp")
    g.add_node(Node("x", "Input", [], attrs={"shape": (sizes[0],)}), (sizes[0],))
    prev = "x"
    for k, (a, b) in enumerate(itertools.pairwise(sizes)):
        name = f"fc{k + 1}"
        weights = {"kernel": rng.normal(0, 0.6, (a, b)), "bias": rng.normal(0, 0.3, b)}
        g.add_node(Node(name, "Dense", [prev], weights=weights), (b,))
        prev = name
        if k < len(sizes) - 2:
            g.add_node(Node(f"relu{k + 1}", "Activation", [prev], attrs={"function": "relu"}), (b,))
            prev = f"relu{k + 1}"
    if softmax:
        g.add_node(Node("softmax", "Softmax", [prev]), (sizes[-1],))
        prev = "softmax"
    g.outputs = [prev]
    return g


def activations_graph(seed: int = 0) -> Graph:
    """One Dense on a (3, 8) input feeding every activation, plus odd layer names."""
    rng = np.random.default_rng(seed)
    g = Graph(name="acts")
    g.add_node(Node("in put", "Input", [], attrs={"shape": (3, 8)}), (3, 8))
    weights = {"kernel": rng.normal(0, 1, (8, 6)), "bias": rng.normal(0, 1, 6)}
    g.add_node(Node("1st-dense", "Dense", ["in put"], weights=weights), (3, 6))
    branches: list[tuple[str, dict[str, Any]]] = [
        ("relu6", {"function": "relu", "max_value": 6.0}),
        ("leaky", {"function": "leaky_relu", "alpha": 0.3}),
        ("sigmoïd", {"function": "sigmoid"}),
        ("tanh", {"function": "tanh"}),
        ("hard", {"function": "hard_sigmoid", "slope": 0.2, "offset": 0.5}),
        ("size", {"function": "linear"}),
        ("int8", {"function": "relu"}),
        ("class", {"function": "relu", "max_value": 1.5}),
    ]
    for name, attrs in branches:
        g.add_node(Node(name, "Activation", ["1st-dense"], attrs=attrs), (3, 6))
    g.add_node(Node("2 soft max", "Softmax", ["1st-dense"]), (3, 6))
    g.add_node(Node("flat", "Flatten", ["2 soft max"]), (18,))
    g.outputs = [name for name, _ in branches] + ["flat"]
    return g


ACTIVATIONS_CONFIG: dict[str, Any] = {
    "Model": {"Precision": "ap_fixed<12,5,AP_RND_CONV,AP_SAT>"},
    "LayerName": {
        "in put": {"Precision": {"result": "ap_fixed<10,4,AP_RND,AP_SAT_SYM>"}},
        "1st-dense": {"Precision": {"accum": "ap_fixed<14,5,AP_RND_ZERO>",
                                    "result": "ap_fixed<12,5>"}},
        "size": {"Precision": {"result": "ap_ufixed<6,2,AP_RND_INF,AP_SAT_ZERO>"}},
        "int8": {"Precision": {"result": "ap_int<4>"}},
        "sigmoïd": {"TableSize": 256, "TableRange": 4},
        "tanh": {"Precision": {"table": "ap_fixed<10,2,AP_RND,AP_SAT>"}},
        "leaky": {"Precision": {"param": "ap_fixed<6,1,AP_RND_CONV,AP_SAT>"}},
        "2 soft max": {"TableSize": 512, "Precision": {"exp_sum": "ap_ufixed<12,2,AP_TRN,AP_SAT>"}},
    },
}


def edge_values(t: FixedType, rng: np.random.Generator, n_random: int) -> np.ndarray:
    """Values that stress a cast to ``t``: ties, grid points, range edges, far outside, random."""
    lsb = t.lsb
    ties = (np.arange(-6, 6) + 0.5) * lsb
    edges = np.array([t.min, t.max, t.max + lsb / 2, t.min - lsb / 2, t.max + lsb, t.min - lsb,
                      -t.max, -t.max - lsb / 2, 4 * t.max, 4 * t.min - 3 * lsb, 0.0, lsb, -lsb])
    span = max(t.max - t.min, lsb)
    noise = rng.uniform(t.min - span / 2, t.max + span / 2, n_random)
    return np.concatenate([ties, edges, noise])


def edge_inputs(t: FixedType, shape: tuple[int, ...], n: int, seed: int = 0) -> np.ndarray:
    """A batch of ``n`` inputs of ``shape`` drawn from ``edge_values`` of ``t``."""
    rng = np.random.default_rng(seed)
    pool = edge_values(t, rng, 200)
    return rng.choice(pool, size=(n, *shape))


def cnn_graph(seed: int = 0) -> Graph:
    """Conv1D/2D, depthwise, pooling (padded), global pooling (max, avg, sum), batch norm,
    merges and concatenation."""
    rng = np.random.default_rng(seed)
    g = Graph(name="cnn")

    def conv(name: str, src: str, op: str, kernel: tuple[int, ...], shape: tuple[int, ...],
             **attrs: Any) -> None:
        n_out = kernel[-1] * (kernel[-2] if op.startswith("Depthwise") else 1)
        weights = {"kernel": rng.normal(0, 0.5, kernel), "bias": rng.normal(0, 0.2, n_out)}
        g.add_node(Node(name, op, [src], attrs=attrs, weights=weights), shape)

    g.add_node(Node("img", "Input", [], attrs={"shape": (7, 6, 3)}), (7, 6, 3))
    conv("c2", "img", "Conv2D", (3, 3, 3, 4), (4, 6, 4), strides=(2, 1), pads=(1, 1, 1, 1))
    g.add_node(Node("r2", "Activation", ["c2"], attrs={"function": "relu"}), (4, 6, 4))
    conv("dw", "r2", "DepthwiseConv2D", (2, 2, 4, 2), (3, 5, 8))
    g.add_node(Node("bn", "BatchNormalization", ["dw"], weights={
        "scale": rng.normal(1, 0.3, 8), "bias": rng.normal(0, 0.3, 8)}), (3, 5, 8))
    g.add_node(Node("mp", "Pooling2D", ["bn"], attrs={
        "mode": "max", "pool_size": (2, 2), "strides": (2, 2), "pads": (0, 1, 0, 1)}), (2, 3, 8))
    g.add_node(Node("ap", "Pooling2D", ["bn"], attrs={
        "mode": "avg", "pool_size": (2, 3), "strides": (1, 2), "pads": (0, 0, 1, 1)}), (2, 3, 8))
    g.add_node(Node("add", "Merge", ["mp", "ap", "mp"], attrs={"mode": "add"}), (2, 3, 8))
    g.add_node(Node("sub", "Merge", ["mp", "ap"], attrs={"mode": "subtract"}), (2, 3, 8))
    g.add_node(Node("mul", "Merge", ["mp", "ap"], attrs={"mode": "multiply"}), (2, 3, 8))
    g.add_node(Node("avg", "Merge", ["mp", "ap", "add"], attrs={"mode": "average"}), (2, 3, 8))
    g.add_node(Node("cat", "Concatenate", ["add", "sub", "mul", "avg"], attrs={"axis": 1}),
               (2, 12, 8))
    g.add_node(Node("gap", "GlobalPooling2D", ["cat"], attrs={"mode": "avg"}), (8,))
    g.add_node(Node("gmp", "GlobalPooling2D", ["cat"], attrs={"mode": "max"}), (8,))
    g.add_node(Node("seq", "Reshape", ["cat"], attrs={"target_shape": (24, 8)}), (24, 8))
    conv("c1", "seq", "Conv1D", (3, 8, 5), (12, 5), strides=(2,), pads=(1, 0))
    g.add_node(Node("p1", "Pooling1D", ["c1"], attrs={"mode": "avg", "pool_size": (3,),
                                                     "pads": (1, 1)}), (4, 5))
    conv("dw1", "p1", "DepthwiseConv1D", (2, 5, 1), (3, 5))
    g.add_node(Node("g1", "GlobalPooling1D", ["dw1"], attrs={"mode": "max"}), (5,))
    g.add_node(Node("gs1", "GlobalPooling1D", ["dw1"], attrs={"mode": "sum"}), (5,))
    g.add_node(Node("cat0", "Concatenate", ["gap", "gmp", "g1", "gs1"], attrs={"axis": 0}),
               (26,))
    g.outputs = ["cat0", "cat"]
    return g


def strategies_graph(seed: int = 0, big: bool = True) -> Graph:
    """Dense, Conv1D/2D and depthwise layers side by side, for strategy x reuse-factor tests.

    Inputs: ``x`` (2, 72) (Dense acts on the last axis, two rows), ``img`` (6, 5, 3) and
    ``seq`` (10, 4). Layer names say the strategy and reuse factor the tests configure.
    """
    rng = np.random.default_rng(seed)
    g = Graph(name="strategies")
    g.add_node(Node("x", "Input", [], attrs={"shape": (2, 72)}), (2, 72))
    g.add_node(Node("img", "Input", [], attrs={"shape": (6, 5, 3)}), (6, 5, 3))
    g.add_node(Node("seq", "Input", [], attrs={"shape": (10, 4)}), (10, 4))
    outputs = []

    def add(name: str, op: str, src: str, kernel: tuple[int, ...], shape: tuple[int, ...],
            **attrs: Any) -> None:
        n_out = kernel[-1] * (kernel[-2] if op.startswith("Depthwise") else 1)
        weights = {"kernel": rng.normal(0, 0.5, kernel), "bias": rng.normal(0, 0.3, n_out)}
        weights["kernel"].flat[::7] = 0.0  # zero weights (estimates skip them)
        g.add_node(Node(name, op, [src], attrs=attrs, weights=weights), shape)
        outputs.append(name)

    for name in ("d_lat1", "d_lat3", "d_res4", "d_res144", "d_res720", "d_res_odd"):
        add(name, "Dense", "x", (72, 10), (2, 10))
    if big:
        add("d_big_lat", "Dense", "x", (72, 60), (2, 60))  # 4320 products > 4096
        add("d_big_res", "Dense", "x", (72, 60), (2, 60))
    conv = {"strides": (2, 1), "pads": (1, 1, 1, 1)}
    for name in ("c_lat1", "c_lat2", "c_res9", "c_res54", "c_res_odd"):
        add(name, "Conv2D", "img", (3, 3, 3, 4), (3, 5, 4), **conv)
    for name in ("dw_lat1", "dw_res8", "dw_res_odd"):
        add(name, "DepthwiseConv2D", "img", (2, 2, 3, 2), (5, 4, 6))
    for name in ("c1_lat1", "c1_res6", "c1_res60"):
        add(name, "Conv1D", "seq", (3, 4, 5), (5, 5), strides=(2,), pads=(1, 0))
    for name in ("dw1_lat2", "dw1_res6"):
        add(name, "DepthwiseConv1D", "seq", (3, 4, 2), (10, 8), pads=(1, 1))
    g.outputs = outputs
    return g


STRATEGIES_CONFIG: dict[str, Any] = {
    "Model": {"Precision": "ap_fixed<12,4,AP_RND_CONV,AP_SAT>"},
    "LayerName": {
        "x": {"Precision": {"result": "ap_fixed<9,3,AP_RND,AP_SAT>"}},
        "img": {"Precision": {"result": "ap_fixed<8,3,AP_RND_INF,AP_SAT_SYM>"}},
        "d_lat3": {"ReuseFactor": 3},
        "d_res4": {"Strategy": "Resource", "ReuseFactor": 4,
                   "Precision": {"accum": "ap_fixed<14,4,AP_RND>"}},  # rounds and wraps
        "d_res144": {"Strategy": "Resource", "ReuseFactor": 144},
        "d_res720": {"Strategy": "Resource", "ReuseFactor": 720},
        "d_res_odd": {"Strategy": "Resource"},
        "d_big_res": {"Strategy": "Resource", "ReuseFactor": 1},  # (absent when not big)
        "c_lat2": {"ReuseFactor": 2},
        "c_res9": {"Strategy": "Resource", "ReuseFactor": 9,
                   "Precision": {"accum": "ap_fixed<13,4,AP_RND_ZERO>"}},
        "c_res54": {"Strategy": "Resource", "ReuseFactor": 54},
        "c_res_odd": {"Strategy": "Resource"},
        "dw_res8": {"Strategy": "Resource", "ReuseFactor": 8},
        "dw_res_odd": {"Strategy": "Resource"},
        "c1_res6": {"Strategy": "Resource", "ReuseFactor": 6},
        "c1_res60": {"Strategy": "Resource", "ReuseFactor": 60},
        "dw1_lat2": {"ReuseFactor": 2},
        "dw1_res6": {"Strategy": "Resource", "ReuseFactor": 6},
    },
}
ODD_REUSE_FACTORS = {"d_res_odd": 7, "c_res_odd": 5, "dw_res_odd": 3}
"""Reuse factors that do not fold evenly, set after the passes (the C++ must still be exact)."""
