"""BatchNormalization, Merge, Concatenate and branching graphs: Verilator == emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rtl_helpers import convert, needs_verilator, sample_inputs

from nnfab.backends.rtl import RtlOptions, RTLProject, generate
from nnfab.errors import BackendError
from nnfab.ir import Graph, Node
from nnfab.tools.verilator import lint

BATCH = 400


def with_verilator(fn: Any) -> Any:
    for mark in needs_verilator:
        fn = mark(fn)
    return fn


def _branchy() -> tuple[Graph, dict]:
    """Two branches of different latencies (one folded) meeting in every merge mode.

    inp -> bn -> fb (Dense, R=3) -> rb (relu) ---+
    inp -> fa (Dense) ---------------------------+-> add, sub -> mul
    avg(fa, rb, mul) ; cat(avg, bn, fa) -> out (Dense)
    """
    rng = np.random.default_rng(3)
    g = Graph(name="branchy")
    g.add_node(Node("inp", "Input", [], attrs={"shape": (6,)}), (6,))
    g.add_node(Node("bn", "BatchNormalization", ["inp"],
                    weights={"scale": rng.normal(size=6) * 2, "bias": rng.normal(size=6)}), (6,))
    g.add_node(Node("fa", "Dense", ["inp"], weights={"kernel": rng.normal(size=(6, 4)),
                                                     "bias": rng.normal(size=4)}), (4,))
    g.add_node(Node("fb", "Dense", ["bn"], weights={"kernel": rng.normal(size=(6, 4)),
                                                    "bias": rng.normal(size=4)},
                    reuse_factor=3), (4,))
    g.add_node(Node("rb", "Activation", ["fb"], attrs={"function": "relu"}), (4,))
    g.add_node(Node("add", "Merge", ["fa", "rb"], attrs={"mode": "add"}), (4,))
    g.add_node(Node("sub", "Merge", ["fa", "rb"], attrs={"mode": "subtract"}), (4,))
    g.add_node(Node("mul", "Merge", ["add", "sub"], attrs={"mode": "multiply"}), (4,))
    g.add_node(Node("avg", "Merge", ["fa", "rb", "mul"], attrs={"mode": "average"}), (4,))
    g.add_node(Node("cat", "Concatenate", ["avg", "bn", "fa"], attrs={"axis": 0}), (14,))
    g.add_node(Node("out", "Dense", ["cat"], weights={"kernel": rng.normal(size=(14, 3)),
                                                      "bias": rng.normal(size=3)}), (3,))
    g.outputs = ["out"]
    config = {
        "Model": {"Precision": "ap_fixed<10,4,AP_RND,AP_SAT>"},
        "LayerName": {
            "inp": {"Precision": {"result": "ap_fixed<8,3,AP_RND_CONV,AP_SAT>"}},
            # products have 8 fractional bits, the accumulator 6: each is rounded
            "bn": {"Precision": {"weight": "ap_fixed<6,3>", "accum": "ap_fixed<10,4,AP_RND>",
                                 "result": "ap_fixed<8,3,AP_RND_ZERO,AP_SAT_SYM>"}},
            "add": {"Precision": {"result": "ap_fixed<7,3,AP_RND,AP_SAT>"}},
            "sub": {"Precision": {"result": "ap_fixed<9,4,AP_TRN,AP_WRAP>"}},
            "mul": {"Precision": {"result": "ap_fixed<8,4,AP_RND_INF,AP_SAT>"}},
            "avg": {"Precision": {"scale": "ap_ufixed<8,0,AP_RND_CONV,AP_SAT>",
                                  "result": "ap_fixed<8,3,AP_RND_MIN_INF,AP_SAT>"}},
            "cat": {"Precision": {"result": "ap_fixed<8,3,AP_RND,AP_SAT>"}},
        },
    }
    return g, config


def _grid() -> tuple[Graph, dict]:
    """2-D tensors: BN per channel, multiply, Concatenate on both axes, Dense on rows."""
    rng = np.random.default_rng(9)
    g = Graph(name="grid")
    g.add_node(Node("inp", "Input", [], attrs={"shape": (2, 3)}), (2, 3))
    g.add_node(Node("bn", "BatchNormalization", ["inp"],
                    weights={"scale": rng.normal(size=3), "bias": rng.normal(size=3)}), (2, 3))
    g.add_node(Node("prod", "Merge", ["inp", "bn"], attrs={"mode": "multiply"}), (2, 3))
    g.add_node(Node("c1", "Concatenate", ["inp", "bn"], attrs={"axis": 1}), (2, 6))
    g.add_node(Node("c2", "Concatenate", ["prod", "inp"], attrs={"axis": 1}), (2, 6))
    g.add_node(Node("c0", "Concatenate", ["c1", "c2"], attrs={"axis": 0}), (4, 6))
    g.add_node(Node("fc", "Dense", ["c0"], weights={"kernel": rng.normal(size=(6, 2)),
                                                    "bias": rng.normal(size=2)},
                    reuse_factor=4), (4, 2))
    g.add_node(Node("twice", "Merge", ["fc", "fc"], attrs={"mode": "add"}), (4, 2))
    g.outputs = ["twice"]
    config = {
        "Model": {"Precision": "ap_fixed<9,3,AP_RND_CONV,AP_SAT>"},
        "LayerName": {
            "inp": {"Precision": {"result": "ap_fixed<6,2,AP_RND,AP_SAT>"}},
            "bn": {"Precision": {"weight": "ap_fixed<7,2,AP_RND>",  # auto accumulator
                                 "result": "ap_fixed<6,2,AP_RND,AP_SAT>"}},
            "prod": {"Precision": {"result": "ap_fixed<7,2,AP_RND_CONV,AP_WRAP>"}},
            "c1": {"Precision": {"result": "ap_fixed<6,2,AP_RND,AP_SAT>"}},  # inp, bn: as is
        },
    }
    return g, config


# ------------------------------------------------------------- no tools
def test_branches_are_balanced_with_delay_registers() -> None:
    graph, config = _branchy()
    design = generate(convert(graph, config).graph, RtlOptions("lut"))
    layers = {m.node: m for m in design.layers}
    assert layers["fb"].ii == 3 and design.ii == 3
    # inp -> bn -> fb -> rb is the long branch; fa waits for it in delay registers
    long_path = 1 + layers["bn"].latency + layers["fb"].latency + layers["rb"].latency
    chain = ("add", "mul", "avg", "cat", "out")
    assert design.latency == long_path + sum(layers[n].latency for n in chain)
    top = design.files["branchy.v"]
    delay = long_path - (1 + layers["fa"].latency)
    assert delay > 0
    # add gets fa through `delay` registers, concatenated after rb (input 0 in the low bits)
    assert f"u_add_y (.clk(clk), .x({{rb_y, fa_y_d{delay}}}), .y(add_y));" in top
    # the folded layer starts when bn's output holds the sample
    assert f".x_valid(valid_q[{1 + layers['bn'].latency - 1}])" in top
    cat = design.files["branchy_cat.v"]
    assert "Concatenate 3 inputs" in cat


def test_merge_errors_name_the_layer() -> None:
    graph, config = _branchy()
    model = convert(graph, config)
    model.graph.node("sub").attrs["mode"] = "divide"
    with pytest.raises(BackendError, match=r"'sub'.*'divide'"):
        generate(model.graph)


def test_unused_branches_are_left_out() -> None:
    graph, config = _branchy()
    graph.outputs = ["mul"]  # avg, cat and out no longer feed the output
    design = generate(convert(graph, config).graph)
    assert {m.node for m in design.layers} == {"bn", "fa", "fb", "rb", "add", "sub", "mul"}


# --------------------------------------------------------------- Verilator
@with_verilator
@pytest.mark.parametrize(("style", "per_stage"), [("lut", None), ("dsp", 2)])
def test_branching_graph_matches_emulator(style: str, per_stage: int | None,
                                          tmp_path: Path) -> None:
    graph, config = _branchy()
    model = convert(graph, config)
    assert [n.op for n in model.graph.nodes].count("BatchNormalization") == 1  # not folded
    project = RTLProject(model, tmp_path, style=style, adders_per_stage=per_stage)
    x = sample_inputs(model.graph.tensors["inp"].type, 6, BATCH, seed=11)
    result = project.simulate(x)
    expected = model.predict(x)
    assert np.array_equal(result.outputs, expected)
    assert (result.latency, result.ii) == (project.latency, project.ii) == (project.latency, 3)
    # every intermediate merge is exercised beyond its result range (casts saturate/wrap)
    overflows = model.overflow_report()
    assert all(overflows[name].get("result", 0) > 0 for name in ("add", "sub", "mul"))
    assert lint(project.write(), project.top, tmp_path / "lint.log") == []


@with_verilator
@pytest.mark.parametrize("style", ["lut", "dsp"])
def test_concatenate_on_both_axes_and_batchnorm_per_channel(style: str, tmp_path: Path) -> None:
    graph, config = _grid()
    model = convert(graph, config)
    project = RTLProject(model, tmp_path, style=style)
    layers = {m.node: m for m in project.design.layers}
    assert layers["c1"].latency == 0  # same types: wires only
    assert layers["c2"].latency == 1  # casts: one register stage
    x = sample_inputs(model.graph.tensors["inp"].type, 6, BATCH, seed=12).reshape(-1, 2, 3)
    result = project.simulate(x)
    assert np.array_equal(result.outputs, model.predict(x))
    assert (result.latency, result.ii) == (project.latency, 4)
