"""ONNX frontend (float models): structure, layouts, errors, and the emulator with wide
types against an ONNX runtime (onnxruntime, else onnx's own reference evaluator) and a
NumPy forward pass written here.

Tolerance: with ``WIDE`` (24 fractional bits, round to nearest) inputs and weights round
by at most 2**-25 and every sum is exact, so the emulator differs from float64 by about
2**-25 times the sum of |weights| along a path (< 1e-5 here), and the runtime's float32
arithmetic adds ~1e-6; ``LINEAR_TOL`` = 1e-4 is far above both and far below any real
mapping error (a wrong weight, pad or permutation moves outputs by O(0.1)). Sigmoid,
tanh and softmax are lookup tables: their bound is the table step times the function's
largest slope, plus half an entry's lsb.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tests.paths import SHARED_MODELS, missing

import nnfab
from nnfab.errors import FrontendError, UnsupportedLayerError
from nnfab.frontends.loader import graph_from_file
from nnfab.frontends.onnx import SUPPORTED_OPS, onnx_to_graph

WIDE = "ap_fixed<40,16,AP_RND_CONV,AP_SAT>"
LINEAR_TOL = 1e-4
SIGMOID_TOL = 0.25 * 16 / 1024 + 2.0**-17 + LINEAR_TOL
TANH_TOL = 1.0 * 8 / 1024 + 2.0**-16 + LINEAR_TOL
SOFTMAX_TOL = 0.02  # exp table bins of 2**-7 (<0.8% relative) and 1024 reciprocal bins
ONNX_DIR = SHARED_MODELS / "onnx"
RNG = np.random.default_rng(7)


# ------------------------------------------------------------------ builders
def tensor(name: str, *shape: int | str) -> Any:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def init(name: str, array: np.ndarray) -> Any:
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def iinit(name: str, values: list[int]) -> Any:
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def model(
    nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any], opset: int = 13
) -> Any:
    graph = helper.make_graph(nodes, "test", inputs, outputs, inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8  # readable by older runtimes too
    return m


def weights(*shape: int, scale: float = 0.5) -> np.ndarray:
    return (RNG.normal(size=shape) * scale).astype(np.float32)


def run_reference(m: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The model run by onnxruntime, or by onnx's reference evaluator without it."""
    try:
        import onnxruntime as ort
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        return [np.asarray(o) for o in ReferenceEvaluator(m).run(None, feeds)]
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def nhwc(x: np.ndarray) -> np.ndarray:
    return np.moveaxis(x, 1, -1)


def convert(m: Any, precision: str = WIDE) -> nnfab.NnfabModel:
    return nnfab.convert_from_onnx_model(m, hls_config={"Model": {"Precision": precision}})


def compare(m: Any, x: np.ndarray, tol: float = LINEAR_TOL, channels_first_out: bool = False,
            channels_first_in: bool | None = None) -> nnfab.NnfabModel:
    """Emulator (channels-last arrays) vs the ONNX runtime (channels-first arrays)."""
    hm = convert(m)
    expected = run_reference(m, {m.graph.input[0].name: x.astype(np.float32)})[0]
    first_in = x.ndim >= 3 if channels_first_in is None else channels_first_in
    got = hm.predict(nhwc(x) if first_in else x)
    if channels_first_out:
        got = np.moveaxis(got, -1, 1)
    order = hm.graph.metadata.get("onnx_output_index", {}).get(hm.graph.outputs[0])
    if order is not None:  # a flattened feature map leaves the IR in its own order
        got = got.reshape(len(got), -1)[:, order]
    assert got.shape == expected.shape
    err = float(np.max(np.abs(got - expected)))
    assert err < tol, f"max error {err} exceeds {tol}"
    assert not any(sum(v.values()) for v in hm.overflow_report().values())
    return hm


def ops(graph: Any) -> list[str]:
    return [n.op for n in graph.nodes]


# ------------------------------------------------------------------ dense
def test_gemm_attributes_and_numpy_reference() -> None:
    w1, b1 = weights(6, 5), weights(1, 6)  # transB: (out, in); C of shape (1, out)
    w2, b2 = weights(6, 3), weights(3)
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1, alpha=0.5,
                         beta=2.0),
        helper.make_node("Relu", ["h"], ["r"], name="relu1"),
        helper.make_node("MatMul", ["r", "w2"], ["m"], name="fc2"),
        helper.make_node("Add", ["m", "b2"], ["y"], name="bias2"),
    ]
    m = model(nodes, [tensor("x", "N", 5)], [tensor("y", "N", 3)],
              [init("w1", w1), init("b1", b1), init("w2", w2), init("b2", b2)])
    g = onnx_to_graph(m)
    # MatMul + Add is one Dense with a bias: no extra node for the Add.
    assert [(n.name, n.op) for n in g.nodes] == [
        ("x", "Input"), ("fc1", "Dense"), ("relu1", "Activation"), ("fc2", "Dense")
    ]
    np.testing.assert_array_equal(g.node("fc1").weights["kernel"], 0.5 * w1.T.astype(np.float64))
    np.testing.assert_array_equal(g.node("fc2").weights["bias"], b2.astype(np.float64))
    x = RNG.normal(size=(40, 5))
    # An independent float64 forward pass.
    h = np.maximum(0.5 * x @ w1.T.astype(np.float64) + 2.0 * b1.astype(np.float64), 0)
    expected = h @ w2.astype(np.float64) + b2
    hm = compare(m, x)
    np.testing.assert_allclose(hm.predict(x), expected, atol=LINEAR_TOL, rtol=0)


def test_matmul_on_a_sequence_and_softmax() -> None:
    w = weights(4, 6)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="dense"),
             helper.make_node("Softmax", ["h"], ["y"], name="sm", axis=-1)]
    m = model(nodes, [tensor("x", "N", 3, 4)], [tensor("y", "N", 3, 6)], [init("w", w)])
    hm = compare(m, RNG.normal(size=(20, 3, 4)), SOFTMAX_TOL, channels_first_in=False)
    assert ops(hm.graph) == ["Input", "Dense", "Softmax"]


# ------------------------------------------------------------------- conv
def _cnn() -> Any:
    c1w, c1b = weights(4, 3, 3, 3), weights(4)
    dww, dwb = weights(8, 1, 2, 2), weights(8)  # depthwise, multiplier 2
    bn = [np.abs(weights(8)) + 0.5, weights(8), weights(8), np.abs(weights(8)) + 0.5]
    fcw, fcb = weights(3, 8), weights(3)
    nodes = [
        helper.make_node("Conv", ["x", "c1w", "c1b"], ["c1"], name="conv1", pads=[1, 0, 2, 1],
                         strides=[2, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                         strides=[1, 1], auto_pad="SAME_UPPER"),
        helper.make_node("Conv", ["p1", "dww", "dwb"], ["d1"], name="dw", group=4,
                         auto_pad="SAME_UPPER", strides=[2, 2]),
        helper.make_node("BatchNormalization", ["d1", "g", "be", "mu", "var"], ["bn"],
                         name="bn", epsilon=1e-3),
        helper.make_node("AveragePool", ["bn"], ["p2"], name="pool2", kernel_shape=[2, 2],
                         pads=[1, 1, 0, 0], strides=[1, 1]),
        helper.make_node("GlobalAveragePool", ["p2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fcw", "fcb"], ["y"], name="fc", transB=1),
    ]
    inits = [init("c1w", c1w), init("c1b", c1b), init("dww", dww), init("dwb", dwb),
             init("g", bn[0]), init("be", bn[1]), init("mu", bn[2]), init("var", bn[3]),
             init("fcw", fcw), init("fcb", fcb)]
    return model(nodes, [tensor("x", "N", 3, 13, 16)], [tensor("y", "N", 3)], inits)


def test_cnn_nchw_input_becomes_channels_last() -> None:
    m = _cnn()
    hm = compare(m, RNG.normal(size=(16, 3, 13, 16)))  # 4 x 8 = 32 pooled: exact 1/32
    g = hm.graph
    assert g.tensors["x"].shape == (13, 16, 3)
    assert g.metadata["input_layouts"] == {"x": "channels_last"}
    # The batch normalization is folded into the depthwise convolution by the passes.
    assert ops(onnx_to_graph(m))[4:6] == ["DepthwiseConv2D", "BatchNormalization"]
    assert ops(g) == ["Input", "Conv2D", "Activation", "Pooling2D", "DepthwiseConv2D",
                      "Pooling2D", "GlobalPooling2D", "Dense"]
    conv1 = onnx_to_graph(m).node("conv1")
    assert conv1.attrs == {"strides": (2, 1), "pads": (1, 2, 0, 1)}
    dw = g.node("dw")
    assert dw.attrs["depth_multiplier"] == 2 and dw.weights["kernel"].shape == (2, 2, 4, 2)


def test_flatten_of_channels_first_feeds_dense_with_permuted_rows() -> None:
    cw, fw = weights(3, 2, 2, 2), weights(3 * 3 * 4, 5)
    nodes = [helper.make_node("Conv", ["x", "cw"], ["c"], name="conv"),
             helper.make_node("Flatten", ["c"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "fw"], ["y"], name="fc")]
    m = model(nodes, [tensor("x", "N", 2, 4, 5)], [tensor("y", "N", 5)],
              [init("cw", cw), init("fw", fw)])
    hm = compare(m, RNG.normal(size=(10, 2, 4, 5)))
    assert ops(hm.graph) == ["Input", "Conv2D", "Flatten", "Dense"]
    # IR row (h, w, c) holds ONNX row c*12 + h*4 + w.
    kernel = hm.graph.node("fc").weights["kernel"]
    np.testing.assert_array_equal(kernel[(1 * 4 + 2) * 3 + 1], fw[1 * 12 + 1 * 4 + 2])


def test_tensorflow_style_transposes_are_absorbed() -> None:
    cw, fw, fb = weights(4, 3, 3, 3), weights(5 * 6 * 4, 2), weights(2)
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], name="to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["xt", "cw"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Transpose", ["r"], ["rt"], name="to_nhwc", perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["rt", "shape"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "fw"], ["m"], name="fc"),
        helper.make_node("Add", ["m", "fb"], ["y"], name="fc_bias"),
    ]
    m = model(nodes, [tensor("x", "N", 5, 6, 3)], [tensor("y", "N", 2)],
              [init("cw", cw), init("fw", fw), init("fb", fb), iinit("shape", [-1, 120])])
    hm = compare(m, RNG.normal(size=(10, 5, 6, 3)), channels_first_in=False)
    g = hm.graph
    assert g.tensors["x"].shape == (5, 6, 3) and g.metadata["input_layouts"] == {"x": "unchanged"}
    assert ops(g) == ["Input", "Conv2D", "Activation", "Flatten", "Dense"]
    np.testing.assert_array_equal(g.node("fc").weights["kernel"], fw.astype(np.float64))


def test_conv1d_pool1d_and_channels_last_output() -> None:
    cw, cb = weights(5, 2, 3), weights(5)
    nodes = [helper.make_node("Conv", ["x", "cw", "cb"], ["c"], name="conv", pads=[1, 1]),
             helper.make_node("MaxPool", ["c"], ["y"], name="pool", kernel_shape=[2],
                              strides=[2])]
    m = model(nodes, [tensor("x", "N", 2, 10)], [tensor("y", "N", 5, 5)],
              [init("cw", cw), init("cb", cb)])
    hm = compare(m, RNG.normal(size=(8, 2, 10)), channels_first_out=True)
    assert ops(hm.graph) == ["Input", "Conv1D", "Pooling1D"]
    assert hm.graph.metadata["output_layouts"] == ["channels_last"]


# ---------------------------------------------------------- merges, consts
def test_merges_concat_and_constant_arithmetic() -> None:
    c1, c2 = weights(3, 2, 1, 1), weights(3, 2, 1, 1)
    scale, shift = weights(3, 1, 1), weights(1, 3, 1, 1)
    nodes = [
        helper.make_node("Conv", ["x", "c1"], ["a"], name="ca"),
        helper.make_node("Conv", ["x", "c2"], ["b"], name="cb"),
        helper.make_node("Add", ["a", "b"], ["s"], name="add"),
        helper.make_node("Sub", ["a", "b"], ["d"], name="sub"),
        helper.make_node("Mul", ["s", "d"], ["p"], name="mul"),
        helper.make_node("Mul", ["p", "scale"], ["ps"], name="chan_scale"),
        helper.make_node("Add", ["ps", "shift"], ["pb"], name="chan_shift"),
        helper.make_node("Sub", ["half", "pb"], ["q"], name="rsub"),
        helper.make_node("Div", ["q", "four"], ["qd"], name="div"),
        helper.make_node("Concat", ["qd", "a"], ["cat"], name="cat", axis=1),
        helper.make_node("Flatten", ["cat"], ["f1"], name="f1"),
        helper.make_node("Flatten", ["b"], ["f2"], name="f2"),
        helper.make_node("Concat", ["f1", "f2"], ["y"], name="flatcat", axis=-1),
    ]
    inits = [init("c1", c1), init("c2", c2), init("scale", scale), init("shift", shift),
             init("half", np.float32(0.5)), init("four", np.float32(4.0))]
    m = model(nodes, [tensor("x", "N", 2, 3, 4)], [tensor("y", "N", 9 * 12)], inits)
    hm = compare(m, RNG.normal(size=(12, 2, 3, 4)))
    counts = {op: ops(hm.graph).count(op) for op in set(ops(hm.graph))}
    assert counts["Merge"] == 3 and counts["Concatenate"] == 2
    # x * scale + shift is one node; 0.5 - x another, into which / 4 folds.
    assert counts["BatchNormalization"] == 2
    assert hm.graph.metadata["output_layouts"] == ["permuted"]
    assert hm.graph.node("cat").attrs["axis"] == 2  # ONNX channel axis 1 -> IR last axis


def test_activations() -> None:
    nodes = [
        helper.make_node("LeakyRelu", ["x"], ["a"], name="leaky", alpha=0.125),
        helper.make_node("HardSigmoid", ["a"], ["b"], name="hsig", alpha=0.25, beta=0.5),
        helper.make_node("Clip", ["x", "zero", "six"], ["c"], name="relu6"),
        helper.make_node("Identity", ["c"], ["c2"], name="ident"),
        helper.make_node("Dropout", ["c2"], ["c3"], name="drop"),
        helper.make_node("Add", ["b", "c3"], ["y"], name="add"),
    ]
    inits = [init("zero", np.float32(0)), init("six", np.float32(6))]
    m = model(nodes, [tensor("x", "N", 7)], [tensor("y", "N", 7)], inits)
    hm = compare(m, RNG.normal(size=(30, 7)) * 5)
    relu6 = hm.graph.node("relu6")
    assert relu6.attrs == {"function": "relu", "max_value": 6.0}
    assert hm.graph.node("hsig").attrs == {"function": "hard_sigmoid", "slope": 0.25,
                                           "offset": 0.5}
    for op, tol in (("Sigmoid", SIGMOID_TOL), ("Tanh", TANH_TOL)):
        m = model([helper.make_node(op, ["x"], ["y"], name="act")], [tensor("x", "N", 7)],
                  [tensor("y", "N", 7)], [])
        compare(m, RNG.normal(size=(30, 7)) * 3, tol)


def test_opset9_clip_attributes_and_softmax_axis() -> None:
    nodes = [helper.make_node("Clip", ["x"], ["c"], name="relu6", min=0.0, max=6.0),
             helper.make_node("Softmax", ["c"], ["y"], name="sm", axis=1)]
    m = model(nodes, [tensor("x", "N", 5)], [tensor("y", "N", 5)], [], opset=9)
    hm = compare(m, RNG.normal(size=(30, 5)) * 4, SOFTMAX_TOL)
    assert hm.graph.node("relu6").attrs["max_value"] == 6.0


def test_global_max_squeeze_batchnorm_on_features_unsqueeze() -> None:
    bn = [np.abs(weights(3)) + 0.5, weights(3), weights(3), np.abs(weights(3)) + 0.5]
    nodes = [
        helper.make_node("GlobalMaxPool", ["x"], ["g"], name="gmp"),
        helper.make_node("Squeeze", ["g", "axes23"], ["s"], name="squeeze"),
        helper.make_node("BatchNormalization", ["s", "g0", "b0", "m0", "v0"], ["b"], name="bn"),
        helper.make_node("Unsqueeze", ["b", "axes2"], ["u"], name="unsqueeze"),
        helper.make_node("Flatten", ["u"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "w"], ["y"], name="fc"),
    ]
    inits = [numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes23"),
             numpy_helper.from_array(np.array([2], dtype=np.int64), "axes2"),
             init("g0", bn[0]), init("b0", bn[1]), init("m0", bn[2]), init("v0", bn[3]),
             init("w", weights(3, 2))]
    m = model(nodes, [tensor("x", "N", 3, 4, 4)], [tensor("y", "N", 2)], inits)
    hm = compare(m, RNG.normal(size=(10, 3, 4, 4)))
    assert ops(hm.graph) == ["Input", "GlobalPooling2D", "BatchNormalization", "Dense"]


def test_node_names_unique_and_safe() -> None:
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="same"),
             helper.make_node("Sigmoid", ["a"], ["b"], name="same"),
             helper.make_node("Flatten", ["b"], ["c"], name="same"),
             helper.make_node("Tanh", ["c"], ["7"])]  # no name: from op type and output
    m = model(nodes, [tensor("x", "N", 2, 3)], [tensor("7", "N", 6)], [])
    g = onnx_to_graph(m)
    names = [n.name for n in g.nodes]
    # The Flatten is emitted where a 1-D tensor is first needed: at the graph output.
    assert names == ["x", "same", "same_1", "Tanh_7", "same_2"]
    assert g.node("same_2").op == "Flatten" and g.outputs == ["same_2"]


# --------------------------------------------------------------- errors
def _single(node: Any, inits: list[Any]) -> Any:
    return model([node], [tensor("x", "N", 4, 4, 4)], [tensor("y", "N")], inits)


@pytest.mark.parametrize(
    ("node", "inits", "needles"),
    [
        (helper.make_node("Erf", ["x"], ["y"], name="erf"), [],
         ["'erf'", "'Erf'", "supported:", "Gemm", "Quant"]),
        (helper.make_node("Conv", ["x", "w"], ["y"], name="c", dilations=[2, 2]),
         [init("w", weights(2, 4, 3, 3))], ["'c'", "dilations=[2, 2]", "1 on every axis"]),
        (helper.make_node("Conv", ["x", "w"], ["y"], name="c", group=2),
         [init("w", weights(4, 2, 1, 1))], ["'c'", "group=2", "depthwise"]),
        (helper.make_node("Conv", ["x", "w"], ["y"], name="c", auto_pad="SAME_LOWER"),
         [init("w", weights(2, 4, 3, 3))], ["auto_pad='SAME_LOWER'", "SAME_UPPER"]),
        (helper.make_node("AveragePool", ["x"], ["y"], name="p", kernel_shape=[2, 2],
                          pads=[1, 1, 1, 1], count_include_pad=1), [],
         ["'p'", "count_include_pad=1", "non-padding"]),
        (helper.make_node("Transpose", ["x"], ["y"], name="t", perm=[1, 0, 2, 3]), [],
         ["perm=[1, 0, 2, 3]", "batch axis"]),
        (helper.make_node("Gemm", ["x", "w"], ["y"], name="g", transA=1),
         [init("w", weights(2, 2))], ["transA=1"]),
        (helper.make_node("MatMul", ["x", "c"], ["y"], name="mm"), [init("c", weights(2, 4, 4))],
         ["'mm'", "B shape", "a matrix"]),
        (helper.make_node("Add", ["x", "c"], ["y"], name="add"), [init("c", weights(4, 4, 4))],
         ["'add'", "varies along axes other than the channel axis"]),
        (helper.make_node("Mul", ["x", "c"], ["y"], name="mul"), [init("c", weights(2, 4, 4, 4))],
         ["'mul'", "differs across the batch axis"]),
    ],
)
def test_unsupported_nodes_and_attributes(node: Any, inits: list[Any],
                                          needles: list[str]) -> None:
    m = _single(node, inits)
    with pytest.raises(UnsupportedLayerError) as e:
        onnx_to_graph(m)
    for needle in needles:
        assert needle in str(e.value)


def test_transpose_that_needs_a_real_permutation_becomes_a_permute() -> None:
    nodes = [helper.make_node("Transpose", ["x"], ["t"], name="swap_hw", perm=[0, 1, 3, 2]),
             helper.make_node("Conv", ["t", "w"], ["y"], name="conv")]
    m = model(nodes, [tensor("x", "N", 2, 4, 5)], [tensor("y", "N", 2, 5, 4)],
              [init("w", weights(2, 2, 1, 1))])
    g = onnx_to_graph(m)
    assert "Permute" in [n.op for n in g.nodes]
    assert g.tensors[g.outputs[0]].shape == (5, 4, 2)  # channels-last (H, W, C)


def test_supported_list_and_bad_sources(tmp_path: Any) -> None:
    for op in ("Gemm", "MatMul", "Conv", "BatchNormalization", "HardSigmoid", "Softmax",
               "MaxPool", "AveragePool", "GlobalAveragePool", "Concat", "Clip", "Quant",
               "BipolarQuant", "Trunc"):
        assert op in SUPPORTED_OPS
    with pytest.raises(FrontendError, match=r"does not exist"):
        onnx_to_graph(tmp_path / "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all \xff\xfe")
    with pytest.raises(FrontendError, match=r"could not read"):
        onnx_to_graph(bad)
    with pytest.raises(FrontendError, match=r"ModelProto"):
        onnx_to_graph(42)
    m = model([helper.make_node("Relu", ["x"], ["y"])], [tensor("x", "N", "C")],
              [tensor("y", "N", "C")], [])
    with pytest.raises(FrontendError, match=r"fixed size"):
        onnx_to_graph(m)


# --------------------------------------------------------- files and API
def test_file_loader_api_and_config(tmp_path: Any) -> None:
    w = weights(4, 3)
    m = model([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], [tensor("x", "N", 4)],
              [tensor("y", "N", 3)], [init("w", w)])
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    assert ops(graph_from_file(path)) == ["Input", "Dense"]
    cfg = nnfab.config_from_onnx_model(path, granularity="name", default_precision=WIDE)
    assert cfg["LayerName"]["fc"]["Precision"]["weight"] == WIDE
    x = RNG.normal(size=(5, 4))
    for source in (path, str(path), m):
        hm = nnfab.convert_from_onnx_model(source, hls_config=cfg)
        np.testing.assert_allclose(hm.predict(x), x @ w.astype(np.float64), atol=LINEAR_TOL)


# ------------------------------------------------------ the shared models
def _shared(name: str) -> Any:
    path = ONNX_DIR / name
    if not path.is_file():
        missing(f"shared ONNX model {path} not found (NNFAB_MODELS_DIR)")
    return path


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("name", ["three_layer_keras.onnx", "three_layer_pytorch.onnx"])
def test_shared_three_layer_models(name: str) -> None:
    path = _shared(name)
    m = onnx.load(str(path))
    hm = convert(m)
    g = hm.graph
    assert ops(g) == ["Input", *["Dense", "Activation"] * 3, "Dense", "Softmax"]
    x = RNG.normal(size=(64, 16))
    # NumPy float64 reference from the file's own initializers.
    inits = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in m.graph.initializer}
    h = x
    dense = [n for n in g.nodes if n.op == "Dense"]
    for k in range(len(dense)):
        onnx_node = [n for n in m.graph.node if n.op_type in ("Gemm", "MatMul")][k]
        w = inits[onnx_node.input[1]]
        w = w.T if onnx_node.op_type == "Gemm" else w
        bias_name = onnx_node.input[2] if onnx_node.op_type == "Gemm" else [
            n for n in m.graph.node if n.op_type == "Add"][k].input[1]
        h = h @ w + inits[bias_name]
        if k < 3:
            h = np.maximum(h, 0)
    trace = hm.trace(x)
    np.testing.assert_allclose(trace[dense[-1].name], h, atol=LINEAR_TOL, rtol=0)
    np.testing.assert_allclose(hm.predict(x), _softmax(h), atol=SOFTMAX_TOL, rtol=0)
    # And against the ONNX runtime (the file's fixed batch size made free for it).
    for info in (m.graph.input[0], m.graph.output[0]):
        info.type.tensor_type.shape.dim[0].dim_param = "N"
    expected = run_reference(m, {m.graph.input[0].name: x.astype(np.float32)})[0]
    np.testing.assert_allclose(hm.predict(x), expected, atol=SOFTMAX_TOL, rtol=0)


def test_shared_conv2d_keras_model_is_nhwc() -> None:
    """The file takes NHWC input (Keras' layout; tf2onnx's Transposes are absorbed)."""
    m = onnx.load(str(_shared("conv2d_small_keras.onnx")))
    hm = convert(m)
    g = hm.graph
    assert g.tensors[g.inputs[0]].shape == (8, 8, 1)
    assert g.metadata["input_layouts"] == {g.inputs[0]: "unchanged"}
    assert ops(g) == ["Input", "Conv2D", "Activation", "Flatten", "Dense", "Softmax"]
    x = RNG.normal(size=(24, 8, 8, 1))
    expected = np.concatenate([
        run_reference(m, {m.graph.input[0].name: x[i : i + 1].astype(np.float32)})[0]
        for i in range(24)
    ])
    np.testing.assert_allclose(hm.predict(x), expected, atol=SOFTMAX_TOL, rtol=0)
    # The logits, against a float64 NumPy conv written here.
    inits = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in m.graph.initializer}
    w, b, w1, b1 = inits["W"], inits["B"], inits["W1"], inits["B1"]
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    conv = np.zeros((24, 8, 8, 2))
    for i, j in np.ndindex(3, 3):
        conv += np.einsum("nhwc,fc->nhwf", xp[:, i : i + 8, j : j + 8, :], w[:, :, i, j])
    logits = np.maximum(conv + b, 0).reshape(24, -1) @ w1 + b1
    dense = next(n.name for n in g.nodes if n.op == "Dense")
    np.testing.assert_allclose(hm.trace(x)[dense], logits, atol=LINEAR_TOL, rtol=0)
    assert math.isclose(float(hm.predict(x).sum()), 24.0, abs_tol=24 * SOFTMAX_TOL)


# ------------------------------------------------- a real exporter: PyTorch
@pytest.mark.parametrize("dynamo", [False, True])
def test_pytorch_exported_cnn(dynamo: bool, tmp_path: Any) -> None:
    torch = pytest.importorskip("torch")
    if dynamo:
        pytest.importorskip("onnxscript")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(6)
            self.dw = torch.nn.Conv2d(6, 6, 3, groups=6, stride=2)
            self.pool = torch.nn.AvgPool2d(2)
            self.fc1 = torch.nn.Linear(6, 4)
            self.fc2 = torch.nn.Linear(4, 3)

        def forward(self, x: Any) -> Any:
            x = torch.relu(self.bn(self.conv(x)))
            x = torch.nn.functional.relu6(self.dw(x))
            x = torch.flatten(self.pool(x), 1)
            x = torch.nn.functional.hardsigmoid(self.fc1(x)) * 2 - 1
            return torch.softmax(self.fc2(x), dim=-1)

    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(1, 3, 6, 6),), str(path), input_names=["x"],
                          dynamo=dynamo)
    # hard_sigmoid's slope 1/6 is a 'param' constant: wide too, so logits stay within LINEAR_TOL
    config = {"Model": {"Precision": {"default": WIDE, "param": WIDE}}}
    hm = nnfab.convert_from_onnx_model(path, hls_config=config)
    assert [n.op for n in hm.graph.nodes] == [
        "Input", "Conv2D", "Activation", "DepthwiseConv2D", "Activation", "Pooling2D", "Flatten",
        "Dense", "Activation", "BatchNormalization", "Dense", "Softmax",
    ]
    x = RNG.normal(size=(20, 3, 6, 6)).astype(np.float32)
    with torch.no_grad():
        features = net.fc2(torch.nn.functional.hardsigmoid(net.fc1(torch.flatten(net.pool(
            torch.nn.functional.relu6(net.dw(torch.relu(net.bn(net.conv(torch.from_numpy(x))))))
        ), 1))) * 2 - 1)
        expected = net(torch.from_numpy(x)).numpy()
    logits = hm.trace(nhwc(x))[hm.graph.nodes[-2].name]
    np.testing.assert_allclose(logits, features.numpy(), atol=LINEAR_TOL, rtol=0)
    np.testing.assert_allclose(hm.predict(nhwc(x)), expected, atol=SOFTMAX_TOL, rtol=0)


# --------------------------------------------------------------- attention
def _attention_onnx(heads: int) -> Any:
    """Self-attention as exporters write it: projections, Reshape + Transpose into heads,
    MatMul of activations, Mul by 1/sqrt(d), Softmax, MatMul, Transpose + Reshape back
    (held permuted in the IR: the output projection, an identity so that SOFTMAX_TOL
    applies, reads it through a Permute)."""
    t, f, d = 5, 8, 8 // heads
    nodes = [helper.make_node("MatMul", ["x", f"w{p}"], [p], name=f"{p}_proj") for p in "qkv"]
    inits = [init(f"w{p}", weights(f, f)) for p in "qkv"]
    for p in "qkv":
        nodes.append(helper.make_node("Reshape", [p, "heads_shape"], [f"{p}_h"], name=f"{p}_r"))
    nodes += [
        helper.make_node("Transpose", ["q_h"], ["q_t"], perm=[0, 2, 1, 3], name="q_t"),
        helper.make_node("Transpose", ["k_h"], ["k_t"], perm=[0, 2, 3, 1], name="k_t"),
        helper.make_node("Transpose", ["v_h"], ["v_t"], perm=[0, 2, 1, 3], name="v_t"),
        helper.make_node("MatMul", ["q_t", "k_t"], ["s"], name="scores"),
        helper.make_node("Mul", ["s", "scale"], ["s2"], name="scale"),
        helper.make_node("Softmax", ["s2"], ["p"], axis=-1, name="softmax"),
        helper.make_node("MatMul", ["p", "v_t"], ["c"], name="context"),
        helper.make_node("Transpose", ["c"], ["c_t"], perm=[0, 2, 1, 3], name="c_t"),
        helper.make_node("Reshape", ["c_t", "flat_shape"], ["m"], name="merge"),
        helper.make_node("MatMul", ["m", "wo"], ["y"], name="out_proj"),
    ]
    inits += [iinit("heads_shape", [-1, t, heads, d]), iinit("flat_shape", [-1, t, f]),
              init("scale", np.array(1 / math.sqrt(d))), init("wo", np.eye(f))]
    return model(nodes, [tensor("x", "N", t, f)], [tensor("y", "N", t, f)], inits)


@pytest.mark.parametrize("heads", [1, 2])
def test_attention_matmul_of_activations(heads: int) -> None:
    m = _attention_onnx(heads)
    hm = compare(m, RNG.normal(size=(20, 5, 8)), SOFTMAX_TOL, channels_first_in=False)
    assert ops(hm.graph).count("MatMul") == 2


def test_matmul_of_activations_with_broadcast_is_refused() -> None:
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="proj"),
             helper.make_node("MatMul", ["x", "h"], ["y"], name="bad")]
    m = model(nodes, [tensor("x", "N", 3, 4)], [tensor("y", "N", 3, 4)], [init("w", weights(4, 4))])
    with pytest.raises(UnsupportedLayerError, match=r"'bad'.*input shapes"):
        convert(m)
