"""Verilator simulation of generated Verilog == emulator (and == independent references)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from rtl_helpers import convert, mlp_graph, needs_verilator, ref_cast_mantissa, sample_inputs

from nnfab.backends.rtl import RtlDesign, RtlOptions, RTLProject
from nnfab.backends.rtl.project import simulate_mantissas
from nnfab.backends.rtl.verilog import ModuleBuilder, Sig
from nnfab.ir import FixedType, Graph, Node, Overflow, Rounding
from nnfab.tools.verilator import lint

pytestmark = needs_verilator

BATCH = 600


# ------------------------------------------------------------ the cast itself
def _cast_bank(targets: list[FixedType], sources: list[FixedType]) -> RtlDesign:
    """A top that casts each input element (one per source type) to every target type.

    Inputs: one 9-bit element per source type (its mantissa in the low bits); outputs:
    one 8-bit signed container per (source, target) holding the cast mantissa.
    """
    mb = ModuleBuilder()
    mb._used.update({"rst", "in_valid", "in_data", "out_valid", "out_data", "d", "v"})
    outs = []
    for k, s in enumerate(sources):
        name = mb.fresh(f"a{k}")
        mb.lines.append(f"  wire [{s.width - 1}:0] {name} = d[{9 * k} +: {s.width}];")
        a = Sig(name, s.width, s.signed, s.min_mantissa, s.max_mantissa)
        for j, t in enumerate(targets):
            r = mb.cast(f"c{k}_{j}", a, s.frac, t)
            outs.append(r.ext(8))
    n_in, n_out = len(sources), len(outs)
    lines = [
        "module castbank (input wire clk, input wire rst, input wire in_valid,",
        f"  input wire [{9 * n_in - 1}:0] in_data, output wire out_valid,",
        f"  output wire [{8 * n_out - 1}:0] out_data);",
        f"  reg [{9 * n_in - 1}:0] d;",
        "  reg v;",
        "  always @(posedge clk) begin d <= in_data; v <= rst ? 1'b0 : in_valid; end",
        *mb.functions, *mb.lines,
        *[f"  assign out_data[{8 * e} +: 8] = {o};" for e, o in enumerate(outs)],
        "  assign out_valid = v;",
        "endmodule",
    ]
    return RtlDesign(
        top="castbank", files={"castbank.v": "\n".join(lines) + "\n"}, layers=[], latency=1,
        ii=1, in_type=FixedType(9, 9), out_type=FixedType(8, 8), in_shape=(n_in,),
        out_shape=(n_out,), options=RtlOptions(),
    )


def test_every_rounding_and_overflow_mode_bit_exact(tmp_path: Path) -> None:
    sources = [FixedType(9, 4, True), FixedType(8, 3, False)]
    # target grids: finer than the source (a shift), equal, 1, 3 and 10 bits coarser
    # (10 > the source width: only the sign survives the rounding)
    targets = [
        FixedType(w, w - frac, s, q, o)
        for w in (1, 4)
        for frac in (6, 5, 4, 2, -5)
        for s in (True, False)
        for q in (Rounding if frac < 5 else [Rounding.TRN])
        for o in Overflow
    ]
    design = _cast_bank(targets, sources)
    sources_paths = design.write(tmp_path / "rtl")
    # every mantissa of the signed source, the unsigned source cycling through its range
    m_signed = np.arange(-256, 256, dtype=np.int64)
    m_unsigned = np.arange(512, dtype=np.int64) % 256
    x = np.stack([m_signed, m_unsigned], axis=1)
    got = simulate_mantissas(design, sources_paths, x, tmp_path).mantissas
    got = got.reshape(len(x), len(sources), len(targets))
    for k, s in enumerate(sources):
        for j, t in enumerate(targets):
            want = [ref_cast_mantissa(Fraction(int(m)) / 2**s.frac, t) for m in x[:, k]]
            assert got[:, k, j].tolist() == want, f"cast {s} -> {t}"


# ------------------------------------------------------------------- networks
def _dense_config() -> dict:
    return {
        "Model": {"Precision": "ap_fixed<24,12>"},
        "LayerName": {
            "inp": {"Precision": {"result": "ap_fixed<8,3,AP_RND,AP_SAT>"}},
            "fc0": {"Precision": {"weight": "ap_fixed<6,1>", "bias": "ap_fixed<6,2>"}},
            "relu0": {"Precision": {"result": "ap_ufixed<6,2,AP_RND_CONV,AP_SAT>"}},
            "fc1": {"Precision": {"weight": "ap_fixed<7,2,AP_RND>", "bias": "ap_fixed<5,1>"}},
            "relu1": {"Precision": {"result": "ap_ufixed<5,1,AP_TRN,AP_WRAP>"}},
            "fc2": {"Precision": {"weight": "ap_fixed<5,0>", "bias": "ap_fixed<6,1>",
                                  "result": "ap_fixed<7,1,AP_RND_ZERO,AP_SAT_SYM>"}},
        },
    }


@pytest.fixture(scope="module")
def dense_model():
    graph = mlp_graph([7, 6, 5, 3], seed=4, zero_fraction=0.3, scale=0.8)
    model = convert(graph, _dense_config())
    fused = [n.name for n in model.graph.nodes if n.attrs.get("activation") == "relu"]
    assert fused == ["fc0", "fc1"]  # the relus were fused: the fused path is what is tested
    return model


@pytest.mark.parametrize("style", ["lut", "dsp"])
def test_dense_relu_matches_emulator(dense_model, style: str, tmp_path: Path) -> None:
    project = RTLProject(dense_model, tmp_path, style=style)
    x = sample_inputs(dense_model.graph.tensors["inp"].type, 7, BATCH, seed=1)
    result = project.simulate(x)
    expected = dense_model.predict(x)
    assert np.array_equal(result.outputs, expected)
    assert result.latency == project.latency == 4
    assert result.ii == 1
    # idle cycles between samples travel with the valid bit and change nothing
    gapped = project.simulate(x[:100], gap=3)
    assert np.array_equal(gapped.outputs, expected[:100])
    assert gapped.latency == project.latency


@pytest.mark.parametrize("levels", [1, 2, 3, 5])
def test_pipelined_compressor_trees_match_emulator(levels: int, tmp_path: Path) -> None:
    """Pipelined LUT Dense layers sum shared terms with compressor chains when they span
    at most two stages (``layers.render_dense``), plain trees otherwise: both exact."""
    model = convert(mlp_graph([12, 6, 3], seed=5), {"Model": {"Precision": "ap_fixed<8,3>"}})
    project = RTLProject(model, tmp_path, style="lut", adders_per_stage=levels)
    x = sample_inputs(model.graph.tensors["inp"].type, 12, 300, seed=2)
    result = project.simulate(x)
    assert np.array_equal(result.outputs, model.predict(x))
    assert result.latency == project.latency


def test_dense_matches_independent_reference(dense_model, tmp_path: Path) -> None:
    """Fraction arithmetic from the contract, layer by layer, against the Verilog."""
    g = dense_model.graph
    x = sample_inputs(g.tensors["inp"].type, 7, 40, seed=7)
    got = RTLProject(dense_model, tmp_path, style="lut").simulate(x).mantissas
    in_t = g.tensors["inp"].type
    for row, sample in zip(got, x, strict=True):
        values = [Fraction(ref_cast_mantissa(Fraction(float(v)), in_t)) / 2**in_t.frac
                  for v in sample]
        for name in ("fc0", "fc1", "fc2"):
            node = g.node(name)
            p = node.precision
            w = node.weights["kernel"]
            out_t = g.tensors[name].type
            new = []
            for j in range(w.shape[1]):
                acc = Fraction(ref_cast_mantissa(
                    Fraction(ref_cast_mantissa(Fraction(float(node.weights["bias"][j])),
                                               p["bias"])) / 2 ** p["bias"].frac,
                    p["accum"])) / 2 ** p["accum"].frac
                for i in range(w.shape[0]):
                    wq = Fraction(ref_cast_mantissa(Fraction(float(w[i, j])), p["weight"]))
                    acc += values[i] * wq / 2 ** p["weight"].frac
                if node.attrs.get("activation") == "relu":
                    acc = max(acc, Fraction(0))
                new.append(Fraction(ref_cast_mantissa(acc, out_t)) / 2**out_t.frac)
            values = new
        out_t = g.tensors["fc2"].type
        assert row.tolist() == [int(v * 2**out_t.frac) for v in values]


def _activation_chain() -> tuple[Graph, dict]:
    """Dense layers with narrow wrapping accumulators and rounded products, every
    supported activation (separate layers, not fused), and a softmax."""
    rng = np.random.default_rng(11)
    g = Graph(name="chain")
    g.add_node(Node("inp", "Input", [], attrs={"shape": (5,)}), (5,))
    g.add_node(Node("fc0", "Dense", ["inp"], weights={"kernel": rng.normal(size=(5, 4)),
                                                      "bias": rng.normal(size=4)}), (4,))
    acts = [
        ("leaky", {"function": "leaky_relu", "alpha": 0.3}),
        ("relu6", {"function": "relu", "max_value": 1.3}),
        ("hsig", {"function": "hard_sigmoid", "slope": 0.2, "offset": 0.5}),
    ]
    prev = "fc0"
    for name, attrs in acts:
        g.add_node(Node(name, "Activation", [prev], attrs=attrs), (4,))
        prev = name
    g.add_node(Node("fc1", "Dense", [prev], weights={"kernel": rng.normal(size=(4, 4)) * 2,
                                                     "bias": rng.normal(size=4)}), (4,))
    g.add_node(Node("sig", "Activation", ["fc1"], attrs={
        "function": "sigmoid", "table_size": 64, "table_range": 4.0}), (4,))
    g.add_node(Node("fc2", "Dense", ["sig"], weights={"kernel": rng.normal(size=(4, 3)),
                                                      "bias": rng.normal(size=3)}), (3,))
    g.add_node(Node("tanh", "Activation", ["fc2"], attrs={"function": "tanh"}), (3,))
    g.add_node(Node("relu", "Activation", ["tanh"], attrs={"function": "relu"}), (3,))
    g.add_node(Node("soft", "Softmax", ["relu"], attrs={
        "table_size": 64, "exp_range": 2.0, "inv_table_size": 128}), (3,))
    g.outputs = ["soft"]
    config = {
        "Model": {"Precision": "ap_fixed<10,3,AP_RND_INF,AP_SAT>"},
        "LayerName": {
            "inp": {"Precision": {"result": "ap_fixed<9,3,AP_RND_CONV,AP_SAT>"}},
            # products have 11 fractional bits; the accumulator keeps 6 and wraps at 9 bits
            "fc0": {"Precision": {"weight": "ap_fixed<7,2>",
                                  "accum": "ap_fixed<9,3,AP_RND_ZERO,AP_WRAP>",
                                  "result": "ap_fixed<8,3,AP_RND_MIN_INF,AP_SAT_ZERO>"}},
            "leaky": {"Precision": {"param": "ap_fixed<6,1,AP_RND>",
                                    "result": "ap_fixed<8,3,AP_TRN_ZERO,AP_WRAP>"}},
            "relu6": {"Precision": {"result": "ap_ufixed<7,1,AP_RND,AP_SAT>"}},
            "hsig": {"Precision": {"param": "ap_fixed<8,2,AP_RND_CONV>",
                                   "result": "ap_ufixed<6,1,AP_RND,AP_SAT>"}},
            "fc1": {"Precision": {"weight": "ap_fixed<6,3>", "accum": "ap_ufixed<8,4>",
                                  "result": "ap_fixed<9,4,AP_RND,AP_SAT>"}},
            "sig": {"Precision": {"table": "ap_ufixed<10,1,AP_RND_CONV,AP_SAT>",
                                  "result": "ap_ufixed<8,1,AP_RND,AP_SAT>"}},
            "fc2": {"Precision": {"weight": "ap_fixed<8,3>",
                                  "result": "ap_fixed<10,3,AP_RND,AP_SAT_SYM>"}},
            "tanh": {"Precision": {"result": "ap_fixed<7,1,AP_TRN,AP_SAT>"}},
            "relu": {"Precision": {"result": "ap_ufixed<5,0,AP_RND_CONV,AP_SAT_SYM>"}},
            "soft": {"Precision": {"exp_table": "ap_ufixed<9,1,AP_RND,AP_SAT>",
                                   "inv_table": "ap_ufixed<10,1,AP_RND_CONV,AP_SAT>",
                                   "result": "ap_ufixed<7,0,AP_RND_INF,AP_SAT>"}},
        },
    }
    return g, config


@pytest.mark.parametrize("style", ["lut", "dsp"])
def test_activations_and_narrow_accumulators_match_emulator(style: str, tmp_path: Path) -> None:
    graph, config = _activation_chain()
    model = convert(graph, config)
    assert [n.op for n in model.graph.nodes].count("Activation") == 6
    project = RTLProject(model, tmp_path, style=style)
    x = sample_inputs(model.graph.tensors["inp"].type, 5, BATCH, seed=2)
    result = project.simulate(x)
    expected = model.predict(x)
    assert np.array_equal(result.outputs, expected)
    assert result.latency == project.latency == 1 + 9 + 3  # softmax: three stages


@pytest.mark.parametrize("style", ["lut", "dsp"])
def test_generated_verilog_is_lint_clean(style: str, tmp_path: Path) -> None:
    graph, config = _activation_chain()
    project = RTLProject(convert(graph, config), tmp_path, style=style, adders_per_stage=2)
    warnings = lint(project.write(), project.top, tmp_path / "lint.log")
    assert warnings == []


@pytest.mark.parametrize("per_stage", [1, 3])
def test_pipelined_adder_trees(per_stage: int, tmp_path: Path) -> None:
    graph = mlp_graph([12, 8, 3], seed=5, zero_fraction=0.2)
    model = convert(graph, {"Model": {"Precision": "ap_fixed<12,4,AP_RND,AP_SAT>"}})
    project = RTLProject(model, tmp_path, style="lut", adders_per_stage=per_stage)
    assert project.latency > 4  # deeper than one cycle per layer
    x = sample_inputs(model.graph.tensors["inp"].type, 12, 300, seed=3)
    result = project.simulate(x, gap=5)
    assert np.array_equal(result.outputs, model.predict(x))
    assert result.latency == project.latency
