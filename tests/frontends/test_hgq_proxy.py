"""HGQ (Keras 2) proxy models: ``FixedPointQuantizer`` -> ``ElementCast``, per-element
fixed-point types, on the whole ladder.

The reference is written from HGQ's documented quantizer (scale by 2**(bits -
integers), round, saturate or wrap to ``bits`` with the sign, scale back; zero bits give
0) in Python integers, not from nnfab's cast.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.frontends.test_keras_json import convert, functional, inp, layer

import nnfab
from nnfab.errors import GraphError, UnsupportedLayerError
from nnfab.ir import Graph, Node


def hgq_reference(x: np.ndarray, k: np.ndarray, b: np.ndarray, i: np.ndarray, rnd: str,
                  sat: str) -> np.ndarray:
    """The proxy quantizer, element by element (RND: floor(x + 1/2); TRN: floor)."""
    out = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        e = idx[1:]
        kk, bb, ii = int(k[e]), int(b[e]), int(i[e])
        if bb == 0:
            continue
        f = bb - ii
        scaled = x[idx] * 2.0**f
        n = math.floor(scaled + 0.5) if rnd == "RND" else math.floor(scaled)
        high = 2 ** (bb - kk) - 1
        low = -(high + 1) * kk
        n = min(max(n, low), high) if sat == "SAT" else (n - low) % (high - low + 1) + low
        out[idx] = n / 2.0**f
    return out


def fields(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    k = rng.integers(0, 2, shape)
    b = rng.integers(0, 7, shape)  # some zero-width elements
    i = rng.integers(-1, 4, shape)
    return k, b, i


@pytest.mark.parametrize(("rnd", "sat"), [("RND", "SAT"), ("TRN", "WRAP")])
def test_proxy_model_matches_the_hgq_quantizer(tmp_path: Path, rnd: str, sat: str) -> None:
    rng = np.random.default_rng(0)
    # signed and unsigned, a zero-width element, negative fractional bits (i > b)
    k = np.array([1, 0, 1, 1, 0, 1])
    b = np.array([4, 3, 0, 6, 5, 2])
    i = np.array([2, 1, 0, 1, 2, 3])
    kernel = np.round(rng.normal(size=(6, 3)) * 8) / 8
    bias = np.round(rng.normal(size=3) * 8) / 8
    model = functional([
        inp("x", 6),
        layer("FixedPointQuantizer", "fpq", ["x"], RND=rnd, SAT=sat, shape=[1, 6],
              overrides={"layers": {}}, fusible=False),
        layer("Dense", "fc", ["fpq"], units=3, activation="linear", use_bias=True),
    ], ["x"], ["fc"])
    graph = convert(tmp_path, model, {
        "fpq": {"keep_negative": k[None], "bits": b[None], "integers": i[None]},
        "fc": {"kernel": kernel, "bias": bias}})
    assert [n.op for n in graph.nodes] == ["Input", "ElementCast", "Dense"]
    hm = nnfab.convert_graph(graph, {"Model": {"Precision": "ap_fixed<24,12>"}})
    x = rng.normal(size=(300, 6)) * 6
    q = hgq_reference(x, k, b, i, rnd, sat)
    np.testing.assert_array_equal(hm.trace(x, warn_overflow=False)["fpq"], q)
    np.testing.assert_array_equal(hm.predict(x, warn_overflow=False), q @ kernel + bias)
    assert np.count_nonzero(q) > q.size // 2


def test_wrap_sm_and_bad_fields_are_refused(tmp_path: Path) -> None:
    model = functional([inp("x", 2), layer("FixedPointQuantizer", "fpq", ["x"], RND="TRN",
                                            SAT="WRAP_SM", shape=[1, 2])], ["x"], ["fpq"])
    ones = np.ones((1, 2))
    with pytest.raises(UnsupportedLayerError, match=r"'fpq'.*SAT='WRAP_SM'"):
        convert(tmp_path, model, {"fpq": {"keep_negative": ones, "bits": ones,
                                          "integers": ones}})
    g = Graph(name="bad")
    g.add_node(Node("x", "Input", [], attrs={"shape": (2,)}), (2,))
    g.add_node(Node("q", "ElementCast", ["x"], attrs={"rounding": "AP_TRN", "overflow": "AP_SAT"},
                    weights={"keep_negative": np.array([2, 0]), "bits": np.ones(2),
                             "integers": np.ones(2)}), (2,))
    g.outputs = ["q"]
    with pytest.raises(GraphError, match=r"'q' \(ElementCast\): keep_negative must be 0 or 1"):
        nnfab.convert_graph(g, {})


def _per_element_model() -> nnfab.NnfabModel:
    rng = np.random.default_rng(3)
    k, b, i = fields(rng, (2, 4))
    g = Graph(name="ec")
    g.add_node(Node("x", "Input", [], attrs={"shape": (2, 4)}), (2, 4))
    g.add_node(Node("q", "ElementCast", ["x"], attrs={"rounding": "AP_RND_CONV",
                                                     "overflow": "AP_SAT_SYM"},
                    weights={"keep_negative": k, "bits": b, "integers": i}), (2, 4))
    g.add_node(Node("fc", "Dense", ["q"], weights={
        "kernel": np.round(rng.normal(size=(4, 3)) * 4) / 4, "bias": np.zeros(3)}), (2, 3))
    g.outputs = ["fc"]
    return nnfab.convert_graph(g, {"Model": {"Precision": "ap_fixed<14,6>"}})


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_element_cast_csim_matches_emulator(tmp_path: Path) -> None:
    from nnfab.backends.hls import CSimLibrary

    hm = _per_element_model()
    x = np.random.default_rng(4).normal(size=(200, 2, 4)) * 5
    want = hm.predict(x, warn_overflow=False)
    np.testing.assert_array_equal(CSimLibrary(hm, cache_dir=tmp_path).predict(x), want)


@pytest.mark.verilator
@pytest.mark.parametrize("style", ["lut", "dsp"])
def test_element_cast_verilog_matches_emulator(style: str, tmp_path: Path) -> None:
    from nnfab.tools.verilator import verilator_available

    if not verilator_available():
        pytest.skip("verilator is not available")
    hm = _per_element_model()
    x = np.random.default_rng(5).normal(size=(300, 2, 4)) * 5
    rtl = hm.to_rtl(tmp_path / "rtl", style=style)
    result = rtl.simulate(x)
    np.testing.assert_array_equal(np.asarray(result), hm.predict(x, warn_overflow=False))
    assert result.latency == rtl.latency
