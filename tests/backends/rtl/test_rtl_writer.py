"""RTL writer without tools: signals, CSD, the reference cast, generated structure, errors."""

from __future__ import annotations

import itertools
import math
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rtl_helpers import convert, mlp_graph, ref_cast_mantissa

from nnfab.backends.rtl import RtlOptions, RTLProject, generate
from nnfab.backends.rtl.adders import csd, share_subexpressions
from nnfab.backends.rtl.verilog import Sig, bits_for, cast_int, literal
from nnfab.errors import BackendError, PrecisionError
from nnfab.ir import FixedType, Graph, Node, Overflow, Rounding

TYPES_SMALL = st.builds(
    FixedType,
    width=st.integers(1, 9),
    integer=st.integers(-4, 12),
    signed=st.booleans(),
    rounding=st.sampled_from(list(Rounding)),
    overflow=st.sampled_from(list(Overflow)),
)


@given(st.integers(-(2**40), 2**40))
def test_csd_sums_back_and_has_no_adjacent_digits(n: int) -> None:
    digits = csd(n)
    assert sum(d * 2**s for s, d in digits) == n
    shifts = [s for s, _ in digits]
    assert all(b - a >= 2 for a, b in itertools.pairwise(shifts))
    # never more digits than the plain binary expansion of |n|
    assert len(digits) <= bin(abs(n)).count("1")


@given(st.integers(-1000, 1000), st.integers(0, 1000))
def test_bits_for_holds_the_range(lo: int, span: int) -> None:
    hi = lo + span
    width, signed = bits_for(lo, hi)
    if signed:
        assert -(2 ** (width - 1)) <= lo and hi <= 2 ** (width - 1) - 1
        assert not (-(2 ** (width - 2)) <= lo and hi <= 2 ** (width - 2) - 1) or width == 1
    else:
        assert lo >= 0 and hi <= 2**width - 1
        assert width == 1 or hi > 2 ** (width - 1) - 1


def test_literals_are_twos_complement() -> None:
    assert literal(-1, 4) == "4'b1111"
    assert literal(5, 8) == "8'h5"
    assert literal(-128, 8) == "8'h80"
    assert literal(300, 8) == "8'h2c"  # modulo 2**8


def test_signal_extension_text() -> None:
    s = Sig("a", 4, True, -8, 7)
    u = Sig("b", 4, False, 0, 15)
    assert s.ext(4) == "a"
    assert s.ext(6) == "{{2{a[3]}}, a}"
    assert u.ext(6) == "{{2{1'b0}}, b}"
    assert s.ext(2) == "a[1:0]"
    assert s.shifted(2, 7) == "{{{1{a[3]}}, a}, 2'b0}"
    assert s.shifted(7, 7) is None  # shifted out entirely: zero modulo 2**7


@given(st.integers(-600, 600), st.integers(-3, 10), TYPES_SMALL)
def test_python_cast_matches_the_independent_reference(m: int, frac: int, t: FixedType) -> None:
    expected = ref_cast_mantissa(Fraction(m) / Fraction(2) ** frac, t)
    assert cast_int(m, frac, t) == expected


@given(st.integers(-600, 600), st.integers(-3, 10), TYPES_SMALL)
def test_reference_cast_agrees_with_fixedtype(m: int, frac: int, t: FixedType) -> None:
    value = float(Fraction(m) / Fraction(2) ** frac)
    got = int(t.to_mantissa(np.array([value]))[0])
    assert got == ref_cast_mantissa(Fraction(m) / Fraction(2) ** frac, t)


# ------------------------------------------------------------ generation
def _model(sizes: list[int], **kw: object) -> object:
    config = {"Model": {"Precision": "ap_fixed<10,4>"},
              "LayerName": {"inp": {"Precision": {"result": "ap_fixed<8,3>"}}}}
    return convert(mlp_graph(sizes, **kw), config)


def test_top_interface_latency_and_comments() -> None:
    model = _model([4, 3, 2])
    design = generate(model.graph, RtlOptions("lut"))
    top = design.files[f"{design.top}.v"]
    for port in ("input  wire clk", "input  wire rst", "input  wire in_valid",
                 "input  wire [31:0] in_data", "output wire out_valid",
                 "output wire [19:0] out_data"):
        assert port in top
    # input register + fc0 + relu0 + fc1, one cycle each
    assert design.latency == 4
    assert f"Latency: {design.latency} clock cycles" in top
    fc0 = design.files["mlp_fc0.v"]
    assert "Layer 'fc0': Dense 4 -> 3" in fc0
    assert "accum" in fc0 and "result ap_fixed<10,4>" in fc0
    assert design.manifest()["layers"][0]["latency"] == 1


def test_zero_weights_cost_nothing() -> None:
    g = mlp_graph([6, 3], relu=False)
    g.node("fc0").weights["kernel"][:] = 0.0
    g.node("fc0").weights["kernel"][2, 1] = 0.5  # one weight, a power of two
    model = convert(g, {"Model": {"Precision": "ap_fixed<10,4>"}})
    for style in ("lut", "dsp"):
        design = generate(model.graph, RtlOptions(style))
        stats = design.layers[0].stats
        assert stats["nonzero_weights"] == 1
        # one adder: the bias of output 1 added to the shifted input (the others: constants)
        assert stats["adders"] == 1
        assert " * " not in design.files["mlp_fc0.v"]


def test_lut_style_uses_no_multiplier_and_dsp_style_does() -> None:
    model = _model([5, 4], relu=False, seed=3)
    lut = generate(model.graph, RtlOptions("lut")).files["mlp_fc0.v"]
    dsp = generate(model.graph, RtlOptions("dsp")).files["mlp_fc0.v"]
    assert " * " not in lut
    assert "$signed" in dsp and " * " in dsp


def test_adder_pipelining_adds_stages() -> None:
    model = _model([16, 4], relu=False, seed=1)
    flat = generate(model.graph, RtlOptions("lut"))
    deep = generate(model.graph, RtlOptions("lut", adders_per_stage=1))
    two = generate(model.graph, RtlOptions("lut", adders_per_stage=2))
    assert flat.latency == 2  # input register + one layer
    # k adder levels per stage, the deepest balanced tree ceil(log2(terms)) levels deep
    # (terms = signed digits of a column + the bias): the adders fill ceil(depth / k)
    # stages, and the cast after a full stage gets a stage of its own: depth // k + 1
    node = model.graph.node("fc0")
    w = node.precision["weight"].to_mantissa(node.weights["kernel"])
    b = node.precision["bias"].to_mantissa(node.weights["bias"])
    terms = [sum(len(csd(int(v))) for v in w[:, j]) + (b[j] != 0) for j in range(w.shape[1])]
    depth = math.ceil(math.log2(max(terms)))
    assert deep.layers[0].latency == depth + 1
    assert two.layers[0].latency == depth // 2 + 1
    assert deep.latency == 2 + depth


def test_identifiers_are_sanitized_and_unique() -> None:
    g = Graph(name="my net")
    g.add_node(Node("in put", "Input", [], attrs={"shape": (2,)}), (2,))
    rng = np.random.default_rng(0)
    for name, prev in (("dense/1", "in put"), ("dense-1", "dense/1"), ("module", "dense-1")):
        g.add_node(Node(name, "Dense", [prev], weights={"kernel": rng.normal(size=(2, 2)),
                                                        "bias": rng.normal(size=2)}), (2,))
    g.outputs = ["module"]
    model = convert(g, {"Model": {"Precision": "ap_fixed<8,3>"}})
    design = generate(model.graph)
    modules = [m.module for m in design.layers]
    assert len(set(modules)) == 3
    ident = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
    assert design.top == "my_net"
    assert all(ident.match(m) for m in modules)
    for text in design.files.values():
        for declared in re.findall(r"^module (\S+) \(", text, flags=re.M):
            assert ident.match(declared)


def test_unsupported_op_names_the_layer() -> None:
    """Every IR op has a Verilog renderer in vector designs; inside a pixel stream (after
    a convolution) a Slice across pixels is refused (a channel range alone is per pixel),
    naming the layer and what a stream takes."""
    g = Graph(name="g")
    g.add_node(Node("inp", "Input", [], attrs={"shape": (4, 4, 2)}), (4, 4, 2))
    g.add_node(Node("c", "Conv2D", ["inp"], weights={"kernel": np.ones((3, 3, 2, 2)) / 8,
                                                     "bias": np.zeros(2)}), (2, 2, 2))
    g.add_node(Node("t", "Slice", ["c"], attrs={"begin": (1, 0, 0), "size": (1, 2, 1)}),
               (1, 2, 1))
    g.outputs = ["t"]
    model = convert(g, {"Model": {"Precision": "ap_fixed<8,3>"}})
    with pytest.raises(BackendError, match=r"layer 't': op 'Slice' is not "
                                           r"supported inside a streamed RTL design; "
                                           r"supported on pixel streams: Conv1D.*"
                                           r"LayerNormalization.*Slice of the channels"):
        generate(model.graph)


def test_bad_options_are_rejected() -> None:
    with pytest.raises(BackendError, match="style"):
        RtlOptions("fast")
    with pytest.raises(BackendError, match="adders_per_stage"):
        RtlOptions("lut", adders_per_stage=0)


def test_saturating_accumulator_is_rejected() -> None:
    model = _model([3, 2], relu=False)
    model.graph.node("fc0").precision["accum"] = FixedType.parse("ap_fixed<20,8,AP_TRN,AP_SAT>")
    with pytest.raises(PrecisionError, match="fc0"):
        generate(model.graph)


def test_project_writes_files(tmp_path: object) -> None:
    model = _model([3, 2])
    project = RTLProject(model, tmp_path, style="dsp")
    paths = project.write()
    names = sorted(p.name for p in paths)
    assert names == sorted(project.design.files)
    assert (project.rtl_dir / "design.json").is_file()
    assert (project.rtl_dir / "filelist.f").read_text().split() == list(project.design.files)


@given(st.lists(st.lists(st.integers(-40, 40), min_size=1, max_size=8), min_size=1,
                max_size=8).filter(lambda m: len({len(r) for r in m}) == 1),
       st.lists(st.integers(-100, 100), min_size=8, max_size=8))
def test_shared_subexpressions_preserve_every_column(matrix: list[list[int]],
                                                     x: list[int]) -> None:
    n_in, n_out = len(matrix), len(matrix[0])
    columns = [[(i, s, d) for i in range(n_in) for s, d in csd(matrix[i][j])]
               for j in range(n_out)]
    graph = share_subexpressions(n_in, columns)
    values = list(x[:n_in])
    for a, b, delta, g in graph.definitions:
        values.append(values[a] + g * (values[b] << delta))
    for j, column in enumerate(graph.columns):
        assert sum(d * (values[v] << s) for v, s, d in column) == sum(
            matrix[i][j] * x[i] for i in range(n_in))
    # every definition saves at least one adder: never more adders than the plain sums
    plain = sum(max(len(c) - 1, 0) for c in columns)
    shared = len(graph.definitions) + sum(max(len(c) - 1, 0) for c in graph.columns)
    assert shared <= plain


def test_sharing_reduces_adders_on_a_dense_layer() -> None:
    model = _model([16, 16], relu=False, seed=2)
    plain = generate(model.graph, RtlOptions("lut", share=False)).layers[0].stats
    shared = generate(model.graph, RtlOptions("lut")).layers[0].stats
    assert shared["adders"] < 0.8 * plain["adders"]


def test_simulate_checks_the_input_shape(tmp_path: object) -> None:
    project = RTLProject(_model([3, 2]), tmp_path)
    with pytest.raises(BackendError, match=r"shape \(3,\).*\(4, 5\)"):
        project.simulate(np.zeros((4, 5)))
    with pytest.raises(BackendError, match="gap"):
        project.simulate(np.zeros((4, 3)), gap=-1)


def test_ports_wider_than_the_harness_are_rejected(tmp_path: object) -> None:
    model = convert(mlp_graph([3, 2], relu=False), {
        "Model": {"Precision": "ap_fixed<8,3>"},
        "LayerName": {"fc0": {"Precision": {"result": "ap_fixed<70,30>"}}}})
    project = RTLProject(model, tmp_path)
    with pytest.raises(BackendError, match=r"ap_fixed<70,30> is 70 bits wide"):
        project.build_simulator()


def test_unpipelined_lut_dense_uses_compressor_chains() -> None:
    model = _model([16, 8], relu=True, seed=3)
    flat = generate(model.graph, RtlOptions("lut")).files
    text = "".join(flat.values())
    assert "ones_b1(" in text and "(* keep *)" in text  # counted rows fold into the chains
    # pipelined: groups of four where the chains of six would take more stages
    piped = "".join(generate(model.graph, RtlOptions("lut", adders_per_stage=2)).files.values())
    assert "ones_b1(" in piped
    trees = generate(model.graph, RtlOptions("lut", adders_per_stage=2, compress_pipelined=False))
    assert "ones_b1(" not in "".join(trees.files.values())


@pytest.mark.parametrize("n_terms", [4, 7, 16, 33, 64])
def test_groups_of_four_depth_and_cost(n_terms: int) -> None:
    """Compressor groups of four rows (two chains for three more operands): within a
    level or two of a two-input adder tree, never deeper than ``compress_depth`` says
    (the bound ``render_dense`` plans with), and fewer adder bits."""
    from nnfab.backends.rtl.adders import SumBuilder, Term
    from nnfab.backends.rtl.verilog import ModuleBuilder, Sig

    rng = np.random.default_rng(n_terms)
    terms = [Term(Sig(f"v{i}", 8, False, 0, 255), int(rng.integers(0, 4)), bool(i % 3 == 0),
                  int(rng.integers(0, 3))) for i in range(n_terms)]

    def build(kind: str) -> tuple[int, int]:
        sb = SumBuilder(ModuleBuilder(), levels_per_stage=1)
        if kind == "tree":
            out = sb.reduce("s", terms, 5, 16)
        else:
            out = sb.compress("s", terms, 5, 16, group_size=4)
        return out.level, sb.adder_bits

    tree_depth, tree_bits = build("tree")
    four_depth, four_bits = build("four")
    assert tree_depth == SumBuilder.tree_depth(terms, 5)
    assert four_depth <= SumBuilder.compress_depth(terms, 4) <= tree_depth + 3
    assert four_bits < tree_bits
