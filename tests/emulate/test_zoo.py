"""Embedding, Conv1D/2DTranspose, LayerNormalization: emulator vs integer references.

Every expected value is computed here from the rules of docs/semantics.md with Python
integers and Fractions (scatter-add for the transposed convolutions, exact sums for the
layer norm), never with nnfab's kernels or FixedType casts.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

import nnfab
from nnfab.errors import GraphError, PrecisionError
from nnfab.ir import Graph, Node, infer_shapes


# ------------------------------------------------------------ reference cast
def parse(spec: str) -> tuple[int, int, bool, str, str]:
    signed = not spec.startswith("ap_u")
    inner = spec[spec.index("<") + 1 : -1].split(",")
    width = int(inner[0])
    integer = int(inner[1]) if len(inner) > 1 and "int" not in spec else width
    rnd = inner[2] if len(inner) > 2 else "AP_TRN"
    ovf = inner[3] if len(inner) > 3 else "AP_WRAP"
    return width, integer, signed, rnd, ovf


def ref_cast(v: Fraction, spec: str) -> Fraction:
    """Cast an exact rational to the type ``spec`` (TRN / RND / RND_CONV; WRAP / SAT)."""
    width, integer, signed, rnd, ovf = parse(spec)
    frac = width - integer
    s = v * Fraction(2) ** frac
    n = math.floor(s)
    r = s - n
    half = Fraction(1, 2)
    if rnd not in ("AP_TRN", "AP_RND", "AP_RND_CONV"):
        raise AssertionError(rnd)
    ties_up = rnd == "AP_RND" or n % 2 == 1  # RND: ties up; RND_CONV: ties to even
    if rnd != "AP_TRN" and (r > half or (r == half and ties_up)):
        n += 1
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    if n < lo or n > hi:
        if ovf == "AP_SAT":
            n = min(max(n, lo), hi)
        else:
            assert ovf == "AP_WRAP", ovf
            n = (n - lo) % (1 << width) + lo
    return Fraction(n) / Fraction(2) ** frac


def fr(x: float) -> Fraction:
    return Fraction(float(x))


def cast_array(values: np.ndarray, spec: str) -> np.ndarray:
    flat = [float(ref_cast(fr(v), spec)) for v in np.ravel(values)]
    return np.array(flat).reshape(np.shape(values))


def grid(rng: np.random.Generator, spec: str, shape: tuple[int, ...], spread: float) -> np.ndarray:
    """Random values of the type ``spec`` (plus its extremes)."""
    x = cast_array(rng.normal(0, spread, shape), spec)
    width, integer, signed, _, _ = parse(spec)
    frac = width - integer
    flat = x.reshape(-1)
    lo = -(1 << (width - 1)) if signed else 0
    hi = (1 << (width - 1)) - 1 if signed else (1 << width) - 1
    flat[:2] = [lo * 2.0**-frac, hi * 2.0**-frac]
    return x


# ------------------------------------------------------------------- Embedding
EMB_CASES = {
    "saturating_weights": ("ap_fixed<6,2,AP_RND_CONV,AP_SAT>", "ap_fixed<5,1,AP_RND,AP_SAT>"),
    "wrapping_result": ("ap_fixed<10,4,AP_RND>", "ap_fixed<6,2>"),
}


@pytest.mark.parametrize("case", sorted(EMB_CASES))
def test_embedding_rows_and_out_of_range(case: str) -> None:
    w_spec, r_spec = EMB_CASES[case]
    rng = np.random.default_rng(1)
    table = rng.normal(0, 2.5, (13, 4))
    g = Graph("emb")
    g.add_node(Node("idx", "Input", [], attrs={"shape": (6,)}), (6,))
    g.add_node(Node("emb", "Embedding", ["idx"], weights={"embeddings": table}), (1,))
    g.outputs = ["emb"]
    infer_shapes(g)
    cfg = {"Model": {"Precision": "ap_fixed<16,6>"},
           "LayerName": {"emb": {"Precision": {"weight": w_spec, "result": r_spec}}}}
    model = nnfab.convert_graph(g, cfg)
    idx_type = model.graph.tensors["idx"].type
    assert idx_type is not None and idx_type.is_integer and idx_type.width == 6  # B=4, +2
    x = rng.integers(-3, 17, (200, 6)).astype(np.float64)
    x[0] = [0, 12, -1, 13, 31, -32]  # edges: first, last, just outside, the type's extremes
    got = model.predict(x)
    want = np.zeros((200, 6, 4))
    for b in range(200):
        for t in range(6):
            i = int(x[b, t])
            if 0 <= i < 13:
                want[b, t] = [float(ref_cast(ref_cast(fr(v), w_spec), r_spec)) for v in table[i]]
            else:
                want[b, t] = float(ref_cast(Fraction(0), r_spec))
    np.testing.assert_array_equal(got, want)
    report = model.overflow_report()
    bad = int(np.count_nonzero((x < 0) | (x > 12)))
    assert report["emb"]["index"] == bad > 0


def test_embedding_unsigned_index_type_with_negative_frac() -> None:
    """ap_ufixed<3,4>: indices 0, 2, ..., 14 (mantissa m stands for 2m)."""
    table = np.arange(20.0).reshape(10, 2) / 4
    g = Graph("emb")
    g.add_node(Node("idx", "Input", [], attrs={"shape": (8,)}), (8,))
    g.add_node(Node("emb", "Embedding", ["idx"], weights={"embeddings": table}), (1,))
    g.outputs = ["emb"]
    infer_shapes(g)
    cfg = {"LayerName": {"idx": {"Precision": {"result": "ap_ufixed<3,4>"}}}}
    model = nnfab.convert_graph(g, cfg)
    x = np.array([[0, 2, 4, 6, 8, 10, 12, 14]], dtype=np.float64)
    want = np.array([table[i] if i < 10 else [0, 0] for i in range(0, 16, 2)])
    np.testing.assert_array_equal(model.predict(x)[0], want)
    assert model.overflow_report()["emb"]["index"] == 3


def test_embedding_rejects_fractional_index_type() -> None:
    g = Graph("emb")
    g.add_node(Node("idx", "Input", [], attrs={"shape": (2,)}), (2,))
    g.add_node(Node("emb", "Embedding", ["idx"], weights={"embeddings": np.ones((4, 2))}), (1,))
    g.outputs = ["emb"]
    infer_shapes(g)
    cfg = {"LayerName": {"idx": {"Precision": {"result": "ap_fixed<8,4>"}}}}
    with pytest.raises(PrecisionError, match=r"layer 'emb' \(Embedding\).*integer type"):
        nnfab.convert_graph(g, cfg)


# -------------------------------------------------------------- ConvTranspose
def ref_transpose(x: np.ndarray, x_spec: str, kernel: np.ndarray, w_spec: str, bias: np.ndarray,
                  b_spec: str, accum: str, r_spec: str, strides: tuple[int, ...],
                  pads: tuple[int, ...], extra: tuple[int, ...]) -> np.ndarray:
    """Scatter-add of exact products into the full output, then crop (integer sums)."""
    rank = len(strides)
    spatial, ksize = x.shape[:rank], kernel.shape[:rank]
    n_out = kernel.shape[-1]
    full = [(n - 1) * s + k + e for n, s, k, e in zip(spatial, strides, ksize, extra,
                                                      strict=True)]
    wq = {idx: ref_cast(fr(v), w_spec) for idx, v in np.ndenumerate(kernel)}
    bq = [ref_cast(ref_cast(fr(v), b_spec), accum) for v in bias]
    sums: dict[tuple[int, ...], list[Fraction]] = {
        p: [Fraction(0)] * n_out for p in np.ndindex(*full)}
    a_width, a_int, _, a_rnd, _ = parse(accum)
    exact_grid = f"ap_fixed<{a_width + 200},{a_int + 200},{a_rnd}>"  # rounding only
    for i in np.ndindex(*spatial):
        for t in np.ndindex(*ksize):
            p = tuple(ii * s + tt for ii, s, tt in zip(i, strides, t, strict=True))
            for c in range(x.shape[-1]):
                xv = fr(x[(*i, c)])
                for f in range(n_out):
                    sums[p][f] += ref_cast(xv * wq[(*t, c, f)], exact_grid)
    out_shape = [fl - pads[2 * a] - pads[2 * a + 1] for a, fl in enumerate(full)]
    y = np.zeros((*out_shape, n_out))
    for o in np.ndindex(*out_shape):
        p = tuple(oo + pads[2 * a] for a, oo in enumerate(o))
        for f in range(n_out):
            y[(*o, f)] = float(ref_cast(ref_cast(sums[p][f] + bq[f], accum), r_spec))
    return y


TRANSPOSE_CASES: dict[str, dict[str, Any]] = {
    # 1-D, stride 3 > k, output padding, products rounded into a narrow wrapping accum
    "1d_rounded_products": {"op": "Conv1DTranspose", "in": (4, 2), "k": (2,), "f": 3,
                            "strides": (3,), "pads": (0, 1), "extra": (2,),
                            "x": "ap_fixed<7,3,AP_RND,AP_SAT>",
                            "w": "ap_fixed<6,1,AP_RND_CONV,AP_SAT>",
                            "b": "ap_fixed<6,2>", "accum": "ap_fixed<9,4,AP_RND_CONV>",
                            "result": "ap_fixed<7,3,AP_RND,AP_SAT>"},
    # 2-D, 'same'-like crop, exact (auto) accumulator, wrapping result
    "2d_auto_accum": {"op": "Conv2DTranspose", "in": (3, 4, 2), "k": (3, 2), "f": 2,
                      "strides": (2, 1), "pads": (1, 1, 0, 1), "extra": (1, 0),
                      "x": "ap_fixed<8,3>", "w": "ap_fixed<8,2,AP_RND_CONV,AP_SAT>",
                      "b": "ap_fixed<8,3>", "accum": None, "result": "ap_fixed<8,3>"},
}


@pytest.mark.parametrize("case", sorted(TRANSPOSE_CASES))
def test_conv_transpose_matches_scatter_reference(case: str) -> None:
    c = TRANSPOSE_CASES[case]
    rng = np.random.default_rng(2)
    rank = len(c["k"])
    kernel = rng.normal(0, 1.2, (*c["k"], c["in"][-1], c["f"]))
    bias = rng.normal(0, 1, c["f"])
    g = Graph("ct")
    g.add_node(Node("x", "Input", [], attrs={"shape": c["in"]}), c["in"])
    attrs = {"strides": c["strides"], "pads": c["pads"], "output_padding": c["extra"]}
    g.add_node(Node("ct", c["op"], ["x"], attrs=attrs,
                    weights={"kernel": kernel, "bias": bias}), (1,))
    g.outputs = ["ct"]
    infer_shapes(g)
    prec = {"weight": c["w"], "bias": c["b"], "result": c["result"]}
    if c["accum"]:
        prec["accum"] = c["accum"]
    cfg = {"LayerName": {"x": {"Precision": {"result": c["x"]}}, "ct": {"Precision": prec}}}
    model = nnfab.convert_graph(g, cfg)
    accum = c["accum"] or str(model.graph.node("ct").precision["accum"])
    x = grid(rng, c["x"], (6, *c["in"]), 3.0)
    got = model.predict(x)
    for b in range(x.shape[0]):
        want = ref_transpose(x[b], c["x"], kernel, c["w"], bias, c["b"], accum, c["result"],
                             c["strides"], c["pads"], c["extra"])
        assert got[b].shape == want.shape
        np.testing.assert_array_equal(got[b], want, err_msg=f"{case} sample {b}")
    assert rank in (1, 2)
    if case == "1d_rounded_products":
        assert model.overflow_report()["ct"]["accum"] > 0  # the wrap is really exercised


def test_conv_transpose_rejects_output_padding_not_below_stride() -> None:
    g = Graph("ct")
    g.add_node(Node("x", "Input", [], attrs={"shape": (4, 1)}), (4, 1))
    g.add_node(Node("ct", "Conv1DTranspose", ["x"], attrs={"strides": (2,),
                                                          "output_padding": (2,)},
                    weights={"kernel": np.ones((3, 1, 1)), "bias": np.zeros(1)}), (1,))
    with pytest.raises(GraphError, match=r"'ct'.*output_padding.*smaller than the stride"):
        infer_shapes(g)


# ----------------------------------------------------------- LayerNormalization
def ref_layernorm(x: np.ndarray, types: dict[str, str], x_spec: str, gamma: np.ndarray,
                  beta: np.ndarray, eps: float, bits: int) -> np.ndarray:
    n = x.shape[-1]
    inv = ref_cast(Fraction(1, n), types["scale"])
    v_width, v_int, _, _, _ = parse(types["var"])
    v_frac = v_width - v_int
    g = [ref_cast(fr(v), types["weight"]) for v in gamma]
    b = [ref_cast(fr(v), types["bias"]) for v in beta]
    out = np.zeros(x.shape)
    for row in np.ndindex(*x.shape[:-1]):
        xs = [fr(v) for v in x[row]]
        mean = ref_cast(sum(xs) * inv, types["mean"])
        d = [v - mean for v in xs]
        var = ref_cast(sum(v * v for v in d) * inv, types["var"])
        m = int(var * 2**v_frac)  # the mantissa; octave p, the next `bits` bits below it
        p = 0
        while m >> (p + 1):
            p += 1
        sub = max(m * 2**bits // 2**p - 2**bits, 0)
        centre = (2**bits + sub + 0.5) * 2.0 ** (p - bits - v_frac)
        entry = ref_cast(fr(1.0 / np.sqrt(centre + eps)), types["table"])
        for i in range(n):
            norm = ref_cast(d[i] * entry, types["norm"])
            out[(*row, i)] = float(ref_cast(norm * g[i] + b[i], types["result"]))
    return out


LN_TYPES = {
    "narrow": {"weight": "ap_fixed<6,2,AP_RND_CONV,AP_SAT>", "bias": "ap_fixed<5,1,AP_RND>",
               "scale": "ap_ufixed<8,1,AP_RND_CONV,AP_SAT>",
               "mean": "ap_fixed<8,3,AP_RND,AP_SAT>", "var": "ap_ufixed<8,4,AP_RND_CONV,AP_SAT>",
               "table": "ap_ufixed<9,3,AP_RND_CONV,AP_SAT>",
               "norm": "ap_fixed<7,2,AP_RND,AP_SAT>", "result": "ap_fixed<7,2,AP_RND_CONV,AP_SAT>"},
    "wide": {"weight": "ap_fixed<16,4>", "bias": "ap_fixed<16,4>",
             "scale": "ap_ufixed<18,1,AP_RND_CONV,AP_SAT>",
             "mean": "ap_fixed<22,6,AP_RND_CONV,AP_SAT>",
             "var": "ap_ufixed<24,10,AP_RND_CONV,AP_SAT>",
             "table": "ap_ufixed<18,4,AP_RND_CONV,AP_SAT>",
             "norm": "ap_fixed<18,4,AP_RND_CONV,AP_SAT>", "result": "ap_fixed<18,6>"},
}


@pytest.mark.parametrize("case", sorted(LN_TYPES))
def test_layernorm_matches_integer_reference(case: str) -> None:
    rng = np.random.default_rng(3)
    shape = (3, 5)
    gamma, beta = rng.normal(1, 0.5, 5), rng.normal(0, 0.5, 5)
    bits, eps = (3, 1e-3) if case == "narrow" else (7, 1e-5)
    g = Graph("ln")
    g.add_node(Node("x", "Input", [], attrs={"shape": shape}), shape)
    g.add_node(Node("ln", "LayerNormalization", ["x"],
                    attrs={"epsilon": eps, "table_bits": bits},
                    weights={"gamma": gamma, "beta": beta}), (1,))
    g.outputs = ["ln"]
    infer_shapes(g)
    x_spec = "ap_fixed<8,4,AP_RND,AP_SAT>"
    cfg = {"LayerName": {"x": {"Precision": {"result": x_spec}},
                         "ln": {"Precision": dict(LN_TYPES[case])}}}
    model = nnfab.convert_graph(g, cfg)
    x = grid(rng, x_spec, (40, *shape), 2.0)
    x[1] = 1.5  # zero variance: the output is beta (entry 0 times zero)
    x[2, :, :] = [-8, 7.9375, -8, 7.9375, 0]  # the extremes: saturating mean / var / norm
    got = model.predict(x)
    want = np.stack([ref_layernorm(x[b], LN_TYPES[case], x_spec, gamma, beta, eps, bits)
                     for b in range(x.shape[0])])
    np.testing.assert_array_equal(got, want)
    if case == "narrow":
        report = model.overflow_report()["ln"]
        assert report["var"] > 0 and report["norm"] > 0


def test_layernorm_defaults_close_to_float() -> None:
    rng = np.random.default_rng(4)
    gamma, beta = rng.normal(1, 0.3, 8), rng.normal(0, 0.3, 8)
    g = Graph("ln")
    g.add_node(Node("x", "Input", [], attrs={"shape": (8,)}), (8,))
    g.add_node(Node("ln", "LayerNormalization", ["x"], attrs={"epsilon": 1e-3},
                    weights={"gamma": gamma, "beta": beta}), (1,))
    g.outputs = ["ln"]
    infer_shapes(g)
    model = nnfab.convert_graph(g, {"Model": {"Precision": "ap_fixed<16,6>"}})
    node = model.graph.node("ln")
    assert node.attrs["table_bits"] == 6
    assert node.precision["table"].width == 24
    # variances from 1e-4 to 1e3: the octave table keeps the relative error ~2**-7 on all
    spread = np.logspace(-2, 1.5, 300)[:, None]
    x = model.graph.tensors["x"].type.quantize(rng.normal(0, 1, (300, 8)) * spread + 0.5)
    got = model.predict(x)
    mu = x.mean(-1, keepdims=True)
    ref = (x - mu) / np.sqrt(x.var(-1, keepdims=True) + 1e-3) * gamma + beta
    # 1/sqrt: 2**-6 wide bins per octave, < 0.4% relative; norm and result casts 2**-10
    assert np.max(np.abs(got - ref)) < 0.03


# ----------------------------------------------------------------------- shapes
def _one(op: str, shape: tuple[int, ...], attrs: dict[str, Any], **weights: np.ndarray) -> Graph:
    g = Graph("s")
    g.add_node(Node("x", "Input", [], attrs={"shape": shape}), shape)
    g.add_node(Node("n", op, ["x"], attrs=attrs, weights=weights), (1,))
    g.outputs = ["n"]
    return g


def test_shapes() -> None:
    g = _one("Embedding", (2, 3), {}, embeddings=np.zeros((7, 5)))
    infer_shapes(g)
    assert g.tensors["n"].shape == (2, 3, 5)
    # (L-1)*s + k - before - after + output_padding: (5-1)*3 + 2 - 1 - 0 + 2 = 15
    g = _one("Conv1DTranspose", (5, 2), {"strides": (3,), "pads": (1, 0), "output_padding": (2,)},
             kernel=np.zeros((2, 2, 4)), bias=np.zeros(4))
    infer_shapes(g)
    assert g.tensors["n"].shape == (15, 4)
    g = _one("Conv2DTranspose", (3, 4, 1), {"strides": (2, 1), "pads": (1, 1, 0, 2)},
             kernel=np.zeros((3, 3, 1, 2)), bias=np.zeros(2))
    infer_shapes(g)
    assert g.tensors["n"].shape == (5, 4, 2)
    g = _one("LayerNormalization", (4, 6), {}, gamma=np.ones(6), beta=np.zeros(6))
    infer_shapes(g)
    assert g.tensors["n"].shape == (4, 6)
    bad = _one("LayerNormalization", (4, 6), {}, gamma=np.ones(4), beta=np.zeros(4))
    with pytest.raises(GraphError, match=r"'n' \(LayerNormalization\).*'gamma' has 4 values"):
        infer_shapes(bad)
    bad = _one("Conv1DTranspose", (5, 3), {}, kernel=np.zeros((2, 2, 4)), bias=np.zeros(4))
    with pytest.raises(GraphError, match=r"input has 3 channels, kernel expects 2"):
        infer_shapes(bad)
    bad = _one("Embedding", (3,), {}, embeddings=np.zeros(7))
    with pytest.raises(GraphError, match=r"'embeddings' must be \(vocabulary, dim\)"):
        infer_shapes(bad)
