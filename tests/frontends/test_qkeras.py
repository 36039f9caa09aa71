"""QKeras quantizers -> exact fixed-point types, QKeras layers in Keras 2 files, and
bit-exactness against QKeras itself (the oracle directory, see docs/frontends.md).

Expected values come from QKeras' documented formulas, evaluated here with Python
integers and ``fractions.Fraction`` (``round`` on a Fraction rounds half to even,
as TensorFlow's ``round`` does).
"""

from __future__ import annotations

import json
import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from tests.paths import QKERAS_ORACLE, SHARED_MODELS, missing

import nnfab
from nnfab.errors import UnsupportedLayerError
from nnfab.frontends.keras_json import graph_from_keras_h5, graph_from_keras_json
from nnfab.frontends.qkeras import (
    activation_mapping,
    parse_quantizer,
    quantize_weights,
    weight_type,
)
from nnfab.ir import FixedType, Graph, Overflow, Rounding

MODELS = SHARED_MODELS / "keras"
ORACLE_ENV = "NNFAB_QKERAS_ORACLE"
WIDE = "ap_fixed<48,20>"
W = "layer 't' (QDense) kernel_quantizer"


def q(text: str) -> Any:
    return parse_quantizer(text, W)


def fr(values: np.ndarray) -> list[Fraction]:
    return [Fraction(float(v)) for v in np.ravel(values)]


def as_floats(values: list[Fraction]) -> np.ndarray:
    return np.array([float(v) for v in values])


def grid(lo: float, hi: float, step: float) -> np.ndarray:
    return np.arange(round(lo / step), round(hi / step) + 1) * step


# ---------------------------------------------------------- independent formulas
def ref_bits(x: Fraction, bits: int, integer: int, symmetric: int = 0,
             keep_negative: bool = True) -> Fraction:
    u = bits - int(keep_negative)
    if u == 0:
        return Fraction(1 if x >= 0 else -1)
    step = Fraction(2) ** (integer - u)
    lo = -(2**u) + symmetric if keep_negative else 0
    return min(max(round(x / step), lo), 2**u - 1) * step


def ref_relu(x: Fraction, bits: int, integer: int, slope: Fraction = Fraction(0)) -> Fraction:
    nb = bits - (slope != 0)
    step = Fraction(2) ** (integer - nb)
    pos = min(max(round(x / step), 0), 2**nb - 1)
    neg = min(max(round(slope * x / step), -slope * 2**nb), 0) if slope else 0
    return (pos + neg) * step


def ref_tanh(x: Fraction, bits: int, symmetric: int = 0) -> Fraction:
    m = 2 ** (bits - 1)
    p = min(max(x, Fraction(-1)), Fraction(1))
    return Fraction(min(max(round(p * m), -m + symmetric), m - 1), m)


def ref_sigmoid(x: Fraction, bits: int) -> Fraction:
    m = 2**bits
    p = min(max(x / 2 + Fraction(1, 2), Fraction(0)), Fraction(1))
    return Fraction(min(max(round(p * m), 0), m - 1), m)


# ===================================================================== parsing
def test_parse_string_and_dict_forms() -> None:
    a = q("quantized_bits(6, 0, alpha=1)")
    assert a.name == "quantized_bits" and a.text == "quantized_bits(6, 0, alpha=1)"
    assert (a["bits"], a["integer"], a["symmetric"], a["keep_negative"], a["alpha"]) == (
        6, 0, 0, True, 1)
    b = parse_quantizer({"class_name": "quantized_relu", "config": {"bits": 4, "integer": 2},
                         "__passive_serialization__": True}, W)
    assert b.name == "quantized_relu" and (b["bits"], b["integer"], b["negative_slope"]) == (
        4, 2, 0.0)
    assert b.text == "quantized_relu(4, 2)"
    assert q("binary").params["use_01"] is False  # a bare name means default arguments
    assert q("quantized_relu(3,1,0,0.5)")["negative_slope"] == 0.5
    assert parse_quantizer(None, W) is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("quantized_ulaw(8)", "not supported; supported quantizers"),
        ("quantized_bits(4, colour=1)", "unknown parameter 'colour'"),
        ("quantized_bits(x)", "literals"),
        ("quantized_bits(4", "cannot parse"),
        ("quantized_bits(1,2,3,4,5,6,7,8,9,10,11,12)", "positional"),
    ],
)
def test_parse_errors(text: str, needle: str) -> None:
    with pytest.raises(UnsupportedLayerError, match=needle) as e:
        q(text)
    assert "layer 't' (QDense)" in str(e.value)


# ============================================================ weight numerics
def test_quantized_bits_hand_values() -> None:
    x = np.array([0.375, 0.625, 1.9, -2.5, -0.125, 0.1])
    # step 2**(1-3) = 1/4, k in [-8, 7]: 1.5 -> 2, 2.5 -> 2, 7.6 -> 7 (clip), -10 -> -8,
    # -0.5 -> -0 (half to even), 0.4 -> 0
    assert quantize_weights(q("quantized_bits(4,1,alpha=1)"), x, W).tolist() == [
        0.5, 0.5, 1.75, -2.0, 0.0, 0.0]
    assert quantize_weights(q("quantized_bits(4,1,symmetric=1,alpha=1)"), x, W)[3] == -1.75
    # keep_negative=False: step 2**(1-4) = 1/8, k in [0, 15]
    assert quantize_weights(q("quantized_bits(4,1,keep_negative=False,alpha=1)"),
                            np.array([-0.3, 0.3125, 5.0]), W).tolist() == [0.0, 0.25, 1.875]
    # one signed bit: the sign, zero counts as positive; alpha scales
    assert quantize_weights(q("quantized_bits(1,0,alpha=1)"),
                            np.array([-0.1, 0.0, 3.0]), W).tolist() == [-1.0, 1.0, 1.0]
    assert quantize_weights(q("quantized_bits(4,1,alpha=0.5)"), x, W).tolist() == [
        0.25, 0.25, 0.875, -1.0, 0.0, 0.0]


@pytest.mark.parametrize("bits", [1, 2, 3, 5])
@pytest.mark.parametrize("integer", [-1, 0, 2])
@pytest.mark.parametrize(("symmetric", "keep_negative"), [(0, True), (1, True), (0, False)])
def test_quantized_bits_formula_and_cast(
    bits: int, integer: int, symmetric: int, keep_negative: bool
) -> None:
    text = f"quantized_bits({bits},{integer},{symmetric},keep_negative={keep_negative},alpha=1)"
    quant = q(text)
    u = bits - int(keep_negative)
    x = grid(-(2.0 ** (integer + 2)), 2.0 ** (integer + 2), 2.0 ** (integer - u - 2))
    want = [ref_bits(v, bits, integer, symmetric, keep_negative) for v in fr(x)]
    got = quantize_weights(quant, x, W)
    assert fr(got) == want
    w_type = weight_type(quant, got, W)
    assert np.array_equal(w_type.quantize(got), got)  # the weight type holds every value
    if u == 0:
        assert w_type == FixedType(2, 2, True)
        with pytest.raises(UnsupportedLayerError, match="sign"):
            activation_mapping(quant, W)
        return
    expected = FixedType(bits, integer + 1, True) if keep_negative else FixedType(
        bits, integer, False)
    assert w_type == expected
    m = activation_mapping(quant, W)
    assert m.op == "Activation" and m.attrs == {"function": "linear"} and m.exact
    overflow = Overflow.SAT_SYM if symmetric else Overflow.SAT
    assert m.result == expected.replace(rounding=Rounding.RND_CONV, overflow=overflow)
    assert fr(m.result.quantize(x)) == want  # the cast is the quantizer


@pytest.mark.parametrize(("bits", "integer"), [(1, 0), (4, 0), (4, 2), (6, 1)])
def test_quantized_relu_formula_and_cast(bits: int, integer: int) -> None:
    quant = q(f"quantized_relu({bits},{integer})")
    x = grid(-4.0, 2.0 ** (integer + 1), 2.0 ** (integer - bits - 2))
    want = [ref_relu(v, bits, integer) for v in fr(x)]
    assert fr(quantize_weights(quant, x, W)) == want
    m = activation_mapping(quant, W)
    assert m.attrs == {"function": "relu"}
    assert m.result == FixedType(bits, integer, False, Rounding.RND_CONV, Overflow.SAT)
    assert fr(m.result.quantize(np.maximum(x, 0.0))) == want


def test_quantized_relu_negative_slope(caplog: pytest.LogCaptureFixture) -> None:
    quant = q("quantized_relu(4,1,negative_slope=0.25)")
    x = grid(-4.0, 4.0, 2.0**-6)
    want = [ref_relu(v, 4, 1, Fraction(1, 4)) for v in fr(x)]
    assert fr(quantize_weights(quant, x, W)) == want
    with caplog.at_level(logging.WARNING):
        m = activation_mapping(quant, W)
    assert "inputs below -2 differ" in caplog.text and not m.exact
    assert m.attrs == {"function": "leaky_relu", "alpha": 0.25}
    assert m.result == FixedType(4, 2, True, Rounding.RND_CONV, Overflow.SAT)
    assert m.precision["param"].quantize(0.25) == 0.25
    leaky = np.where(x >= 0, x, 0.25 * x)
    inside = x >= -2.0  # where nnfab's saturation agrees with QKeras' clip
    want_in = [w for w, k in zip(want, inside, strict=True) if k]
    want_out = [w for w, k in zip(want, inside, strict=True) if not k]
    assert fr(m.result.quantize(leaky[inside])) == want_in
    assert fr(m.result.quantize(leaky[~inside])) != want_out


def test_quantized_relu_options() -> None:
    with pytest.raises(UnsupportedLayerError, match="use_sigmoid"):
        activation_mapping(q("quantized_relu(4,0,1)"), W)
    with pytest.raises(UnsupportedLayerError, match="power of two"):
        activation_mapping(q("quantized_relu(4,0,negative_slope=0.3)"), W)
    bounded = activation_mapping(
        q("quantized_relu(6,3,relu_upper_bound=6,is_quantized_clip=False)"), W)
    assert bounded.attrs == {"function": "relu", "max_value": 6.0}
    # is_quantized_clip (the default) ignores relu_upper_bound in the forward pass
    assert activation_mapping(q("quantized_relu(6,3,relu_upper_bound=6)"), W).attrs == {
        "function": "relu"}
    with pytest.raises(UnsupportedLayerError, match="grid"):
        activation_mapping(q("quantized_relu(4,3,relu_upper_bound=5.1,is_quantized_clip=False)"),
                           W)


@pytest.mark.parametrize(("bits", "symmetric"), [(2, 0), (4, 0), (5, 1)])
def test_quantized_tanh(bits: int, symmetric: int) -> None:
    quant = q(f"quantized_tanh({bits},symmetric={bool(symmetric)})")
    x = grid(-2.0, 2.0, 2.0**-(bits + 1))
    want = [ref_tanh(v, bits, symmetric) for v in fr(x)]
    assert fr(quantize_weights(quant, x, W)) == want
    m = activation_mapping(quant, W)
    assert m.attrs == {"function": "linear"} and m.exact
    assert m.result == FixedType(bits, 1, True, Rounding.RND_CONV,
                                 Overflow.SAT_SYM if symmetric else Overflow.SAT)
    assert fr(m.result.quantize(x)) == want


def test_quantized_tanh_real_is_approximate(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        m = activation_mapping(q("quantized_tanh(6,use_real_tanh=True)"), W)
    assert m.attrs == {"function": "tanh"} and not m.exact and "not bit-exact" in caplog.text


@pytest.mark.parametrize("bits", [1, 3, 6])
def test_quantized_sigmoid(bits: int) -> None:
    quant = q(f"quantized_sigmoid({bits})")
    x = grid(-3.0, 3.0, 2.0**-(bits + 2))
    want = [ref_sigmoid(v, bits) for v in fr(x)]
    assert fr(quantize_weights(quant, x, W)) == want
    m = activation_mapping(quant, W)
    assert m.attrs == {"function": "hard_sigmoid", "slope": 0.5, "offset": 0.5}
    assert m.result == FixedType(bits, 0, False, Rounding.RND_CONV, Overflow.SAT)
    assert m.precision["param"].quantize(0.5) == 0.5
    line = np.clip(0.5 * x + 0.5, 0.0, 1.0)
    assert fr(m.result.quantize(line)) == want
    with pytest.raises(UnsupportedLayerError, match="symmetric"):
        activation_mapping(q(f"quantized_sigmoid({bits},symmetric=True)"), W)


def test_binary_ternary_po2_values_and_types() -> None:
    x = np.array([-0.7, -0.2, 0.0, 0.2, 0.5, 3.0])
    b = q("binary(alpha=1)")
    assert quantize_weights(b, x, W).tolist() == [-1, -1, 1, 1, 1, 1]
    assert weight_type(b, x, W) == FixedType(2, 2, True)
    b01 = q("binary(use_01=True,alpha=0.5)")
    assert quantize_weights(b01, x, W).tolist() == [0, 0, 0.5, 0.5, 0.5, 0.5]
    assert weight_type(b01, x, W) == FixedType(1, 0, False)
    t = q("ternary(alpha=2,threshold=0.5)")
    assert quantize_weights(t, x, W).tolist() == [-2, 0, 0, 0, 2, 2]
    assert weight_type(t, x, W) == FixedType(2, 3, True)
    # the default threshold 0.33 is compared in float32, as TensorFlow does
    near = np.array([np.float32(0.33), np.nextafter(np.float32(0.33), np.float32(0))])
    assert quantize_weights(q("ternary(alpha=1)"), near, W).tolist() == [1, 0]
    # quantized_po2(4): exponents in [-4, 3]; |x| < 1e-7 counts as 2**-4
    p = q("quantized_po2(4)")
    got = quantize_weights(p, np.array([0.3, -5.0, 100.0, 0.0, 1e-3, -0.75]), W)
    assert got.tolist() == [0.25, -4.0, 8.0, 0.0625, 0.0625, -1.0]
    assert weight_type(p, got, W) == FixedType(9, 5, True)  # -4 .. 8 in steps of 1/16
    # quantized_relu_po2(4): exponents in [-8, 7]; negative inputs become 2**-8
    r = q("quantized_relu_po2(4)")
    assert quantize_weights(r, np.array([-1.0, 3.0, 1000.0]), W).tolist() == [
        2.0**-8, 4.0, 128.0]
    for name in ("binary", "ternary", "quantized_po2(4)"):
        with pytest.raises(UnsupportedLayerError, match="not a fixed-point cast"):
            activation_mapping(q(name), W)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("quantized_bits(4,0,alpha='auto_po2')", "alpha='auto_po2'"),
        ("quantized_bits(4,0,alpha='auto')", "alpha='auto'"),
        ("quantized_bits(4,0,alpha=0.75)", "not a power of two"),
        ("binary(alpha='auto_po2')", "alpha='auto_po2'"),
        ("quantized_bits(4,0,alpha=1,qnoise_factor=0.5)", "qnoise_factor"),
    ],
)
def test_unrepresentable_quantizers(text: str, needle: str) -> None:
    with pytest.raises(UnsupportedLayerError, match=needle):
        quantize_weights(q(text), np.array([0.1, -0.3]), W)


def test_kernel_alpha_none_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        got = quantize_weights(q("quantized_bits(4,0)"), np.array([0.3]), W, "kernel")
    assert got.tolist() == [0.25] and "auto_po2" in caplog.text


# ================================================== QKeras layers in model files
def write_model(tmp_path: Path, layers: list[dict[str, Any]], weights: dict[str, dict],
                outputs: list[str]) -> tuple[Path, Path]:
    model = {"class_name": "Model", "keras_version": "2.4.0", "config": {
        "name": "qm", "layers": layers, "input_layers": [["x", 0, 0]],
        "output_layers": [[o, 0, 0] for o in outputs]}}
    (tmp_path / "m.json").write_text(json.dumps(model))
    with h5py.File(tmp_path / "w.h5", "w") as f:
        f.attrs["layer_names"] = np.array([e["name"].encode() for e in layers])
        for e in layers:
            g = f.create_group(e["name"])
            ws = weights.get(e["name"], {})
            g.attrs["weight_names"] = np.array([f"{e['name']}/{k}:0".encode() for k in ws],
                                               dtype="S")
            for k, v in ws.items():
                g.create_dataset(f"{e['name']}/{k}:0", data=np.asarray(v, dtype=np.float32))
    return tmp_path / "m.json", tmp_path / "w.h5"


def qlayer(cls: str, name: str, src: str | None, **config: Any) -> dict[str, Any]:
    return {"class_name": cls, "name": name, "config": {"name": name, **config},
            "inbound_nodes": [[[src, 0, 0, {}]]] if src else []}


def qdict(name: str, **config: Any) -> dict[str, Any]:
    return {"class_name": name, "config": config, "__passive_serialization__": True}


def test_qkeras_layers_conversion(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    k1 = rng.uniform(-1, 1, (5, 4)).astype(np.float32)
    b1 = rng.uniform(-1, 1, 4).astype(np.float32)
    kc = rng.uniform(-1, 1, (3, 3, 2, 3)).astype(np.float32)
    kd = rng.uniform(-1, 1, (2, 2, 3, 1)).astype(np.float32)
    layers = [
        qlayer("InputLayer", "x", None, batch_input_shape=[None, 6, 6, 2]),
        qlayer("QConv2D", "c", "x", filters=3, kernel_size=[3, 3], strides=[1, 1],
               padding="valid", use_bias=False, activation=qdict("quantized_relu", bits=4,
                                                                integer=1),
               kernel_quantizer=qdict("quantized_bits", bits=4, integer=0, alpha=1),
               bias_quantizer=None),
        qlayer("QDepthwiseConv2D", "dw", "c", kernel_size=[2, 2], padding="same",
               depth_multiplier=1, use_bias=False, activation="linear",
               depthwise_quantizer="quantized_bits(3,1,alpha=1)"),
        qlayer("Flatten", "f", "dw"),
        qlayer("QActivation", "qa", "f", activation="quantized_bits(5,2,alpha=1)"),
        qlayer("QActivation", "hs", "qa", activation="hard_sigmoid"),
        qlayer("QActivation", "r", "hs", activation="relu"),
    ]
    dense_in = 4 * 4 * 3
    k1 = rng.uniform(-1, 1, (dense_in, 4)).astype(np.float32)
    layers.append(qlayer("QDense", "d", "r", units=4, activation="softmax", use_bias=True,
                         kernel_quantizer="quantized_bits(6,2,alpha=1)",
                         bias_quantizer="quantized_bits(8,0,alpha=1)"))
    weights = {"c": {"kernel": kc}, "dw": {"depthwise_kernel": kd},
               "d": {"kernel": k1, "bias": b1}}
    g = graph_from_keras_json(*write_model(tmp_path, layers, weights, ["d"]))
    assert [(n.name, n.op, n.source_class) for n in g.nodes] == [
        ("x", "Input", "InputLayer"), ("c", "Conv2D", "QConv2D"),
        ("c_quantized_relu", "Activation", "QActivation"),
        ("dw", "DepthwiseConv2D", "QDepthwiseConv2D"), ("f", "Flatten", "Flatten"),
        ("qa", "Activation", "QActivation"), ("hs", "Activation", "QActivation"),
        ("r", "Activation", "QActivation"), ("d", "Dense", "QDense"),
        ("d_softmax", "Softmax", "Activation"),
    ]
    c = g.node("c")
    assert c.precision == {"weight": FixedType(4, 1, True)}
    assert c.attrs["kernel_quantizer"] == "quantized_bits(4, 0, alpha=1)"
    assert fr(c.weights["kernel"]) == [ref_bits(v, 4, 0) for v in fr(kc)]
    assert np.array_equal(c.weights["bias"], np.zeros(3))
    relu = g.node("c_quantized_relu")
    assert relu.attrs == {"function": "relu", "quantizer": "quantized_relu(4, 1)"}
    assert g.tensors[relu.name].type == FixedType(4, 1, False, Rounding.RND_CONV, Overflow.SAT)
    dw = g.node("dw")
    assert dw.precision == {"weight": FixedType(3, 2, True)}
    assert dw.attrs["pads"] == (0, 1, 0, 1)
    assert fr(dw.weights["kernel"]) == [ref_bits(v, 3, 1) for v in fr(kd)]
    assert g.tensors["qa"].type == FixedType(5, 3, True, Rounding.RND_CONV, Overflow.SAT)
    assert g.node("qa").attrs == {"function": "linear", "quantizer": "quantized_bits(5,2,alpha=1)"}
    # QKeras' own hard_sigmoid: slope 1/2
    assert g.node("hs").attrs == {"function": "hard_sigmoid", "slope": 0.5, "offset": 0.5}
    assert g.node("r").attrs == {"function": "relu"} and g.tensors["r"].type is None
    d = g.node("d")
    assert d.precision == {"weight": FixedType(6, 3, True), "bias": FixedType(8, 1, True)}
    assert fr(d.weights["bias"]) == [ref_bits(v, 8, 0) for v in fr(b1)]


def test_qbatchnorm_default_po2_quantizers(tmp_path: Path) -> None:
    gamma, beta = np.array([1.3, 0.2], np.float32), np.array([0.3, -3.0], np.float32)
    mean, var = np.array([0.7, 0.01], np.float32), np.array([5.0, 0.3], np.float32)
    layers = [qlayer("InputLayer", "x", None, batch_input_shape=[None, 2]),
              qlayer("QBatchNormalization", "bn", "x", axis=-1, epsilon=0.001, center=True,
                     scale=True)]
    weights = {"bn": {"gamma": gamma, "beta": beta, "moving_mean": mean,
                      "moving_variance": var}}
    g = graph_from_keras_json(*write_model(tmp_path, layers, weights, ["bn"]))
    # gamma: relu_po2(6, 2048) -> 1, 0.25; beta, mean: po2(5), exponents -8..7 ->
    # 0.25, -4; 0.5, 2**-7; variance: relu_po2 with even exponents -> 4, 0.25
    q_gamma, q_beta = np.array([1.0, 0.25]), np.array([0.25, -4.0])
    q_mean, q_var = np.array([0.5, 2.0**-7]), np.array([4.0, 0.25])
    scale = q_gamma / np.sqrt(q_var + 0.001)
    bn = g.node("bn")
    np.testing.assert_allclose(bn.weights["scale"], scale, rtol=1e-15)
    np.testing.assert_allclose(bn.weights["bias"], q_beta - q_mean * scale, rtol=1e-15)
    assert bn.attrs["variance_quantizer"] == "quantized_relu_po2(6, quadratic_approximation=True)"
    assert bn.precision == {}


def test_qkeras_layer_errors(tmp_path: Path) -> None:
    layers = [qlayer("InputLayer", "x", None, batch_input_shape=[None, 3]),
              qlayer("QDense", "d", "x", units=2, activation="linear",
                     kernel_quantizer=qdict("quantized_bits", bits=4, integer=0, symmetric=True,
                                            alpha="auto_po2"))]
    weights = {"d": {"kernel": np.ones((3, 2)), "bias": np.zeros(2)}}
    with pytest.raises(UnsupportedLayerError, match=r"layer 'd' \(QDense\) kernel_quantizer.*"
                                                    r"auto_po2"):
        graph_from_keras_json(*write_model(tmp_path, layers, weights, ["d"]))
    layers[1] = qlayer("QActivation", "d", "x", activation="binary(alpha=1)")
    with pytest.raises(UnsupportedLayerError, match=r"layer 'd' \(QActivation\) activation"):
        graph_from_keras_json(*write_model(tmp_path, layers, {}, ["d"]))
    layers[1] = qlayer("QActivation", "d", "x", activation="binary_tanh")
    with pytest.raises(UnsupportedLayerError, match="binary_tanh has no nnfab op"):
        graph_from_keras_json(*write_model(tmp_path, layers, {}, ["d"]))


def test_explicit_types_survive_default_config_and_yield_to_user_config(tmp_path: Path) -> None:
    layers = [qlayer("InputLayer", "x", None, batch_input_shape=[None, 3]),
              qlayer("QDense", "d", "x", units=2, activation="quantized_relu(5,1)",
                     kernel_quantizer="quantized_bits(4,0,alpha=1)",
                     bias_quantizer="quantized_bits(4,1,alpha=1)")]
    weights = {"d": {"kernel": np.full((3, 2), 0.3), "bias": np.full(2, 0.2)}}
    paths = write_model(tmp_path, layers, weights, ["d"])
    relu_t = FixedType(5, 1, False, Rounding.RND_CONV, Overflow.SAT)
    for config in (None, {"Model": {"Precision": "ap_fixed<8,3>"}},
                   {"Model": {"Precision": "ap_fixed<8,3>"},
                    "LayerType": {"Dense": {"ReuseFactor": 2}}}):
        m = nnfab.convert_graph(graph_from_keras_json(*paths), config)
        d = m.graph.node("d")
        assert d.precision["weight"] == FixedType(4, 1, True)
        assert d.precision["bias"] == FixedType(4, 2, True)
        assert m.graph.tensors[m.graph.outputs[0]].type == relu_t
    user = {"Model": {"Precision": "ap_fixed<8,3>"},
            "LayerName": {"d": {"Precision": {"weight": "ap_fixed<3,1>"}},
                          "d_quantized_relu": {"Precision": {"result": "ap_ufixed<3,1>"}}}}
    m = nnfab.convert_graph(graph_from_keras_json(*paths), user)
    assert m.graph.node("d").precision["weight"] == FixedType(3, 1, True)
    assert m.graph.tensors[m.graph.outputs[0]].type == FixedType(3, 1, False)


def test_quantized_activations_in_the_emulator(tmp_path: Path) -> None:
    texts = {"r": "quantized_relu(4,1)", "b": "quantized_bits(5,1,symmetric=1,alpha=1)",
             "t": "quantized_tanh(4)", "s": "quantized_sigmoid(4)",
             "u": "quantized_bits(4,2,keep_negative=False,alpha=1)"}
    layers = [qlayer("InputLayer", "x", None, batch_input_shape=[None, 8])]
    layers += [qlayer("QActivation", k, "x", activation=v) for k, v in texts.items()]
    g = graph_from_keras_json(*write_model(tmp_path, layers, {}, list(texts)))
    x = grid(-8.0, 8.0 - 2.0**-6, 2.0**-6).reshape(-1, 8)  # every value of ap_fixed<10,4>
    cfg = {"Model": {"Precision": "ap_fixed<16,6>"},
           "LayerName": {"x": {"Precision": {"result": "ap_fixed<10,4>"}}}}
    out = dict(zip(texts, nnfab.convert_graph(g, cfg).predict(x), strict=True))
    refs = {"r": lambda v: ref_relu(v, 4, 1), "b": lambda v: ref_bits(v, 5, 1, 1),
            "t": lambda v: ref_tanh(v, 4), "s": lambda v: ref_sigmoid(v, 4),
            "u": lambda v: ref_bits(v, 4, 2, keep_negative=False)}
    for key, ref in refs.items():
        assert fr(out[key]) == [ref(v) for v in fr(x)], key


# ======================================== qkeras_3layer: an integer forward pass
def _round_half_even_shift(acc: np.ndarray, shift: int) -> np.ndarray:
    """acc / 2**shift rounded half to even, on integers."""
    q_ = acc >> shift
    r = acc - (q_ << shift)
    half = 1 << (shift - 1)
    return q_ + ((r > half) | ((r == half) & (q_ & 1 == 1)))


@pytest.mark.skipif(not MODELS.is_dir(), reason=f"shared models not found in {MODELS}")
def test_qkeras_3layer_matches_integer_reference() -> None:
    g = graph_from_keras_json(MODELS / "qkeras_3layer.json", MODELS / "qkeras_3layer_weights.h5")
    mant: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with h5py.File(MODELS / "qkeras_3layer_weights.h5") as f:
        for name in ("fc1", "fc2", "fc3", "output"):
            k = [ref_bits(v, 6, 0) * 32 for v in fr(f[f"{name}/{name}/kernel:0"][()])]
            b = [ref_bits(v, 6, 0) * 32 for v in fr(f[f"{name}/{name}/bias:0"][()])]
            shape = f[f"{name}/{name}/kernel:0"].shape
            mant[name] = (np.array([int(v) for v in k], np.int64).reshape(shape),
                          np.array([int(v) for v in b], np.int64))
            node = g.node(name)
            assert node.precision == {"weight": FixedType(6, 1), "bias": FixedType(6, 1)}
            assert np.array_equal(node.weights["kernel"] * 32, mant[name][0])
    rng = np.random.default_rng(12)
    xm = rng.integers(-(2**11), 2**11, size=(300, 16))  # ap_fixed<12,4> mantissas, 8 frac bits
    xm[:4] = [[2**11 - 1] * 16, [-(2**11)] * 16, [0] * 16, [1, -1] * 8]
    h, frac = xm, 8
    for name in ("fc1", "fc2", "fc3"):
        k, b = mant[name]
        acc = h @ k + (b << frac)  # fraction bits: frac + 5
        h = np.clip(_round_half_even_shift(acc, frac + 5 - 6), 0, 63)  # quantized_relu(6,0)
        frac = 6
    k, b = mant["output"]
    logits = (h @ k + (b << frac)) * 2.0 ** -(frac + 5)
    cfg = {"Model": {"Precision": WIDE},
           "LayerName": {"fc1_input": {"Precision": {"result": "ap_fixed<12,4>"}}}}
    trace = nnfab.convert_graph(g, cfg).trace(xm * 2.0**-8)
    assert np.array_equal(trace["output"], logits)


# ============================================================ the QKeras oracle
ORACLE_CASES = ["qkeras_3layer", "qdense_mix", "qconv1d", "qconv2d", "qactivations", "qleaky",
                "keras2_float", "qbn", "qlstm", "qgru"]


def _oracle() -> tuple[Path, dict[str, Any]]:
    path = QKERAS_ORACLE
    if not (path / "manifest.json").is_file():
        missing(f"no QKeras reference outputs in {str(path)!r} ({ORACLE_ENV}): run "
                "scripts/qkeras_oracle/setup.sh (see docs/frontends.md)")
    return path, json.loads((path / "manifest.json").read_text())


def _resolve(graph: Graph, tensor: str) -> str | None:
    """The traced tensor holding a Keras layer's output after the passes (None: internal)."""
    for node in graph.nodes:
        if node.attrs.get("fused_activation") == tensor:
            return node.name
        if node.name == tensor:
            # a node that absorbed its activation no longer exposes its own output
            return None if "fused_activation" in node.attrs else tensor
    raise AssertionError(f"tensor {tensor!r} vanished from the converted graph")


@pytest.mark.parametrize("source", ["json", "h5"])
@pytest.mark.parametrize("case", ORACLE_CASES)
def test_qkeras_oracle(case: str, source: str) -> None:
    root, manifest = _oracle()
    info = manifest["cases"].get(case)
    assert info is not None, f"the oracle in {root} has no case {case!r}: regenerate it"
    if source == "h5":
        if "h5" not in info:
            pytest.skip(f"{case}: the shared model has no whole-model .h5")
        graph = graph_from_keras_h5(root / info["h5"])
    else:
        graph = graph_from_keras_json(root / info["json"], root / info["weights"])
    layer_outputs = dict(graph.metadata["layer_outputs"])
    config = {"Model": {"Precision": WIDE},
              "LayerName": {graph.inputs[0]: {"Precision": {"result": info["input_type"]}}}}
    model = nnfab.convert_graph(graph, config)
    data = np.load(root / info["npz"])
    x = data["x"]
    assert np.array_equal(FixedType.parse(info["input_type"]).quantize(x), x)
    trace = model.trace(x)
    compared = 0
    for kind in ("exact", "approx"):
        for name in info[kind]:
            tensor = _resolve(model.graph, layer_outputs[name])
            if tensor is None:
                continue
            want = data[f"layer:{name}"].astype(np.float64)
            got = trace[tensor].reshape(want.shape)
            compared += 1
            if kind == "exact":
                bad = np.argwhere(got != want)
                assert bad.size == 0, (
                    f"{case}/{source} layer {name!r}: {len(bad)} of {want.size} values differ "
                    f"from QKeras, first at {bad[0].tolist()}: nnfab {got[tuple(bad[0])]!r}, "
                    f"QKeras {want[tuple(bad[0])]!r}"
                )
            else:  # float layers: TensorFlow computes in float32
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4,
                                           err_msg=f"{case}/{source} layer {name!r}")
    assert compared >= max(1, len(info["exact"]) // 2)


@pytest.mark.parametrize("case", ["qlstm", "qgru"])
def test_qkeras_recurrent_csim_and_verilog(case: str, tmp_path: Path) -> None:
    """QLSTM / QGRU / QSimpleRNN from the oracle: the C simulation and the Verilog under
    Verilator equal the emulator (which equals QKeras, test_qkeras_oracle)."""
    import shutil

    from nnfab.backends.hls import CSimLibrary
    from nnfab.backends.rtl import RTLProject
    from nnfab.tools.verilator import verilator_available

    if shutil.which("g++") is None:
        pytest.skip("needs g++")
    root, manifest = _oracle()
    info = manifest["cases"][case]
    graph = graph_from_keras_json(root / info["json"], root / info["weights"])
    node = next(n for n in graph.nodes if n.op in ("LSTM", "GRU"))
    assert node.attrs["exact_internals"] and "state_read" in node.precision
    config = {"Model": {"Precision": WIDE},
              "LayerName": {graph.inputs[0]: {"Precision": {"result": info["input_type"]}}}}
    model = nnfab.convert_graph(graph, config)
    x = np.load(root / info["npz"])["x"][:200]
    want = model.predict(x)
    np.testing.assert_array_equal(CSimLibrary(model, cache_dir=tmp_path / "csim").predict(x),
                                  want)
    if verilator_available():
        result = RTLProject(model, tmp_path / "rtl").simulate(x[:60])
        np.testing.assert_array_equal(result.outputs, want[:60])
