"""ONNX ``Slice`` beyond spatial crops and ``Split``: channel ranges, strides, sequence
steps and vector parts become IR ``Slice`` nodes, in the layout the data is held in (no
Permute).

Expected values come from onnxruntime on the same ONNX graph; the types are wide enough
(``ap_fixed<24,10>`` on a grid of multiples of 1/8 with weights in quarters) for every
value to be exact, so the comparison is equality.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from ladder import assert_backends_match

import nnfab
from nnfab.errors import UnsupportedLayerError

EXACT = {"Model": {"Precision": "ap_fixed<24,10>"}}


@pytest.fixture(scope="module")
def onnx() -> Any:
    return pytest.importorskip("onnx")


def _i64(*values: int) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _weights(*shape: int, seed: int = 2) -> np.ndarray:
    return (np.random.default_rng(seed).integers(-4, 5, size=shape) / 4).astype(np.float32)


def _model(onnx: Any, nodes: list[Any], inits: dict[str, np.ndarray], in_shape: tuple,
           outputs: tuple[str, ...] = ("y",), opset: int = 17) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, "slices",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["N"]) for o in outputs],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def _check(m: Any, in_shape: tuple) -> nnfab.NnfabModel:
    """nnfab == onnxruntime on every output, bit for bit (exact types)."""
    ort = pytest.importorskip("onnxruntime")
    x = (np.random.default_rng(6).integers(-64, 64, size=(8, *in_shape)) / 8).astype(
        np.float32)
    want = ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})
    hm = nnfab.convert_from_onnx_model(m, EXACT)
    meta = hm.graph.metadata
    feed = np.moveaxis(x, 1, -1) if meta["input_layouts"]["x"] == "channels_last" else x
    got = hm.predict(feed.astype(np.float64))
    got = got if isinstance(got, list) else [got]
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        if meta["output_layouts"][k] == "channels_last":
            g = np.moveaxis(g, -1, 1)
        assert g.shape == w.shape and np.array_equal(g, w.astype(np.float64)), k
    return hm


def ops(hm: nnfab.NnfabModel) -> list[str]:
    return [n.op for n in hm.graph.nodes]


def test_slice_of_channels_between_convolutions(onnx: Any) -> None:
    from onnx import helper

    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], name="conv1"),
             helper.make_node("Slice", ["c", "st", "en", "ax"], ["s"], name="pick"),
             helper.make_node("Conv", ["s", "w2"], ["y"], name="conv2")]
    inits = {"w1": _weights(5, 2, 1, 1), "w2": _weights(2, 3, 1, 1, seed=3),
             "st": _i64(1, 1), "en": _i64(4, 2**62), "ax": _i64(1, 3)}
    hm = _check(_model(onnx, nodes, inits, (2, 4, 5)), (2, 4, 5))
    # held channels-last (H, W, C): columns 1..4 (a crop), then channels 1..3 per pixel
    assert ops(hm) == ["Input", "Conv2D", "Cropping2D", "Slice", "Conv2D"]
    assert hm.graph.nodes[2].attrs["crops"] == (0, 0, 1, 0)
    assert hm.graph.nodes[3].attrs == {"begin": (0, 0, 1), "size": (4, 4, 3)}


def test_slice_of_a_sequence_held_as_is_needs_no_permute(onnx: Any) -> None:
    from onnx import helper

    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="proj"),
             helper.make_node("Slice", ["h", "st", "en", "ax"], ["s"], name="last_steps"),
             helper.make_node("Relu", ["s"], ["y"], name="act")]
    inits = {"w": _weights(3, 4), "st": _i64(-2), "en": _i64(2**62), "ax": _i64(1)}
    hm = _check(_model(onnx, nodes, inits, (6, 3)), (6, 3))
    assert "Permute" not in ops(hm) and "Cropping1D" not in ops(hm)
    assert next(n for n in hm.graph.nodes if n.op == "Slice").attrs == {
        "begin": (4, 0), "size": (2, 4)}


@pytest.mark.parametrize(("opset", "split"), [(11, [3, 5]), (13, [3, 5]), (18, None)])
def test_split_of_a_vector(onnx: Any, opset: int, split: list[int] | None) -> None:
    from onnx import helper

    inits = {"w": _weights(6, 8)}
    if split is None:  # opset 18: equal parts from num_outputs
        node = helper.make_node("Split", ["h"], ["a", "b"], name="halves", axis=1,
                                num_outputs=2)
        sizes = [4, 4]
    elif opset >= 13:
        inits["sp"] = _i64(*split)
        node = helper.make_node("Split", ["h", "sp"], ["a", "b"], name="parts", axis=-1)
        sizes = split
    else:
        node = helper.make_node("Split", ["h"], ["a", "b"], name="parts", axis=1, split=split)
        sizes = split
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="proj"), node,
             helper.make_node("Relu", ["a"], ["y0"], name="act"),
             helper.make_node("Concat", ["b", "y0"], ["y1"], name="swap", axis=1)]
    hm = _check(_model(onnx, nodes, inits, (6,), outputs=("y0", "y1"), opset=opset), (6,))
    slices = [n for n in hm.graph.nodes if n.op == "Slice"]
    assert [s.attrs["size"] for s in slices] == [(sizes[0],), (sizes[1],)]
    assert [s.attrs["begin"] for s in slices] == [(0,), (sizes[0],)]


def test_split_of_channels_with_an_uneven_last_part(onnx: Any) -> None:
    from onnx import helper

    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Split", ["c"], ["a", "b", "d"], name="thirds", axis=1,
                              num_outputs=3),
             helper.make_node("Add", ["a", "b"], ["ab"], name="add"),
             helper.make_node("Concat", ["ab", "d"], ["y"], name="join", axis=1)]
    # 8 channels in 3 parts: 3, 3, 2 (the ONNX rule for num_outputs that does not divide)
    hm = _check(_model(onnx, nodes, {"w": _weights(8, 2, 3, 3)}, (2, 5, 5), opset=18),
                (2, 5, 5))
    assert [n.attrs["size"][-1] for n in hm.graph.nodes if n.op == "Slice"] == [3, 3, 2]


@pytest.mark.parametrize(("node", "inits", "needles"), [
    (("Split", ["x", "sp"], {"axis": 1}), {"sp": _i64(1, 2)},
     ["'split'", "split=[1, 2]", "positive sizes adding up to 4"]),
    (("Split", ["x"], {"axis": 0}), {}, ["axis=0", "a non-batch axis"]),
    (("Slice", ["x", "st", "en", "ax", "stp"], {}),
     {"st": _i64(3), "en": _i64(0), "ax": _i64(2), "stp": _i64(-1)},
     ["steps", "positive steps"]),
    (("Slice", ["x", "st", "en", "ax"], {}), {"st": _i64(3), "en": _i64(1), "ax": _i64(1)},
     ["a non-empty range of axis 1"]),
])
def test_errors_name_the_node_and_what_is_allowed(onnx: Any, node: tuple, inits: dict,
                                                  needles: list[str]) -> None:
    from onnx import helper

    op, inputs, attrs = node
    outs = ["y", "z"] if op == "Split" else ["y"]
    proto = helper.make_node(op, inputs, outs, name=op.lower(), **attrs)
    m = _model(onnx, [proto], inits, (4, 4), outputs=tuple(outs))
    with pytest.raises(UnsupportedLayerError) as e:
        nnfab.convert_from_onnx_model(m)
    for needle in needles:
        assert needle in str(e.value), str(e.value)


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_channel_slice_csim_and_verilog_match_the_emulator(onnx: Any, tmp_path: Any,
                                                           io_type: str) -> None:
    """The crop + channel Slice between convolutions: C simulation and the streamed
    Verilog (a per-pixel channel select) equal the emulator bit for bit, with narrow
    types that round and saturate."""
    import shutil

    from onnx import helper

    if shutil.which("g++") is None:
        pytest.skip("g++ not found")
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], name="conv1"),
             helper.make_node("Slice", ["c", "st", "en", "ax"], ["s"], name="pick"),
             helper.make_node("Conv", ["s", "w2"], ["y"], name="conv2", pads=[1, 1, 1, 1])]
    inits = {"w1": _weights(5, 2, 3, 3), "w2": _weights(2, 3, 3, 3, seed=3),
             "st": _i64(1, 1), "en": _i64(4, 2**62), "ax": _i64(1, 3)}
    m = _model(onnx, nodes, inits, (2, 6, 7))
    hm = nnfab.convert_from_onnx_model(
        m, {"Model": {"Precision": "ap_fixed<8,3,AP_RND,AP_SAT>"}}, io_type=io_type)
    assert [n.op for n in hm.graph.nodes] == ["Input", "Conv2D", "Cropping2D", "Slice",
                                              "Conv2D"]
    x = np.random.default_rng(3).uniform(-5, 5, (24, 6, 7, 2))
    assert_backends_match(hm, x, tmp_path, verilog=io_type == "io_stream")


def test_strided_slices_equal_onnxruntime(onnx: Any) -> None:
    """Every other row and every third column from 1 of a conv output, every other
    channel, then a flatten and a dense head: one IR Slice with steps, in the
    channels-last layout (no Cropping: the rows are not contiguous)."""
    from onnx import helper

    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Slice", ["c", "st", "en", "ax", "stp"], ["s"], name="stride"),
             helper.make_node("Flatten", ["s"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "g"], ["y"], name="head")]
    inits = {"w": _weights(6, 2, 3, 3), "st": _i64(0, 1, 0), "en": _i64(2**62, 2**62, 99),
             "ax": _i64(2, 3, 1), "stp": _i64(2, 3, 2), "g": _weights(3 * 2 * 3, 4, seed=5)}
    hm = _check(_model(onnx, nodes, inits, (2, 7, 8)), (2, 7, 8))
    (node,) = [n for n in hm.graph.nodes if n.op == "Slice"]
    # conv output (5, 6, 6) channels-last: rows 0, 2, 4; columns 1, 4; channels 0, 2, 4
    assert node.attrs == {"begin": (0, 1, 0), "size": (3, 2, 3), "step": (2, 3, 2)}


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_strided_slices_csim_and_verilog_match_the_emulator(onnx: Any, tmp_path: Any,
                                                            io_type: str) -> None:
    """A channel stride between convolutions (per pixel in a Verilog stream) and a
    strided vector slice after a dense layer: C simulation and Verilator == emulator."""
    import shutil

    from onnx import helper

    if shutil.which("g++") is None:
        pytest.skip("g++ not found")
    config = {"Model": {"Precision": "ap_fixed<8,3,AP_RND,AP_SAT>"}}
    conv = [helper.make_node("Conv", ["x", "w1"], ["c"], name="conv1"),
            helper.make_node("Slice", ["c", "st", "en", "ax", "stp"], ["s"], name="odd"),
            helper.make_node("Conv", ["s", "w2"], ["y"], name="conv2", pads=[1, 1, 1, 1])]
    conv_inits = {"w1": _weights(6, 2, 3, 3), "w2": _weights(2, 3, 3, 3, seed=3),
                  "st": _i64(1), "en": _i64(6), "ax": _i64(1), "stp": _i64(2)}
    dense = [helper.make_node("MatMul", ["x", "w"], ["h"], name="proj"),
             helper.make_node("Slice", ["h", "st", "en", "ax", "stp"], ["s"], name="every3"),
             helper.make_node("Relu", ["s"], ["y"], name="act")]
    dense_inits = {"w": _weights(6, 11), "st": _i64(1), "en": _i64(11), "ax": _i64(1),
                   "stp": _i64(3)}
    for nodes, inits, shape, sample in ((conv, conv_inits, (2, 6, 7), (6, 7, 2)),
                                        (dense, dense_inits, (6,), (6,))):
        hm = nnfab.convert_from_onnx_model(_model(onnx, nodes, inits, shape), config,
                                           io_type=io_type)
        assert [n.attrs.get("step") for n in hm.graph.nodes if n.op == "Slice"] in (
            [(1, 1, 2)], [(3,)])
        x = np.random.default_rng(3).uniform(-5, 5, (24, *sample))
        assert_backends_match(hm, x, tmp_path, verilog=io_type == "io_stream" or
                              len(sample) == 1, min_unique=10, rtl_dir=f"rtl{len(sample)}")
