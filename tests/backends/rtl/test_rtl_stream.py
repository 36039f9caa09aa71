"""Streamed RTL (conv / pool as pixel streams): Verilator == emulator bit for bit.

Expected values come from the emulator (``model.predict``), never from the RTL;
timing: the measured cycles equal those reported at generation time.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rtl_helpers import convert, needs_verilator, sample_inputs

from nnfab.backends.rtl import RTLProject
from nnfab.backends.rtl.stream import Geometry, StreamDesign, emission_times, window_times
from nnfab.backends.rtl.stream_harness import simulate_stream
from nnfab.errors import BackendError
from nnfab.ir import Graph, Node
from nnfab.ir.ops import OPS
from nnfab.tools.verilator import lint

IN_T = "ap_fixed<8,3,AP_RND_CONV,AP_SAT>"


def sim(fn: Any) -> Any:
    """Mark a test that runs Verilator (skipped without it)."""
    for mark in needs_verilator:
        fn = mark(fn)
    return fn


def _add(g: Graph, node: Node) -> Node:
    shape = OPS[node.op].infer_shape(node, [g.tensors[t].shape for t in node.inputs])
    return g.add_node(node, shape)


def single_layer(op: str, in_shape: tuple[int, ...], *, size: tuple[int, ...], filters: int = 0,
                 strides: tuple[int, ...] | None = None, pads: tuple[int, ...] | None = None,
                 mode: str = "max", relu: bool = False, seed: int = 0) -> Graph:
    """Input -> one convolution or pooling (-> Activation relu)."""
    rng = np.random.default_rng(seed)
    g = Graph(name=f"s_{op.lower()}")
    g.add_node(Node("inp", "Input", [], attrs={"shape": in_shape}), in_shape)
    attrs: dict[str, Any] = {}
    if strides is not None:
        attrs["strides"] = strides
    if pads is not None:
        attrs["pads"] = pads
    channels = in_shape[-1]
    if op.startswith("Pooling"):
        node = Node("layer", op, ["inp"], attrs={**attrs, "mode": mode, "pool_size": size})
    elif op.startswith("Depthwise"):
        node = Node("layer", op, ["inp"], attrs=attrs, weights={
            "kernel": rng.normal(size=(*size, channels, filters)),
            "bias": rng.normal(size=channels * filters)})
    else:
        kernel = rng.normal(size=(*size, channels, filters))
        kernel[rng.random(size=kernel.shape) < 0.2] = 0.0  # zero weights cost nothing
        node = Node("layer", op, ["inp"], attrs=attrs,
                    weights={"kernel": kernel, "bias": rng.normal(size=filters)})
    _add(g, node)
    last = "layer"
    if relu:
        _add(g, Node("relu", "Activation", ["layer"], attrs={"function": "relu"}))
        last = "relu"
    g.outputs = [last]
    return g


def images(model: Any, batch: int, seed: int) -> np.ndarray:
    """Random values over and beyond the input range, a quarter of them edge values
    (min, max, 0, +-lsb, +-lsb/2: rounding ties, saturation)."""
    t = model.graph.tensors["inp"].type
    shape = model.graph.tensors["inp"].shape
    return sample_inputs(t, math.prod(shape), batch, seed=seed).reshape(batch, *shape)


def check(model: Any, tmp_path: Path, style: str, *, batch: int = 6, seed: int = 1,
          gaps: bool = True) -> RTLProject:
    """Verilator == emulator, measured latency / throughput == reported, with and without
    idle cycles in the stream."""
    project = RTLProject(model, tmp_path, style=style)
    design = project.design
    assert isinstance(design, StreamDesign)
    x = images(model, batch, seed)
    expected = model.predict(x)
    result = project.simulate(x)
    assert result.outputs.shape == expected.shape
    assert np.array_equal(result.outputs, expected)
    assert result.latency == design.latency == project.latency
    assert result.latency_first == design.latency_first
    assert result.ii == design.ii == design.pixels_per_image
    timing = result.timing
    assert timing.item_cycles.tolist() == design.schedule(timing.pixel_cycles.tolist())
    if gaps:  # idle cycles inside and between images travel with the pixels
        gapped = simulate_stream(design, project.write(), x, project.output_dir, gap=3,
                                 image_gap=2)
        assert np.array_equal(gapped.outputs, expected)
        t = gapped.timing
        assert t.item_cycles.tolist() == design.schedule(t.pixel_cycles.tolist())
    return project


CONFIG = {
    "Model": {"Precision": "ap_fixed<10,4,AP_RND,AP_SAT>"},
    "LayerName": {
        "inp": {"Precision": {"result": IN_T}},
        "layer": {"Precision": {"weight": "ap_fixed<6,2,AP_RND>", "bias": "ap_fixed<6,2>"}},
    },
}


# ------------------------------------------------------------ convolutions
@pytest.mark.parametrize(("in_shape", "size", "filters", "strides", "pads", "style"), [
    ((6, 7, 2), (3, 3), 3, (1, 1), (0, 0, 0, 0), "lut"),  # valid, stride 1
    ((6, 7, 2), (3, 3), 3, (1, 1), (0, 0, 0, 0), "dsp"),
    ((7, 8, 3), (3, 3), 2, (2, 2), (0, 1, 0, 1), "lut"),  # 'same', stride 2 (pads after only)
    ((5, 6, 1), (3, 3), 4, (1, 1), (1, 1, 1, 1), "dsp"),  # 'same', stride 1
], ids=["valid-s1-lut", "valid-s1-dsp", "same-s2-lut", "same-s1-dsp"])
@sim
def test_conv2d(in_shape, size, filters, strides, pads, style: str, tmp_path: Path) -> None:
    g = single_layer("Conv2D", in_shape, size=size, filters=filters, strides=strides,
                     pads=pads, seed=sum(in_shape))
    check(convert(g, CONFIG), tmp_path, style, gaps=style == "lut")


@sim
def test_conv2d_fused_relu_and_rounded_products(tmp_path: Path) -> None:
    """A fused relu (wide result before fusion), then a stride-(2, 1) convolution with
    a narrow wrapping accumulator that rounds the products."""
    rng = np.random.default_rng(5)
    g = Graph(name="fused")
    g.add_node(Node("inp", "Input", [], attrs={"shape": (6, 5, 2)}), (6, 5, 2))
    _add(g, Node("c0", "Conv2D", ["inp"], weights={"kernel": rng.normal(size=(2, 2, 2, 3)),
                                                   "bias": rng.normal(size=3)}))
    _add(g, Node("relu", "Activation", ["c0"], attrs={"function": "relu"}))
    _add(g, Node("c1", "Conv2D", ["relu"], attrs={"strides": (2, 1)},
                 weights={"kernel": rng.normal(size=(3, 2, 3, 2)), "bias": rng.normal(size=2)}))
    g.outputs = ["c1"]
    config = {
        "Model": {"Precision": "ap_fixed<10,4,AP_RND,AP_SAT>"},
        "LayerName": {
            "inp": {"Precision": {"result": IN_T}},
            "c0": {"Precision": {"weight": "ap_fixed<6,2>", "result": "ap_fixed<24,12>"}},
            "relu": {"Precision": {"result": "ap_ufixed<7,3,AP_RND_CONV,AP_SAT>"}},
            "c1": {"Precision": {"weight": "ap_fixed<7,2>",
                                 "accum": "ap_fixed<9,4,AP_RND_ZERO,AP_WRAP>",
                                 "result": "ap_fixed<8,4,AP_RND_MIN_INF,AP_SAT_SYM>"}},
        },
    }
    model = convert(g, config)
    assert model.graph.node("c0").attrs.get("activation") == "relu"  # the fused path
    check(model, tmp_path, "lut", gaps=False)


@sim
def test_conv1d(tmp_path: Path) -> None:
    g = single_layer("Conv1D", (11, 3), size=(3,), filters=2, strides=(2,), pads=(1, 1),
                     seed=3)
    check(convert(g, CONFIG), tmp_path, "lut")


@sim
def test_depthwise_conv2d(tmp_path: Path) -> None:
    g = single_layer("DepthwiseConv2D", (5, 5, 2), size=(3, 3), filters=2, pads=(1, 1, 1, 1),
                     seed=4)
    check(convert(g, CONFIG), tmp_path, "dsp", gaps=False)


# ----------------------------------------------------------------- pooling
POOL_CONFIG = {
    "Model": {"Precision": "ap_fixed<10,4,AP_RND,AP_SAT>"},
    "LayerName": {
        "inp": {"Precision": {"result": IN_T}},
        # a coarse saturating result: ties of the average and saturation both happen
        "layer": {"Precision": {"result": "ap_fixed<6,3,AP_RND_CONV,AP_SAT>",
                                "scale": "ap_ufixed<8,1,AP_RND,AP_SAT>"}},
    },
}


@pytest.mark.parametrize(("op", "mode", "in_shape", "size", "strides", "pads", "style"), [
    ("Pooling2D", "max", (6, 6, 3), (2, 2), None, None, "lut"),
    ("Pooling2D", "max", (5, 7, 2), (3, 2), (1, 2), (1, 1, 1, 0), "lut"),  # overlapping, padded
    ("Pooling2D", "avg", (5, 5, 2), (2, 2), None, (0, 1, 0, 1), "dsp"),  # 'same': 1/2, 1/1
    ("Pooling2D", "avg", (5, 6, 2), (3, 3), (2, 2), (1, 1, 1, 1), "lut"),  # 1/9 is inexact
    ("Pooling1D", "avg", (9, 2), (3,), (2,), (1, 1), "lut"),
], ids=["max2", "max-padded", "avg-same", "avg3-padded", "avg1d"])
@sim
def test_pooling(op, mode, in_shape, size, strides, pads, style: str, tmp_path: Path) -> None:
    g = single_layer(op, in_shape, size=size, strides=strides, pads=pads, mode=mode)
    check(convert(g, POOL_CONFIG), tmp_path, style, gaps=pads is not None)


# --------------------------------------------------------------- a small CNN
def small_cnn(seed: int = 0) -> Graph:
    """Conv 3x3 (relu as a separate layer) -> MaxPool 2 -> Conv 3x3 'same' -> AvgPool 2
    -> Flatten -> Dense -> Activation."""
    rng = np.random.default_rng(seed)
    g = Graph(name="cnn")
    g.add_node(Node("inp", "Input", [], attrs={"shape": (10, 10, 2)}), (10, 10, 2))
    _add(g, Node("c1", "Conv2D", ["inp"], weights={"kernel": rng.normal(size=(3, 3, 2, 3)),
                                                   "bias": rng.normal(size=3)}))
    _add(g, Node("r1", "Activation", ["c1"], attrs={"function": "relu"}))
    _add(g, Node("p1", "Pooling2D", ["r1"], attrs={"mode": "max", "pool_size": (2, 2)}))
    _add(g, Node("c2", "Conv2D", ["p1"], attrs={"pads": (1, 1, 1, 1)},
                 weights={"kernel": rng.normal(size=(3, 3, 3, 4)) * 0.5,
                          "bias": rng.normal(size=4)}))
    _add(g, Node("p2", "Pooling2D", ["c2"], attrs={"mode": "avg", "pool_size": (2, 2)}))
    _add(g, Node("flat", "Flatten", ["p2"]))
    _add(g, Node("fc", "Dense", ["flat"], weights={"kernel": rng.normal(size=(16, 5)) * 0.5,
                                                   "bias": rng.normal(size=5)}))
    _add(g, Node("out", "Activation", ["fc"], attrs={"function": "leaky_relu", "alpha": 0.25}))
    g.outputs = ["out"]
    return g


CNN_CONFIG = {
    "Model": {"Precision": "ap_fixed<10,4,AP_RND,AP_SAT>"},
    "LayerName": {
        "inp": {"Precision": {"result": IN_T}},
        "c1": {"Precision": {"weight": "ap_fixed<6,2>", "result": "ap_fixed<9,4,AP_RND,AP_SAT>"}},
        "r1": {"Precision": {"result": "ap_ufixed<7,3,AP_RND_CONV,AP_SAT>"}},
        "c2": {"Precision": {"weight": "ap_fixed<5,1>", "result": "ap_fixed<8,3,AP_RND,AP_SAT>"}},
        "fc": {"Precision": {"weight": "ap_fixed<6,1>", "result": "ap_fixed<10,4,AP_RND,AP_SAT>"}},
        "out": {"Precision": {"result": "ap_fixed<8,3,AP_RND_INF,AP_SAT>"}},
    },
}


@pytest.fixture(scope="module")
def cnn_model():
    return convert(small_cnn(), CNN_CONFIG)


@pytest.mark.parametrize("style", ["lut", "dsp"])
@sim
def test_small_cnn(cnn_model, style: str, tmp_path: Path) -> None:
    project = check(cnn_model, tmp_path, style, batch=8, seed=2)
    d = project.design
    assert d.items_per_image == 1 and d.item_shape == (5,)
    assert d.latency == d.latency_first  # one vector per image
    manifest = d.manifest()
    assert manifest["stream"]["cycles_per_image"] == 100
    assert [s["kind"] for s in manifest["stream"]["stages"]] == [
        "window", "pixel", "window", "window", "window", "collect", "vector", "vector",
        "vector"]


@sim
def test_pipelined_cnn_registers_pool_and_cast_levels(cnn_model, tmp_path: Path) -> None:
    """adders_per_stage=1: every adder, every max-pool compare level and every cast after
    a full stage get their own stage; still bit-exact, measured latency == reported."""
    flat = RTLProject(cnn_model, tmp_path / "flat", style="lut")
    piped = RTLProject(cnn_model, tmp_path / "piped", style="lut", adders_per_stage=1)
    x = images(cnn_model, 4, 3)
    result = piped.simulate(x)
    assert np.array_equal(result.outputs, cnn_model.predict(x))
    assert result.latency == piped.latency > flat.latency
    pool = next(m for m in piped.design.layers if m.node == "p1")
    flat_pool = next(m for m in flat.design.layers if m.node == "p1")
    assert pool.latency >= flat_pool.latency + 1  # 2x2 max: two compare levels, a stage each


@sim
def test_stream_verilog_is_lint_clean(cnn_model, tmp_path: Path) -> None:
    project = RTLProject(cnn_model, tmp_path, style="lut")
    warnings = lint(project.write(), project.top, tmp_path / "lint.log")
    assert warnings == []


# ------------------------------------------------------- schedule and errors
def test_emission_schedule_of_same_padding() -> None:
    """'same' 3x3 on 4x5: outputs of the last row complete after the image, one per
    cycle (idle steps), or at the next image's first pixels; the model is exact about it."""
    g = Geometry("l", 4, 5, 1, 3, 3, 1, 1, 1, 1, 1, 1)
    assert (g.ho, g.wo, g.e0, g.tail) == (4, 5, 6, True)
    one = emission_times(g, list(range(20)))
    # slots: flat index (oy + 1) * 5 + ox + 1; the last 6 fall after the image's 20 pixels
    assert one == [(oy + 1) * 5 + ox + 1 for oy in range(4) for ox in range(5)]
    two = emission_times(g, list(range(40)))
    assert two == one + [t + 20 for t in one]
    # idle cycles before the next image: the layer steps on its own
    assert emission_times(g, [*range(20), *range(30, 50)])[:20] == one
    # a pause inside the second image: the first image's tail waits for its pixels
    got = emission_times(g, [*range(22), *range(50, 68)])
    assert got[:14] == one[:14]
    assert got[14:20] == [20, 21, 50, 51, 52, 53]


def test_unsupported_layers_raise(tmp_path: Path) -> None:
    g = single_layer("Conv2D", (6, 6, 1), size=(3, 3), filters=2, pads=(2, 2, 0, 0))
    with pytest.raises(BackendError, match=r"'layer'.*pad_top \+ pad_bottom < kernel height"):
        RTLProject(convert(g, CONFIG), tmp_path)
    g = single_layer("Conv2D", (6, 2, 1), size=(3, 3), filters=2, pads=(1, 1, 1, 1))
    with pytest.raises(BackendError, match=r"'layer'.*window is 3 pixels wide"):
        RTLProject(convert(g, CONFIG), tmp_path)
    g = single_layer("Conv2D", (6, 6, 1), size=(3, 3), filters=2)
    _add(g, Node("perm", "Permute", ["layer"], attrs={"perm": (2, 0, 1)}))
    _add(g, Node("relu", "Activation", ["perm"], attrs={"function": "relu"}))
    g.outputs = ["relu"]
    with pytest.raises(BackendError, match=r"'perm'.*Permute.*moves the channel axis"):
        RTLProject(convert(g, CONFIG), tmp_path)


# ------------------------------------------------- folded kernels (reuse factor)
def _with_reuse(config: dict, reuse: dict[str, int]) -> dict:
    config = {"Model": dict(config["Model"]),
              "LayerName": {k: dict(v) for k, v in config["LayerName"].items()}}
    for name, r in reuse.items():
        config["LayerName"].setdefault(name, {})["ReuseFactor"] = r
    return config


def check_folded(model: Any, tmp_path: Path, style: str, interval: int, *, batch: int = 5,
                 seed: int = 1, adders_per_stage: int | None = None,
                 pipeline: Any = None) -> RTLProject:
    """As ``check`` for a stream paced at ``interval`` cycles per pixel: Verilator ==
    emulator, measured == reported timing; with idle cycles inside and between images
    (image gaps around the interval: idle steps of the tails followed closely by the
    next image), and slower pacing."""
    project = RTLProject(model, tmp_path, style=style, adders_per_stage=adders_per_stage,
                         pipeline=pipeline)
    design = project.design
    assert isinstance(design, StreamDesign)
    assert design.pixel_interval == interval
    assert design.ii == project.ii == design.pixels_per_image * interval
    x = images(model, batch, seed)
    expected = model.predict(x)
    result = project.simulate(x)  # one pixel every `interval` cycles
    assert np.array_equal(result.outputs, expected)
    assert result.latency == design.latency and result.latency_first == design.latency_first
    assert result.ii == design.ii
    timing = result.timing
    assert np.all(np.diff(timing.pixel_cycles) == interval)
    assert timing.item_cycles.tolist() == design.schedule(timing.pixel_cycles.tolist())
    for gap, image_gap, pace in ((3, interval + 1, interval), (0, 2 * interval - 1, interval),
                                 (2, 1, interval + 1)):
        run = simulate_stream(design, project.write(), x, project.output_dir, gap=gap,
                              image_gap=image_gap, interval=pace)
        assert np.array_equal(run.outputs, expected), (gap, image_gap, pace)
        t = run.timing
        assert t.item_cycles.tolist() == design.schedule(t.pixel_cycles.tolist())
    with pytest.raises(BackendError, match="interval"):
        project.simulate(x[:1], interval=interval - 1)
    return project


FOLDED_CONVS = [  # op, input, kernel, filters, strides, pads, reuse factor, style
    pytest.param("Conv2D", (5, 6, 2), (3, 3), 3, (1, 1), (0, 0, 0, 0), 2, "lut",
                 id="2d-valid-r2-lut"),
    pytest.param("Conv2D", (5, 6, 2), (3, 3), 3, (1, 1), (0, 0, 0, 0), 9, "dsp",
                 id="2d-valid-r9-dsp", marks=pytest.mark.slow),
    pytest.param("Conv2D", (5, 5, 1), (3, 3), 4, (1, 1), (1, 1, 1, 1), 3, "dsp",
                 id="2d-same-r3-dsp"),
    pytest.param("Conv2D", (6, 7, 2), (3, 3), 2, (2, 2), (0, 1, 0, 1), 9, "lut",
                 id="2d-same-s2-r9-lut"),
    pytest.param("Conv1D", (9, 3), (3,), 2, (1,), (0, 0), 3, "lut", id="1d-valid-r3-lut",
                 marks=pytest.mark.slow),
    pytest.param("Conv1D", (9, 2), (3,), 3, (2,), (1, 1), 2, "dsp", id="1d-same-s2-r2-dsp"),
    pytest.param("Conv1D", (8, 2), (3,), 2, (1,), (1, 1), 9, "lut", id="1d-same-r9-lut"),
]


@pytest.mark.parametrize(("op", "in_shape", "size", "filters", "strides", "pads", "reuse",
                          "style"), FOLDED_CONVS)
@sim
def test_folded_conv(op, in_shape, size, filters, strides, pads, reuse: int, style: str,
                     tmp_path: Path) -> None:
    g = single_layer(op, in_shape, size=size, filters=filters, strides=strides, pads=pads,
                     seed=sum(in_shape) + reuse)
    project = check_folded(convert(g, _with_reuse(CONFIG, {"layer": reuse})), tmp_path, style,
                           reuse)
    kernel = project.design.stages[0].module
    assert kernel is not None and kernel.ii == reuse and kernel.valid_in
    taps = math.prod(size) * in_shape[-1]
    assert kernel.stats["multipliers"] <= math.ceil(taps * filters / reuse)


@sim
def test_folded_conv_pipelined_and_lint_clean(tmp_path: Path) -> None:
    """Registers inside the folded kernel's adder trees (``adders_per_stage``) lengthen
    its latency; the stream's timing follows; Verilator lint has nothing to say."""
    g = single_layer("Conv2D", (5, 5, 2), size=(3, 3), filters=3, pads=(1, 1, 1, 1), seed=9)
    model = convert(g, _with_reuse(CONFIG, {"layer": 4}))
    flat = RTLProject(model, tmp_path / "flat", style="lut").design
    project = check_folded(model, tmp_path / "piped", "lut", 4, adders_per_stage=1)
    assert project.design.latency > flat.latency
    assert lint(project.write(), project.top, tmp_path / "lint.log") == []


def _pixel_dense_net(seed: int = 6) -> Graph:
    """Conv1D 'same' -> per-pixel Dense -> relu -> AvgPool1D 'same' (ends on the stream)."""
    rng = np.random.default_rng(seed)
    g = Graph(name="pixnet")
    g.add_node(Node("inp", "Input", [], attrs={"shape": (8, 2)}), (8, 2))
    _add(g, Node("c0", "Conv1D", ["inp"], attrs={"pads": (1, 1)},
                 weights={"kernel": rng.normal(size=(3, 2, 3)), "bias": rng.normal(size=3)}))
    _add(g, Node("d0", "Dense", ["c0"], weights={"kernel": rng.normal(size=(3, 4)),
                                                  "bias": rng.normal(size=4)}))
    _add(g, Node("r0", "Activation", ["d0"], attrs={"function": "relu"}))
    _add(g, Node("p0", "Pooling1D", ["r0"], attrs={"mode": "avg", "pool_size": (2,),
                                                   "strides": (1,), "pads": (0, 1)}))
    g.outputs = ["p0"]
    return g


PIXNET_CONFIG = {
    "Model": {"Precision": "ap_fixed<10,4,AP_RND,AP_SAT>"},
    "LayerName": {
        "inp": {"Precision": {"result": IN_T}},
        "c0": {"Precision": {"weight": "ap_fixed<6,2>"}},
        "d0": {"Precision": {"weight": "ap_fixed<6,1>", "result": "ap_fixed<9,4,AP_RND,AP_SAT>"}},
        "r0": {"Precision": {"result": "ap_ufixed<7,3,AP_RND_CONV,AP_SAT>"}},
        "p0": {"Precision": {"result": "ap_fixed<7,3,AP_RND,AP_SAT>",
                             "scale": "ap_ufixed<8,1,AP_RND,AP_SAT>"}},
    },
}


@sim
def test_folded_pixel_dense_sets_the_interval(tmp_path: Path) -> None:
    """A per-pixel Dense folds too; the stream's interval is the largest reuse factor
    (3, the Dense's), the convolution (R = 2) takes a window every 3 cycles."""
    model = convert(_pixel_dense_net(), _with_reuse(PIXNET_CONFIG, {"c0": 2, "d0": 3}))
    project = check_folded(model, tmp_path, "lut", 3)
    stages = {s["name"]: s for s in project.design.manifest()["stream"]["stages"]}
    assert (stages["c0"]["reuse_factor"], stages["d0"]["reuse_factor"]) == (2, 3)
    assert stages["p0"]["reuse_factor"] == 1
    assert project.design.manifest()["stream"]["pixel_interval"] == 3


@pytest.mark.parametrize(("style", "per_stage"), [("lut", None), ("dsp", None), ("dsp", 3),
                                                  ("dsp", "ecp5")])
@sim
def test_folded_small_cnn(style: str, per_stage: int | str | None, tmp_path: Path) -> None:
    """conv (R = 3) -> relu -> max pool -> conv 'same' (R = 9) -> avg pool -> flatten ->
    dense (R = 4, folded once per image) -> activation: bit-exact, timing as reported
    (also with the pipelined kernels of a clock target: rotating inputs, registered
    weights and products; ``ecp5``: the multipliers are MULT18X18D cells with their own
    registers, simulated with nnfab's model of the cell)."""
    model = convert(small_cnn(), _with_reuse(CNN_CONFIG, {"c1": 3, "c2": 9, "fc": 4}))
    ecp5 = per_stage == "ecp5"
    project = check_folded(model, tmp_path, style, 9, batch=4, seed=3,
                           adders_per_stage=None if ecp5 else per_stage,
                           pipeline={"clock_period": 10.0, "family": "ecp5"} if ecp5 else None)
    cells = sum(m.text.count("  MULT18X18D #(") for m in project.design.layers)
    assert (cells > 0) == ecp5 and ("nnfab_ecp5_cells.v" in project.design.files) == ecp5
    d = project.design
    assert d.ii == 900
    reuse = {s.node: s.reuse for s in d.stages if s.kind != "collect"}
    assert reuse == {"c1": 3, "r1": 1, "p1": 1, "c2": 9, "p2": 1, "flat": 1, "fc": 4, "out": 1}
    layers = {m.node: m for m in d.layers}
    assert layers["c2"].stats["multipliers"] <= math.ceil(3 * 3 * 3 * 4 / 9)
    assert "folded by reuse factor 4" in d.files[f"{layers['fc'].module}.v"]


# ------------------------------------------------- folded kernels, no tools
def test_folded_stream_structure() -> None:
    from nnfab.backends.rtl import RtlOptions, generate

    g = single_layer("Conv2D", (5, 5, 1), size=(3, 3), filters=4, pads=(1, 1, 1, 1))
    design = generate(convert(g, _with_reuse(CONFIG, {"layer": 3})).graph, RtlOptions("lut"))
    assert isinstance(design, StreamDesign)
    assert (design.pixel_interval, design.ii) == (3, 75)
    stage = design.stages[0]
    assert stage.reuse == 3 and stage.module is not None and stage.module.latency == 3 + 2
    kernel = design.files[f"{stage.module.module}.v"]
    assert "folded by reuse factor 3" in kernel and " * " not in kernel
    wrapper = design.files[f"{stage.wrapper}.v"]
    assert ".x_valid(issue)" in wrapper and "reg  pend;" in wrapper
    top = design.files[f"{design.top}.v"]
    assert "one pixel every 3 cycles at most" in top and "folded by reuse factor 3" in top
    manifest = design.manifest()
    assert manifest["stream"]["pixel_interval"] == 3 and manifest["ii"] == 75
    # a 'valid' window has no tail: the kernel takes each window the cycle after it
    g = single_layer("Conv2D", (5, 5, 1), size=(3, 3), filters=4)
    valid = generate(convert(g, _with_reuse(CONFIG, {"layer": 3})).graph, RtlOptions("dsp"))
    wrapper = valid.files[f"{valid.stages[0].wrapper}.v"]
    assert ".x_valid(vq[0])" in wrapper and "pend" not in wrapper
    with pytest.raises(BackendError, match="one pixel every 3 cycles"):
        valid.schedule([0, 3, 5])


def test_window_times_keep_the_interval() -> None:
    """For random input timings (pixels at least P apart, pauses anywhere), every window
    goes to the kernel, at least P cycles after the previous one, before the window
    registers move on (the model raises otherwise)."""
    rng = np.random.default_rng(0)
    geometries = [Geometry("l", 4, 5, 1, 3, 3, 1, 1, 1, 1, 1, 1),
                  Geometry("l", 5, 6, 1, 3, 3, 2, 2, 1, 1, 1, 1),
                  Geometry("l", 1, 11, 1, 1, 3, 1, 2, 0, 0, 1, 1),
                  Geometry("l", 5, 5, 1, 2, 2, 1, 1, 0, 1, 0, 1),
                  Geometry("l", 6, 7, 1, 3, 3, 1, 1, 0, 0, 0, 0)]
    for g in geometries:
        for interval in (1, 2, 3, 9):
            for _ in range(30):
                n_images = int(rng.integers(1, 4))
                steps = interval + np.where(rng.random(n_images * g.pixels) < 0.2,
                                            rng.integers(0, 3 * interval + 5,
                                                         n_images * g.pixels), 0)
                times = np.cumsum(steps).tolist()
                emitted, taken = window_times(g, times, interval)
                assert len(emitted) == len(taken) == n_images * g.ho * g.wo
                assert all(b - a >= interval for a, b in itertools.pairwise(taken))
                assert all(t > e for e, t in zip(emitted, taken, strict=True))
    g = geometries[0]
    assert window_times(g, list(range(40)), 1) == (emission_times(g, list(range(40))),
                                                    [t + 1 for t in emission_times(
                                                        g, list(range(40)))])


def test_reuse_factors_a_stream_cannot_use(tmp_path: Path, caplog: Any) -> None:
    """As for folded Dense layers (``CheckReuseFactor``): a warning naming the layer and
    the value used, or a ``ConfigError`` with ``ReuseFactorPolicy: strict``."""
    from nnfab.errors import ConfigError

    g = single_layer("DepthwiseConv2D", (5, 5, 2), size=(3, 3), filters=1, pads=(1, 1, 1, 1))
    config = _with_reuse(CONFIG, {"layer": 3})
    with caplog.at_level("WARNING", logger="nnfab.backends.rtl.stream"):
        design = RTLProject(convert(g, config), tmp_path).design
    assert design.pixel_interval == 1
    assert "'layer': ReuseFactor 3: cannot fold a depthwise convolution" in caplog.text
    strict = {**config, "Model": {**config["Model"], "ReuseFactorPolicy": "strict"}}
    with pytest.raises(ConfigError, match=r"'layer'.*depthwise.*strict"):
        RTLProject(convert(g, strict), tmp_path)
    # a Dense after the Flatten folds at most over the cycles between two images
    caplog.clear()
    config = _with_reuse(CNN_CONFIG, {"fc": 50})
    with caplog.at_level("WARNING", logger="nnfab.backends.rtl.stream"):
        design = RTLProject(convert(small_cnn(), config), tmp_path).design
    assert "'fc': ReuseFactor 50: exceeds the 4 cycles between images" in caplog.text
    assert {m.node: m.ii for m in design.layers}["fc"] == 4
    strict = {**config, "Model": {**config["Model"], "ReuseFactorPolicy": "strict"}}
    with pytest.raises(ConfigError, match=r"'fc'.*exceeds"):
        RTLProject(convert(small_cnn(), strict), tmp_path)


# -------------------------------------------- per-pixel normalizations and casts
def _pixel_norm_net(per_channel_cast: bool = True, seed: int = 8) -> Graph:
    """Conv 3x3 -> relu -> BatchNormalization (after the activation: not folded) ->
    LayerNormalization over the channels -> ElementCast (per-channel types) -> pool ->
    Conv 1x1 -> Flatten -> Dense."""
    rng = np.random.default_rng(seed)
    g = Graph(name="pixel_norms")
    g.add_node(Node("inp", "Input", [], attrs={"shape": (6, 6, 2)}), (6, 6, 2))
    _add(g, Node("c1", "Conv2D", ["inp"], weights={"kernel": rng.normal(size=(3, 3, 2, 4)),
                                                   "bias": rng.normal(size=4)}))
    _add(g, Node("r1", "Activation", ["c1"], attrs={"function": "relu"}))
    _add(g, Node("bn", "BatchNormalization", ["r1"],
                 weights={"scale": rng.uniform(0.3, 1.5, 4), "bias": rng.normal(size=4)}))
    _add(g, Node("ln", "LayerNormalization", ["bn"],
                 weights={"gamma": rng.uniform(0.5, 1.5, 4), "beta": rng.normal(size=4) / 4}))
    shape = (1, 1, 4) if per_channel_cast else (4, 4, 4)
    bits = rng.integers(0, 7, size=shape)
    bits.flat[0] = 0  # a pruned channel: always 0
    _add(g, Node("q", "ElementCast", ["ln"], attrs={"rounding": "AP_RND", "overflow": "AP_SAT"},
                 weights={"keep_negative": np.ones(shape, dtype=np.int64), "bits": bits,
                          "integers": rng.integers(1, 3, size=shape)}))
    _add(g, Node("p1", "Pooling2D", ["q"], attrs={"mode": "max", "pool_size": (2, 2)}))
    _add(g, Node("c2", "Conv2D", ["p1"], weights={"kernel": rng.normal(size=(1, 1, 4, 3)),
                                                  "bias": rng.normal(size=3)}))
    _add(g, Node("flat", "Flatten", ["c2"]))
    _add(g, Node("fc", "Dense", ["flat"], weights={"kernel": rng.normal(size=(12, 3)) * 0.5,
                                                   "bias": rng.normal(size=3)}))
    g.outputs = ["fc"]
    return g


PIXEL_NORM_CONFIG = {
    "Model": {"Precision": "ap_fixed<10,4,AP_RND,AP_SAT>"},
    "LayerName": {
        "inp": {"Precision": {"result": IN_T}},
        "c1": {"Precision": {"weight": "ap_fixed<6,2>", "result": "ap_fixed<9,4,AP_RND,AP_SAT>"}},
        "bn": {"Precision": {"weight": "ap_fixed<7,1>", "bias": "ap_fixed<7,2>",
                             "result": "ap_fixed<9,4,AP_RND_CONV,AP_SAT>"}},
        "ln": {"Precision": {"result": "ap_fixed<8,3,AP_RND,AP_SAT>"}},
    },
}


@pytest.mark.parametrize("style", ["lut", "dsp"])
@sim
def test_per_pixel_batchnorm_layernorm_and_element_cast(style: str, tmp_path: Path) -> None:
    model = convert(_pixel_norm_net(), PIXEL_NORM_CONFIG)
    assert {n.op for n in model.graph.nodes} >= {"BatchNormalization", "LayerNormalization",
                                                 "ElementCast"}
    project = check(model, tmp_path, style, batch=8, gaps=style == "lut")
    stages = {s.node: s.kind for s in project.design.stages}
    assert stages["bn"] == stages["ln"] == stages["q"] == "pixel"


def test_per_element_cast_in_a_stream_is_refused(tmp_path: Path) -> None:
    model = convert(_pixel_norm_net(per_channel_cast=False), PIXEL_NORM_CONFIG)
    with pytest.raises(BackendError, match=r"'q' \(ElementCast\): weight 'bits' differs from "
                                           "pixel to pixel"):
        RTLProject(model, tmp_path)


# ------------------------------------------------ branches that meet on the stream
def _residual_net(seed: int = 9) -> Graph:
    """conv 3x3 'same' -> relu -> [conv 3x3 'same' -> add(relu)] -> [conv 1x1 | max pool
    3x3 'same' stride 1] concatenated on the channels -> pool -> Flatten -> Dense: a skip
    connection around a convolution, and two branches of different delays."""
    rng = np.random.default_rng(seed)
    g = Graph(name="residual")
    g.add_node(Node("inp", "Input", [], attrs={"shape": (6, 7, 2)}), (6, 7, 2))
    _add(g, Node("c1", "Conv2D", ["inp"], attrs={"pads": (1, 1, 1, 1)},
                 weights={"kernel": rng.normal(size=(3, 3, 2, 3)), "bias": rng.normal(size=3)}))
    _add(g, Node("r1", "Activation", ["c1"], attrs={"function": "relu"}))
    _add(g, Node("c2", "Conv2D", ["r1"], attrs={"pads": (1, 1, 1, 1)},
                 weights={"kernel": rng.normal(size=(3, 3, 3, 3)) * 0.5,
                          "bias": rng.normal(size=3)}))
    _add(g, Node("add", "Merge", ["c2", "r1"], attrs={"mode": "add"}))
    _add(g, Node("c3", "Conv2D", ["add"], weights={"kernel": rng.normal(size=(1, 1, 3, 2)),
                                                   "bias": rng.normal(size=2)}))
    _add(g, Node("mp", "Pooling2D", ["add"], attrs={"mode": "max", "pool_size": (3, 3),
                                                    "strides": (1, 1), "pads": (1, 1, 1, 1)}))
    _add(g, Node("cat", "Concatenate", ["c3", "mp"], attrs={"axis": 2}))
    _add(g, Node("p", "Pooling2D", ["cat"], attrs={"mode": "avg", "pool_size": (2, 2)}))
    _add(g, Node("flat", "Flatten", ["p"]))
    _add(g, Node("fc", "Dense", ["flat"], weights={"kernel": rng.normal(size=(45, 3)) * 0.3,
                                                   "bias": rng.normal(size=3)}))
    g.outputs = ["fc"]
    return g


RESIDUAL_CONFIG = {
    "Model": {"Precision": "ap_fixed<10,4,AP_RND,AP_SAT>"},
    "LayerName": {
        "inp": {"Precision": {"result": IN_T}},
        "c1": {"Precision": {"weight": "ap_fixed<6,2>", "result": "ap_fixed<9,4,AP_RND,AP_SAT>"}},
        "r1": {"Precision": {"result": "ap_ufixed<7,3,AP_RND_CONV,AP_SAT>"}},
        "add": {"Precision": {"result": "ap_fixed<9,4,AP_RND,AP_SAT>"}},
        "cat": {"Precision": {"result": "ap_fixed<8,3,AP_RND_CONV,AP_SAT>"}},
    },
}


@pytest.mark.parametrize("style", ["lut", "dsp"])
@sim
def test_branches_join_on_the_stream(style: str, tmp_path: Path) -> None:
    model = convert(_residual_net(), RESIDUAL_CONFIG)
    project = check(model, tmp_path, style, batch=6)  # also with idle cycles and image gaps
    kinds = [(s.node, s.kind) for s in project.design.stages]
    assert ("add", "join") in kinds and ("cat", "join") in kinds
    joins = [s for s in project.design.stages if s.kind == "join"]
    assert all("mem1 [0:" in s.wrapper_text for s in joins)
    if style == "lut":
        assert lint(project.write(), project.top, tmp_path / "lint.log") == []


def test_joins_that_a_stream_cannot_take_are_named(tmp_path: Path) -> None:
    g = single_layer("Conv2D", (6, 6, 1), size=(3, 3), filters=2, pads=(1, 1, 1, 1))
    _add(g, Node("cat", "Concatenate", ["layer", "layer"], attrs={"axis": 1}))
    g.outputs = ["cat"]
    with pytest.raises(BackendError, match=r"'cat' \(Concatenate\): axis 1; a pixel stream "
                                           "concatenates on the channel axis only"):
        RTLProject(convert(g, CONFIG), tmp_path)
    g = single_layer("Conv2D", (6, 6, 1), size=(3, 3), filters=2, pads=(1, 1, 1, 1))
    _add(g, Node("flat", "Flatten", ["layer"]))
    _add(g, Node("twice", "Merge", ["flat", "flat"], attrs={"mode": "add"}))
    g.outputs = ["twice"]
    with pytest.raises(BackendError, match=r"'twice'.*branches must join on the pixel stream"):
        RTLProject(convert(g, CONFIG), tmp_path)


@sim
def test_branches_join_on_a_folded_stream(tmp_path: Path) -> None:
    """The residual network with its inner convolution folded by 3: pixels every 3 cycles,
    the joins' FIFOs sized for that pacing, slower pacing and gaps."""
    model = convert(_residual_net(), _with_reuse(RESIDUAL_CONFIG, {"c2": 3}))
    check_folded(model, tmp_path, "dsp", 3, batch=4)
