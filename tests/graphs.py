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
