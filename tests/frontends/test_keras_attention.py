"""Keras MultiHeadAttention -> Dense / Reshape / Permute / MatMul / Softmax, and MatMul
itself, on the whole ladder.

- MatMul: the emulator against ``a @ b`` of the quantized inputs, then the result cast
  written from the semantics text (``ref_cast``), bit for bit.
- The attention structure: with wide types the traced scores equal ``q . k / sqrt(D)``
  computed in float64 from Keras' own weights, and the output equals the value and
  output projections applied (in float64) to nnfab's own traced softmax: within the
  wide types' rounding (1e-5). The softmax itself is checked by its own tests; against
  Keras end to end the bound is the measured softmax error carried through the value
  and output projections.
- C simulation and Verilator == emulator, bit for bit, for a narrow-typed model.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import nnfab
from nnfab.errors import UnsupportedLayerError
from nnfab.ir import Graph, Node, fixed

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")

HEADS, KEY_DIM, STEPS, FEATURES = 2, 4, 6, 8
WIDE = {"Model": {"Precision": "ap_fixed<40,14>"},
        "LayerType": {"Softmax": {"Precision": {"exp_table": "ap_ufixed<30,10>",
                                                "inv_table": "ap_ufixed<30,8>",
                                                "result": "ap_ufixed<30,1>"},
                                  "TableSize": 4096}}}


def grid(rng: np.random.Generator, shape: tuple[int, ...], step: float = 1 / 64,
         scale: float = 1.0) -> np.ndarray:
    return np.round(rng.normal(0, scale, shape) / step) * step


def attention_model(value_dim: int | None = None, cross: bool = False):
    q_in = keras.Input((STEPS, FEATURES), name="q")
    mha = keras.layers.MultiHeadAttention(num_heads=HEADS, key_dim=KEY_DIM, value_dim=value_dim,
                                          name="mha")
    if cross:
        v_in = keras.Input((STEPS + 2, FEATURES - 2), name="v")
        model = keras.Model([q_in, v_in], mha(q_in, v_in))
    else:
        model = keras.Model(q_in, mha(q_in, q_in))
    rng = np.random.default_rng(1)
    for w in mha.weights:
        w.assign(grid(rng, tuple(w.shape), scale=0.5))
    weights = {"/".join(w.path.split("/")[-2:]): np.asarray(w.numpy(), dtype=np.float64)
               for w in mha.weights}
    return model, weights


@pytest.mark.parametrize("in_type", ["ap_fixed<10,4>", "ap_fixed<30,4>"])  # float / exact path
def test_matmul_bit_exact_against_numpy(in_type: str) -> None:
    from tests.emulate.helpers import ref_cast

    g = Graph(name="mm")
    g.add_node(Node("a", "Input", [], attrs={"shape": (2, 3, 4)}), (2, 3, 4))
    g.add_node(Node("b", "Input", [], attrs={"shape": (2, 4, 5)}), (2, 4, 5))
    g.add_node(Node("mm", "MatMul", ["a", "b"]), (2, 3, 5))
    g.outputs = ["mm"]
    out_t = "ap_fixed<9,3,AP_RND_CONV,AP_SAT>"
    model = nnfab.convert_graph(g, {"Model": {"Precision": in_type},
                                    "LayerName": {"mm": {"Precision": {"result": out_t}}}})
    rng = np.random.default_rng(0)
    a, b = grid(rng, (40, 2, 3, 4), 1 / 16, 2), grid(rng, (40, 2, 4, 5), 1 / 16, 2)
    in_t = fixed(in_type)
    # inputs on a 2**-4 grid: every product and sum is exact in float64 here
    exact = in_t.quantize(a) @ in_t.quantize(b)
    want = np.vectorize(lambda v: float(ref_cast(v, fixed(out_t))[0]))(exact)
    got = model.predict({"a": a, "b": b})
    np.testing.assert_array_equal(got, want)
    assert 0 < np.count_nonzero(np.abs(exact) > fixed(out_t).max) < exact.size  # saturates


@pytest.mark.parametrize("value_dim", [None, 3])
def test_attention_structure_against_keras_weights(value_dim: int | None) -> None:
    model, w = attention_model(value_dim)
    hm = nnfab.convert_from_keras_model(model, hls_config=WIDE)
    ops = [n.op for n in hm.graph.nodes]
    assert ops.count("MatMul") == 2 and ops.count("Softmax") == 1 and ops.count("Dense") == 4
    x = grid(np.random.default_rng(2), (30, STEPS, FEATURES), scale=1.0)
    trace = hm.trace(x)
    vd = value_dim or KEY_DIM
    q = np.einsum("btf,fhd->bhtd", x, w["query/kernel"]) + w["query/bias"][:, None, :]
    k = np.einsum("bsf,fhd->bhsd", x, w["key/kernel"]) + w["key/bias"][:, None, :]
    v = np.einsum("bsf,fhd->bhsd", x, w["value/kernel"]) + w["value/bias"][:, None, :]
    scores = np.einsum("bhtd,bhsd->bhts", q, k) / math.sqrt(KEY_DIM)
    np.testing.assert_allclose(trace["mha_scores"], scores, rtol=0, atol=1e-5)
    p = trace["mha_softmax"]
    context = np.einsum("bhts,bhsd->bthd", p, v).reshape(30, STEPS, HEADS * vd)
    out = context @ w["attention_output/kernel"].reshape(HEADS * vd, FEATURES)
    out += w["attention_output/bias"]
    np.testing.assert_allclose(trace["mha"], out, rtol=0, atol=1e-5)
    # and against Keras: the softmax's own error, carried through value and output
    want = model.predict(x, verbose=0)
    p_float = np.exp(scores - scores.max(-1, keepdims=True))
    p_float /= p_float.sum(-1, keepdims=True)
    dp = np.abs(p - p_float).max()
    bound = dp * STEPS * np.abs(v).max() * np.abs(w["attention_output/kernel"]).sum(
        axis=(0, 1)).max() + 1e-4
    assert dp < 1e-2  # the table softmax is close to the float one
    np.testing.assert_allclose(hm.predict(x), want, rtol=0, atol=bound)


def test_cross_attention_with_other_value_input() -> None:
    model, _ = attention_model(cross=True)
    hm = nnfab.convert_from_keras_model(model, hls_config=WIDE)
    rng = np.random.default_rng(3)
    xq = grid(rng, (20, STEPS, FEATURES))
    xv = grid(rng, (20, STEPS + 2, FEATURES - 2))
    got = hm.predict({"q": xq, "v": xv})
    want = model.predict([xq, xv], verbose=0)
    assert got.shape == want.shape == (20, STEPS, FEATURES)
    np.testing.assert_allclose(got, want, rtol=0, atol=0.05)


def test_attention_options_that_are_not_supported_are_named() -> None:
    q = keras.Input((STEPS, FEATURES))
    mask = keras.Input((STEPS, STEPS))
    masked = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="masked")
    with pytest.raises(UnsupportedLayerError, match=r"'masked'.*attention_mask"):
        nnfab.convert_from_keras_model(keras.Model([q, mask], masked(q, q, attention_mask=mask)))
    causal = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="causal")
    with pytest.raises(UnsupportedLayerError, match=r"'causal'.*use_causal_mask"):
        nnfab.convert_from_keras_model(keras.Model(q, causal(q, q, use_causal_mask=True)))
    bad = keras.Input((STEPS, 2, FEATURES))
    mha3 = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha3")
    with pytest.raises(UnsupportedLayerError, match=r"'mha3' \(MultiHeadAttention\)"):
        nnfab.convert_from_keras_model(keras.Model(bad, mha3(bad, bad)))


def test_attention_with_a_separate_key() -> None:
    """``mha(q, v, key=k)``: the key projection reads ``k``, not the value."""
    q_in, v_in = keras.Input((STEPS, FEATURES), name="q"), keras.Input((STEPS, FEATURES), name="v")
    k_in = keras.Input((STEPS, FEATURES), name="k")
    mha = keras.layers.MultiHeadAttention(num_heads=HEADS, key_dim=KEY_DIM, name="mha")
    model = keras.Model([q_in, v_in, k_in], mha(q_in, v_in, key=k_in))
    hm = nnfab.convert_from_keras_model(model, hls_config=WIDE)
    assert hm.graph.node("mha_key").inputs == ["k"]
    rng = np.random.default_rng(7)
    xs = [grid(rng, (20, STEPS, FEATURES)) for _ in range(3)]
    got = hm.predict(dict(zip("qvk", xs, strict=True)))
    np.testing.assert_allclose(got, model.predict(xs, verbose=0), rtol=0, atol=0.05)


def _narrow(io_type: str = "io_parallel"):
    model, _ = attention_model()
    cfg = {"Model": {"Precision": "ap_fixed<12,5,AP_RND,AP_SAT>"},
           "LayerType": {"Softmax": {"Precision": {"result": "ap_ufixed<10,1,AP_RND,AP_SAT>"},
                                     "TableSize": 256}}}
    return nnfab.convert_from_keras_model(model, hls_config=cfg, io_type=io_type)


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_attention_csim_matches_emulator(io_type: str, tmp_path: Path) -> None:
    from nnfab.backends.hls import CSimLibrary

    hm = _narrow(io_type)
    assert hm.io_type == io_type
    x = grid(np.random.default_rng(4), (64, STEPS, FEATURES), scale=2)
    want = hm.predict(x)
    np.testing.assert_array_equal(CSimLibrary(hm, cache_dir=tmp_path).predict(x), want)
    assert np.count_nonzero(want) > want.size // 2


@pytest.mark.verilator
@pytest.mark.parametrize("style", ["lut", "dsp"])
def test_attention_verilog_matches_emulator(style: str, tmp_path: Path) -> None:
    from nnfab.tools.verilator import verilator_available

    if not verilator_available():
        pytest.skip("verilator is not available")
    hm = _narrow()
    x = grid(np.random.default_rng(5), (100, STEPS, FEATURES), scale=2)
    # lut: the default clock-target pipelining; dsp: registers at layer boundaries only
    rtl = hm.to_rtl(tmp_path / "rtl", style=style) if style == "lut" else hm.to_rtl(
        tmp_path / "rtl", style=style, pipeline=None)
    result = rtl.simulate(x)
    np.testing.assert_array_equal(np.asarray(result), hm.predict(x))
    assert result.latency == rtl.latency


@pytest.mark.verilator
def test_cross_attention_verilog_takes_both_inputs(tmp_path: Path) -> None:
    """Two inputs of different types share the top's input bus: Verilator == emulator."""
    from nnfab.tools.verilator import verilator_available

    if not verilator_available():
        pytest.skip("verilator is not available")
    model, _ = attention_model(cross=True)
    cfg = {"Model": {"Precision": "ap_fixed<12,5,AP_RND,AP_SAT>"},
           "LayerName": {"v": {"Precision": {"result": "ap_fixed<9,2,AP_RND,AP_SAT>"}}},
           "LayerType": {"Softmax": {"Precision": {"result": "ap_ufixed<10,1,AP_RND,AP_SAT>"},
                                     "TableSize": 256}}}
    hm = nnfab.convert_from_keras_model(model, hls_config=cfg)
    rng = np.random.default_rng(6)
    xs = {"q": grid(rng, (60, STEPS, FEATURES), scale=2),
          "v": grid(rng, (60, STEPS + 2, FEATURES - 2), scale=2)}
    rtl = hm.to_rtl(tmp_path / "rtl", style="dsp", pipeline=None)
    np.testing.assert_array_equal(np.asarray(rtl.simulate(xs)), hm.predict(xs))
    assert [name for name, _, _ in rtl.design.inputs] == ["q", "v"]
