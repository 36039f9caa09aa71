"""Configuration: defaults, granularity, validation errors, YAML round trip, precedence."""

from __future__ import annotations

import logging

import pytest

import nnfab
from nnfab.config import config_from_graph, load_config, save_config, validate_config
from nnfab.errors import ConfigError
from nnfab.ir import fixed
from nnfab.passes import assign_precision
from tests.graphs import mlp_graph


def test_granularity_model_type_name() -> None:
    g = mlp_graph()
    model = config_from_graph(g, "model")
    assert model["Model"]["Precision"] == "ap_fixed<16,6>"
    assert set(model) == {"Model"}
    by_type = config_from_graph(g, "type")
    assert set(by_type["LayerType"]) == {"InputLayer", "Dense", "Activation"}
    by_name = config_from_graph(g, "name", default_precision="ap_fixed<12,4>",
                                default_reuse_factor=2)
    assert set(by_name["LayerName"]) == {"input", "fc1", "fc1_relu", "fc2"}
    assert by_name["LayerName"]["fc1"]["Precision"] == {
        "result": "ap_fixed<12,4>", "weight": "ap_fixed<12,4>", "bias": "ap_fixed<12,4>",
        "accum": "auto"}
    assert by_name["LayerName"]["fc1"]["ReuseFactor"] == 2


def test_name_config_round_trips_through_validation_and_yaml(tmp_path) -> None:
    g = mlp_graph()
    cfg = config_from_graph(g, "name")
    validate_config(cfg, g)
    save_config(cfg, tmp_path / "c.yml")
    assert load_config(tmp_path / "c.yml") == cfg


@pytest.mark.parametrize(
    ("cfg", "words"),
    [
        ({"Model": {"Precison": "ap_fixed<8,3>"}}, ["Precison", "allowed keys"]),
        ({"Model": {"Precision": "ap_fixed<8>"}}, ["Model.Precision", "ap_fixed<8>"]),
        ({"Model": {"ReuseFactor": 0}}, ["ReuseFactor", ">= 1"]),
        ({"Model": {"Strategy": "Fast"}}, ["Strategy", "Latency", "Resource"]),
        ({"Model": {"IOType": "io_serial"}}, ["IOType", "io_stream"]),
        ({"LayerName": {"fc9": {"ReuseFactor": 2}}}, ["fc9", "fc1", "fc2"]),
        ({"LayerName": {"fc1": {"Precision": {"table": "ap_fixed<8,3>"}}}}, ["table", "weight"]),
        ({"LayerName": {"fc1": {"Precision": {"accum": "ap_fixed<8,3,AP_RND>x"}}}},
         ["fc1", "accum"]),
        ({"LayerName": {"fc1": {"TableSize": 1024}}}, ["TableSize", "activation"]),
        ({"LayerName": {"fc1_relu": {"TableSize": 1000}}}, ["TableSize", "power of two"]),
        ({"LayerType": {"Dence": {"ReuseFactor": 2}}}, ["Dence", "Dense"]),
        ({"Models": {}}, ["Models", "LayerName"]),
    ],
)
def test_bad_config_names_the_field(cfg, words) -> None:
    with pytest.raises(ConfigError) as e:
        validate_config(cfg, mlp_graph())
    for w in words:
        assert w in str(e.value)


def test_known_but_absent_layer_type_warns(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        validate_config({"Model": {}, "LayerType": {"Conv2D": {"ReuseFactor": 2}}}, mlp_graph())
    assert "Conv2D" in caplog.text and "no effect" in caplog.text


def test_precedence_name_over_type_over_model() -> None:
    cfg = {
        "Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1},
        "LayerType": {"Dense": {"Precision": "ap_fixed<10,4>", "ReuseFactor": 2}},
        "LayerName": {"fc2": {"Precision": {"weight": "ap_fixed<6,2>"}, "ReuseFactor": 3,
                              "Strategy": "Resource"}},
    }
    g = assign_precision(mlp_graph(), cfg)
    fc1, fc2 = g.node("fc1"), g.node("fc2")
    assert fc1.precision["weight"] == fixed("ap_fixed<10,4>")
    assert g.tensors["fc1"].type == fixed("ap_fixed<10,4>")
    assert (fc1.reuse_factor, fc2.reuse_factor) == (2, 3)
    assert fc2.precision["weight"] == fixed("ap_fixed<6,2>")
    assert fc2.precision["bias"] == fixed("ap_fixed<10,4>")
    assert fc2.strategy == "Resource" and fc1.strategy == "Latency"
    assert g.tensors["fc1_relu"].type == fixed("ap_fixed<16,6>")


def test_saturating_accumulator_rejected() -> None:
    cfg = {"Model": {},
           "LayerName": {"fc1": {"Precision": {"accum": "ap_fixed<20,8,AP_TRN,AP_SAT>"}}}}
    with pytest.raises(nnfab.PrecisionError, match=r"fc1.*AP_WRAP"):
        assign_precision(mlp_graph(), cfg)
