"""QONNX (Quant / BipolarQuant / Trunc) and Brevitas models: bit-exact.

Three oracles: an integer reference written here with Python ints and Fractions from
the QONNX operator definitions; qonnx's own executor (``qonnx.core.onnx_exec``, if
installed); and, for Brevitas models exported with ``export_qonnx``, Brevitas' own
forward pass (if installed). Every comparison is exact (``==``): all products and sums
here fit in float32's 24-bit mantissa, so the frameworks' float arithmetic is exact too.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnfab
from nnfab.errors import UnsupportedLayerError
from nnfab.frontends.onnx import onnx_to_graph
from nnfab.ir import FixedType

WIDE = "ap_fixed<40,16,AP_RND_CONV,AP_SAT>"  # every intermediate sum here is exact in it
QDOMAIN = "qonnx.custom_op.general"
RNG = np.random.default_rng(11)


# ------------------------------------------------------------ reference
def round_int(v: Fraction, mode: str) -> int:
    """QONNX rounding modes on an exact rational (the table in the QONNX op documents)."""
    f = math.floor(v)
    r = v - f
    sign = 1 if v > 0 else -1
    if mode in ("ROUND", "HALF_EVEN"):
        return f + (r > Fraction(1, 2) or (r == Fraction(1, 2) and f % 2 == 1))
    if mode == "FLOOR":
        return f
    if mode == "CEIL":
        return f + (r > 0)
    if mode == "DOWN":
        return sign * math.floor(abs(v))
    if mode == "UP":
        return sign * math.ceil(abs(v))
    if mode == "HALF_UP":
        return sign * math.floor(abs(v) + Fraction(1, 2))
    if mode == "HALF_DOWN":
        return sign * math.ceil(abs(v) - Fraction(1, 2))
    raise AssertionError(mode)


def quant_int(v: Any, exp: int, bits: int, signed: bool = True, narrow: bool = False,
              mode: str = "ROUND") -> int:
    """Quant(v) / 2**exp as an integer: clamp, then round (QONNX's order)."""
    lo = -(2 ** (bits - 1)) + narrow if signed else 0
    hi = 2 ** (bits - 1) - 1 if signed else 2**bits - 1 - narrow
    s = Fraction(float(v)) / Fraction(2) ** exp
    return round_int(min(max(s, Fraction(lo)), Fraction(hi)), mode)


def to_float(values: Any) -> np.ndarray:
    return np.vectorize(float, otypes=[np.float64])(np.asarray(values, dtype=object))


# ------------------------------------------------------------ builders
def tensor(name: str, *shape: int | str) -> Any:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def init(name: str, array: Any) -> Any:
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def quant(x: str, y: str, prefix: str, scale: Any, bits: int, signed: int = 1, narrow: int = 0,
          mode: str = "ROUND", zeropt: float = 0.0) -> tuple[Any, list[Any]]:
    """A Quant node and its scale / zero-point / bit-width initializers."""
    names = [f"{prefix}_scale", f"{prefix}_zp", f"{prefix}_bits"]
    node = helper.make_node("Quant", [x, *names], [y], name=prefix, domain=QDOMAIN,
                            signed=signed, narrow=narrow, rounding_mode=mode)
    return node, [init(names[0], scale), init(names[1], zeropt), init(names[2], bits)]


def model(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any]) -> Any:
    graph = helper.make_graph(nodes, "q", inputs, outputs, inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                helper.make_opsetid(QDOMAIN, 2)])
    m.ir_version = 8
    return m


def emulate(m: Any, x: np.ndarray, config: dict[str, Any] | None = None) -> np.ndarray:
    hm = nnfab.convert_from_onnx_model(m, hls_config=config or {"Model": {"Precision": WIDE}})
    return hm.predict(x)


def qonnx_run(m: Any, x: np.ndarray) -> np.ndarray | None:
    """qonnx's executor on ``x``; None when qonnx is not installed (a failure under CI)."""
    try:
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx
        from qonnx.transformation.infer_shapes import InferShapes
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must provide qonnx, the QONNX oracle")
        return None
    fixed = onnx.ModelProto()
    fixed.CopyFrom(m)  # qonnx needs every shape static: the batch size too
    for info in (fixed.graph.input[0], fixed.graph.output[0]):
        info.type.tensor_type.shape.dim[0].dim_value = len(x)
    with _RuntimeReadableModels(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # qonnx's notes on value_info it did not infer
        wrapped = ModelWrapper(fixed).transform(InferShapes())
        out = execute_onnx(wrapped, {m.graph.input[0].name: x.astype(np.float32)})
    return np.asarray(out[m.graph.output[0].name], dtype=np.float64)


class _RuntimeReadableModels:
    """qonnx runs standard nodes through onnxruntime in single-node models made with the
    installed onnx's newest IR version, which onnxruntime may not read yet: cap it."""

    def __enter__(self) -> None:
        self.original = helper.make_model

        def make_model(*args: Any, **kwargs: Any) -> Any:
            m = self.original(*args, **kwargs)
            m.ir_version = min(m.ir_version, 10)
            return m

        helper.make_model = make_model  # qonnx looks it up at call time

    def __exit__(self, *exc: object) -> None:
        helper.make_model = self.original


def edge_inputs(shape: tuple[int, ...], lsb: float, big: float) -> np.ndarray:
    """Random values, exact ties between grid points, and out-of-range values."""
    n = 64
    x = RNG.normal(size=(n, *shape)) * big / 4
    ties = (RNG.integers(-40, 40, size=(n, *shape)) + 0.5) * lsb
    extremes = RNG.choice([-big, big, -2 * big, 2 * big], size=(n, *shape))
    return np.concatenate([x, ties, extremes]).astype(np.float32)


# ------------------------------------------------------------- the MLP
def _mlp() -> tuple[Any, dict[str, np.ndarray]]:
    w1 = RNG.normal(size=(5, 6)).astype(np.float32) * 0.6
    b1 = RNG.normal(size=5).astype(np.float32) * 0.5
    w2 = RNG.normal(size=(5, 3)).astype(np.float32) * 0.4
    b2 = RNG.normal(size=3).astype(np.float32) * 0.5
    s2 = np.array([[2.0**-3, 2.0**-4, 2.0**-2]], dtype=np.float32)  # per output channel
    parts = [
        quant("x", "xq", "q_in", 2.0**-4, 8),
        quant("w1", "w1q", "q_w1", 2.0**-3, 4, narrow=1),
        quant("b1", "b1q", "q_b1", 2.0**-7, 12),
        quant("r", "rq", "q_act", 2.0**-2, 6, signed=0),
        quant("w2", "w2q", "q_w2", s2, 5),
        quant("b2", "b2q", "q_b2", 2.0**-9, 16),
    ]
    nodes = [p[0] for p in parts] + [
        helper.make_node("Gemm", ["xq", "w1q", "b1q"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="relu1"),
        helper.make_node("MatMul", ["rq", "w2q"], ["m"], name="fc2"),
        helper.make_node("Add", ["m", "b2q"], ["y"], name="fc2_bias"),
    ]
    inits = [i for p in parts for i in p[1]]
    inits += [init("w1", w1), init("b1", b1), init("w2", w2), init("b2", b2)]
    m = model(nodes, [tensor("x", "N", 6)], [tensor("y", "N", 3)], inits)
    return m, {"w1": w1, "b1": b1, "w2": w2, "b2": b2, "s2": s2}


def _mlp_reference(p: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    w1 = [[quant_int(v, -3, 4, narrow=True) for v in row] for row in p["w1"]]
    b1 = [quant_int(v, -7, 12) for v in p["b1"]]
    e2 = [int(math.log2(s)) for s in p["s2"][0]]
    w2 = [[quant_int(v, e2[j], 5) for j, v in enumerate(row)] for row in p["w2"]]
    b2 = [quant_int(v, -9, 16) for v in p["b2"]]
    out = []
    for sample in x:
        xq = [quant_int(v, -4, 8) for v in sample]
        acc = [sum(xi * wi for xi, wi in zip(xq, w1[o], strict=True)) + b1[o] for o in range(5)]
        hq = [quant_int(Fraction(max(a, 0), 2**7), -2, 6, signed=False) for a in acc]
        y = [sum(Fraction(hq[i] * w2[i][j], 4) * Fraction(2) ** e2[j] for i in range(5))
             + Fraction(b2[j], 2**9) for j in range(3)]
        out.append(y)
    return to_float(out)


def test_mlp_types_and_bit_exactness() -> None:
    m, params = _mlp()
    g = onnx_to_graph(m)
    assert [(n.name, n.op) for n in g.nodes] == [
        ("x", "Input"), ("fc1", "Dense"), ("relu1", "Activation"), ("fc2", "Dense")
    ]
    # Activation Quants become result types: the input's and the relu's.
    assert g.tensors["x"].type == FixedType.parse("ap_fixed<8,4,AP_RND_CONV,AP_SAT>")
    assert g.tensors["relu1"].type == FixedType.parse("ap_ufixed<6,4,AP_RND_CONV,AP_SAT>")
    fc1, fc2 = g.node("fc1"), g.node("fc2")
    assert fc1.precision == {"weight": FixedType(4, 1), "bias": FixedType(12, 5)}
    # per-channel scales 2**-4 .. 2**-2 with 5 bits: the union grid, 7 bits wide
    assert fc2.precision == {"weight": FixedType(7, 3), "bias": FixedType(16, 7)}
    x = edge_inputs((6,), 2.0**-4, 12.0)
    expected = _mlp_reference(params, x)
    got = emulate(m, x)
    np.testing.assert_array_equal(got, expected)
    oracle = qonnx_run(m, x)
    if oracle is not None:
        np.testing.assert_array_equal(oracle, expected)
        from qonnx.core.modelwrapper import ModelWrapper

        assert [n.name for n in onnx_to_graph(ModelWrapper(m)).nodes] == [n.name for n in g]


def test_config_shows_the_quantized_types_and_yields_to_the_user() -> None:
    m, _ = _mlp()
    cfg = nnfab.config_from_onnx_model(m, granularity="name", default_precision=WIDE)
    assert cfg["LayerName"]["fc1"]["Precision"]["weight"] == "ap_fixed<4,1>"
    assert cfg["LayerName"]["relu1"]["Precision"]["result"] == "ap_ufixed<6,4,AP_RND_CONV,AP_SAT>"
    cfg["LayerName"]["fc1"]["Precision"]["weight"] = "ap_fixed<3,1>"
    hm = nnfab.convert_from_onnx_model(m, hls_config=cfg)
    assert hm.graph.node("fc1").precision["weight"] == FixedType(3, 1)


# ------------------------------------------------------------- the CNN
def _cnn() -> tuple[Any, dict[str, np.ndarray]]:
    cw = RNG.normal(size=(3, 2, 3, 3)).astype(np.float32) * 0.7
    cs = np.array([2.0**-3, 2.0**-2, 2.0**-4], dtype=np.float32).reshape(3, 1, 1, 1)
    cb = RNG.normal(size=3).astype(np.float32) * 0.5
    fw = RNG.normal(size=(2, 12)).astype(np.float32) * 0.5
    parts = [
        quant("x", "xq", "q_in", 2.0**-3, 6, mode="HALF_UP"),
        quant("cw", "cwq", "q_cw", cs, 4),
        quant("cb", "cbq", "q_cb", 2.0**-8, 10),
        quant("r", "rq", "q_act", 2.0**-2, 5, signed=0, mode="FLOOR"),
        quant("fw", "fwq", "q_fw", 2.0**-5, 6),
        quant("f", "y", "q_out", 2.0**-3, 6, narrow=1, mode="HALF_DOWN"),
    ]
    nodes = [p[0] for p in parts[:3]] + [
        helper.make_node("Conv", ["xq", "cwq", "cbq"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        parts[3][0],
        helper.make_node("MaxPool", ["rq"], ["p"], name="pool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["pf"], name="flatten"),
        parts[4][0],
        helper.make_node("Gemm", ["pf", "fwq"], ["f"], name="fc", transB=1),
        parts[5][0],
    ]
    inits = [i for p in parts for i in p[1]]
    inits += [init("cw", cw), init("cb", cb), init("fw", fw)]
    m = model(nodes, [tensor("x", "N", 2, 5, 5)], [tensor("y", "N", 2)], inits)
    return m, {"cw": cw, "cs": cs, "cb": cb, "fw": fw}


def _cnn_reference(p: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Integers in units: x 2**-3, conv weights 2**e_f, products 2**(e_f - 3), bias 2**-8."""
    ce = [int(math.log2(s)) for s in p["cs"].ravel()]
    cw = np.array([[[[quant_int(v, ce[f], 4) for v in row] for row in ch] for ch in fil]
                   for f, fil in enumerate(p["cw"])], dtype=object)
    cb = [quant_int(v, -8, 10) for v in p["cb"]]
    fw = np.array([[quant_int(v, -5, 6) for v in row] for row in p["fw"]], dtype=object)
    out = []
    for sample in x:
        xq = np.array([[[quant_int(v, -3, 6, mode="HALF_UP") for v in row] for row in ch]
                       for ch in sample], dtype=object)
        xp = np.zeros((2, 7, 7), dtype=object)
        xp[:, 1:6, 1:6] = xq
        act = np.zeros((3, 5, 5), dtype=object)
        for f, i, j in np.ndindex(3, 5, 5):
            acc = Fraction(int((xp[:, i:i + 3, j:j + 3] * cw[f]).sum())) * Fraction(2) ** (
                ce[f] - 3) + Fraction(cb[f], 256)
            act[f, i, j] = quant_int(max(acc, 0), -2, 5, signed=False, mode="FLOOR")
        pooled = np.array([[[max(act[c, 2 * i + a, 2 * j + b] for a in (0, 1) for b in (0, 1))
                             for j in range(2)] for i in range(2)] for c in range(3)])
        flat = pooled.reshape(-1)  # ONNX (C, H, W) order
        y = [quant_int(Fraction(int((flat * fw[o]).sum()), 2**7), -3, 6, narrow=True,
                       mode="HALF_DOWN") for o in range(2)]
        out.append([Fraction(v, 8) for v in y])
    return to_float(out)


def test_cnn_bit_exact_with_per_channel_weights_and_rounding_modes() -> None:
    m, params = _cnn()
    g = onnx_to_graph(m)
    assert [n.op for n in g.nodes] == ["Input", "Conv2D", "Activation", "Pooling2D", "Flatten",
                                       "Dense"]
    assert g.tensors["x"].shape == (5, 5, 2)
    assert g.tensors["x"].type == FixedType.parse("ap_fixed<6,3,AP_RND_INF,AP_SAT>")
    assert g.tensors["relu"].type == FixedType.parse("ap_ufixed<5,3,AP_TRN,AP_SAT>")
    # the output Quant is the Dense's own result type: no extra node
    assert g.tensors["fc"].type == FixedType.parse("ap_fixed<6,3,AP_RND_ZERO,AP_SAT_SYM>")
    assert g.node("conv").precision["weight"] == FixedType(6, 2)  # 4 bits, scales 2**-4..2**-2
    x = edge_inputs((2, 5, 5), 2.0**-3, 5.0)[::3]
    expected = _cnn_reference(params, x)
    got = emulate(m, np.moveaxis(x, 1, -1))
    np.testing.assert_array_equal(got, expected)
    oracle = qonnx_run(m, x)
    if oracle is not None:
        np.testing.assert_array_equal(oracle, expected)


# ------------------------------------------------------- single operators
@pytest.mark.parametrize("mode", ["ROUND", "HALF_EVEN", "FLOOR", "DOWN", "HALF_UP", "HALF_DOWN"])
@pytest.mark.parametrize(("signed", "narrow", "bits"), [(1, 0, 5), (1, 1, 4), (0, 0, 3)])
def test_quant_on_data_rounding_and_saturation(mode: str, signed: int, narrow: int,
                                               bits: int) -> None:
    node, inits = quant("x", "y", "q", 2.0**-2, bits, signed, narrow, mode)
    m = model([node], [tensor("x", "N", 8)], [tensor("y", "N", 8)], inits)
    x = edge_inputs((8,), 2.0**-2, 2.0**bits / 4)
    expected = to_float([[Fraction(quant_int(v, -2, bits, bool(signed), bool(narrow), mode), 4)
                          for v in row] for row in x])
    np.testing.assert_array_equal(emulate(m, x), expected)
    oracle = qonnx_run(m, x)
    if oracle is not None:
        np.testing.assert_array_equal(oracle, expected)


@pytest.mark.parametrize("mode", ["ROUND", "FLOOR", "CEIL", "UP", "DOWN", "HALF_UP", "HALF_DOWN"])
def test_quant_on_weights_every_rounding_mode(mode: str) -> None:
    w = np.concatenate([RNG.normal(size=(4, 3)), (np.arange(12).reshape(4, 3) - 6 + 0.5) / 8])
    w = w.astype(np.float32)
    node, inits = quant("w", "wq", "qw", 2.0**-3, 5, mode=mode)
    mm = helper.make_node("MatMul", ["x", "wq"], ["y"], name="fc")
    m = model([node, mm], [tensor("x", "N", 8)], [tensor("y", "N", 3)], [*inits, init("w", w)])
    g = onnx_to_graph(m)
    expected = to_float([[Fraction(quant_int(v, -3, 5, mode=mode), 8) for v in row] for row in w])
    np.testing.assert_array_equal(g.node("fc").weights["kernel"], expected)
    assert g.node("fc").precision["weight"] == FixedType(5, 2)


def test_trunc_and_bipolar_weights() -> None:
    q, qi = quant("x", "xq", "q_in", 2.0**-4, 8)
    names = ["t_scale", "t_zp", "t_inbits", "t_outscale", "t_outbits"]
    trunc = helper.make_node("Trunc", ["xq", *names], ["t"], name="trunc", domain=QDOMAIN,
                             rounding_mode="FLOOR", signed=1, narrow=0)
    tinits = [init("t_scale", 2.0**-4), init("t_zp", 0.0), init("t_inbits", 8),
              init("t_outscale", 2.0**-2), init("t_outbits", 5)]
    w = RNG.normal(size=(4, 3)).astype(np.float32)
    bip = helper.make_node("BipolarQuant", ["w", "b_scale"], ["wq"], name="bip", domain=QDOMAIN)
    mm = helper.make_node("MatMul", ["t", "wq"], ["y"], name="fc")
    m = model([q, trunc, bip, mm], [tensor("x", "N", 4)], [tensor("y", "N", 3)],
              qi + tinits + [init("w", w), init("b_scale", 0.5)])
    g = onnx_to_graph(m)
    assert g.node("fc").precision["weight"] == FixedType(2, 1)
    np.testing.assert_array_equal(g.node("fc").weights["kernel"], np.where(w >= 0, 0.5, -0.5))
    x = edge_inputs((4,), 2.0**-4, 6.0)
    expected = []
    for row in x:
        t = [min(max(math.floor(Fraction(quant_int(v, -4, 8), 4)), -16), 15) for v in row]
        expected.append([Fraction(sum(t[i] * (1 if w[i, j] >= 0 else -1) for i in range(4)), 8)
                         for j in range(3)])
    expected = to_float(expected)
    np.testing.assert_array_equal(emulate(m, x), expected)
    oracle = qonnx_run(m, x)
    if oracle is not None:
        np.testing.assert_array_equal(oracle, expected)


# ----------------------------------------------------------------- errors
def _one_quant(**kwargs: Any) -> Any:
    node, inits = quant("h", "y", "q_act", **kwargs)
    relu = helper.make_node("Relu", ["x"], ["h"], name="relu")
    return model([relu, node], [tensor("x", "N", 4)], [tensor("y", "N", 4)], inits)


@pytest.mark.parametrize(
    ("kwargs", "needles"),
    [
        ({"scale": 0.25, "bits": 8, "zeropt": 1.0}, ["'q_act'", "zero point 1.0"]),
        ({"scale": 0.25, "bits": 8, "signed": 0, "narrow": 1}, ["narrow=1 with signed=0"]),
        ({"scale": 0.25, "bits": 8, "mode": "CEIL"}, ["rounding_mode='CEIL'", "HALF_UP"]),
        ({"scale": 0.25, "bits": 8, "mode": "NEAREST"}, ["'NEAREST' is unknown"]),
    ],
)
def test_quant_errors(kwargs: dict[str, Any], needles: list[str]) -> None:
    with pytest.raises(UnsupportedLayerError) as e:
        onnx_to_graph(_one_quant(**kwargs))
    for needle in needles:
        assert needle in str(e.value)


def test_real_weight_scale_converts_and_other_errors() -> None:
    # a weight scale that is not a power of two: the integers stay exact (8-bit integer
    # weights) and the scale is applied at the output (tests/frontends/test_brevitas_scales.py)
    node, inits = quant("w", "wq", "q_weights", 0.1, 8)
    mm = helper.make_node("MatMul", ["x", "wq"], ["y"], name="fc")
    m = model([node, mm], [tensor("x", "N", 2)], [tensor("y", "N", 2)],
              [*inits, init("w", np.eye(2))])
    g = onnx_to_graph(m)
    assert any(n.op == "Dense" for n in g.nodes)
    names = ["a", "b", "c", "d"]
    trunc = helper.make_node("Trunc", ["x", *names], ["y"], name="t1", domain=QDOMAIN)
    m = model([trunc], [tensor("x", "N", 2)], [tensor("y", "N", 2)],
              [init(n, v) for n, v in zip(names, (1.0, 0.0, 8, 4), strict=True)])
    with pytest.raises(UnsupportedLayerError, match=r"'t1'.*version 1"):
        onnx_to_graph(m)
    other = helper.make_node("Quant", ["x"], ["y"], name="custom", domain="com.example")
    m = model([other], [tensor("x", "N", 2)], [tensor("y", "N", 2)], [])
    with pytest.raises(UnsupportedLayerError, match=r"domain 'com.example'"):
        onnx_to_graph(m)


# --------------------------------------------------------------- Brevitas
@pytest.fixture(scope="module")
def brevitas() -> Iterator[Any]:
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pytest.importorskip("brevitas")
        import brevitas.nn as qnn
        import brevitas.quant as bq
        from brevitas.export import export_qonnx
    torch.manual_seed(3)
    yield torch, qnn, bq, export_qonnx


def _export(brevitas: Any, module: Any, shape: tuple[int, ...], tmp_path: Any,
            dynamo: bool = False) -> onnx.ModelProto:
    torch, _, _, export_qonnx = brevitas
    path = tmp_path / "brevitas.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            export_qonnx(module, torch.randn(1, *shape), export_path=str(path), dynamo=dynamo)
        except ModuleNotFoundError as e:  # onnxoptimizer / onnxscript missing
            pytest.skip(f"Brevitas cannot export here: {e}")
    return onnx.load(str(path))


def _brevitas_mlp(brevitas: Any) -> Any:
    torch, qnn, bq, _ = brevitas
    return torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=bq.Int8ActPerTensorFixedPoint, return_quant_tensor=True),
        qnn.QuantLinear(10, 8, weight_quant=bq.Int8WeightPerTensorFixedPoint,
                        bias_quant=bq.Int16Bias, return_quant_tensor=True),
        qnn.QuantReLU(act_quant=bq.Uint8ActPerTensorFixedPoint, return_quant_tensor=True),
        qnn.QuantLinear(8, 4, weight_quant=bq.Int8WeightPerTensorFixedPoint,
                        bias_quant=bq.Int16Bias),
    ).eval()


def _brevitas_forward(brevitas: Any, module: Any, x: np.ndarray) -> np.ndarray:
    torch = brevitas[0]
    with torch.no_grad():
        return np.asarray(module(torch.from_numpy(x)), dtype=np.float64)


def _exponent(scale: Any) -> int:
    e = math.log2(float(scale))
    assert e == int(e), f"Brevitas gave a scale {float(scale)!r} that is not a power of two"
    return int(e)


def _brevitas_mlp_reference(brevitas: Any, module: Any, x: np.ndarray) -> np.ndarray:
    """Integers from the module's float weights and its (power-of-two) scales."""
    torch = brevitas[0]
    with torch.no_grad():
        e_in = _exponent(module[0](torch.zeros(1, 10)).scale)
        e_act = _exponent(module[2].act_quant.scale())
        layers = []
        for lin in (module[1], module[3]):
            qw = lin.quant_weight()
            e_w = _exponent(qw.scale)
            w = [[quant_int(v, e_w, 8, narrow=True) for v in row] for row in lin.weight.numpy()]
            assert np.array_equal(np.array(w), qw.int().numpy())  # Brevitas' own integers
            layers.append((e_w, w, lin.bias.numpy()))
    out = []
    for sample in x:
        h, e_h = [quant_int(v, e_in, 8) for v in sample], e_in
        for k, (e_w, w, bias) in enumerate(layers):
            e_acc = e_h + e_w  # Int16Bias: the bias on the accumulator's grid, 16 bits
            acc = [sum(hi * wi for hi, wi in zip(h, row, strict=True)) + quant_int(b, e_acc, 16)
                   for row, b in zip(w, bias, strict=True)]
            if k == 0:
                h = [quant_int(Fraction(max(a, 0)) * Fraction(2) ** e_acc, e_act, 8, signed=False)
                     for a in acc]
                e_h = e_act
        out.append([Fraction(a) * Fraction(2) ** e_acc for a in acc])
    return to_float(out)


def _qonnx_per_sample(m: Any, x: np.ndarray) -> np.ndarray | None:
    """qonnx's executor one sample at a time (exports fix the batch size in Reshapes)."""
    runs = [qonnx_run(m, x[i : i + 1]) for i in range(len(x))]
    return None if runs[0] is None else np.concatenate(runs)


def test_brevitas_mlp_matches_its_forward_bit_for_bit(brevitas: Any, tmp_path: Any) -> None:
    module = _brevitas_mlp(brevitas)
    m = _export(brevitas, module, (10,), tmp_path)
    g = onnx_to_graph(m)
    assert [n.op for n in g.nodes] == ["Input", "Dense", "Activation", "Dense"]
    assert g.tensors[g.inputs[0]].type.width == 8
    x = edge_inputs((10,), 2.0**-7, 2.0)
    expected = _brevitas_forward(brevitas, module, x)
    assert len(np.unique(expected)) > 100  # not a degenerate (constant) network
    np.testing.assert_array_equal(emulate(m, x), expected)
    np.testing.assert_array_equal(_brevitas_mlp_reference(brevitas, module, x), expected)
    oracle = _qonnx_per_sample(m, x[::24])
    if oracle is not None:
        np.testing.assert_array_equal(oracle, expected[::24])


def _brevitas_cnn(brevitas: Any) -> Any:
    torch, qnn, bq, _ = brevitas
    return torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=bq.Int8ActPerTensorFixedPoint, return_quant_tensor=True),
        qnn.QuantConv2d(2, 4, 3, padding=1, weight_quant=bq.Int8WeightPerTensorFixedPoint,
                        bias_quant=bq.Int16Bias, return_quant_tensor=True),
        qnn.QuantReLU(act_quant=bq.Uint8ActPerTensorFixedPoint, return_quant_tensor=True),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        qnn.QuantLinear(4 * 3 * 3, 3, weight_quant=bq.Int8WeightPerTensorFixedPoint,
                        bias_quant=bq.Int16Bias),
    ).eval()


@pytest.mark.parametrize("dynamo", [False, True])  # TorchScript and dynamo exporters
def test_brevitas_cnn_matches_its_forward_bit_for_bit(brevitas: Any, tmp_path: Any,
                                                      dynamo: bool) -> None:
    module = _brevitas_cnn(brevitas)
    m = _export(brevitas, module, (2, 6, 6), tmp_path, dynamo)
    g = onnx_to_graph(m)
    assert [n.op for n in g.nodes] == ["Input", "Conv2D", "Activation", "Pooling2D", "Flatten",
                                       "Dense"]
    assert g.metadata["input_layouts"] == {g.inputs[0]: "channels_last"}
    x = edge_inputs((2, 6, 6), 2.0**-7, 2.0)
    expected = _brevitas_forward(brevitas, module, x)
    assert len(np.unique(expected)) > 100
    np.testing.assert_array_equal(emulate(m, np.moveaxis(x, 1, -1)), expected)
    oracle = _qonnx_per_sample(m, x[::24])
    if oracle is not None:
        np.testing.assert_array_equal(oracle, expected[::24])


def test_brevitas_float_scales_convert(brevitas: Any, tmp_path: Any) -> None:
    torch, qnn, _, _ = brevitas
    module = torch.nn.Sequential(qnn.QuantLinear(4, 2, bias=False)).eval()  # float scale
    m = _export(brevitas, module, (4,), tmp_path)
    g = onnx_to_graph(m)  # exactness against qonnx: tests/frontends/test_brevitas_scales.py
    assert [n.op for n in g.nodes if n.op == "Dense"] == ["Dense"]


def test_scale_options_reach_the_public_converter() -> None:
    from nnfab.frontends.onnx_scales import ScaleOptions

    node, inits = quant("w", "wq", "q_weights", 0.1, 8)
    mm = helper.make_node("MatMul", ["x", "wq"], ["y"], name="fc")
    m = model([node, mm], [tensor("x", "N", 2)], [tensor("y", "N", 2)],
              [*inits, init("w", np.eye(2))])
    for bits in (10, 24):
        hm = nnfab.convert_from_onnx_model(m, scale_options=ScaleOptions(multiplier_bits=bits))
        rescales = hm.graph.metadata.get("rescales", [])
        assert rescales and all(r["bits"] == bits for r in rescales)
