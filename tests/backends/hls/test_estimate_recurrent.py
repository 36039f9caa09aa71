"""The HLS estimate of recurrent layers: products, multipliers and latency per time step."""

from __future__ import annotations

import numpy as np

import nnfab
from nnfab.ir import Graph, Node, infer_shapes


def _lstm_graph(steps: int = 5, n_in: int = 3, units: int = 4) -> Graph:
    rng = np.random.default_rng(0)
    g = Graph("lstm")
    g.add_node(Node("x", "Input", [], attrs={"shape": (steps, n_in)}), (steps, n_in))
    kernel = rng.normal(0, 0.5, (n_in, 4 * units))
    kernel[0, 0] = 0.0  # one zero weight: one multiplier less
    g.add_node(Node("lstm", "LSTM", ["x"], attrs={"units": units}, weights={
        "kernel": kernel, "recurrent_kernel": rng.normal(0, 0.5, (units, 4 * units)),
        "bias": np.zeros(4 * units)}, source_class="LSTM"), (units,))
    g.outputs = ["lstm"]
    infer_shapes(g)
    return g


def test_lstm_estimate_counts_every_gate_product_and_the_steps() -> None:
    steps, n_in, units = 5, 3, 4
    hm = nnfab.convert_graph(_lstm_graph(steps, n_in, units), {})
    row = next(r for r in hm.estimate().layers if r.op == "LSTM")
    per_step = 4 * units * (n_in + units)  # four gates, input and recurrent products
    assert row.products == steps * per_step
    assert row.multipliers == per_step - 1
    assert row.latency_cycles >= steps * 3  # at least sum, table and state per step
    assert row.ii_cycles == row.latency_cycles  # samples do not overlap a recurrence
    assert row.weight_bits == (n_in + units) * 4 * units * 16  # ap_fixed<16,6> weights


def test_zoo_layers_are_estimated_not_zero() -> None:
    rng = np.random.default_rng(1)
    g = Graph("zoo")
    g.add_node(Node("x", "Input", [], attrs={"shape": (4, 2)}), (4, 2))
    kernel = rng.normal(0, 0.5, (3, 2, 5))  # (taps, channels, filters)
    g.add_node(Node("ct", "Conv1DTranspose", ["x"], attrs={"strides": (2,)},
                    weights={"kernel": kernel, "bias": np.zeros(5)}), (1,))
    g.add_node(Node("mt", "MultiThreshold", ["ct"], weights={
        "thresholds": np.sort(rng.normal(0, 1, (5, 3)), axis=1)}), (1,))
    g.outputs = ["mt"]
    infer_shapes(g)
    hm = nnfab.convert_graph(g, {})
    rows = {r.name: r for r in hm.estimate().layers}
    # each of the 4 x 2 input values meets every tap and filter: 4 * 2 * 3 * 5 products
    assert rows["ct"].products == 4 * 2 * 3 * 5 == rows["ct"].multipliers
    assert rows["ct"].weight_bits == kernel.size * 16
    assert rows["mt"].multipliers == 0 and rows["mt"].weight_bits > 0
