"""Reuse-factor rules of Strategy Resource: valid values, nearest choice, strict policy."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import nnfab
from nnfab.errors import ConfigError
from nnfab.ir import Graph, Node
from nnfab.passes.check_reuse_factor import nearest_reuse_factor, reuse_factors_for


def brute_force_valid(n_in: int, n_out: int) -> list[int]:
    """Every R in 1..n_in*n_out that folds the products evenly, by definition."""
    out = []
    for r in range(1, n_in * n_out + 1):
        if (r <= n_in and n_in % r == 0) or (r % n_in == 0 and n_out % (r // n_in) == 0):
            out.append(r)
    return out


def conv_graph(kernel: tuple[int, ...], op: str = "Conv2D") -> Graph:
    rng = np.random.default_rng(0)
    g = Graph(name="conv")
    h, w = 6, 6
    channels = kernel[-2]
    g.add_node(Node("img", "Input", [], attrs={"shape": (h, w, channels)}), (h, w, channels))
    n_out = kernel[-1] * (channels if op.startswith("Depthwise") else 1)
    weights = {"kernel": rng.normal(0, 1, kernel), "bias": np.zeros(n_out)}
    out_shape = (h - kernel[0] + 1, w - kernel[1] + 1, n_out)
    g.add_node(Node("conv", op, ["img"], weights=weights), out_shape)
    g.outputs = ["conv"]
    return g


def dense_graph(n_in: int, n_out: int) -> Graph:
    g = Graph(name="dense")
    g.add_node(Node("x", "Input", [], attrs={"shape": (n_in,)}), (n_in,))
    weights = {"kernel": np.ones((n_in, n_out)), "bias": np.zeros(n_out)}
    g.add_node(Node("fc", "Dense", ["x"], weights=weights), (n_out,))
    g.outputs = ["fc"]
    return g


@pytest.mark.parametrize("n_in,n_out", [(9, 32), (1, 1), (16, 64), (12, 5), (7, 13), (64, 1)])
def test_valid_values_match_the_definition(n_in: int, n_out: int) -> None:
    assert reuse_factors_for(n_in, n_out) == brute_force_valid(n_in, n_out)


def test_issue_example_conv_3x3_single_channel_32_filters() -> None:
    model = nnfab.convert_graph(conv_graph((3, 3, 1, 32)))
    assert nnfab.valid_reuse_factors(model.graph.node("conv")) == [1, 3, 9, 18, 36, 72, 144, 288]


def test_layer_shapes_of_dense_conv_and_depthwise() -> None:
    dense = nnfab.convert_graph(dense_graph(10, 6)).graph.node("fc")
    assert nnfab.valid_reuse_factors(dense) == brute_force_valid(10, 6)
    conv = nnfab.convert_graph(conv_graph((2, 3, 4, 5))).graph.node("conv")  # n_in = 2*3*4
    assert nnfab.valid_reuse_factors(conv) == brute_force_valid(24, 5)
    dw = nnfab.convert_graph(conv_graph((3, 3, 4, 2), "DepthwiseConv2D")).graph.node("conv")
    assert nnfab.valid_reuse_factors(dw) == brute_force_valid(9, 8)  # taps x (C*M)
    with pytest.raises(ConfigError, match=r"'x' \(Input\) has no reuse factor"):
        nnfab.valid_reuse_factors(nnfab.convert_graph(dense_graph(3, 2)).graph.node("x"))


def test_nearest_value_ties_go_to_the_smaller() -> None:
    valid = [1, 3, 9, 18, 36]
    assert nearest_reuse_factor(4, valid) == 3
    assert nearest_reuse_factor(6, valid) == 3  # |6-3| == |6-9|: the smaller
    assert nearest_reuse_factor(7, valid) == 9
    assert nearest_reuse_factor(27, valid) == 18  # tie between 18 and 36
    assert nearest_reuse_factor(1000, valid) == 36


def test_invalid_resource_value_warns_and_uses_the_nearest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = {"Model": {"Precision": "ap_fixed<16,6>", "Strategy": "Resource", "ReuseFactor": 4}}
    with caplog.at_level(logging.WARNING, logger="nnfab.passes.check_reuse_factor"):
        model = nnfab.convert_graph(conv_graph((3, 3, 1, 32)), config)
    assert model.graph.node("conv").reuse_factor == 3
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "'conv'" in message and "1, 3, 9, 18, 36, 72, 144, 288" in message
    assert "ReuseFactor 4" in message and message.endswith("using 3")


def test_valid_value_and_latency_strategy_are_left_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="nnfab.passes.check_reuse_factor"):
        resource = nnfab.convert_graph(conv_graph((3, 3, 1, 32)), {
            "Model": {"Precision": "ap_fixed<16,6>", "Strategy": "Resource", "ReuseFactor": 72}})
        latency = nnfab.convert_graph(conv_graph((3, 3, 1, 32)), {
            "Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 4}})
    assert resource.graph.node("conv").reuse_factor == 72
    assert latency.graph.node("conv").reuse_factor == 4
    assert not caplog.records


def test_strict_policy_raises() -> None:
    config = {
        "Model": {"Precision": "ap_fixed<16,6>", "ReuseFactorPolicy": "strict"},
        "LayerName": {"fc": {"Strategy": "Resource", "ReuseFactor": 7}},
    }
    with pytest.raises(ConfigError, match=r"layer 'fc'.*ReuseFactor 7.*1, 2, 5, 10, 20, 30, 60"):
        nnfab.convert_graph(dense_graph(10, 6), config)
