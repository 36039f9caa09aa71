"""Small hand-built IR graphs shared by tests."""

from __future__ import annotations

import itertools

import numpy as np

from nnfab.ir import Graph, Node, infer_shapes


def mlp_graph(sizes: tuple[int, ...] = (4, 3, 2), seed: int = 0, activation: str = "relu",
              softmax: bool = False) -> Graph:
    """Input -> (Dense -> Activation)* -> Dense [-> Softmax], float weights."""
    rng = np.random.default_rng(seed)
    g = Graph("mlp")
    g.add_node(Node("input", "Input", [], attrs={"shape": (sizes[0],)}, source_class="InputLayer"),
               (sizes[0],))
    prev = "input"
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        name = f"fc{i + 1}"
        g.add_node(Node(name, "Dense", [prev], weights={
            "kernel": rng.normal(0, 0.5, size=(n_in, n_out)),
            "bias": rng.normal(0, 0.1, size=n_out)}, source_class="Dense"), (n_out,))
        prev = name
        if i < len(sizes) - 2:
            act = f"{name}_{activation}"
            g.add_node(Node(act, "Activation", [prev], attrs={"function": activation},
                            source_class="Activation"), (n_out,))
            prev = act
    if softmax:
        g.add_node(Node("softmax", "Softmax", [prev], attrs={"axis": -1}, source_class="Softmax"),
                   (sizes[-1],))
        prev = "softmax"
    g.outputs = [prev]
    infer_shapes(g)
    return g


ZOO_NARROW_CONFIG: dict = {
    # rounded products in narrow wrapping accumulators, saturating norm types: the zoo
    # chain idx -> emb (Embedding) -> ct1 (Conv1DTranspose) -> ln (LayerNormalization)
    "Model": {"Precision": "ap_fixed<10,4,AP_RND_CONV,AP_SAT>"},
    "LayerName": {
        "idx": {"Precision": {"result": "ap_uint<4>"}},  # 11..15: outside the table
        "emb": {"Precision": {"weight": "ap_fixed<7,3,AP_RND,AP_SAT>",
                              "result": "ap_fixed<6,3,AP_RND_CONV,AP_SAT>"}},
        "ct1": {"Precision": {"weight": "ap_fixed<6,1,AP_RND_CONV,AP_SAT>",
                              "accum": "ap_fixed<9,4,AP_RND>",
                              "result": "ap_fixed<8,4,AP_RND,AP_SAT>"}},
        "ln": {"Precision": {"mean": "ap_fixed<9,4,AP_RND,AP_SAT>",
                             "var": "ap_ufixed<9,4,AP_RND_CONV,AP_SAT>",
                             "table": "ap_ufixed<10,4,AP_RND_CONV,AP_SAT>",
                             "norm": "ap_fixed<7,1,AP_RND,AP_SAT>",
                             "scale": "ap_ufixed<8,1,AP_RND_CONV,AP_SAT>",
                             "weight": "ap_fixed<7,2,AP_RND_CONV,AP_SAT>",
                             "result": "ap_fixed<7,2,AP_RND_CONV,AP_WRAP>"}},
    },
}
"""Types for the zoo layers' chain (tests/backends/hls/test_zoo_csim.py and rtl)."""
