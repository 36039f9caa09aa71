"""A Model-level setting shadowed by per-layer entries is reported once; the helper that
applies it to every layer."""

from __future__ import annotations

import logging

import pytest

import nnfab
from nnfab.config import config_from_graph, set_model_setting, shadowed_model_settings
from nnfab.errors import ConfigError
from tests.graphs import mlp_graph

LOGGER = "nnfab.config"


def _shadow_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == LOGGER and r.levelno == logging.WARNING and "keep their own" in r.message]


def _convert(cfg: dict) -> nnfab.NnfabModel:
    return nnfab.convert_graph(mlp_graph((4, 6, 5, 2)), cfg)


def test_changed_model_reuse_factor_warns_once_with_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    graph = mlp_graph((4, 6, 5, 2))  # input, fc1, fc1_relu, fc2, fc2_relu, fc3
    cfg = config_from_graph(graph, granularity="name")
    cfg["Model"]["ReuseFactor"] = 2
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        hm = _convert(cfg)
    records = _shadow_warnings(caplog)
    assert len(records) == 1
    message = records[0].getMessage()
    assert "5 of 5 layers" in message  # every layer but the input carries ReuseFactor 1
    assert "ReuseFactor" in message and "set_model_setting" in message
    # the warning says what happened: the layers kept their own value
    assert {n.reuse_factor for n in hm.graph.nodes if n.op == "Dense"} == {1}


def test_no_warning_without_shadowing(caplog: pytest.LogCaptureFixture) -> None:
    graph = mlp_graph((4, 6, 5, 2))
    cfg = config_from_graph(graph, granularity="name")
    cfg["LayerName"]["fc1"]["ReuseFactor"] = 3  # one layer set on purpose, Model unchanged
    cfg["LayerName"]["fc2"]["Precision"]["weight"] = "ap_fixed<8,2>"
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        hm = _convert(cfg)
        _convert({"Model": {"ReuseFactor": 2}})  # nothing per layer: nothing to shadow
        _convert(config_from_graph(graph, granularity="model"))
    assert _shadow_warnings(caplog) == []
    assert hm.graph.node("fc1").reuse_factor == 3


def test_few_deliberate_layers_are_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    graph = mlp_graph((4, 6, 5, 2))
    cfg = config_from_graph(graph, granularity="name")
    cfg["Model"]["ReuseFactor"] = 2
    for name in ("fc2", "fc2_relu", "fc3"):  # 3 of 5 follow Model, 2 keep 1
        cfg["LayerName"][name]["ReuseFactor"] = 2
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        _convert(cfg)
    assert _shadow_warnings(caplog) == []
    # most layers still carry the generator's value while Model says otherwise: reported
    cfg["LayerName"]["fc2"]["ReuseFactor"] = 1
    cfg["LayerName"]["fc3"]["ReuseFactor"] = 1
    found = shadowed_model_settings(cfg, mlp_graph((4, 6, 5, 2)))
    assert [(s.key, s.layer_value, s.layers) for s in found] == [
        ("ReuseFactor", 1, ["fc1", "fc1_relu", "fc2", "fc3"])]


def test_changed_model_precision_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    graph = mlp_graph((4, 6, 5, 2))
    cfg = config_from_graph(graph, granularity="name")
    cfg["Model"]["Precision"] = "ap_fixed<10,4>"
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        _convert(cfg)
    records = _shadow_warnings(caplog)
    assert len(records) == 1
    assert "Model.Precision" in records[0].getMessage()
    assert "6 of 6 layers" in records[0].getMessage()  # the input's result type too
    # by type granularity the LayerType entries shadow it the same way
    cfg = config_from_graph(graph, granularity="type")
    cfg["Model"]["Precision"] = "ap_fixed<10,4>"
    assert [s.key for s in shadowed_model_settings(cfg, graph)] == ["Precision"]


def test_two_shadowed_keys_give_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    cfg = config_from_graph(mlp_graph((4, 6, 5, 2)), granularity="name")
    cfg["Model"]["ReuseFactor"] = 2
    cfg["Model"]["Precision"] = "ap_fixed<12,5>"
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        _convert(cfg)
    records = _shadow_warnings(caplog)
    assert len(records) == 1
    assert "Model.ReuseFactor" in records[0].getMessage()
    assert "Model.Precision" in records[0].getMessage()


def test_set_model_setting_changes_every_layer(caplog: pytest.LogCaptureFixture) -> None:
    graph = mlp_graph((4, 6, 5, 2))
    cfg = config_from_graph(graph, granularity="name")
    changed = set_model_setting(cfg, "ReuseFactor", 2)
    assert changed == 5
    assert cfg["Model"]["ReuseFactor"] == 2
    assert all(e["ReuseFactor"] == 2 for n, e in cfg["LayerName"].items() if n != "input")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        hm = _convert(cfg)
    assert _shadow_warnings(caplog) == []
    assert {n.name: n.reuse_factor for n in hm.graph.nodes if n.op == "Dense"} == {
        "fc1": 2, "fc2": 2, "fc3": 2}


def test_set_model_setting_keeps_custom_layers() -> None:
    cfg = config_from_graph(mlp_graph(), granularity="name")
    cfg["LayerName"]["fc1"]["ReuseFactor"] = 3
    cfg["LayerName"]["fc2"]["Precision"]["weight"] = "ap_fixed<6,2>"
    assert set_model_setting(cfg, "ReuseFactor", 2) == 2  # fc1_relu, fc2
    assert cfg["LayerName"]["fc1"]["ReuseFactor"] == 3
    set_model_setting(cfg, "Precision", "ap_fixed<10,4>")
    fc2 = cfg["LayerName"]["fc2"]["Precision"]
    assert fc2["weight"] == "ap_fixed<6,2>" and fc2["bias"] == "ap_fixed<10,4>"
    assert fc2["accum"] == "auto"
    assert cfg["Model"]["Precision"] == "ap_fixed<10,4>"
    hm = nnfab.convert_graph(mlp_graph(), cfg)
    assert str(hm.graph.tensors["fc1"].type) == "ap_fixed<10,4>"
    assert str(hm.graph.node("fc2").precision["weight"]) == "ap_fixed<6,2>"
    assert set_model_setting(cfg, "ReuseFactor", 4, keep_custom=False) == 3
    assert cfg["LayerName"]["fc1"]["ReuseFactor"] == 4


@pytest.mark.parametrize(("key", "value", "words"), [
    ("ReuseFactor", 0, ["ReuseFactor", ">= 1"]),
    ("Strategy", "Fast", ["Strategy", "Latency", "Resource"]),
    ("Precision", "ap_fixed<x>", ["Precision", "accepted forms"]),
    ("Reuse", 2, ["Reuse", "ReuseFactor", "Strategy"]),
])
def test_set_model_setting_errors(key: str, value: object, words: list[str]) -> None:
    cfg = config_from_graph(mlp_graph(), granularity="name")
    with pytest.raises(ConfigError) as e:
        set_model_setting(cfg, key, value)
    assert all(w in str(e.value) for w in words)
