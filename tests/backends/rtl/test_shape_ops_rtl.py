"""ZeroPadding, Cropping, UpSampling and Permute in Verilog: wires in vector designs
(Verilator == emulator, bit for bit, latency as reported), and a clear error inside a
pixel stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rtl_helpers import needs_verilator, needs_yosys, sample_inputs

import nnfab
from nnfab.backends.rtl import RTLProject, generate
from nnfab.errors import BackendError
from nnfab.ir import Graph, Node, infer_shapes
from nnfab.tools.verilator import lint

CONFIG = {
    "Model": {"Precision": "ap_fixed<8,3,AP_RND,AP_SAT>"},
    "LayerName": {
        "up2": {"Precision": {"result": "ap_fixed<6,2,AP_RND_CONV,AP_SAT_SYM>"}},
        "crop1": {"Precision": {"result": "ap_ufixed<5,2,AP_TRN,AP_WRAP>"}},
    },
}


def _chain(g: Graph, src: str, layers: list[tuple[str, str, dict]]) -> str:
    for name, op, attrs in layers:
        g.add_node(Node(name, op, [src], attrs=attrs), ())
        src = name
    return src


def shape_graph() -> Graph:
    g = Graph("shapes")
    g.add_node(Node("img", "Input", [], attrs={"shape": (3, 4, 2)}), (3, 4, 2))
    last = _chain(g, "img", [
        ("pad2", "ZeroPadding2D", {"pads": (1, 0, 2, 1)}),
        ("crop2", "Cropping2D", {"crops": (0, 1, 1, 0)}),
        ("up2", "UpSampling2D", {"size": (2, 1)}),
        ("perm3", "Permute", {"perm": (1, 2, 0)}),
        ("flat", "Reshape", {"target_shape": (-1, 3)}),
        ("pad1", "ZeroPadding1D", {"pads": (1, 2)}),
        ("up1", "UpSampling1D", {"size": (2,)}),
        ("crop1", "Cropping1D", {"crops": (2, 3)}),
        ("perm2", "Permute", {"perm": (1, 0)}),
    ])
    g.outputs = [last]
    infer_shapes(g)
    return g


def test_rearrangements_are_wires_with_one_cast() -> None:
    model = nnfab.convert_graph(shape_graph(), CONFIG)
    design = generate(model.graph)
    layers = {m.node: m for m in design.layers}
    assert all(layers[n].latency == 0 for n in ("pad2", "crop2", "up2", "perm3", "perm2"))
    text = layers["pad2"].text
    assert "always" not in text and "assign y" in text


def with_verilator(fn: Any) -> Any:
    for mark in needs_verilator:
        fn = mark(fn)
    return fn


def with_yosys(fn: Any) -> Any:
    for mark in needs_yosys:
        fn = mark(fn)
    return fn


@with_yosys
def test_rearrangements_synthesize_to_no_logic(tmp_path: Path) -> None:
    """Same types: Yosys finds no LUT, carry or DSP, and only the registers of the input
    elements that reach the output (each once, however often it is copied) plus the valid
    bit: padding zeros and copies cost nothing."""
    g = Graph("wires")
    g.add_node(Node("img", "Input", [], attrs={"shape": (3, 4, 2)}), (3, 4, 2))
    last = _chain(g, "img", [
        ("pad", "ZeroPadding2D", {"pads": (1, 0, 0, 2)}),
        ("crop", "Cropping2D", {"crops": (0, 1, 1, 0)}),
        ("up", "UpSampling2D", {"size": (2, 1)}),
        ("perm", "Permute", {"perm": (2, 0, 1)}),
    ])
    g.outputs = [last]
    infer_shapes(g)
    model = nnfab.convert_graph(g, {"Model": {"Precision": "ap_fixed<8,3>"}})
    project = RTLProject(model, tmp_path)
    report = project.synthesize("xc7z020clg400-1")
    assert (report.lut, report.carry, report.dsp) == (0, 0, 0)
    # reached: input rows 0-1 (row 2 cropped), columns 1-3 (column 0 cropped), 2 channels
    assert report.ff == 2 * 3 * 2 * 8 + project.latency


@with_verilator
def test_vector_design_matches_emulator(tmp_path: Path) -> None:
    model = nnfab.convert_graph(shape_graph(), CONFIG)
    project = RTLProject(model, tmp_path)
    x = sample_inputs(model.graph.tensors["img"].type, 24, 40, seed=3).reshape(-1, 3, 4, 2)
    x = np.concatenate([x, np.random.default_rng(4).normal(0, 6, (40, 3, 4, 2))])
    result = project.simulate(x)
    assert np.array_equal(np.asarray(result.outputs), model.predict(x))
    assert result.latency == project.latency
    report = model.overflow_report()
    assert report["up2"]["result"] > 0 and report["crop1"]["result"] > 0
    assert lint(project.write(), project.top, tmp_path / "lint.log") == []


def padded_cnn(pads: tuple[int, ...], follow: str = "Conv2D") -> Graph:
    """img (6, 6, 2) -> ZeroPadding2D -> a 3x3 Conv2D (or a 2x2 max pooling)."""
    rng = np.random.default_rng(0)
    g = Graph("cnn")
    g.add_node(Node("img", "Input", [], attrs={"shape": (6, 6, 2)}), (6, 6, 2))
    g.add_node(Node("pad", "ZeroPadding2D", ["img"], attrs={"pads": pads}), ())
    if follow == "Conv2D":
        g.add_node(Node("conv", "Conv2D", ["pad"], attrs={"strides": (1, 1), "pads": (0,) * 4},
                        weights={"kernel": rng.normal(size=(3, 3, 2, 2)),
                                 "bias": rng.normal(size=2)}), ())
    else:
        g.add_node(Node("conv", "Pooling2D", ["pad"], attrs={"mode": "max",
                                                             "pool_size": (2, 2)}), ())
    g.outputs = ["conv"]
    infer_shapes(g)
    return g


@with_verilator
def test_padding_before_a_conv_folds_into_the_pixel_stream(tmp_path: Path) -> None:
    model = nnfab.convert_graph(padded_cnn((1, 1, 2, 0)), {"Model": {"Precision":
                                                                   "ap_fixed<10,4>"}})
    project = RTLProject(model, tmp_path)
    (stage,) = [s for s in project.design.stages if s.kind == "window"]
    assert stage.node == "conv" and (stage.geometry.pt, stage.geometry.pb, stage.geometry.pl,
                                     stage.geometry.pr) == (1, 1, 2, 0)
    assert "pad" not in {s.node for s in project.design.stages}
    x = np.random.default_rng(2).normal(0, 3, (12, 6, 6, 2))
    result = project.simulate(x)
    assert np.array_equal(np.asarray(result.outputs), model.predict(x))


@pytest.mark.parametrize(("case", "config"), [
    ("pool", {}),  # max pooling pads with the smallest value, not 0: no fold
    ("cast", {"LayerName": {"pad": {"Precision": {"result": "ap_fixed<6,2>"}}}}),
])
def test_padding_that_cannot_fold_names_the_layer(case: str, config: dict) -> None:
    graph = padded_cnn((1, 1, 1, 1), "Pooling2D" if case == "pool" else "Conv2D")
    model = nnfab.convert_graph(graph, {"Model": {"Precision": "ap_fixed<10,4>"}, **config})
    with pytest.raises(BackendError, match=r"'pad'.*ZeroPadding2D.*not supported inside a "
                                           r"streamed RTL design") as e:
        model.to_rtl()
    assert "folds into the convolution it feeds" in str(e.value)


def test_permute_inside_a_pixel_stream_names_the_layer() -> None:
    # (upsampling and perm (1, 0, 2) run inside pixel streams: test_stream_upsample.py,
    # test_stream_permute.py); a perm moving the channels before more stream layers not
    g = padded_cnn((0, 0, 0, 0))
    g.add_node(Node("perm", "Permute", ["conv"], attrs={"perm": (2, 0, 1)}), ())
    g.add_node(Node("relu", "Activation", ["perm"], attrs={"function": "relu"}), ())
    g.outputs = ["relu"]
    infer_shapes(g)
    model = nnfab.convert_graph(g)
    with pytest.raises(BackendError, match=r"'perm'.*Permute.*not supported inside a "
                                           r"streamed RTL design.*a vector design"):
        model.to_rtl()


# ------------------------------------------------------------ global pooling
GP_CONFIG = {
    "Model": {"Precision": "ap_fixed<10,4,AP_RND,AP_SAT>"},
    "LayerName": {
        "gavg": {"Precision": {"result": "ap_fixed<8,2,AP_RND_CONV,AP_SAT>",
                               "scale": "ap_ufixed<9,0,AP_RND>"}},
        "gmax": {"Precision": {"result": "ap_fixed<6,2,AP_TRN,AP_SAT>"}},
        "gsum": {"Precision": {"result": "ap_fixed<9,6,AP_RND,AP_SAT>"}},
    },
}


def global_pool_graph() -> Graph:
    """img (3, 5, 2) -> avg, max and sum over the 15 pixels -> concatenated (6,)."""
    g = Graph("gpool")
    g.add_node(Node("img", "Input", [], attrs={"shape": (3, 5, 2)}), (3, 5, 2))
    g.add_node(Node("gavg", "GlobalPooling2D", ["img"], attrs={"mode": "avg"}), ())
    g.add_node(Node("gmax", "GlobalPooling2D", ["img"], attrs={"mode": "max"}), ())
    g.add_node(Node("gsum", "GlobalPooling2D", ["img"], attrs={"mode": "sum"}), ())
    g.add_node(Node("cat", "Concatenate", ["gavg", "gmax", "gsum"], attrs={"axis": 0}), ())
    g.outputs = ["cat"]
    infer_shapes(g)
    return g


def global_pool_cnn(mode: str = "avg") -> Graph:
    """A pixel stream: Conv1D -> relu -> global average (or ``mode``) over the length ->
    Dense."""
    rng = np.random.default_rng(1)
    g = Graph("gpcnn")
    g.add_node(Node("seq", "Input", [], attrs={"shape": (9, 2)}), (9, 2))
    g.add_node(Node("conv", "Conv1D", ["seq"], attrs={"strides": (1,), "pads": (1, 1)},
                    weights={"kernel": rng.normal(0, 0.5, (3, 2, 3)),
                             "bias": rng.normal(0, 0.2, 3)}), ())
    g.add_node(Node("relu", "Activation", ["conv"], attrs={"function": "relu"}), ())
    g.add_node(Node("gavg", "GlobalPooling1D", ["relu"], attrs={"mode": mode}), ())
    g.add_node(Node("fc", "Dense", ["gavg"], weights={"kernel": rng.normal(0, 0.5, (3, 2)),
                                                      "bias": np.zeros(2)}), ())
    g.outputs = ["fc"]
    infer_shapes(g)
    return g


@with_verilator
def test_global_pooling_vector_design_matches_emulator(tmp_path: Path) -> None:
    model = nnfab.convert_graph(global_pool_graph(), GP_CONFIG)
    project = RTLProject(model, tmp_path)
    x_t = model.graph.tensors["img"].type
    x = np.concatenate([sample_inputs(x_t, 30, 40, seed=5).reshape(-1, 3, 5, 2),
                        np.random.default_rng(6).normal(0, 4, (40, 3, 5, 2))])
    result = project.simulate(x)
    assert np.array_equal(np.asarray(result.outputs), model.predict(x))
    assert result.latency == project.latency
    report = model.overflow_report()
    assert report["gmax"]["result"] > 0  # the narrow max result saturates
    assert report["gsum"]["result"] > 0  # so does the sum of 15 pixels


@with_verilator
@pytest.mark.parametrize("mode", ["avg", "sum"])
def test_global_pooling_after_a_pixel_stream_matches_emulator(mode: str,
                                                              tmp_path: Path) -> None:
    model = nnfab.convert_graph(global_pool_cnn(mode),
                                {"Model": {"Precision": "ap_fixed<12,5>"}})
    project = RTLProject(model, tmp_path)
    assert [s.kind for s in project.design.stages][:4] == ["window", "pixel", "collect",
                                                           "vector"]
    x = np.random.default_rng(7).normal(0, 2, (30, 9, 2))
    result = project.simulate(x)
    assert np.array_equal(np.asarray(result.outputs), model.predict(x))


@with_verilator
def test_keras_separable_conv_pixel_stream_matches_emulator(tmp_path: Path) -> None:
    """SeparableConv1D from Keras: a depthwise and a 1x1 convolution in the pixel stream."""
    keras = pytest.importorskip("keras")
    inp = keras.Input((8, 2))
    x = keras.layers.SeparableConv1D(3, 3, depth_multiplier=2, padding="same", name="sep")(inp)
    model = keras.Model(inp, x)
    hm = nnfab.convert_from_keras_model(model, {"Model": {"Precision": "ap_fixed<10,4>"}})
    assert [n.name for n in hm.graph.nodes[1:]] == ["sep_depthwise", "sep_pointwise"]
    project = RTLProject(hm, tmp_path)
    x = np.random.default_rng(8).normal(0, 2, (20, 8, 2))
    result = project.simulate(x)
    assert np.array_equal(np.asarray(result.outputs), hm.predict(x))


def cropped_cnn(rank: int) -> Graph:
    """conv -> crop -> max pool -> crop (the stream's last layer): pixels dropped twice."""
    rng = np.random.default_rng(3)
    g = Graph(f"crop{rank}d")
    shape = (7, 6, 2) if rank == 2 else (11, 2)
    g.add_node(Node("img", "Input", [], attrs={"shape": shape}), shape)
    k = (3, 3) if rank == 2 else (3,)
    g.add_node(Node("conv", f"Conv{rank}D", ["img"],
                    attrs={"strides": (1,) * rank, "pads": (1,) * (2 * rank)},
                    weights={"kernel": rng.normal(0, 0.5, (*k, 2, 3)),
                             "bias": rng.normal(0, 0.2, 3)}), ())
    crops = (1, 2, 0, 1) if rank == 2 else (2, 1)
    g.add_node(Node("crop", f"Cropping{rank}D", ["conv"], attrs={"crops": crops}), ())
    g.add_node(Node("pool", f"Pooling{rank}D", ["crop"],
                    attrs={"mode": "max", "pool_size": (2,) * rank}), ())
    last = (0, 1, 1, 0) if rank == 2 else (1, 0)
    g.add_node(Node("crop_out", f"Cropping{rank}D", ["pool"], attrs={"crops": last}), ())
    g.outputs = ["crop_out"]
    infer_shapes(g)
    return g


@with_verilator
@pytest.mark.parametrize("rank", [2, 1])
def test_cropping_inside_a_pixel_stream_matches_emulator(rank: int, tmp_path: Path) -> None:
    model = nnfab.convert_graph(cropped_cnn(rank), {"Model": {"Precision": "ap_fixed<10,4>"}})
    project = RTLProject(model, tmp_path)
    kinds = [(s.node, s.kind) for s in project.design.stages]
    assert kinds == [("conv", "window"), ("crop", "crop"), ("pool", "window"),
                     ("crop_out", "crop")]
    shape = model.graph.tensors["img"].shape
    x = np.random.default_rng(9).normal(0, 2, (8, *shape))
    result = project.simulate(x)
    assert np.array_equal(np.asarray(result.outputs), model.predict(x))
    assert result.latency == project.latency
    assert lint(project.write(), project.top, tmp_path / "lint.log") == []


@with_verilator
def test_slice_is_wires(tmp_path: Path) -> None:
    """Slice (the ONNX frontend's Gather at constant indices) on a 3-D sample, then a
    narrowing cast: Verilator == emulator."""
    g = Graph("slices")
    g.add_node(Node("x", "Input", [], attrs={"shape": (3, 4, 5)}), (3, 4, 5))
    _chain(g, "x", [("sl", "Slice", {"begin": (1, 1, 2), "size": (2, 3, 3)}),
                    ("flat", "Reshape", {"target_shape": (18,)})])
    g.outputs = ["flat"]
    infer_shapes(g)
    model = nnfab.convert_graph(g, {"Model": {"Precision": "ap_fixed<8,3,AP_RND,AP_SAT>"},
                                    "LayerName": {"sl": {"Precision": {
                                        "result": "ap_fixed<5,1,AP_RND_CONV,AP_SAT>"}}}})
    project = RTLProject(model, tmp_path)
    x = np.random.default_rng(2).normal(0, 2, (60, 3, 4, 5))
    assert np.array_equal(np.asarray(project.simulate(x).outputs), model.predict(x))
    assert model.overflow_report()["sl"]["result"] > 0
