"""Dense layers folded by their reuse factor (II = R): structure, and Verilator == emulator."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rtl_helpers import convert, mlp_graph, needs_verilator, sample_inputs

from nnfab.backends.rtl import RtlOptions, RTLProject, adders_per_stage_for, generate
from nnfab.backends.rtl.folded import schedule
from nnfab.backends.rtl.layers import RENDERERS, LayerContext
from nnfab.errors import BackendError, ConfigError
from nnfab.ir import Graph, Node
from nnfab.tools.verilator import lint

BATCH = 300


def with_verilator(fn: Any) -> Any:
    for mark in needs_verilator:
        fn = mark(fn)
    return fn


def _mlp(reuse: dict[str, int] | int, sizes: list[int] | None = None, seed: int = 4,
         zero_fraction: float = 0.3) -> object:
    """A small MLP with rounding/saturating result types and the given reuse factors."""
    graph = mlp_graph(sizes or [7, 6, 5, 3], seed=seed, zero_fraction=zero_fraction, scale=0.8)
    config: dict = {
        "Model": {"Precision": "ap_fixed<12,4,AP_RND,AP_SAT>"},
        "LayerName": {
            "inp": {"Precision": {"result": "ap_fixed<8,3,AP_RND_CONV,AP_SAT>"}},
            "fc0": {"Precision": {"weight": "ap_fixed<7,2>", "bias": "ap_fixed<6,2>"}},
            "relu0": {"Precision": {"result": "ap_ufixed<7,3,AP_RND_CONV,AP_SAT>"}},
            "fc1": {"Precision": {"weight": "ap_fixed<6,1,AP_RND>"}},
            "relu1": {"Precision": {"result": "ap_ufixed<6,2,AP_TRN,AP_WRAP>"}},
            "fc2": {"Precision": {"weight": "ap_fixed<5,0>",
                                  "result": "ap_fixed<7,1,AP_RND_ZERO,AP_SAT_SYM>"}},
        },
    }
    if isinstance(reuse, int):
        config["Model"]["ReuseFactor"] = reuse
    else:
        for name, r in reuse.items():
            config["LayerName"].setdefault(name, {})["ReuseFactor"] = r
    return convert(graph, config)


# ------------------------------------------------------------- no tools
@pytest.mark.parametrize(("n_in", "n_out", "rows", "reuse"),
                         [(6, 4, 1, 2), (6, 4, 1, 4), (5, 3, 2, 4), (3, 2, 1, 7), (4, 4, 1, 32)])
def test_schedule_covers_every_product_once(n_in: int, n_out: int, rows: int,
                                            reuse: int) -> None:
    kernel = np.arange(1, n_in * n_out + 1).reshape(n_in, n_out)
    mults = schedule(kernel, rows, reuse)
    assert len(mults) == math.ceil(rows * n_in * n_out / reuse)
    seen = []
    for m in mults:
        assert len(m.inputs) == len(m.weights) == len(m.owners) == reuse
        for x, w, o in zip(m.inputs, m.weights, m.owners, strict=True):
            if o < 0:
                assert w == 0  # idle phase past the last product
                continue
            r, j = divmod(o, n_out)
            i = x - r * n_in
            assert 0 <= i < n_in and w == kernel[i, j]
            seen.append((o, i))
        for o in m.outputs():  # the phases of an output are one contiguous range
            a, b = m.phases_of(o)
            assert all(m.owners[c] == o for c in range(a, b + 1))
    assert sorted(seen) == [(o, i) for o in range(rows * n_out) for i in range(n_in)]


def test_folded_structure_and_reported_timing() -> None:
    model = _mlp({"fc0": 3, "fc2": 2}, zero_fraction=0.0)
    for style in ("lut", "dsp"):
        design = generate(model.graph, RtlOptions(style))
        layers = {m.node: m for m in design.layers}
        assert design.ii == 3  # the largest reuse factor
        assert (layers["fc0"].ii, layers["fc1"].ii, layers["fc2"].ii) == (3, 1, 2)
        assert layers["fc0"].valid_in and not layers["fc1"].valid_in
        assert layers["fc0"].stats["multipliers"] == math.ceil(7 * 6 / 3)
        assert layers["fc2"].stats["multipliers"] == math.ceil(5 * 3 / 2)
        # R cycles of products, one to load x, one for the output register
        assert layers["fc0"].latency == 3 + 2 and layers["fc2"].latency == 2 + 2
        assert design.latency == 1 + sum(m.latency for m in design.layers)
        fc0 = design.files["mlp_fc0.v"]
        assert "folded by reuse factor 3" in fc0 and "input  wire x_valid" in fc0
        assert (" * " in fc0) == (style == "dsp")  # lut style: shift-and-add, no multiplier
        top = design.files["mlp.v"]
        assert ".x_valid(valid_q[0])" in top and "II = 3" in top
        assert design.manifest()["ii"] == 3


def _readers(text: str, name: str) -> list[str]:
    """Lines of a module body that read ``name`` (not its declaration)."""
    word = re.compile(rf"\b{re.escape(name)}\b")
    declared = re.compile(rf"\s*(wire|reg)\s*(\[[^]]*\])?\s*{re.escape(name)}\b")
    return [line.strip() for line in text.splitlines()
            if "=" in line and word.search(line.split("=", 1)[1]) and not declared.match(line)]


def _names(expr: str) -> set[str]:
    """Signal names in a Verilog expression (literals and ``$signed`` left out)."""
    return set(re.findall(r"\b([a-z]\w*)\b", re.sub(r"\$signed|\d+'[bhd]\w+", "", expr)))


@pytest.mark.parametrize("style", ["dsp", "lut"])
def test_pipelined_folding_registers_rom_multiplier_and_accumulator(style: str) -> None:
    """With a clock target, the ROM read and the input multiplexer end in registers, each
    product (``dsp``: the ``*``; ``lut``: its adder tree) ends in a register, and the
    accumulator adds registered sums: three more cycles than the unpipelined layer."""
    model = _mlp({"fc0": 3, "fc2": 2}, zero_fraction=0.0)
    flat = {m.node: m for m in generate(model.graph, RtlOptions(style)).layers}
    piped = {m.node: m for m in generate(model.graph, RtlOptions(style, 8)).layers}
    for name in ("fc0", "fc2"):
        text = next(t for f, t in generate(model.graph, RtlOptions(style, 8)).files.items()
                    if f.endswith(f"_{name}.v"))
        registers = set(re.findall(r"^\s*(?:\(\* keep \*\) )?reg\s+(?:\[[^]]*\]\s*)?(\w+);",
                                   text, re.M))
        assigned = dict(re.findall(r"^\s*(\w+) <= (\w+);$", text, re.M))
        roms = re.findall(r"^\s*wire \[[^]]*\] (\w+) = \w+_rom\((?:cnt|cr)\w*\);", text, re.M)
        assert roms
        for rom in roms:  # read only by a register
            assert set(_readers(text, rom)) == {f"{r} <= {rom};" for r, v in assigned.items()
                                                if v == rom}
        products = re.findall(r"^\s*wire \[[^]]*\] (\w+) = (.*\*.*);$", text, re.M)
        assert bool(products) == (style == "dsp")
        for prod, expr in products:
            operands = _names(expr)
            assert operands and operands <= registers, expr
            assert {r for r, v in assigned.items() if v == prod}, prod
            assert len(_readers(text, prod)) == 1  # the register only
        if products:  # each multiplier reads its input through a register of its own
            inputs = [n for _, expr in products for n in _names(expr) if n.startswith("xr")]
            assert len(inputs) == len(products) == len(set(inputs))
            # (dsp style: then one more register next to the block)
            assert all(f"(* keep *) always @(posedge clk) {re.sub(r'_d[0-9]+$', '', n)} <= "
                       in text for n in inputs)
        accs = re.findall(r"^\s*(acc\w*) <= \(\w+ \? [^:]+ : \w+\) \+ (.*);$", text, re.M)
        assert accs
        for _, addend in accs:  # the accumulators add registered sums
            assert _names(addend) <= registers, addend
        assert piped[name].latency >= flat[name].latency + 3
        assert piped[name].ii == flat[name].ii


def test_folding_needs_a_caller_that_connects_the_valid() -> None:
    """Renderers called without ``folding`` (e.g. from other top writers) stay parallel."""
    model = _mlp(4)
    node = model.graph.node("fc0")
    module = RENDERERS["Dense"](LayerContext(node, model.graph, "m", RtlOptions()))
    assert module.ii == 1 and not module.valid_in and module.latency == 1


def test_zero_columns_need_no_multiplier() -> None:
    model = _mlp(2, zero_fraction=0.0)
    model.graph.node("fc0").weights["kernel"][:, :3] = 0.0  # outputs 0..2 of fc0: bias only
    layer = generate(model.graph, RtlOptions("lut")).layers[0]
    assert layer.stats["multipliers"] == math.ceil(7 * 3 / 2)


def test_pipeline_knob(tmp_path: Path) -> None:
    assert adders_per_stage_for(None) is None
    assert adders_per_stage_for(3) == 3
    assert adders_per_stage_for(2.5) == 3  # UltraScale+ by default: (2.5 - 0.6) / 0.55
    assert adders_per_stage_for({"clock_period": 5.0}, "xc7a35t") == 4
    assert adders_per_stage_for({"clock_period": 5.0, "family": "xcup"}) == 8
    assert adders_per_stage_for(0.1) == 1  # never fewer than one level per stage
    for bad in (0, True, -2.0, {"period": 3}, "fast"):
        with pytest.raises(BackendError, match="pipeline"):
            adders_per_stage_for(bad)
    model = _mlp(1)
    shallow = model.to_rtl(tmp_path, pipeline={"clock_period": 1.0})  # 1 level per stage
    assert shallow.design.options.adders_per_stage == 1
    assert shallow.latency == model.to_rtl(tmp_path, adders_per_stage=1).latency > 4
    assert model.to_rtl(tmp_path, pipeline=2).design.options.adders_per_stage == 2
    with pytest.raises(BackendError, match="not both"):
        model.to_rtl(tmp_path, pipeline=2, adders_per_stage=2)


# --------------------------------------------------------------- Verilator
@with_verilator
@pytest.mark.parametrize(("style", "reuse", "per_stage"), [
    ("lut", 2, None), ("lut", 5, None), ("dsp", 4, None), ("dsp", 5, 1), ("lut", 64, None),
    ("lut", 5, 2), ("lut", 64, 3), ("dsp", 2, 4),
])
def test_folded_mlp_matches_emulator(style: str, reuse: int, per_stage: int | None,
                                     tmp_path: Path) -> None:
    """R = 5 divides none of the layers' product counts (42, 30, 15): the last multiplier
    idles; R = 64 exceeds them all (one multiplier per layer)."""
    model = _mlp(reuse)
    project = RTLProject(model, tmp_path, style=style, adders_per_stage=per_stage)
    assert project.ii == reuse
    x = sample_inputs(model.graph.tensors["inp"].type, 7, BATCH, seed=reuse)
    result = project.simulate(x)  # paced by the design: one sample every II cycles
    expected = model.predict(x)
    assert np.array_equal(result.outputs, expected)
    assert result.latency == project.latency
    assert result.ii == project.ii == reuse
    assert result.cycles >= BATCH * reuse
    # slower pacing and extra idle cycles change nothing
    slow = project.simulate(x[:40], interval=reuse + 3, gap=2)
    assert np.array_equal(slow.outputs, expected[:40])
    assert slow.latency == project.latency and slow.ii == reuse + 3
    with pytest.raises(BackendError, match="interval"):
        project.simulate(x[:4], interval=reuse - 1)


def _narrow_graph() -> tuple[Graph, dict]:
    """Dense on rows (a 2-D input), rounded products, narrow wrapping accumulators."""
    rng = np.random.default_rng(8)
    g = Graph(name="narrow")
    g.add_node(Node("inp", "Input", [], attrs={"shape": (3, 5)}), (3, 5))
    g.add_node(Node("fc0", "Dense", ["inp"], weights={"kernel": rng.normal(size=(5, 4)) * 2,
                                                      "bias": rng.normal(size=4)},
                    reuse_factor=3), (3, 4))
    g.add_node(Node("flat", "Flatten", ["fc0"]), (12,))
    g.add_node(Node("fc1", "Dense", ["flat"], weights={"kernel": rng.normal(size=(12, 3)),
                                                       "bias": rng.normal(size=3)},
                    reuse_factor=8), (3,))
    g.outputs = ["fc1"]
    config = {
        "Model": {"Precision": "ap_fixed<10,3,AP_RND_INF,AP_SAT>"},
        "LayerName": {
            "inp": {"Precision": {"result": "ap_fixed<9,3,AP_RND_CONV,AP_SAT>"}},
            # products have 11 fractional bits; the accumulator keeps 6 and wraps at 9 bits
            "fc0": {"Precision": {"weight": "ap_fixed<7,2>",
                                  "accum": "ap_fixed<9,3,AP_RND_ZERO,AP_WRAP>",
                                  "result": "ap_fixed<8,3,AP_RND_MIN_INF,AP_SAT_ZERO>"}},
            # an unsigned wrapping accumulator, exact products
            "fc1": {"Precision": {"weight": "ap_fixed<6,3>", "accum": "ap_ufixed<14,6>",
                                  "result": "ap_fixed<9,4,AP_RND,AP_SAT>"}},
        },
    }
    return g, config


@with_verilator
@pytest.mark.parametrize(("style", "per_stage"), [("lut", None), ("dsp", None), ("lut", 1),
                                                  ("dsp", 2)])
def test_rounded_products_and_wrapping_accumulators(style: str, per_stage: int | None,
                                                    tmp_path: Path) -> None:
    graph, config = _narrow_graph()
    model = convert(graph, config)
    project = RTLProject(model, tmp_path, style=style, adders_per_stage=per_stage)
    stats = {m.node: m.stats for m in project.design.layers}
    assert stats["fc0"]["wrapping_accumulators"] > 0 and stats["fc1"]["wrapping_accumulators"] > 0
    assert project.ii == 8
    x = sample_inputs(model.graph.tensors["inp"].type, 15, BATCH, seed=5).reshape(-1, 3, 5)
    result = project.simulate(x)
    assert np.array_equal(result.outputs, model.predict(x))
    assert (result.latency, result.ii) == (project.latency, project.ii)
    assert lint(project.write(), project.top, tmp_path / "lint.log") == []


def test_dsp_output_registers_follow_the_family(tmp_path: Path) -> None:
    """``dsp`` style: two registers after each multiplier for ECP5 (its DSP columns are far
    from the logic), one for Xilinx families (the DSP48's own output register); the
    family comes from the pipeline setting, else from the part."""
    from nnfab.backends.rtl.project import pipeline_family

    assert pipeline_family({"clock_period": 5.0, "family": "ecp5"}, "xc7z020clg400-1") == "ecp5"
    assert pipeline_family(5.0, "xc7z020clg400-1") == "xc7"
    assert pipeline_family(5.0) is None and pipeline_family(5.0, "unknown-part") is None
    model = _mlp({"fc0": 3, "fc2": 2}, zero_fraction=0.0)
    ecp5, xc7 = ({m.node: m.latency for m in generate(
        model.graph, RtlOptions("dsp", 3, family=fam)).layers} for fam in ("ecp5", "xc7"))
    assert RTLProject(model, tmp_path, pipeline={"clock_period": 10.0, "family": "ecp5"}
                      ).design.options.family == "ecp5"
    assert ecp5["fc0"] == xc7["fc0"] + 1 and ecp5["fc2"] == xc7["fc2"] + 1
    assert ecp5["fc1"] == xc7["fc1"]  # not folded


@with_verilator
@pytest.mark.parametrize("graph", ["mlp", "rows"])
def test_ecp5_dsp_cells_register_their_operands_and_product(graph: str, tmp_path: Path) -> None:
    """``dsp`` style for ECP5: each multiplier is a MULT18X18D with its input and output
    registers (nnfab's simulation model of the cell in Verilator), fed by fabric registers
    and read by one register; bit-exact to the emulator, lint clean. ``rows``: Dense on
    rows (shared input multiplexers), rounded products, wrapping accumulators."""
    model = _mlp(5) if graph == "mlp" else convert(*_narrow_graph())
    project = RTLProject(model, tmp_path, style="dsp",
                         pipeline={"clock_period": 10.0, "family": "ecp5"})
    layers = {m.node: m for m in project.design.layers if m.ii > 1}
    cells_file = project.design.files["nnfab_ecp5_cells.v"]
    assert "`ifndef SYNTHESIS" in cells_file and "module MULT18X18D" in cells_file
    for layer in layers.values():
        text = layer.text
        registers = set(re.findall(r"^\s*(?:\(\* keep \*\) )?reg\s+(?:\[[^]]*\]\s*)?(\w+);",
                                   text, re.M))
        cells = re.findall(r"MULT18X18D #\(([^)]*\)[^)]*\)[^)]*\)[^)]*\)[^)]*\))\) (\w+) \(",
                           text)
        assert len(cells) == layer.stats["multipliers"] > 0
        assert not re.search(r"\$signed\(\w+\) \* \$signed", text)  # no inferred multiplier
        for params, _ in cells:
            assert all(f'.{p}("CLK0")' in params
                       for p in ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_OUTPUT_CLK"))
        operands = re.findall(r"^\s*wire \[17:0\] (m\d+_[ab]) = (.*);$", text, re.M)
        assert len(operands) == 2 * len(cells)
        for _, expr in operands:
            assert _names(expr) <= registers, expr
        for prod in re.findall(r"^\s*wire \[[^]]*\] (m\d+_prod) = m\d+_p\[", text, re.M):
            assert len(_readers(text, prod)) == 1 and _readers(text, prod)[0].split(" <=")[0] \
                in registers
    shape = model.graph.tensors["inp"].shape
    x = sample_inputs(model.graph.tensors["inp"].type, int(np.prod(shape)), BATCH,
                      seed=9).reshape(-1, *shape)
    result = project.simulate(x)
    assert np.array_equal(result.outputs, model.predict(x))
    assert (result.latency, result.ii) == (project.latency, project.ii)
    assert lint(project.write(), project.top, tmp_path / "lint.log") == []
    with pytest.raises(ConfigError, match="instantiates its MULT18X18D"):
        project.synthesize("xc7z020clg400-1")
