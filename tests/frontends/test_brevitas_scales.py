"""Brevitas' default (real, non-power-of-two) scales: integers exact, rescales measured.

Oracles: integers computed here from Brevitas' own integer weights and the QONNX
definitions (exact, ``==``), and qonnx's executor (float32) on the exported model. Where a
requantization by a real factor is rounded (``onnx_scales``: a fixed-point multiplier
``M * 2**-k``), every integer that differs from qonnx's must (a) differ by one step and
(b) sit at a rounding tie, within the multiplier's error (plus float32 noise); and such
values must be rare.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnfab
from nnfab.errors import ConfigError, UnsupportedLayerError
from nnfab.frontends.onnx import onnx_to_graph
from nnfab.frontends.onnx_scales import ScaleOptions, fixed_multiplier
from nnfab.ir import FixedType
from nnfab.passes import optimize_float

WIDE = {"Model": {"Precision": "ap_fixed<40,16,AP_RND_CONV,AP_SAT>"}}
QDOMAIN = "qonnx.custom_op.general"


# --------------------------------------------------------------- helpers
def convert(m: Any, options: ScaleOptions | None = None) -> nnfab.NnfabModel:
    return nnfab.convert_graph(optimize_float(onnx_to_graph(m, options)), WIDE)


def qonnx_context(m: Any, x: np.ndarray, per_sample: bool = False) -> dict[str, np.ndarray]:
    """Every tensor qonnx's executor computes (float32), for the batch ``x``."""
    pytest.importorskip("qonnx")
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    chunks = [x[i : i + 1] for i in range(len(x))] if per_sample else [x]
    runs: list[dict[str, np.ndarray]] = []
    original = helper.make_model

    def make_model(*args: Any, **kwargs: Any) -> Any:  # onnxruntime reads IR <= 10
        made = original(*args, **kwargs)
        made.ir_version = min(made.ir_version, 10)
        return made

    helper.make_model = make_model
    try:
        for chunk in chunks:
            fixed = onnx.ModelProto()
            fixed.CopyFrom(m)
            del fixed.graph.value_info[:]
            for info in (fixed.graph.input[0], *fixed.graph.output):
                info.type.tensor_type.shape.dim[0].dim_value = len(chunk)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                wrapped = ModelWrapper(fixed).transform(InferShapes())
                runs.append(execute_onnx(wrapped, {m.graph.input[0].name: chunk},
                                         return_full_exec_context=True))
    finally:
        helper.make_model = original
    return {k: np.concatenate([np.asarray(r[k], dtype=np.float64) for r in runs])
            for k in runs[0] if np.ndim(runs[0][k]) and np.shape(runs[0][k])[0] == len(chunks[0])}


def quant_nodes(m: Any) -> list[Any]:
    """The Quant nodes of data tensors (not of initializers), in order."""
    inits = {i.name for i in m.graph.initializer}
    return [n for n in m.graph.node if n.op_type == "Quant" and n.input[0] not in inits]


def init_value(m: Any, name: str) -> np.ndarray:
    for i in m.graph.initializer:
        if i.name == name:
            return numpy_helper.to_array(i)
    raise KeyError(name)


def compare_requant(hm: Any, m: Any, node: Any, x_ir: np.ndarray, ctx: dict[str, np.ndarray],
                    trace: dict[str, np.ndarray]) -> tuple[float, int]:
    """(fraction of the Quant's integers that differ from qonnx's, largest difference);
    asserts that each difference is one step at a rounding tie of the ideal rescale."""
    g = hm.graph
    ir = g.metadata["onnx_tensors"][node.output[0]]
    scale = float(init_value(m, node.input[1]))
    want = np.rint(ctx[node.output[0]] / scale)  # qonnx's integers (q * s / s: exact)
    got = trace[ir].reshape(want.shape)
    assert np.array_equal(got, np.rint(got))  # nnfab holds the integers themselves
    rescale = next(r for r in g.metadata["rescales"] if r["layer"] == ir)
    ideal, used = np.array(rescale["ideal"]), np.array(rescale["multiplier"])
    bad = got != want
    if bad.any():
        v = x_ir[bad]
        chan = np.nonzero(bad)[-1]
        t_ideal, t_used = v * ideal[chan], v * used[chan]
        tie = np.abs(t_ideal - np.floor(t_ideal) - 0.5)
        assert np.all(tie <= np.abs(t_ideal - t_used) + 1e-4 * np.maximum(1, np.abs(t_ideal)))
    return float(bad.mean()), int(np.max(np.abs(got - want), initial=0))


# -------------------------------------------------------------- brevitas
@pytest.fixture(scope="module")
def brevitas() -> Iterator[Any]:
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pytest.importorskip("brevitas")
        import brevitas.nn as qnn
        import brevitas.quant as bq
        from brevitas.export import export_qonnx
    torch.manual_seed(5)
    yield torch, qnn, bq, export_qonnx


def export(brevitas: Any, module: Any, shape: tuple[int, ...], tmp_path: Path,
           calibrate: float | None = 1.7, dynamo: bool = True) -> Any:
    """Calibrate the activation scales on random data (real scales), export to QONNX."""
    torch, _, _, export_qonnx = brevitas
    if calibrate is not None:
        module.train()
        with torch.no_grad():
            for _ in range(4):
                module(torch.randn(128, *shape) * calibrate)
    module.eval()
    path = tmp_path / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            export_qonnx(module, torch.randn(1, *shape), export_path=str(path), dynamo=dynamo)
        except ModuleNotFoundError as e:
            pytest.skip(f"Brevitas cannot export here: {e}")
    return onnx.load(str(path))


def inputs(shape: tuple[int, ...], n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, *shape)) * 1.7).astype(np.float32)


def test_only_weight_scales_real_integers_exact(brevitas: Any, tmp_path: Path) -> None:
    """Power-of-two input, per-channel float weights, Int32 bias: the accumulator is exact;
    the real factor s_x * s_w is applied at the output (or left to the caller)."""
    torch, qnn, bq, _ = brevitas
    module = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=bq.Int8ActPerTensorFixedPoint, return_quant_tensor=True),
        qnn.QuantLinear(10, 6, weight_quant=bq.Int8WeightPerChannelFloat,
                        bias_quant=bq.Int32Bias),
    )
    m = export(brevitas, module, (10,), tmp_path, calibrate=None)
    x = inputs((10,), 400)
    with torch.no_grad():
        s_x = float(module[0](torch.zeros(1, 10)).scale)
        qw = module[1].quant_weight()
        q_w, s_w = qw.int().numpy().astype(np.int64), qw.scale.numpy().reshape(-1)
    assert not np.all(np.frexp(s_w)[0] == 0.5)  # real weight scales
    bias_quant = next(n for n in m.graph.node if n.op_type == "Quant"
                      and n.input[0].endswith("bias"))
    b, s_b = init_value(m, bias_quant.input[0]), init_value(m, bias_quant.input[1])
    q_b = np.rint(b / s_b).astype(np.int64)  # QONNX Quant of the bias, float32 as exported
    q_x = np.clip(np.rint(x.astype(np.float64) / s_x), -128, 127).astype(np.int64)  # 2**e
    expected = q_x @ q_w.T + q_b  # integers, exact; in units of s_x * s_w

    hm = convert(m, ScaleOptions(output_rescale=False))
    out = hm.graph.outputs[0]
    assert [n.op for n in hm.graph.nodes] == ["Input", "Dense"]
    # the input holds q_x * s_x (s_x = 2**e, an exact cast): outputs in units of s_w
    np.testing.assert_array_equal(hm.predict(x), expected * s_x)
    (scales,) = hm.graph.metadata["output_scales"].values()
    np.testing.assert_array_equal(scales, s_w.astype(np.float64))
    assert hm.graph.node(out).precision["weight"] == FixedType(8, 8)

    real = convert(m)  # the factor applied by a 20-bit multiplier, configured precision
    assert [n.op for n in real.graph.nodes] == ["Input", "Dense", "BatchNormalization"]
    ctx = qonnx_context(m, x)
    oracle = ctx[m.graph.output[0].name]
    (rescale,) = real.graph.metadata["rescales"]
    mult_err = np.abs(np.subtract(rescale["multiplier"], rescale["ideal"]))
    assert np.all(mult_err <= FixedType.parse(rescale["type"]).lsb / 2)  # round to nearest
    assert np.all(mult_err <= 2.0**-20 * np.max(rescale["ideal"]))  # 20 significant bits
    terms = (np.abs(q_x) @ np.abs(q_w).T + np.abs(q_b)) * s_x * s_w  # float32 noise scale
    bound = np.abs(expected) * s_x * mult_err + 2.0**-25 + 8 * 2.0**-24 * terms
    assert np.all(np.abs(real.predict(x) - oracle) <= bound)
    np.testing.assert_allclose(expected * s_x * s_w, oracle, rtol=1e-6, atol=1e-7)


def _mlp(brevitas: Any, per_channel: bool) -> Any:
    torch, qnn, bq, _ = brevitas
    wq = bq.Int8WeightPerChannelFloat if per_channel else bq.Int8WeightPerTensorFloat
    return torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=bq.Int8ActPerTensorFloat, return_quant_tensor=True),
        qnn.QuantLinear(12, 8, weight_quant=wq, bias_quant=bq.Int32Bias,
                        return_quant_tensor=True),
        qnn.QuantReLU(bit_width=4, return_quant_tensor=True),
        qnn.QuantLinear(8, 3, weight_quant=bq.Int8WeightPerTensorFloat, bias=False),
    )


@pytest.mark.parametrize(("per_channel", "dynamo"), [(False, True), (True, True), (True, False)])
def test_brevitas_mlp_default_quantizers_vs_qonnx(brevitas: Any, tmp_path: Path,
                                                  per_channel: bool, dynamo: bool,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """dynamo=False: the TorchScript export (weights Quant -> Transpose -> MatMul)."""
    m = export(brevitas, _mlp(brevitas, per_channel), (12,), tmp_path, dynamo=dynamo)
    with caplog.at_level(logging.WARNING, logger="nnfab.frontends.onnx_scales"):
        hm = convert(m)
    g = hm.graph
    # the relu is fused into the Dense: its exact result type (accumulator units) holds it
    assert [n.op for n in g.nodes] == ["Input", "BatchNormalization", "Dense",
                                       "BatchNormalization", "Dense", "BatchNormalization"]
    assert g.nodes[2].attrs["activation"] == "relu"
    # integer weights (also through the TorchScript export's Transpose)
    assert [n.precision["weight"] for n in g.nodes if n.op == "Dense"] == [FixedType(8, 8)] * 2
    roles = [r["role"] for r in g.metadata["rescales"]]
    assert roles == ["requantize", "requantize", "output"]
    for r in g.metadata["rescales"]:  # each rounded multiplier is a warning naming its layer
        assert r["exact"] or any(r["layer"] in rec.getMessage() for rec in caplog.records)
    q_in, q_relu = quant_nodes(m)
    # the Quants' casts: int8 (round half even, saturate) and uint4
    assert g.tensors[g.metadata["onnx_tensors"][q_in.output[0]]].type == FixedType.parse(
        "ap_fixed<8,8,AP_RND_CONV,AP_SAT>")
    assert g.tensors[g.metadata["onnx_tensors"][q_relu.output[0]]].type == FixedType.parse(
        "ap_ufixed<4,4,AP_RND_CONV,AP_SAT>")

    x = np.concatenate([inputs((12,), 1500), inputs((12,), 100, seed=2) * 4])
    ctx = qonnx_context(m, x)
    trace = hm.trace(x, warn_overflow=False)
    x_in = trace[g.inputs[0]]
    frac_in, diff_in = compare_requant(hm, m, q_in, x_in, ctx, trace)
    relu_in = trace[g.node(g.metadata["onnx_tensors"][q_relu.output[0]]).inputs[0]]
    frac_relu, diff_relu = compare_requant(hm, m, q_relu, relu_in, ctx, trace)
    logging.getLogger(__name__).info("mismatch vs qonnx: input %.2e (max %d), relu %.2e (max %d)",
                                     frac_in, diff_in, frac_relu, diff_relu)
    assert frac_in < 0.01 and frac_relu < 0.01
    assert diff_in <= 1 and diff_relu <= 1
    assert len(np.unique(trace[g.metadata["onnx_tensors"][q_relu.output[0]]])) == 16
    # outputs: float-close, except samples behind a one-step difference upstream
    got, want = hm.predict(x, warn_overflow=False), ctx[m.graph.output[0].name]
    close = np.abs(got - want) <= 1e-5 * np.maximum(1, np.abs(want))
    assert close.mean() > 0.99


def _cnn(brevitas: Any, per_channel: bool = False) -> Any:
    torch, qnn, bq, _ = brevitas
    wq = bq.Int8WeightPerChannelFloat if per_channel else bq.Int8WeightPerTensorFloat
    return torch.nn.Sequential(
        qnn.QuantIdentity(return_quant_tensor=True),  # Int8ActPerTensorFloat
        qnn.QuantConv2d(2, 4, 3, padding=1, weight_quant=wq, bias_quant=bq.Int32Bias,
                        return_quant_tensor=True),
        qnn.QuantReLU(bit_width=4, return_quant_tensor=True),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        qnn.QuantLinear(4 * 3 * 3, 3, bias=False),
    )


@pytest.mark.parametrize(("per_channel", "dynamo"), [(False, True), (True, False)])
def test_brevitas_cnn_default_quantizers_vs_qonnx(brevitas: Any, tmp_path: Path,
                                                  per_channel: bool, dynamo: bool) -> None:
    m = export(brevitas, _cnn(brevitas, per_channel), (2, 6, 6), tmp_path, dynamo=dynamo)
    hm = convert(m)
    g = hm.graph
    assert [n.op for n in g.nodes] == ["Input", "BatchNormalization", "Conv2D",
                                       "BatchNormalization", "Pooling2D", "Flatten", "Dense",
                                       "BatchNormalization"]
    x = inputs((2, 6, 6), 60)
    ctx = qonnx_context(m, x, per_sample=True)  # the export fixes the batch in its Reshape
    trace = hm.trace(np.moveaxis(x, 1, -1), warn_overflow=False)
    q_in, q_relu = quant_nodes(m)
    chw = (0, 3, 1, 2)  # IR channels-last -> ONNX NCHW
    ntrace = {k: (v.transpose(chw) if v.ndim == 4 else v) for k, v in trace.items()}
    for node, src in ((q_in, g.inputs[0]),
                      (q_relu, g.node(g.metadata["onnx_tensors"][q_relu.output[0]]).inputs[0])):
        ir = g.metadata["onnx_tensors"][node.output[0]]
        scale = float(init_value(m, node.input[1]))
        want = np.rint(ctx[node.output[0]] / scale)
        got = ntrace[ir]
        bad = got != want
        assert bad.mean() < 0.01 and np.max(np.abs(got - want)) <= 1, (node.name, bad.mean())
        rescale = next(r for r in g.metadata["rescales"] if r["layer"] == ir)
        ideal, used = rescale["ideal"][0], rescale["multiplier"][0]  # per tensor here
        v = ntrace[src][bad]
        tie = np.abs(v * ideal - np.floor(v * ideal) - 0.5)
        assert np.all(tie <= np.abs(v * (ideal - used)) + 1e-4 * np.maximum(1, np.abs(v * ideal)))
    got = hm.predict(np.moveaxis(x, 1, -1), warn_overflow=False)
    want = ctx[m.graph.output[0].name]
    close = np.abs(got - want) <= 1e-5 * np.maximum(1, np.abs(want))
    assert close.mean() > 0.95
    # the default precision (ap_fixed<16,6>) only types the real output: every tensor in
    # integer units has its exact type, so nothing saturates
    hm16 = nnfab.convert_from_onnx_model(m)
    dense = next(n for n in hm16.graph.nodes if n.op == "Dense")
    assert hm16.graph.tensors[dense.name].type.frac == 0
    got16 = hm16.predict(np.moveaxis(x, 1, -1), warn_overflow=False)
    report = hm16.overflow_report()
    assert not any(sum(report.get(n.name, {}).values()) for n in hm16.graph.nodes
                   if n.op in ("Conv2D", "Dense", "Pooling2D", "Flatten"))
    assert np.mean(np.abs(got16 - want) <= 2.0**-10) > 0.95  # ap_fixed<16,6>: lsb 2**-10


# ----------------------------------------------------------- hand-built
def _quant(x: str, y: str, prefix: str, scale: Any, bits: int, zeropt: float = 0.0,
           signed: int = 1) -> tuple[Any, list[Any]]:
    names = [f"{prefix}_s", f"{prefix}_z", f"{prefix}_b"]
    node = helper.make_node("Quant", [x, *names], [y], name=prefix, domain=QDOMAIN,
                            signed=signed, narrow=0, rounding_mode="ROUND")
    arrays = (scale, zeropt, bits)
    return node, [numpy_helper.from_array(np.asarray(a, dtype=np.float32), n)
                  for n, a in zip(names, arrays, strict=True)]


def _model(nodes: list[Any], inits: list[Any], n_in: int, n_out: int) -> Any:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                helper.make_opsetid(QDOMAIN, 2)])
    m.ir_version = 8
    return m


def test_requantization_rule_is_the_documented_fixed_point_multiply() -> None:
    """Quant(0.1) of Quant(0.3) data: nnfab computes round(q * M 2**-k), with
    M 2**-k = fixed_multiplier(3)."""
    q1, i1 = _quant("x", "h", "q_a", 0.3, 8)
    q2, i2 = _quant("h", "y", "q_b", 0.7, 6)
    m = _model([q1, q2], i1 + i2, 4, 4)
    hm = convert(m, ScaleOptions(multiplier_bits=10, output_rescale=False))
    ideal = float(np.float32(0.3)) / float(np.float32(0.7))
    mult = fixed_multiplier(np.array([ideal]), 10, "t")
    assert not mult.exact and mult.max_rel_error <= 2.0**-10
    q_a = np.arange(-128, 128, dtype=np.float64)
    x = np.repeat(q_a * float(np.float32(0.3)), 4).reshape(-1, 4).astype(np.float32)
    want = np.clip(np.rint(q_a * float(mult.values[0])), -32, 31)  # half even, saturate
    np.testing.assert_array_equal(hm.predict(x)[:, 0], want)
    assert hm.graph.metadata["output_scales"]["y"] == [float(np.float32(0.7))] * 4
    # one step from float-scaled QONNX (round(q * 0.3 / 0.7)) where a tie is that close
    ideal_q = np.clip(np.rint(q_a * ideal), -32, 31)
    diff = want != ideal_q
    assert np.all(np.abs(want - ideal_q) <= 1)
    t = q_a[diff] * ideal
    assert np.all(np.abs(t - np.floor(t) - 0.5) <= np.abs(q_a[diff]) * 2.0**-10 * ideal)


def test_power_of_two_ratios_stay_exact_casts(caplog: pytest.LogCaptureFixture) -> None:
    """Real weight scale s_w = 0.3 and output scale 2 * s_w: the requantization factor is
    2**-1, so the output Quant is an exact cast (no multiplier, no warning), bit-exact."""
    qx, ix = _quant("x", "xq", "q_x", 2.0**-3, 8)
    qw, iw = _quant("w", "wq", "q_w", 0.3, 6)
    s_w = float(np.float32(0.3))
    qy, iy = _quant("h", "y", "q_y", 2 * s_w, 8)
    mm = helper.make_node("MatMul", ["xq", "wq"], ["h"], name="fc")
    w = np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32) * 3
    inits = [*ix, *iw, *iy, numpy_helper.from_array(w, "w")]
    m = _model([qx, qw, mm, qy], inits, 5, 4)
    opts = ScaleOptions(output_rescale=False)
    with caplog.at_level(logging.WARNING, logger="nnfab.frontends.onnx_scales"):
        hm = convert(m, opts)
    assert "multiplier" not in caplog.text and "rescales" not in hm.graph.metadata
    g = hm.graph
    assert [n.op for n in g.nodes] == ["Input", "Dense"]
    assert g.tensors["fc"].type == FixedType.parse("ap_fixed<8,9,AP_RND_CONV,AP_SAT>")
    assert g.metadata["output_scales"]["y"] == [s_w] * 4
    x = (np.random.default_rng(4).integers(-128, 128, size=(300, 5)) / 8).astype(np.float32)
    q_w = np.clip(np.rint(w.astype(np.float32) / np.float32(0.3)), -32, 31).astype(np.int64)
    acc = (x * 8).astype(np.int64) @ q_w  # sum q_x q_w; real value s_w 2**-3 acc
    q_y = np.clip(np.rint(acc / 16), -128, 127)  # round(acc / 16): half even, saturate
    assert np.any(acc % 16 == 8)  # ties are met
    np.testing.assert_array_equal(hm.predict(x) * s_w, q_y * 2 * s_w)
    ctx = qonnx_context(m, x)
    q_qonnx = np.rint(ctx["y"] / np.float32(2 * s_w))
    # qonnx's float32 sums move exact ties by an ulp: it may differ there, nowhere else
    assert np.all((q_qonnx == q_y) | (acc % 16 == 8))
    assert np.mean(q_qonnx == q_y) > 0.9


def test_residual_add_constant_mul_and_concat_carry_the_factor() -> None:
    """Add of two tensors with one factor, Mul by a positive constant, Concat of equal
    Quants: integers untouched (no extra rescale), checked against qonnx."""
    rng = np.random.default_rng(8)
    w1, w2, w3 = (rng.normal(size=shape).astype(np.float32) for shape in
                  ((6, 5), (6, 5), (10, 3)))
    parts = [_quant("x", "xq", "q_x", 0.031, 8), _quant("w1", "w1q", "q_w1", 0.017, 8),
             _quant("w2", "w2q", "q_w2", 0.017, 8), _quant("ra", "qa", "q_a", 0.23, 4, signed=0),
             _quant("rb", "qb", "q_b", 0.23, 4, signed=0), _quant("w3", "w3q", "q_w3", 0.05, 6),
             _quant("m", "y2", "q_y2", 0.41, 6)]
    nodes = [p[0] for p in parts] + [
        helper.make_node("MatMul", ["xq", "w1q"], ["a"], name="fc_a"),
        helper.make_node("MatMul", ["xq", "w2q"], ["b"], name="fc_b"),
        helper.make_node("Relu", ["a"], ["ra"], name="relu_a"),
        helper.make_node("Relu", ["b"], ["rb"], name="relu_b"),
        helper.make_node("Concat", ["qa", "qb"], ["cat"], name="cat", axis=1),
        helper.make_node("MatMul", ["cat", "w3q"], ["y"], name="fc_out"),
        helper.make_node("Add", ["a", "b"], ["r"], name="residual"),
        helper.make_node("Mul", ["r", "k"], ["m"], name="gain"),
    ]
    inits = [i for p in parts for i in p[1]] + [
        numpy_helper.from_array(v, n) for n, v in (("w1", w1), ("w2", w2), ("w3", w3),
                                                    ("k", np.float32(2.5)))]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("y2", TensorProto.FLOAT, ["N", 5])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                helper.make_opsetid(QDOMAIN, 2)])
    m.ir_version = 8
    hm = convert(m, ScaleOptions(output_rescale=False))
    g = hm.graph
    # requantizations only: the Add, Mul and Concat needed no multiplier
    assert sorted(r["onnx_node"] for r in g.metadata["rescales"]) == sorted(
        f"node {n!r} (Quant)" for n in ("q_x", "q_a", "q_b", "q_y2"))
    assert g.node("residual").op == "Merge"
    s_x, s_c, s_w3, s_y2 = (float(np.float32(v)) for v in (0.031, 0.23, 0.05, 0.41))
    assert g.metadata["output_scales"] == {"y": [s_c * s_w3] * 3, "y2": [s_y2] * 5}
    x = (rng.normal(size=(2000, 6)) * 1.5).astype(np.float32)
    ctx = qonnx_context(m, x)
    trace = hm.trace(x, warn_overflow=False)
    q_x = trace[g.metadata["onnx_tensors"]["xq"]]
    q1 = np.clip(np.rint(w1 / np.float32(0.017)), -128, 127)
    q2 = np.clip(np.rint(w2 / np.float32(0.017)), -128, 127)
    np.testing.assert_array_equal(trace["residual"], q_x @ q1 + q_x @ q2)  # exact integers
    for name, scale in (("xq", s_x), ("qa", s_c), ("qb", s_c), ("y2", s_y2)):
        got = trace[g.metadata["onnx_tensors"][name]] if name != "y2" else hm.predict(
            x, warn_overflow=False)[1]
        want = np.rint(ctx[name] / scale)
        assert np.mean(got != want) < 0.01 and np.max(np.abs(got - want)) <= 1, name
    y = hm.predict(x, warn_overflow=False)[0]
    q_cat = np.concatenate([trace[g.metadata["onnx_tensors"][n]] for n in ("qa", "qb")], axis=1)
    q3 = np.clip(np.rint(w3 / np.float32(0.05)), -32, 31)
    np.testing.assert_array_equal(y, q_cat @ q3)  # in units of s_c * s_w3


def test_matmul_bias_add_on_the_accumulator_grid(caplog: pytest.LogCaptureFixture) -> None:
    """MatMul with per-column weight scales, then Add of a bias quantized with scale
    float32(s_x * s_w) (Brevitas' Int32Bias): the bias folds into the Dense as integers."""
    rng = np.random.default_rng(9)
    s_x = np.float32(0.043)
    s_w = (rng.uniform(0.01, 0.03, size=(1, 5))).astype(np.float32)
    s_b = (s_x * s_w).astype(np.float32)  # as Brevitas computes it
    w = rng.normal(size=(7, 5)).astype(np.float32)
    b = rng.normal(size=5).astype(np.float32)
    parts = [_quant("x", "xq", "q_x", s_x, 8), _quant("w", "wq", "q_w", s_w, 8),
             _quant("b", "bq", "q_bias", s_b.reshape(5), 32),
             _quant("r", "y", "q_y", 0.37, 4, signed=0)]
    nodes = [p[0] for p in parts] + [
        helper.make_node("MatMul", ["xq", "wq"], ["h"], name="fc"),
        helper.make_node("Add", ["h", "bq"], ["hb"], name="fc_bias"),
        helper.make_node("Relu", ["hb"], ["r"], name="relu")]
    inits = [i for p in parts for i in p[1]] + [numpy_helper.from_array(w, "w"),
                                                numpy_helper.from_array(b, "b")]
    m = _model(nodes, inits, 7, 5)
    with caplog.at_level(logging.WARNING, logger="nnfab.frontends.onnx_scales"):
        hm = convert(m, ScaleOptions(output_rescale=False))
    assert "not on the accumulator grid" not in caplog.text
    g = hm.graph
    assert [n.op for n in g.nodes] == ["Input", "BatchNormalization", "Dense",
                                       "BatchNormalization"]
    q_b = np.rint(b / s_b.reshape(5))
    np.testing.assert_array_equal(g.node("fc").weights["bias"], q_b)
    x = (rng.normal(size=(3000, 7)) * 2).astype(np.float32)
    trace = hm.trace(x, warn_overflow=False)
    q_x = trace[g.metadata["onnx_tensors"]["xq"]]
    q_w = np.clip(np.rint(w / s_w), -128, 127)
    np.testing.assert_array_equal(trace["fc"], np.maximum(q_x @ q_w + q_b, 0))  # exact
    ctx = qonnx_context(m, x)
    want = np.rint(ctx["y"] / np.float32(0.37))
    got = hm.predict(x, warn_overflow=False)
    assert np.mean(got != want) < 0.01 and np.max(np.abs(got - want)) <= 1
    assert len(np.unique(got)) == 16


def test_zero_points_and_bad_options_are_clear_errors() -> None:
    q, i = _quant("x", "y", "q_asym", 0.3, 8, zeropt=3.0, signed=0)
    with pytest.raises(UnsupportedLayerError, match=r"'q_asym'.*zero point 3\.0.*symmetric"):
        onnx_to_graph(_model([q], i, 4, 4))
    qw, iw = _quant("w", "wq", "q_wz", 0.3, 8, zeropt=1.0)
    mm = helper.make_node("MatMul", ["x", "wq"], ["y"], name="fc")
    m = _model([qw, mm], [*iw, numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")], 4, 4)
    with pytest.raises(UnsupportedLayerError, match=r"'q_wz'.*zero point 1\.0"):
        onnx_to_graph(m)
    with pytest.raises(ConfigError, match=r"multiplier_bits=4.*8\.\.40"):
        ScaleOptions(multiplier_bits=4)
    with pytest.raises(ConfigError, match="bias_frac_bits"):
        ScaleOptions(bias_frac_bits=-1)


def test_fixed_multiplier_bounds() -> None:
    rng = np.random.default_rng(0)
    m = np.exp(rng.uniform(-2, 2, size=200))
    for bits in (8, 16, 24):
        mult = fixed_multiplier(m, bits, "t")
        top = np.abs(mult.values - m)[np.argmax(m)] / m.max()
        assert top <= 2.0**-bits
        big = np.ldexp(mult.values, mult.type.frac)
        assert np.array_equal(big, np.rint(big)) and big.max() < 2.0**bits
        assert np.all(mult.type.quantize(mult.values) == mult.values)
    exact = fixed_multiplier(np.array([0.25, 0.5, 2.0]), 12, "t")
    assert exact.exact
    with pytest.raises(UnsupportedLayerError, match=r"raise ScaleOptions\.multiplier_bits"):
        fixed_multiplier(np.array([1.0, 2.0**-20]), 8, "t")


# -------------------------------------------------------------- backends
def test_hls_csim_and_verilator_equal_the_emulator(brevitas: Any, tmp_path: Path) -> None:
    """The requantization BatchNormalizations (fixed-point multipliers, integer casts) in
    generated HLS C++ (g++) and Verilog (Verilator): bit for bit the emulator."""
    import shutil

    from nnfab.backends.hls import CSimLibrary
    from nnfab.tools.verilator import verilator_available

    torch, qnn, bq, _ = brevitas
    module = torch.nn.Sequential(
        qnn.QuantIdentity(return_quant_tensor=True),
        qnn.QuantLinear(6, 5, weight_quant=bq.Int8WeightPerChannelFloat,
                        bias_quant=bq.Int32Bias, return_quant_tensor=True),
        qnn.QuantReLU(bit_width=4, return_quant_tensor=True),
        qnn.QuantLinear(5, 3, bias=False),
    )
    m = export(brevitas, module, (6,), tmp_path)
    cfg = {"Model": {"Precision": "ap_fixed<32,8,AP_RND_CONV,AP_SAT>"}}
    hm = nnfab.convert_graph(optimize_float(onnx_to_graph(m)), cfg)
    assert sum(r["role"] == "requantize" and not r["exact"]
               for r in hm.graph.metadata["rescales"]) == 2
    x = np.concatenate([inputs((6,), 300), inputs((6,), 100, seed=3) * 5])
    want = hm.predict(x, warn_overflow=False)
    assert len(np.unique(want)) > 100
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed")
    np.testing.assert_array_equal(CSimLibrary(hm, cache_dir=tmp_path / "csim").predict(x), want)
    if not verilator_available():
        pytest.skip("verilator not available")
    from nnfab.backends.rtl import RTLProject

    result = RTLProject(hm, tmp_path / "rtl").simulate(x)
    np.testing.assert_array_equal(result.outputs, want)
