"""config_from_data: integer bits from observed ranges, overflow-rate targets, error and
accuracy budgets, and the comparison with the uniform default."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest

import nnfab
from nnfab.errors import ConfigError
from nnfab.ir import FixedType, Graph, Node, infer_shapes
from nnfab.tuning import TypeProposal, config_from_data, float_graph
from tests.graphs import mlp_graph

JET = Path(nnfab.__file__).parent / "data" / "jet_tagger.keras"
WIDE = {"Model": {"Precision": "ap_fixed<32,12>"}}


def _type(proposal: TypeProposal, layer: str, key: str = "result") -> FixedType:
    return FixedType.parse(proposal.config["LayerName"][layer]["Precision"][key])


def _scaling_graph() -> Graph:
    """input (2) -> dense (2, weights [[1, 0], [0, 0.5]]) -> relu."""
    g = Graph("scale")
    g.add_node(Node("input", "Input", [], attrs={"shape": (2,)}, source_class="InputLayer"), (2,))
    g.add_node(Node("dense", "Dense", ["input"], weights={
        "kernel": np.array([[1.0, 0.0], [0.0, 0.5]]), "bias": np.zeros(2)},
        source_class="Dense"), (2,))
    g.add_node(Node("relu", "Activation", ["dense"], attrs={"function": "relu"},
                    source_class="Activation"), (2,))
    g.outputs = ["relu"]
    infer_shapes(g)
    return g


def _x_reaching_37() -> np.ndarray:
    rng = np.random.default_rng(1)
    x = rng.uniform(-3.0, 3.0, size=(200, 2))
    x[17, 0] = 37.0  # the dense output reaches 37.0 once
    return x


def test_integer_bits_cover_the_observed_range() -> None:
    x = _x_reaching_37()
    with_margin = config_from_data(_scaling_graph(), x)  # margin_bits=1 by default
    exact = config_from_data(_scaling_graph(), x, margin_bits=0)
    # independently: a signed type <W,I> holds [-2**(I-1), 2**(I-1)); 37 needs 2**6 > 37
    needed_signed = math.floor(math.log2(37.0)) + 2
    needed_unsigned = math.floor(math.log2(37.0)) + 1  # relu output: [0, 2**I)
    t = _type(exact, "dense")
    assert t.signed and t.integer == needed_signed == 7
    assert _type(with_margin, "dense").integer == needed_signed + 1
    relu = _type(exact, "relu")
    assert not relu.signed and relu.integer == needed_unsigned == 6
    lo = min(x[:, 0].min(), 0.5 * x[:, 1].min())
    assert exact.ranges["dense"]["result"] == (pytest.approx(lo, abs=1e-5), 37.0)
    # margin 0 is the least that holds the data: nothing saturates, one bit less would
    hm = nnfab.convert_graph(_scaling_graph(), exact.config)
    hm.predict(x)
    assert hm.overflow_report()["dense"]["result"] == 0
    tighter = dict(exact.config)
    tighter["LayerName"] = {**exact.config["LayerName"], "dense": {"Precision": {
        **exact.config["LayerName"]["dense"]["Precision"],
        "result": str(t.replace(width=t.width - 1, integer=t.integer - 1))}, "ReuseFactor": 1}}
    hm = nnfab.convert_graph(_scaling_graph(), tighter)
    hm.predict(x)
    assert hm.overflow_report()["dense"]["result"] == 1


def test_overflow_rate_target_is_met_in_the_emulator() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_t(df=2, size=(4000, 6))  # heavy tails: a few very large values
    graph = mlp_graph((6, 8, 4), seed=2)
    rate = 0.01
    proposal = config_from_data(graph, x, overflow_rate=rate)
    exact = config_from_data(graph, x, margin_bits=0)
    hm = nnfab.convert_graph(mlp_graph((6, 8, 4), seed=2), proposal.config)
    hm.predict(x)
    report = hm.overflow_report()
    saturated = 0
    for node in hm.graph.nodes:
        n = report[node.name]["result"]
        total = x.shape[0] * hm.graph.tensors[node.name].size
        assert n <= rate * total, node.name
        saturated += n
    assert saturated > 0  # the target was used: some values do saturate ...
    narrower = [layer for layer in proposal.types
                if _type(proposal, layer).integer < _type(exact, layer).integer]
    assert "input" in narrower  # ... because fewer integer bits than the range needs
    hm = nnfab.convert_graph(mlp_graph((6, 8, 4), seed=2), exact.config)
    hm.predict(x)
    assert all(v["result"] == 0 for v in hm.overflow_report().values())


def _numpy_mlp(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Float forward pass of an mlp_graph, written out (the independent reference)."""
    h = x
    for node in graph.nodes:
        if node.op == "Dense":
            h = h @ node.weights["kernel"] + node.weights["bias"]
        elif node.op == "Activation":
            h = np.maximum(h, 0.0)
    return h


@pytest.mark.parametrize("budget", [0.05, {"mean": 0.004}, {"max": 0.02, "mean": 0.002}])
def test_error_budget_is_met(budget: float | dict[str, float]) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(0.0, 1.0, size=(1000, 8))
    graph = mlp_graph((8, 16, 8, 3), seed=4)
    proposal = config_from_data(graph, x, error_budget=budget)
    assert proposal.budget_met
    hm = nnfab.convert_graph(mlp_graph((8, 16, 8, 3), seed=4), proposal.config)
    err = np.abs(hm.predict(x) - _numpy_mlp(graph, x))
    limits = budget if isinstance(budget, dict) else {"max": budget}
    slack = 1e-4  # the reference itself (20 fractional bits) is this close to float
    if "max" in limits:
        assert err.max() <= limits["max"] + slack
    if "mean" in limits:
        assert err.mean() <= limits["mean"] + slack
    # the budget bites: the proposal is much narrower than the reference's 20 fraction bits
    assert all(_type(proposal, layer).frac < 12 for layer in proposal.types)


def test_a_tighter_budget_costs_more_bits() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(0.0, 1.0, size=(800, 8))
    graph = mlp_graph((8, 16, 8, 3), seed=4)
    loose = config_from_data(graph, x, error_budget=0.1)
    tight = config_from_data(graph, x, error_budget=0.001)
    assert tight.bits["proposal"] > loose.bits["proposal"]
    assert tight.error["proposal"]["max"] <= 0.001 < loose.error["proposal"]["max"]


@pytest.fixture(scope="module")
def jet() -> tuple[Graph, np.ndarray, np.ndarray]:
    from nnfab.demo.data import make_jet_like_data

    x, y = make_jet_like_data(1500, seed=7)
    return float_graph(str(JET)), x, y


def _bits(hm: nnfab.NnfabModel) -> int:
    """Every weight, bias and layer output bit of a converted design, counted here."""
    total = 0
    for node in hm.graph.nodes:
        total += hm.graph.tensors[node.name].type.width * hm.graph.tensors[node.name].size
        if node.op == "Dense":
            total += node.precision["weight"].width * node.weights["kernel"].size
            total += node.precision["bias"].width * node.weights["bias"].size
    return total


def test_jet_tagger_uses_fewer_bits_than_the_default(
    jet: tuple[Graph, np.ndarray, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    graph, x, y = jet
    with caplog.at_level(logging.INFO, logger="nnfab.tuning"):
        proposal = config_from_data(graph, x, y=y)
    assert any("config_from_data" in r.getMessage() for r in caplog.records)  # progress
    default_hm = nnfab.convert_graph(graph.copy(), nnfab.config.config_from_graph(
        graph, "name", "ap_fixed<16,6>"))
    prop_hm = nnfab.convert_graph(graph.copy(), proposal.config)
    assert _bits(prop_hm) < _bits(default_hm)
    assert proposal.bits == {"default": _bits(default_hm), "proposal": _bits(prop_hm)}
    # without a budget the fractional bits are the default's (10): accuracy holds
    acc = float(np.mean(prop_hm.predict(x).argmax(1) == y))
    assert acc == pytest.approx(proposal.accuracy["proposal"])
    assert acc >= proposal.accuracy["float"] - 0.01
    text = proposal.table()
    for word in ("accuracy", "total bits", "dsp", "fc2", "weight", "ap_ufixed"):
        assert word in text
    assert proposal.resources["default"]["dsp"] >= proposal.resources["proposal"]["dsp"]


def test_jet_tagger_accuracy_budget(jet: tuple[Graph, np.ndarray, np.ndarray]) -> None:
    graph, x, y = jet
    budget = 0.01
    proposal = config_from_data(graph, x, y=y, accuracy_budget=budget)
    assert proposal.budget_met
    ref = nnfab.convert_graph(graph.copy(), WIDE).predict(x)
    ref_acc = float(np.mean(ref.argmax(1) == y))
    prop_acc = float(np.mean(nnfab.convert_graph(graph.copy(), proposal.config)
                             .predict(x).argmax(1) == y))
    assert ref_acc - prop_acc <= budget + 1e-9
    assert proposal.accuracy["float"] == pytest.approx(ref_acc)
    no_budget = config_from_data(graph, x, y=y)
    assert proposal.bits["proposal"] < no_budget.bits["proposal"]
    # every weight of the proposal is at most 8 bits wide: far below the default's 16
    assert max(_type(proposal, n, "weight").width for n in ("fc1", "fc2", "fc3")) <= 8


def test_model_granularity_gives_one_type() -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(0.0, 1.0, size=(500, 4))
    proposal = config_from_data(mlp_graph(), x, granularity="model", error_budget=0.05)
    types = {t for per_layer in proposal.types.values() for t in per_layer.values()}
    assert len(types) == 1
    assert proposal.config["Model"]["Precision"] in types


def test_nnfab_model_input_is_retyped() -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(0.0, 1.0, size=(300, 4)) * 20.0  # larger than ap_fixed<8,3> holds
    hm = nnfab.convert_graph(mlp_graph(), {"Model": {"Precision": "ap_fixed<8,3>"}})
    proposal = config_from_data(hm, x, margin_bits=0)
    graph = mlp_graph()
    wide = nnfab.convert_graph(graph, WIDE).trace(x)
    hi = float(np.abs(wide["input"]).max())
    assert _type(proposal, "input").integer >= math.floor(math.log2(hi)) + 2
    assert _type(proposal, "input").integer > 3


def test_pytorch_module() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
    x = np.random.default_rng(10).normal(size=(300, 4))
    proposal = config_from_data(module, x, error_budget=0.02)
    with torch.no_grad():
        ref = module(torch.tensor(x, dtype=torch.float32)).numpy()
    graph = float_graph(module, x)
    out = nnfab.convert_graph(graph, proposal.config).predict(x)
    assert np.abs(out - ref).max() <= 0.02 + 1e-3  # float32 reference


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"granularity": "type"}, ["granularity", "name", "model"]),
    ({"accuracy_budget": 0.01}, ["accuracy_budget", "y="]),
    ({"error_budget": {"median": 0.1}}, ["error_budget", "max", "mean"]),
    ({"error_budget": -1.0}, ["error_budget", "positive"]),
    ({"overflow_rate": 1.5}, ["overflow_rate", "[0, 1)"]),
    ({"margin_bits": -1}, ["margin_bits", ">= 0"]),
    ({"rounding": "AP_NEAREST"}, ["rounding", "AP_RND"]),
    ({"partt": "x"}, ["partt", "part"]),
    ({"default_precision": "fixed<4"}, ["default_precision"]),
])
def test_bad_arguments(kwargs: dict[str, object], words: list[str]) -> None:
    with pytest.raises(ConfigError) as e:
        config_from_data(mlp_graph(), np.zeros((4, 4)), **kwargs)  # type: ignore[arg-type]
    assert all(w in str(e.value) for w in words), str(e.value)
