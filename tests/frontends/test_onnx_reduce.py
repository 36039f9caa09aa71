"""ONNX ``ReduceMean`` / ``ReduceMax`` over the spatial axes (PyTorch's ``x.mean(dim=(2,
3))`` and ``x.amax(...)`` exported) as global pooling, ``HardSwish``, and ``Pow(x, 2)``.

Oracle: onnxruntime on the same graph. Inputs are multiples of 1/8 and weights quarters,
the types ``ap_fixed<24,10>``, and the pooled extents powers of two, so every value of
the pooling graphs is exact and the comparison is equality. HardSwish's slope 1/6 is not
a binary fraction: it is cast to the ``param`` type (14 fractional bits), so the gate is
off by at most 2**-15 * |x| and the output by about |x|**2 * 2**-15 + 2**-14 < 1e-2 for
|x| < 16, while a slope of 1/5 moves the outputs by more than 0.1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from ladder import assert_backends_match

import nnfab
from nnfab.errors import UnsupportedLayerError

EXACT = {"Model": {"Precision": "ap_fixed<24,10>"}}
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _model(nodes: list[Any], inits: dict[str, np.ndarray], in_shape: tuple,
           opset: int) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, "reduce",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def _weights(*shape: int, seed: int = 2) -> np.ndarray:
    return (np.random.default_rng(seed).integers(-4, 5, size=shape) / 4).astype(np.float32)


def _run(m: Any, in_shape: tuple, config: dict | None = None
         ) -> tuple[nnfab.NnfabModel, np.ndarray, np.ndarray]:
    x = (np.random.default_rng(6).integers(-64, 64, size=(8, *in_shape)) / 8).astype(
        np.float32)
    want = ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0]
    hm = nnfab.convert_from_onnx_model(m, config or EXACT)
    feed = np.moveaxis(x, 1, -1) if hm.graph.metadata["input_layouts"]["x"] == \
        "channels_last" else x
    return hm, hm.predict(feed.astype(np.float64)), want


@pytest.mark.parametrize("opset", [13, 18])  # axes: an attribute, then an input
@pytest.mark.parametrize(("op", "mode"), [("ReduceMean", "avg"), ("ReduceMax", "max")])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_spatial_reduce_is_global_pooling(op: str, mode: str, keepdims: int,
                                          opset: int) -> None:
    """Conv -> Reduce over (2, 3) -> Flatten -> Gemm, 4x4 conv outputs."""
    from onnx import helper

    inits = {"w": _weights(6, 2, 3, 3), "g": _weights(6, 3, seed=4)}
    axes = [2, -1]
    if opset >= 18:
        inits["axes"] = np.asarray(axes, dtype=np.int64)
        reduce = helper.make_node(op, ["c", "axes"], ["r"], name="pool", keepdims=keepdims)
    else:
        reduce = helper.make_node(op, ["c"], ["r"], name="pool", axes=axes, keepdims=keepdims)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), reduce,
             helper.make_node("Flatten", ["r"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "g"], ["y"], name="head")]
    hm, got, want = _run(_model(nodes, inits, (2, 6, 6), opset), (2, 6, 6))
    pool = hm.graph.node("pool")
    assert (pool.op, pool.attrs["mode"]) == ("GlobalPooling2D", mode)
    np.testing.assert_array_equal(got, want)


def test_reduce_mean_of_a_sequence_of_channels() -> None:
    """(N, C, L): ReduceMean over axis 2 (keepdims 0) is GlobalPooling1D."""
    from onnx import helper

    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("ReduceMean", ["c"], ["y"], name="pool", axes=[2], keepdims=0)]
    hm, got, want = _run(_model(nodes, {"w": _weights(5, 3, 3)}, (3, 10), 13), (3, 10))
    assert hm.graph.node("pool").op == "GlobalPooling1D"
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("axes", "keepdims"), [([1, 2, 3], 1), ([2], 1), (None, 0)])
def test_other_reductions_name_the_node_and_what_is_allowed(axes: list[int] | None,
                                                            keepdims: int) -> None:
    from onnx import helper

    kwargs = {"axes": axes} if axes is not None else {}
    nodes = [helper.make_node("ReduceMean", ["x"], ["y"], name="mean", keepdims=keepdims,
                              **kwargs)]
    with pytest.raises(UnsupportedLayerError) as e:
        nnfab.convert_from_onnx_model(_model(nodes, {}, (2, 4, 4), 13))
    assert "'mean'" in str(e.value) and "exactly the spatial axes [2, 3]" in str(e.value)


def test_hard_swish_is_x_times_its_hard_sigmoid_gate() -> None:
    from onnx import helper

    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("HardSwish", ["c"], ["y"], name="hswish")]
    hm, got, want = _run(_model(nodes, {"w": _weights(4, 2, 3, 3)}, (2, 5, 5), 14), (2, 5, 5))
    gate = hm.graph.node("hswish_gate")
    assert (gate.op, gate.attrs["function"]) == ("Activation", "hard_sigmoid")
    assert hm.graph.node("hswish").attrs["mode"] == "multiply"
    assert np.abs(want).max() > 3  # beyond the gate's saturation at +-3
    np.testing.assert_allclose(got, np.moveaxis(want, 1, -1), atol=1e-2, rtol=0)


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_hard_swish_and_mean_csim_and_verilog_match_the_emulator(tmp_path: Any,
                                                                 io_type: str) -> None:
    """Conv -> HardSwish -> ReduceMean -> Gemm with narrow rounding, saturating types:
    C simulation (and, streamed, Verilator: the gate and the product per pixel on a
    branching stream) == emulator bit for bit."""
    import shutil

    from onnx import helper

    if shutil.which("g++") is None:
        pytest.skip("g++ not found")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("HardSwish", ["c"], ["h"], name="hswish"),
             helper.make_node("ReduceMean", ["h"], ["r"], name="pool", axes=[2, 3],
                              keepdims=0),
             helper.make_node("Gemm", ["r", "g"], ["y"], name="head")]
    inits = {"w": _weights(4, 2, 3, 3), "g": _weights(4, 3, seed=4)}
    hm = nnfab.convert_from_onnx_model(
        _model(nodes, inits, (2, 6, 6), 14),
        {"Model": {"Precision": "ap_fixed<10,4,AP_RND,AP_SAT>"}}, io_type=io_type)
    x = np.random.default_rng(3).uniform(-4, 4, (24, 6, 6, 2))
    assert_backends_match(hm, x, tmp_path, verilog=io_type == "io_stream")


def test_pow_of_two_is_a_square_and_other_exponents_are_refused() -> None:
    from onnx import helper

    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Pow", ["c", "two"], ["y"], name="square")]
    inits = {"w": _weights(3, 2, 3, 3), "two": np.asarray(2.0, dtype=np.float32)}
    # |conv| <= 8 * 18 * 1: its square needs 15 integer bits (the grid stays 1/1024)
    hm, got, want = _run(_model(nodes, inits, (2, 5, 5), 13), (2, 5, 5),
                         {"Model": {"Precision": "ap_fixed<32,18>"}})
    square = hm.graph.node("square")
    assert (square.op, square.attrs["mode"], square.inputs) == ("Merge", "multiply",
                                                                ["conv", "conv"])
    np.testing.assert_array_equal(got, np.moveaxis(want, 1, -1))
    inits["two"] = np.asarray(0.5, dtype=np.float32)
    with pytest.raises(UnsupportedLayerError, match=r"'square'.*the constant 2"):
        nnfab.convert_from_onnx_model(_model(nodes, inits, (2, 5, 5), 13))
