"""Exporter idioms of published ONNX / QONNX files (``nnfab.frontends.onnx_idioms``).

Oracles: onnxruntime, qonnx's executor (``qonnx.core.onnx_exec.execute_onnx`` on a
``ModelWrapper``), onnx's reference evaluator for opset-6 Gemm (onnxruntime, and with it
qonnx's executor, has no Gemm-6 kernel), numpy in float64, and PyTorch.

Exactness. Inputs and weights are multiples of 2**-4 of magnitude < 8 unless said
otherwise, so every product is a multiple of 2**-8 and every sum below stays under
2**10: exact in float32 (24-bit mantissa) and in ``WIDE`` (28 fractional bits, 20
integer bits). Comparisons are then ``==``. The float models with batch normalization
are not on a grid; there ``FLOAT_TOL`` is the bound: nnfab's casts round to 2**-29
(round to nearest) a few times per value, amplified by weight sums < 40, and float32
oracles add relative errors of n * 2**-24 for sums of n < 64 terms of magnitude < 100,
which is < 4e-4 in all; a wrong layout or weight order gives O(1) errors.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tests.paths import SHARED_MODELS, missing

import nnfab
from nnfab.errors import UnsupportedLayerError
from nnfab.frontends.onnx import onnx_to_graph
from nnfab.frontends.onnx_idioms import CHANNELS_LAST_DOMAIN

WIDE = "ap_fixed<48,20,AP_RND_CONV,AP_SAT>"
FLOAT_TOL = 4e-4
QDOMAIN = "qonnx.custom_op.general"
RNG = np.random.default_rng(7)


# ------------------------------------------------------------------ helpers
def grid(*shape: int, lim: float = 4.0, step: float = 1 / 16) -> np.ndarray:
    """Random multiples of ``step`` in [-lim, lim) as float32 (exact)."""
    n = int(lim / step)
    return (RNG.integers(-n, n, size=shape) * step).astype(np.float32)


def model_of(nodes: list[Any], inputs: list[Any], outputs: list[Any],
             inits: dict[str, np.ndarray], opset: int = 13,
             domains: tuple[str, ...] = (), domain_version: int = 1) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "idiom", inputs, outputs,
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    opsets = [helper.make_opsetid("", opset)]
    opsets += [helper.make_opsetid(d, domain_version) for d in domains]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def tensor(name: str, shape: list[Any]) -> Any:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def convert(model: Any, precision: str = WIDE) -> nnfab.NnfabModel:
    cfg = nnfab.config_from_onnx_model(model, default_precision=precision)
    return nnfab.convert_from_onnx_model(model, hls_config=cfg)


def ort_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    if sess.get_inputs()[0].shape[0] == 1:  # a file declaring batch 1: one sample at a time
        return np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])
    return np.asarray(sess.run(None, {name: x})[0])


def qonnx_run(model: Any, x: np.ndarray) -> np.ndarray:
    """qonnx's executor, one sample at a time (the models declare batch 1)."""
    pytest.importorskip("qonnx")
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    wrapper = model if isinstance(model, ModelWrapper) else ModelWrapper(model)
    wrapper = wrapper.transform(InferShapes())
    name = wrapper.graph.input[0].name
    out = wrapper.graph.output[0].name
    return np.concatenate(
        [execute_onnx(wrapper, {name: x[i:i + 1]})[out] for i in range(len(x))]
    )


def ops(hm: nnfab.NnfabModel) -> list[str]:
    return [n.op for n in hm.graph.nodes]


# ============================================ 1. batch-axis transposes
def _transposed_dense(opset: int = 13) -> onnx.ModelProto:
    """keras2onnx style: y = Transpose(Relu(W @ Transpose(x) + b)), b of shape (5, 1)."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0], name="to_features_first"),
        helper.make_node("MatMul", ["W", "xt"], ["wx"], name="dense"),
        helper.make_node("Add", ["wx", "b"], ["z"], name="bias"),
        helper.make_node("Relu", ["z"], ["r"], name="relu"),
        helper.make_node("Transpose", ["r"], ["y"], perm=[1, 0], name="to_batch_first"),
    ]
    inits = {"W": grid(5, 4), "b": grid(5, 1)}
    return model_of(nodes, [tensor("x", ["N", 4])], [tensor("y", ["N", 5])], inits, opset)


def test_transpose_matmul_transpose_is_one_dense_exact_against_onnxruntime() -> None:
    model = _transposed_dense()
    hm = convert(model)
    assert ops(hm) == ["Input", "Dense", "Activation"]  # the transposes made no node
    x = grid(64, 4)
    assert np.array_equal(hm.predict(x), ort_run(model, x))


def test_transpose_gemm_with_constant_first_operand_and_softmax() -> None:
    # y = Transpose(Softmax_axis0(Gemm(W, xT, C))): softmax over the features
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0], name="t1"),
        helper.make_node("Gemm", ["W", "xt", "C"], ["g"], alpha=0.5, beta=2.0, transA=1,
                         name="gemm"),
        helper.make_node("Transpose", ["g"], ["y"], perm=[1, 0], name="t2"),
    ]
    inits = {"W": grid(4, 3), "C": grid(3, 1)}
    model = model_of(nodes, [tensor("x", ["N", 4])], [tensor("y", ["N", 3])], inits)
    hm = convert(model)
    assert ops(hm) == ["Input", "Dense"]
    x = grid(32, 4)
    assert np.array_equal(hm.predict(x), ort_run(model, x))


def test_transpose_into_gemm_trans_a() -> None:
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0], name="t1"),
        helper.make_node("Gemm", ["xt", "B", "C"], ["y"], transA=1, name="gemm"),
    ]
    inits = {"B": grid(4, 6), "C": grid(6)}
    model = model_of(nodes, [tensor("x", ["N", 4])], [tensor("y", ["N", 6])], inits)
    hm = convert(model)
    assert ops(hm) == ["Input", "Dense"]
    x = grid(32, 4)
    assert np.array_equal(hm.predict(x), ort_run(model, x))


def test_softmax_over_the_transposed_features_matches_onnxruntime() -> None:
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0], name="t1"),
        helper.make_node("MatMul", ["W", "xt"], ["z"], name="dense"),
        helper.make_node("Softmax", ["z"], ["s"], axis=0, name="softmax"),
        helper.make_node("Transpose", ["s"], ["y"], perm=[1, 0], name="t2"),
    ]
    model = model_of(nodes, [tensor("x", ["N", 4])], [tensor("y", ["N", 5])],
                     {"W": grid(5, 4, lim=1.0)})
    hm = convert(model)
    assert ops(hm) == ["Input", "Dense", "Softmax"]
    x = grid(32, 4, lim=1.0)
    # nnfab's softmax tables: relative error < exp(8/1024) - 1 + 8/2048 + 2**-12 < 0.013
    ref = ort_run(model, x)
    assert np.all(np.abs(hm.predict(x) - ref) <= 0.013 * ref + 2.0**-14)


def test_batch_transpose_that_is_not_undone_is_a_clear_error() -> None:
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0], name="swap"),
        helper.make_node("Relu", ["xt"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["y"], axis=1, name="flat"),
    ]
    model = model_of(nodes, [tensor("x", ["N", 4])], [tensor("y", [4, "N"])], {})
    with pytest.raises(UnsupportedLayerError) as e:
        onnx_to_graph(model)
    msg = str(e.value)
    assert "'swap' (Transpose)" in msg and "perm=[1, 0]" in msg and "moves the batch" in msg
    assert "Gemm with transA=1" in msg and "keep the batch axis 0 first" in msg


def test_rewrite_leaves_the_callers_model_alone() -> None:
    model = _transposed_dense()
    before = model.SerializeToString()
    onnx_to_graph(model)
    assert model.SerializeToString() == before


def test_keras_convnet_transpose_before_flatten_against_onnxruntime() -> None:
    # tf2onnx / keras2onnx: NHWC input -> NCHW Conv -> back to NHWC -> Flatten -> Dense
    nodes = [
        helper.make_node("Transpose", ["x"], ["xc"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Conv", ["xc", "K", "B"], ["c"], kernel_shape=[3, 3], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Transpose", ["r"], ["rl"], perm=[0, 2, 3, 1], name="to_nhwc"),
        helper.make_node("Flatten", ["rl"], ["f"], axis=1, name="flatten"),
        helper.make_node("MatMul", ["f", "W"], ["y"], name="dense"),
    ]
    inits = {"K": grid(4, 2, 3, 3, lim=1.0), "B": grid(4), "W": grid(4 * 3 * 3, 3, lim=1.0)}
    model = model_of(nodes, [tensor("x", ["N", 5, 5, 2])], [tensor("y", ["N", 3])], inits)
    hm = convert(model)
    assert "Permute" not in ops(hm)
    x = grid(16, 5, 5, 2, lim=2.0)
    assert np.array_equal(hm.predict(x), ort_run(model, x))


def test_shared_keras_convnet_file_matches_onnxruntime() -> None:
    path = SHARED_MODELS / "onnx" / "conv2d_small_keras.onnx"
    if not path.exists():
        missing(f"{path} is not there")
    model = onnx.load(str(path))
    hm = convert(model)
    assert ops(hm).count("Flatten") <= 1 and "Permute" not in ops(hm)
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    x = RNG.uniform(-1, 1, size=(16, *shape)).astype(np.float32)
    ref = ort_run(model, x)
    # softmax output: the tables' relative bound (as above) on top of FLOAT_TOL
    assert np.all(np.abs(hm.predict(x) - ref) <= 0.013 * ref + FLOAT_TOL)


# =================================================== 2. old-opset Gemm
def _gemm6(broadcast: int, c: np.ndarray, batch: Any = "N") -> onnx.ModelProto:
    node = helper.make_node("Gemm", ["x", "W", "C"], ["y"], transB=1, broadcast=broadcast,
                            alpha=0.5, name="old_gemm")
    inits = {"W": grid(5, 4), "C": c}
    return model_of([node], [tensor("x", [batch, 4])], [tensor("y", [batch, 5])], inits,
                    opset=6)


def reference_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator

    return np.asarray(ReferenceEvaluator(model).run(None, {"x": x})[0])


def test_opset6_gemm_with_broadcast_against_reference_and_qonnx() -> None:
    model = _gemm6(1, grid(5), batch=1)
    hm = convert(model)
    assert ops(hm) == ["Input", "Dense"]
    x = grid(32, 4)
    y = hm.predict(x)
    assert np.array_equal(y, reference_run(model, x))
    # qonnx's executor runs standard nodes with onnxruntime, which has no Gemm-6 kernel:
    # run it on the same model moved to opset 7 by onnx's version converter.
    from onnx import version_converter

    assert np.array_equal(y, qonnx_run(version_converter.convert_version(model, 7), x))


def test_opset6_gemm_broadcast0_with_equal_rows_is_a_bias() -> None:
    row = grid(1, 5)
    model = _gemm6(0, np.repeat(row, 3, axis=0), batch=3)
    x = grid(3, 4)
    assert np.array_equal(convert(model).predict(x), reference_run(model, x))


def test_opset6_gemm_broadcast0_errors() -> None:
    with pytest.raises(UnsupportedLayerError, match=r"'old_gemm' \(Gemm\): broadcast=0 .*"
                                                    r"\(M, 5\)"):
        onnx_to_graph(_gemm6(0, grid(5)))
    with pytest.raises(UnsupportedLayerError, match=r"'old_gemm'.*rows differ"):
        onnx_to_graph(_gemm6(0, grid(3, 5), batch=3))


def test_opset6_add_aligned_at_an_axis() -> None:
    # Add-6 with broadcast=1, axis=1 adds b[c] to channel c (numpy broadcasting would add
    # b along the last axis W): a Conv's bias in old Caffe2 / keras2onnx exports
    k, b = grid(3, 2, 1, 1, lim=1.0), grid(3)
    nodes = [
        helper.make_node("Conv", ["x", "K"], ["c"], kernel_shape=[1, 1], name="conv"),
        helper.make_node("Mul", ["c", "m"], ["cm"], broadcast=1, axis=1, name="mul6"),
        helper.make_node("Add", ["cm", "b"], ["y"], broadcast=1, axis=1, name="add6"),
    ]
    model = model_of(nodes, [tensor("x", ["N", 2, 3, 3])], [tensor("y", ["N", 3, 3, 3])],
                     {"K": k, "m": np.array([1, -2, 0.5], np.float32), "b": b}, opset=6)
    x = grid(8, 2, 3, 3)
    conv = np.einsum("nchw,oc->nohw", x.astype(np.float64), k[:, :, 0, 0].astype(np.float64))
    expected = conv * np.array([1, -2, 0.5])[:, None, None] + b[:, None, None]
    got = convert(model).predict(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    assert np.array_equal(got, expected.transpose(0, 2, 3, 1))


# ====================================== 3. QONNX channels-last domain
def _small_cnn() -> onnx.ModelProto:
    c, h = 3, 6
    inits = {
        "W": grid(4, c, 3, 3, lim=1.0), "B": grid(4),
        "scale": RNG.uniform(0.5, 2, 4).astype(np.float32), "bias": grid(4),
        "mean": grid(4), "var": RNG.uniform(0.5, 2, 4).astype(np.float32),
        "Wd": grid(4 * 3 * 3, 5, lim=1.0),
    }
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1,
                         name="conv"),
        helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["bn"],
                         name="bn"),
        helper.make_node("Relu", ["bn"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2],
                         pads=[0, 0, 0, 0], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "Wd"], ["y"], name="dense"),
    ]
    return model_of(nodes, [tensor("x", [1, c, h, h])], [tensor("y", [1, 5])], inits,
                    opset=11)


def _channels_last(model: onnx.ModelProto, input_last: bool) -> Any:
    pytest.importorskip("qonnx")
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.infer_shapes import InferShapes

    wrapper = ModelWrapper(model).transform(InferShapes())
    return wrapper.transform(ConvertToChannelsLastAndClean(make_input_channels_last=input_last))


@pytest.mark.parametrize("input_last", [False, True])
def test_qonnx_channels_last_model_against_qonnx_executor(input_last: bool) -> None:
    wrapper = _channels_last(_small_cnn(), input_last)
    domains = {n.domain for n in wrapper.graph.node}
    assert CHANNELS_LAST_DOMAIN in domains  # the transformation did its job
    hm = convert(wrapper)
    # no Permute: the layout Transposes vanish (the batch norm is folded into the conv)
    assert ops(hm) == ["Input", "Conv2D", "Activation", "Pooling2D", "Flatten", "Dense"]
    assert hm.graph.metadata["input_layouts"] == {"x": "channels_last" if not input_last
                                                  else "unchanged"}
    x = grid(12, 3, 6, 6, lim=2.0)
    x_in = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # nnfab takes NHWC either way
    ref = qonnx_run(wrapper, x_in if input_last else x)
    assert np.max(np.abs(hm.predict(x_in) - ref)) <= FLOAT_TOL


def _quant(inp: str, out: str, name: str) -> Any:
    return helper.make_node("Quant", [inp, f"{name}_s", "zero", f"{name}_b"], [out],
                            domain=QDOMAIN, signed=1, narrow=0, rounding_mode="ROUND",
                            name=name)


def test_quantized_qonnx_cnn_in_channels_last_form_is_bit_exact() -> None:
    # 8-bit activations at 2**-4, 6-bit weights at 2**-5: every sum is exact in float32
    # (|terms| on a 2**-9 grid, < 2**10 in total), so qonnx's executor is exact too. qonnx
    # moves the input Transpose above the activation Quant: x -> Transpose -> Quant -> Conv.
    inits = {
        "zero": np.float32(0), "qa_s": np.float32(2**-4), "qa_b": np.float32(8),
        "qw_s": np.float32(2**-5), "qw_b": np.float32(6),
        "W": RNG.uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32), "B": grid(4),
        "Wd": grid(4 * 3 * 3, 5, lim=1.0),
    }
    nodes = [
        _quant("x", "xq", "qa"), _quant("W", "Wq", "qw"),
        helper.make_node("Conv", ["xq", "Wq", "B"], ["c"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1,
                         name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2],
                         pads=[0, 0, 0, 0], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "Wd"], ["y"], name="dense"),
    ]
    model = model_of(nodes, [tensor("x", [1, 3, 6, 6])], [tensor("y", [1, 5])], inits,
                     opset=11, domains=(QDOMAIN,))
    wrapper = _channels_last(model, input_last=False)
    assert any(n.domain == CHANNELS_LAST_DOMAIN for n in wrapper.graph.node)
    hm = convert(wrapper)
    assert "Permute" not in ops(hm)
    x = RNG.uniform(-4, 4, (16, 3, 6, 6)).astype(np.float32)
    assert np.array_equal(hm.predict(np.ascontiguousarray(x.transpose(0, 2, 3, 1))),
                          qonnx_run(wrapper, x))


def test_channels_last_conv_is_exact_without_batchnorm() -> None:
    # Conv(W in (M, kh, kw, C) layout) on NHWC, strided and padded, all on the grid
    node = helper.make_node("Conv", ["x", "W", "B"], ["y"], domain=CHANNELS_LAST_DOMAIN,
                            kernel_shape=[3, 2], pads=[1, 0, 0, 1], strides=[2, 1],
                            dilations=[1, 1], group=1, name="cl_conv")
    model = model_of([node], [tensor("x", [1, 5, 4, 2])], [tensor("y", [1, 2, 4, 3])],
                     {"W": grid(3, 3, 2, 2, lim=1.0), "B": grid(3)}, opset=11,
                     domains=(CHANNELS_LAST_DOMAIN,))
    hm = convert(model)
    x = grid(8, 5, 4, 2, lim=2.0)
    assert np.array_equal(hm.predict(x), qonnx_run(model, x))


def test_channels_last_unsupported_op_names_node_and_table() -> None:
    node = helper.make_node("AveragePool", ["x"], ["y"], domain=CHANNELS_LAST_DOMAIN,
                            kernel_shape=[2, 2], name="cl_avg")
    model = model_of([node], [tensor("x", [1, 4, 4, 2])], [tensor("y", [1, 2, 2, 2])], {},
                     domains=(CHANNELS_LAST_DOMAIN,))
    with pytest.raises(UnsupportedLayerError) as e:
        onnx_to_graph(model)
    msg = str(e.value)
    assert "'cl_avg' (AveragePool)" in msg and CHANNELS_LAST_DOMAIN in msg
    assert "BatchNormalization, Conv, MaxPool" in msg


def test_unknown_domain_error_lists_the_channels_last_domain() -> None:
    node = helper.make_node("Relu", ["x"], ["y"], domain="com.example", name="odd")
    model = model_of([node], [tensor("x", [1, 4])], [tensor("y", [1, 4])], {},
                     domains=("com.example",))
    with pytest.raises(UnsupportedLayerError, match=r"'odd'.*com\.example.*channels_last"):
        onnx_to_graph(model)


# ============================== 4. thresholds, bipolar and Trunc activations
def _thresholds(c: int, k: int) -> np.ndarray:
    """Sorted per-channel thresholds, half on the 2**-4 grid (ties) and half between."""
    t = RNG.integers(-48, 48, size=(c, k)) / 16 + RNG.integers(0, 2, size=(c, k)) / 32
    return np.sort(t, axis=1).astype(np.float32)


def _mt_node(inp: str, out: str, **attrs: Any) -> Any:
    return helper.make_node("MultiThreshold", [inp, "T"], [out], domain=QDOMAIN,
                            out_dtype="INT4", name="mt", **attrs)


def test_multithreshold_nchw_per_channel_exact_against_qonnx() -> None:
    model = model_of([_mt_node("x", "y", out_scale=0.5, out_bias=-2.0)],
                     [tensor("x", [1, 3, 2, 4])], [tensor("y", [1, 3, 2, 4])],
                     {"T": _thresholds(3, 7)}, domains=(QDOMAIN,))
    hm = convert(model)
    assert ops(hm) == ["Input", "MultiThreshold"]
    x = grid(16, 3, 2, 4)
    # NCHW data reaching no convolution keeps its ONNX order in the IR
    assert np.array_equal(hm.predict(x).reshape(x.shape), qonnx_run(model, x))


def test_multithreshold_after_flatten_of_a_convolution_reorders_thresholds() -> None:
    # NCHW conv -> Flatten (channels-first order) -> per-feature thresholds: the IR holds
    # the features channels-last, so the threshold rows must be permuted to match
    nodes = [
        helper.make_node("Conv", ["x", "K"], ["c"], kernel_shape=[1, 1], name="conv"),
        helper.make_node("Flatten", ["c"], ["f"], name="flatten"),
        _mt_node("f", "m", out_scale=1.0, out_bias=0.0, data_layout="NC"),
        helper.make_node("MatMul", ["m", "W"], ["y"], name="dense"),
    ]
    model = model_of(nodes, [tensor("x", [1, 2, 3, 3])], [tensor("y", [1, 4])],
                     {"K": grid(2, 2, 1, 1, lim=1.0), "T": _thresholds(18, 3),
                      "W": grid(18, 4)}, domains=(QDOMAIN,))
    hm = convert(model)
    x = grid(16, 2, 3, 3)
    assert np.array_equal(hm.predict(np.ascontiguousarray(x.transpose(0, 2, 3, 1))),
                          qonnx_run(model, x))


def test_multithreshold_per_channel_on_a_channels_last_convolution() -> None:
    # Conv -> MultiThreshold over NCHW channels (the IR's last axis here) -> Flatten -> Dense
    nodes = [
        helper.make_node("Conv", ["x", "K"], ["c"], kernel_shape=[3, 3], name="conv"),
        _mt_node("c", "m", out_scale=0.5, out_bias=-1.0),
        helper.make_node("Flatten", ["m"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "W"], ["y"], name="dense"),
    ]
    model = model_of(nodes, [tensor("x", [1, 2, 4, 4])], [tensor("y", [1, 3])],
                     {"K": grid(3, 2, 3, 3, lim=1.0), "T": _thresholds(3, 6),
                      "W": grid(12, 3)}, domains=(QDOMAIN,))
    hm = convert(model)
    node = next(n for n in hm.graph.nodes if n.op == "MultiThreshold")
    assert node.weights["thresholds"].shape == (3, 6)  # one row per channel
    x = grid(16, 2, 4, 4)
    assert np.array_equal(hm.predict(np.ascontiguousarray(x.transpose(0, 2, 3, 1))),
                          qonnx_run(model, x))


def test_multithreshold_shared_thresholds_nhwc_layout() -> None:
    model = model_of([_mt_node("x", "y", out_scale=2.0, out_bias=1.0, data_layout="NHWC")],
                     [tensor("x", [1, 2, 3, 4])], [tensor("y", [1, 2, 3, 4])],
                     {"T": _thresholds(1, 5)}, domains=(QDOMAIN,))
    x = grid(8, 2, 3, 4)
    assert np.array_equal(convert(model).predict(x).reshape(x.shape), qonnx_run(model, x))


def test_multithreshold_output_type_is_exact_hls_and_rtl_agree(tmp_path: Any) -> None:
    model = model_of([_mt_node("x", "y", out_scale=0.25, out_bias=-1.0)],
                     [tensor("x", [1, 4])], [tensor("y", [1, 4])],
                     {"T": _thresholds(4, 15)}, domains=(QDOMAIN,))
    cfg = nnfab.config_from_onnx_model(model, default_precision=WIDE)
    hm = nnfab.convert_from_onnx_model(model, hls_config=cfg, output_dir=str(tmp_path / "prj"))
    node = next(n for n in hm.graph.nodes if n.op == "MultiThreshold")
    t = hm.graph.tensors[node.name].type
    # levels -1, -0.75, ..., 2.5: 2 fractional bits, signed, |v| < 4
    assert (t.width, t.integer, t.signed) == (5, 3, True)
    x = grid(8, 4)
    assert np.array_equal(hm.predict(x, engine="csim"), hm.predict(x))  # C++ == emulator
    from nnfab.tools.verilator import verilator_available

    if verilator_available():  # Verilog == emulator
        rtl = hm.to_rtl(output_dir=str(tmp_path / "rtl"))
        assert np.array_equal(np.asarray(rtl.simulate(x).outputs), hm.predict(x))


def test_multithreshold_bad_thresholds_shape_is_a_clear_error() -> None:
    model = model_of([_mt_node("x", "y")], [tensor("x", [1, 3, 2, 2])],
                     [tensor("y", [1, 3, 2, 2])], {"T": _thresholds(2, 3)},
                     domains=(QDOMAIN,))
    with pytest.raises(UnsupportedLayerError, match=r"'mt' \(MultiThreshold\).*\(3, K\)"):
        onnx_to_graph(model)


def test_multithreshold_layout_errors_name_the_node() -> None:
    model = model_of([_mt_node("x", "y", data_layout="NCH")], [tensor("x", [1, 3, 2, 2])],
                     [tensor("y", [1, 3, 2, 2])], {"T": _thresholds(3, 3)},
                     domains=(QDOMAIN,))
    with pytest.raises(UnsupportedLayerError, match=r"'mt' \(MultiThreshold\): data_layout="
                                                    r"'NCH'.*4 letters"):
        onnx_to_graph(model)
    model = model_of([_mt_node("x", "y")], [tensor("x", [1, 3, 2, 2, 2])],
                     [tensor("y", [1, 3, 2, 2, 2])], {"T": _thresholds(3, 3)},
                     domains=(QDOMAIN,))
    with pytest.raises(UnsupportedLayerError, match=r"'mt'.*left out for rank 2, 3 or 4"):
        onnx_to_graph(model)


def _bipolar_model(op: str, scale: float) -> onnx.ModelProto:
    if op == "BipolarQuant":
        q = helper.make_node("BipolarQuant", ["x", "s"], ["q"], domain=QDOMAIN, name="sign")
        inits = {"s": np.float32(scale)}
    else:  # a 1-bit signed Quant: bipolar, as qonnx executes it
        q = helper.make_node("Quant", ["x", "s", "z", "b"], ["q"], domain=QDOMAIN, signed=1,
                             narrow=0, rounding_mode="ROUND", name="sign")
        inits = {"s": np.float32(scale), "z": np.float32(0), "b": np.float32(1)}
    nodes = [q, helper.make_node("MatMul", ["q", "W"], ["y"], name="dense")]
    inits["W"] = grid(6, 3)
    return model_of(nodes, [tensor("x", [1, 6])], [tensor("y", [1, 3])], inits,
                    domains=(QDOMAIN,))


@pytest.mark.parametrize("op", ["BipolarQuant", "Quant"])
def test_bipolar_activation_exact_against_qonnx(op: str) -> None:
    model = _bipolar_model(op, 0.5)
    hm = convert(model)
    assert ops(hm) == ["Input", "MultiThreshold", "Dense"]
    x = grid(32, 6)
    x[0, :3] = 0.0  # sign(0) = +1 in QONNX
    x[0, 3:] = -0.0
    assert np.array_equal(hm.predict(x), qonnx_run(model, x))


def test_brevitas_binary_activation_export_exact_against_brevitas(tmp_path: Any) -> None:
    # Brevitas exports a binary activation quantizer as BipolarQuant on data; the weights
    # (Quant -> Transpose of a constant) are folded. +-1 times 8-bit weights at 2**-8,
    # summed over 16 inputs: exact in float32, so Brevitas' float forward pass is exact.
    torch = pytest.importorskip("torch")
    qnn = pytest.importorskip("brevitas.nn")
    bq = pytest.importorskip("brevitas.quant")
    from brevitas.export import export_qonnx

    model = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=bq.SignedBinaryActPerTensorConst, return_quant_tensor=True),
        qnn.QuantLinear(16, 4, bias=False, weight_quant=bq.Int8WeightPerTensorFixedPoint),
    ).eval()
    path = tmp_path / "binary_act.onnx"
    export_qonnx(model, torch.randn(1, 16), export_path=str(path), dynamo=False)
    assert "BipolarQuant" in {n.op_type for n in onnx.load(str(path)).graph.node}
    hm = convert(str(path))
    assert ops(hm) == ["Input", "MultiThreshold", "Dense"]
    x = grid(64, 16)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.array_equal(hm.predict(x), ref)


def test_bipolar_activation_needs_a_power_of_two_scale() -> None:
    with pytest.raises(UnsupportedLayerError, match=r"'sign' \(BipolarQuant\).*power of two"):
        onnx_to_graph(_bipolar_model("BipolarQuant", 0.3))


def test_bipolar_activation_with_per_channel_scales_is_refused() -> None:
    model = _bipolar_model("BipolarQuant", 0.5)
    model.graph.initializer[0].CopyFrom(
        numpy_helper.from_array(np.full(6, 0.5, np.float32), "s"))
    with pytest.raises(UnsupportedLayerError, match=r"'sign' \(BipolarQuant\).*one scale"):
        onnx_to_graph(model)


def test_trunc_activation_exact_against_qonnx() -> None:
    # Quant to 8 bits at 2**-4, then Trunc to 5 bits at 2**-2 (FLOOR): already in
    # onnx_quant; checked here as the idiom FINN graphs use after average pooling
    nodes = [
        helper.make_node("Quant", ["x", "s", "z", "b8"], ["q"], domain=QDOMAIN, signed=1,
                         narrow=0, rounding_mode="ROUND", name="quant"),
        helper.make_node("Trunc", ["q", "s", "z", "b8", "s2", "b5"], ["y"], domain=QDOMAIN,
                         rounding_mode="FLOOR", signed=1, narrow=0, name="trunc"),
    ]
    inits = {"s": np.float32(2**-4), "z": np.float32(0), "b8": np.float32(8),
             "s2": np.float32(2**-2), "b5": np.float32(5)}
    model = model_of(nodes, [tensor("x", [1, 6])], [tensor("y", [1, 6])], inits,
                     domains=(QDOMAIN,), domain_version=2)  # qonnx: Trunc v2 from opset 2
    x = RNG.uniform(-10, 10, size=(64, 6)).astype(np.float32)
    assert np.array_equal(convert(model).predict(x), qonnx_run(model, x))


# ======================================= 5. PyTorch softmax without dim


@pytest.mark.filterwarnings("ignore:Implicit dimension choice for softmax:UserWarning")
def test_torch_softmax_without_dim_2d_takes_the_features(caplog: Any) -> None:
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Softmax()).eval()
    with caplog.at_level(logging.WARNING, logger="nnfab.frontends.torch_layers"):
        cfg = nnfab.config_from_pytorch_model(model, (4,), default_precision=WIDE)
        hm = nnfab.convert_from_pytorch_model(model, (4,), hls_config=cfg)
    assert any("dim=1" in r.getMessage() and "features" in r.getMessage()
               for r in caplog.records)
    x = grid(32, 4, lim=1.0)
    with torch.no_grad():
        ref = model.double()(torch.from_numpy(x.astype(np.float64))).numpy()
    assert np.all(np.abs(hm.predict(x) - ref) <= 0.013 * ref + 2.0**-14)


@pytest.mark.filterwarnings("ignore:Implicit dimension choice for softmax:UserWarning")
def test_torch_softmax_without_dim_4d_takes_the_channels(caplog: Any) -> None:
    torch = pytest.importorskip("torch")
    from nnfab.frontends.torch import nchw_to_nhwc

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 5, 3)

        def forward(self, x: Any) -> Any:
            return torch.nn.functional.softmax(self.conv(x))

    model = Net().eval()
    with caplog.at_level(logging.WARNING, logger="nnfab.frontends.torch_layers"):
        cfg = nnfab.config_from_pytorch_model(model, (2, 5, 5), default_precision=WIDE)
        hm = nnfab.convert_from_pytorch_model(model, (2, 5, 5), hls_config=cfg)
    assert any("dim=1" in r.getMessage() and "channels" in r.getMessage()
               for r in caplog.records)
    x = grid(8, 2, 5, 5, lim=1.0)
    with torch.no_grad():
        ref = model.double()(torch.from_numpy(x.astype(np.float64))).numpy()
    got = hm.predict(nchw_to_nhwc(x))
    assert np.all(np.abs(got - nchw_to_nhwc(ref)) <= 0.013 * nchw_to_nhwc(ref) + 2.0**-14)


@pytest.mark.filterwarnings("ignore:Implicit dimension choice for softmax:UserWarning")
def test_torch_softmax_without_dim_3d_is_refused_naming_the_batch_axis() -> None:
    torch = pytest.importorskip("torch")
    from nnfab.frontends.torch import torch_to_graph

    model = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 1), torch.nn.Softmax()).eval()
    with pytest.raises(UnsupportedLayerError, match=r"dim=None.*3-D input is 0, the batch"):
        torch_to_graph(model, (2, 5))


# ================================ the MultiThreshold kernel, by integer arithmetic
def _mt_graph(thresholds: np.ndarray, shape: tuple[int, ...], scale: float,
              bias: float) -> Any:
    from nnfab.ir import Graph, Node, infer_shapes

    g = Graph("mt")
    g.add_node(Node("x", "Input", [], attrs={"shape": shape}, source_class="Input"), shape)
    g.add_node(Node("mt", "MultiThreshold", ["x"], attrs={"out_scale": scale, "out_bias": bias},
                    weights={"thresholds": thresholds}, source_class="MultiThreshold"), shape)
    g.outputs = ["mt"]
    infer_shapes(g)
    return g


@pytest.mark.parametrize("rows", ["channel", "element", "shared"])
def test_multithreshold_kernel_rounds_and_saturates_like_the_integer_reference(
        rows: str) -> None:
    from fractions import Fraction

    shape = (3, 4)
    k = 7
    n_rows = {"channel": 4, "element": 12, "shared": 1}[rows]
    thresholds = _thresholds(n_rows, k).astype(np.float64)
    # levels -2.125, -1.5, ..., 2.25: off the result grid (rounding) and beyond it (both ends)
    scale, bias = 0.625, -2.125
    cfg = {"Model": {"Precision": "ap_fixed<10,4>"},
           "LayerName": {"mt": {"Precision": {"result": "ap_fixed<4,2,AP_TRN,AP_SAT>"}}}}
    hm = nnfab.convert_graph(_mt_graph(thresholds, shape, scale, bias), cfg)
    x = RNG.integers(-200, 200, size=(50, *shape)) / 64  # on ap_fixed<10,4>'s grid
    x[0] = thresholds.min()  # ties with a threshold count as reached (x >= t)
    got = hm.predict(x)

    expected = np.empty(x.shape)
    saturated = 0
    for idx in np.ndindex(*x.shape):
        c = idx[-1] if rows == "channel" else (idx[1] * 4 + idx[2] if rows == "element" else 0)
        count = sum(Fraction(float(x[idx])) >= Fraction(float(t)) for t in thresholds[c])
        level = Fraction(bias) + count * Fraction(scale)
        q = Fraction(int(np.floor(level * 4)), 4)  # AP_TRN to 2 fractional bits
        clipped = min(max(q, Fraction(-2)), Fraction(7, 4))  # AP_SAT to [-2, 1.75]
        saturated += clipped != q
        expected[idx] = float(clipped)
    assert np.array_equal(got, expected)
    assert hm.overflow_report()["mt"]["result"] == saturated > 0
