"""Keras EinsumDense -> Dense (+ Reshape): against Keras, against ``np.einsum`` on the
quantized values, and through the C simulation and Verilator.

Oracle tolerance: inputs and weights on a 2**-6 grid are exact in every type here, so
the only differences to Keras (float32) are its rounding (|values| < 100, float32
relative 6e-8) and the result cast (2**-20): 1e-4 is far below any mapping error
(a wrong axis order changes values by O(1)).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import nnfab
from nnfab.errors import UnsupportedLayerError
from nnfab.ir import fixed

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")

WIDE = {"Model": {"Precision": "ap_fixed<32,12>"}}
CASES = [  # equation, output_shape, bias_axes, input shape (no batch), activation
    ("abc,cde->abde", (None, 3, 4), "de", (5, 6), "relu"),
    ("abc,cd->abd", (None, 4), "d", (5, 6), None),
    ("abcd,cde->abe", (None, 7), "e", (5, 3, 4), "relu"),
    ("...b,bc->...c", (4,), "c", (6,), None),
    ("ab,bc->ac", (4,), None, (6,), None),
    ("abc,dec->abde", (None, 2, 3), "e", (5, 6), None),  # kernel axes in another order
    ("abc,cde->abde", (5, 3, 4), "e", (5, 6), None),  # a bias broadcast over d
]


def grid(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return np.round(rng.normal(0, 1, shape) * 64) / 64


def einsum_model(equation: str, output_shape: tuple, bias_axes: str | None,
                 in_shape: tuple[int, ...], activation: str | None, seed: int = 1):
    inp = keras.Input(in_shape)
    layer = keras.layers.EinsumDense(equation, output_shape=output_shape, bias_axes=bias_axes,
                                     activation=activation, name="ein")
    model = keras.Model(inp, layer(inp))
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w.assign(grid(rng, tuple(w.shape)))
    return model, layer


@pytest.mark.parametrize("case", range(len(CASES)), ids=[c[0] for c in CASES])
def test_einsum_dense_matches_keras(case: int) -> None:
    equation, output_shape, bias_axes, in_shape, activation = CASES[case]
    model, _ = einsum_model(equation, output_shape, bias_axes, in_shape, activation)
    hm = nnfab.convert_from_keras_model(model, hls_config=WIDE)
    assert [n.op for n in hm.graph.nodes].count("Dense") == 1
    x = grid(np.random.default_rng(2), (40, *in_shape))
    want = model.predict(x, verbose=0)
    got = hm.predict(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    assert np.abs(want).max() > 1  # the comparison is not of zeros


@pytest.mark.parametrize("case", range(len(CASES)), ids=[c[0] for c in CASES])
def test_einsum_dense_bit_exact_against_einsum(case: int) -> None:
    """Narrow types: ``np.einsum`` of the equation on the quantized values, plus the bias
    broadcast as Keras does, then the result cast, equals the emulator bit for bit."""
    equation, output_shape, bias_axes, in_shape, _activation = CASES[case]
    model, layer = einsum_model(equation, output_shape, bias_axes, in_shape, None)
    cfg = {"Model": {"Precision": "ap_fixed<16,6>"},
           "LayerName": {"ein": {"Precision": {"weight": "ap_fixed<6,2>", "bias": "ap_fixed<6,2>",
                                               "accum": "ap_fixed<20,8>",
                                               "result": "ap_fixed<9,3,AP_RND,AP_SAT>"}}}}
    hm = nnfab.convert_from_keras_model(model, hls_config=cfg)
    x = grid(np.random.default_rng(3), (60, *in_shape)) * 2
    xq = fixed("ap_fixed<16,6>").quantize(x)
    weights = {w.name.split("/")[-1]: np.asarray(w.numpy(), dtype=np.float64)
               for w in layer.weights}
    w6 = fixed("ap_fixed<6,2>")
    total = np.einsum(equation, xq, w6.quantize(weights["kernel"]))
    if bias_axes:
        total = total + w6.quantize(weights["bias"])  # Keras' bias shape broadcasts
    want = fixed("ap_fixed<9,3,AP_RND,AP_SAT>").quantize(fixed("ap_fixed<20,8>").quantize(total))
    got = hm.predict(x)
    np.testing.assert_array_equal(got, want)
    assert np.count_nonzero(got) > got.size // 4


@pytest.mark.parametrize(("equation", "output_shape", "bias_axes", "match"), [
    ("abc,bd->adc", (4, 6), None, "equation"),  # a kept axis after the kernel's
    ("abc,cd->abd", (5, 4), "b", "bias_axes"),  # a bias along a kept axis
])
def test_einsum_dense_unsupported_forms_are_named(equation: str, output_shape: tuple,
                                                  bias_axes: str | None, match: str) -> None:
    model, _ = einsum_model(equation, output_shape, bias_axes, (5, 6), None)
    with pytest.raises(UnsupportedLayerError, match=rf"'ein' \(EinsumDense\): {match}="):
        nnfab.convert_from_keras_model(model, hls_config=WIDE)


def _narrow_model():
    model, _ = einsum_model("abc,cde->abde", (None, 3, 4), "de", (5, 6), "relu")
    cfg = {"Model": {"Precision": "ap_fixed<12,5,AP_RND,AP_SAT>"}}
    return nnfab.convert_from_keras_model(model, hls_config=cfg)


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_einsum_dense_csim_matches_emulator(tmp_path: Path) -> None:
    from nnfab.backends.hls import CSimLibrary

    hm = _narrow_model()
    x = grid(np.random.default_rng(4), (64, 5, 6)) * 3
    np.testing.assert_array_equal(CSimLibrary(hm, cache_dir=tmp_path).predict(x), hm.predict(x))


@pytest.mark.verilator
def test_einsum_dense_verilog_matches_emulator(tmp_path: Path) -> None:
    from nnfab.tools.verilator import verilator_available

    if not verilator_available():
        pytest.skip("verilator is not available")
    hm = _narrow_model()
    x = grid(np.random.default_rng(5), (200, 5, 6)) * 3
    result = hm.to_rtl(tmp_path / "rtl", style="lut", pipeline=None).simulate(x)
    np.testing.assert_array_equal(np.asarray(result), hm.predict(x))


def test_einsum_dense_from_an_h5_file(tmp_path: Path) -> None:
    """The model-file reader maps EinsumDense through the same table."""
    from nnfab.frontends import keras_json

    model, _ = einsum_model("abcd,cde->abe", (None, 7), "e", (5, 3, 4), "relu")
    path = tmp_path / "ein.h5"
    model.save(path)
    hm = nnfab.convert_graph(keras_json.graph_from_keras_h5(path), WIDE)
    x = grid(np.random.default_rng(6), (30, 5, 3, 4))
    np.testing.assert_allclose(hm.predict(x), model.predict(x, verbose=0), rtol=0, atol=1e-4)
