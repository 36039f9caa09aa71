"""Passes: exact accumulator inference, batch-norm folding, fusion, dropout, warnings."""

from __future__ import annotations

import logging
from fractions import Fraction

import numpy as np
import pytest
from tests.graphs import mlp_graph

from nnfab.config import config_from_graph
from nnfab.ir import FixedType, Graph, Node, fixed, infer_shapes
from nnfab.passes import (
    FoldBatchNorm,
    FuseActivation,
    RemoveDropout,
    assign_precision,
    optimize_float,
    run_passes,
)


def _exact_range(
    x_type: FixedType, kernel: np.ndarray, bias: np.ndarray
) -> tuple[Fraction, Fraction]:
    """Extremes of sum_i x_i w_ij + b_j over all x in the type, in exact rationals."""
    lo_x, hi_x = Fraction(x_type.min), Fraction(x_type.max)
    lows, highs = [], []
    for j in range(kernel.shape[1]):
        terms = [(Fraction(w) * lo_x, Fraction(w) * hi_x) for w in kernel[:, j]]
        b = Fraction(bias[j])
        lows.append(sum(min(t) for t in terms) + b)
        highs.append(sum(max(t) for t in terms) + b)
    return min(lows), max(highs)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("x_spec", ["ap_fixed<16,6>", "ap_ufixed<8,3>", "ap_fixed<5,-1>"])
def test_auto_accumulator_is_exact_and_tight(seed: int, x_spec: str) -> None:
    rng = np.random.default_rng(seed)
    n_in, n_out = int(rng.integers(1, 40)), int(rng.integers(1, 6))
    g = Graph("t")
    g.add_node(Node("x", "Input", [], attrs={"shape": (n_in,)}), (n_in,), fixed(x_spec))
    kernel = rng.normal(0, 2, size=(n_in, n_out)) * (rng.random((n_in, n_out)) > 0.3)
    g.add_node(Node("d", "Dense", ["x"], weights={"kernel": kernel,
                                                  "bias": rng.normal(0, 3, size=n_out)}), (n_out,))
    g.outputs = ["d"]
    cfg = {"Model": {"Precision": "ap_fixed<10,4>"},
           "LayerName": {"x": {"Precision": {"result": x_spec}}}}
    g = assign_precision(g, cfg)
    node = g.node("d")
    w_t, b_t, acc = node.precision["weight"], node.precision["bias"], node.precision["accum"]
    wq, bq = w_t.quantize(kernel), acc.quantize(b_t.quantize(node.weights["bias"]))
    lo, hi = _exact_range(fixed(x_spec), wq, bq)
    assert acc.frac == max(fixed(x_spec).frac + w_t.frac, b_t.frac)
    assert Fraction(acc.min) <= lo and hi <= Fraction(acc.max)
    narrower = acc.replace(width=acc.width - 1, integer=acc.integer - 1)
    if acc.width > 1:
        assert lo < Fraction(narrower.min) or hi > Fraction(narrower.max)


def _bn_graph(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph("bn")
    g.add_node(Node("x", "Input", [], attrs={"shape": (5,)}), (5,))
    g.add_node(Node("d", "Dense", ["x"], weights={"kernel": rng.normal(size=(5, 3)),
                                                  "bias": rng.normal(size=3)}), (3,))
    g.add_node(Node("bn", "BatchNormalization", ["d"], weights={
        "scale": rng.uniform(0.5, 2, size=3), "bias": rng.normal(size=3)}), (3,))
    g.add_node(Node("drop", "Dropout", ["bn"]), (3,))
    g.add_node(Node("out", "Dense", ["drop"], weights={"kernel": rng.normal(size=(3, 2)),
                                                       "bias": rng.normal(size=2)}), (2,))
    g.outputs = ["out"]
    infer_shapes(g)
    return g


def _float_forward(g: Graph, x: np.ndarray) -> np.ndarray:
    """Plain float64 forward pass (Dense / BN / Dropout) written for the test."""
    values = {"x": x}
    for n in g.nodes[1:]:
        v = values[n.inputs[0]]
        if n.op == "Dense":
            v = v @ n.weights["kernel"] + n.weights["bias"]
        elif n.op == "BatchNormalization":
            v = v * n.weights["scale"] + n.weights["bias"]
        values[n.name] = v
    return values[g.outputs[0]]


def test_fold_batchnorm_and_remove_dropout_keep_float_function() -> None:
    g = _bn_graph()
    x = np.random.default_rng(1).normal(size=(50, 5))
    before = _float_forward(g, x)
    folded = run_passes(g.copy(), [RemoveDropout(), FoldBatchNorm()])
    assert [n.op for n in folded.nodes] == ["Input", "Dense", "Dense"]
    assert folded.node("d").attrs["folded_batchnorm"] == "bn"
    np.testing.assert_allclose(_float_forward(folded, x), before, rtol=1e-12, atol=1e-12)


def test_folded_batchnorm_name_accepts_a_result_type() -> None:
    g = optimize_float(_bn_graph())
    cfg = config_from_graph(g)
    cfg["LayerName"] = {"bn": {"Precision": {"result": "ap_fixed<12,5>"}}}
    g = assign_precision(g, cfg)
    assert g.tensors["d"].type == fixed("ap_fixed<12,5>")


def test_linear_identity_activation_removed_and_relu_fused_only_when_lossless() -> None:
    g = mlp_graph((3, 4, 2), activation="relu")
    # Default types: the dense result (16 bits) cannot hold the exact accumulator: no fusion.
    typed = assign_precision(g.copy(), {"Model": {"Precision": "ap_fixed<16,6>"}})
    assert typed.has_node("fc1_relu")
    # A result type wider than the accumulator makes the fusion lossless.
    cfg = {"Model": {"Precision": "ap_fixed<16,6>"},
           "LayerName": {"fc1": {"Precision": {"result": "ap_fixed<60,30>"}},
                         "fc1_relu": {"Precision": {"result": "ap_ufixed<12,4>"}}}}
    fused = assign_precision(g.copy(), cfg)
    assert not fused.has_node("fc1_relu")
    assert fused.node("fc1").attrs["activation"] == "relu"
    assert fused.tensors["fc1"].type == fixed("ap_ufixed<12,4>")


def test_fusion_changes_no_output() -> None:
    from nnfab.emulate import Emulator

    g = mlp_graph((6, 8, 3), seed=3)
    cfg = {"Model": {"Precision": "ap_fixed<16,6>"},
           "LayerName": {"fc1": {"Precision": {"result": "ap_fixed<60,30>"}},
                         "fc1_relu": {"Precision": {"result": "ap_ufixed<9,3,AP_RND,AP_SAT>"}}}}
    from nnfab.passes import ApplyConfig, InferPrecision

    unfused = run_passes(g.copy(), [ApplyConfig(cfg), InferPrecision()])
    fused = run_passes(unfused.copy(), [FuseActivation()])
    assert not fused.has_node("fc1_relu")
    x = np.random.default_rng(0).normal(0, 4, size=(500, 6))
    a = Emulator(unfused).run(x).outputs["fc2"]
    b = Emulator(fused).run(x).outputs["fc2"]
    assert np.array_equal(a, b)


def test_weights_outside_their_type_warn(caplog) -> None:
    g = mlp_graph((3, 2))
    g.node("fc1").weights["kernel"][0, 0] = 100.0
    with caplog.at_level(logging.WARNING):
        assign_precision(g, {"Model": {"Precision": "ap_fixed<8,3>"}})
    assert "fc1" in caplog.text and "kernel" in caplog.text and "ap_fixed<8,3>" in caplog.text


def test_weights_all_rounding_to_zero_warn(caplog) -> None:
    g = mlp_graph((3, 2))
    g.node("fc1").weights["kernel"][:] = 1e-4
    with caplog.at_level(logging.WARNING):
        assign_precision(g, {"Model": {"Precision": "ap_fixed<8,3>"}})
    assert "rounds to zero" in caplog.text


def test_degenerate_softmax_input_type_warns(caplog) -> None:
    g = mlp_graph((3, 4), softmax=True)
    cfg = {"Model": {"Precision": "ap_fixed<16,6>"},
           "LayerName": {"fc1": {"Precision": {"result": "ap_fixed<2,-7>"}}}}
    with caplog.at_level(logging.WARNING):
        assign_precision(g, cfg)
    assert "softmax" in caplog.text and "same output" in caplog.text


def test_degenerate_sigmoid_input_type_warns(caplog) -> None:
    g = mlp_graph((3, 4, 2), activation="sigmoid")
    cfg = {"Model": {"Precision": "ap_fixed<16,6>"},
           "LayerName": {"fc1": {"Precision": {"result": "ap_ufixed<3,-6>"}}}}
    with caplog.at_level(logging.WARNING):
        assign_precision(g, cfg)
    assert "fc1_sigmoid" in caplog.text and "constant" in caplog.text


def test_batchnorm_after_quantized_weights_is_not_folded() -> None:
    g = _bn_graph()
    g.node("d").precision["weight"] = fixed("ap_fixed<4,1>")  # e.g. set by a QKeras quantizer
    folded = run_passes(g, [FoldBatchNorm()])
    assert folded.has_node("bn")
