"""Permute inside Verilog pixel streams: absorbed at the stream's end (any perm), a
height / width transpose between streamed layers (perm (1, 0, 2)), refusals by name.
Verilator == emulator bit for bit; the measured cycle of every output == the schedule
predicted at generation time (back to back, idle cycles inside and between images).

Expected values come from the emulator (``model.predict``), never from the RTL.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rtl_helpers import convert
from stream_nets import CONFIG, Net, check_stream, sim

from nnfab.backends.rtl import RTLProject
from nnfab.backends.rtl.permute_stream import Transpose, transpose_times
from nnfab.backends.rtl.upsample_stream import buffer_depth
from nnfab.errors import BackendError
from nnfab.ir import Graph
from nnfab.tools.verilator import lint


def check(model: Any, tmp_path: Path, style: str, interval: int = 1, *, batch: int = 4,
          gaps: bool = True) -> RTLProject:
    """``check_stream`` (7 idle cycles between images in its second run)."""
    return check_stream(model, tmp_path, style, interval, batch=batch, gaps=gaps, image_gap=7)


# ------------------------------------------------------------- the schedule model
def test_transpose_times_and_sources() -> None:
    """A 2x3 image: output (y, x) reads input (x, y); back to back the output runs
    (H - 1) * (W - 1) = 2 pixels behind, one per cycle."""
    tr = Transpose("perm", 2, 3, 1)
    assert [tr.source(k) for k in range(8)] == [0, 3, 1, 4, 2, 5, 6, 9]
    out, need = transpose_times(tr, list(range(12)), 1)
    # written at +1, read at +2; from output 1 on (source 3) 2 pixels behind
    assert out == [2] + [k + 2 + 2 for k in range(1, 12)]
    assert need <= 2 * tr.pixels and buffer_depth(need) <= 16
    out, _ = transpose_times(tr, list(range(0, 36, 3)), 2)
    assert all(b - a >= 2 for a, b in itertools.pairwise(out))
    with pytest.raises(BackendError, match=r"'perm' \(Permute\).*buffered pixels"):
        transpose_times(tr, list(range(12)), 1, depth=2)


# ------------------------------------------------- transpose between streamed layers
def conv_perm_conv(shape: tuple[int, int, int] = (5, 3, 2)) -> Graph:
    """Conv 2x2 'valid' -> Permute (1, 0, 2) -> Conv 2x2 'same'-ish -> Flatten -> Dense
    on a non-square image (the transposed map is W x H)."""
    n = Net("tr2d", shape, seed=3)
    n.add("c1", "Conv2D", size=(2, 2), filters=3)
    n.add("perm", "Permute", perm=(1, 0, 2))
    n.add("c2", "Conv2D", size=(2, 3), filters=2, pads=(0, 1, 1, 1))
    n.add("flat", "Flatten")
    n.add("fc", "Dense", units=4)
    return n.graph()


@pytest.mark.parametrize("style", ["lut", "dsp"])
@sim
def test_transpose_between_convolutions(style: str, tmp_path: Path) -> None:
    """5x3 in, 4x2 after c1, 2x4 transposed: one pixel per cycle kept."""
    project = check(convert(conv_perm_conv(), CONFIG), tmp_path, style, gaps=style == "lut")
    d = project.design
    assert [(s.node, s.kind) for s in d.stages] == [
        ("c1", "window"), ("perm", "transpose"), ("c2", "window"), ("flat", "collect"),
        ("flat", "vector"), ("fc", "vector")]
    stage = {s["name"]: s for s in d.manifest()["stream"]["stages"]}["perm"]
    assert stage["buffer_pixels"] <= 32
    if style == "lut":
        assert lint(project.write(), project.top, tmp_path / "lint.log") == []


@sim
def test_transpose_ends_the_stream_with_a_result_cast(tmp_path: Path) -> None:
    """Conv 'same' -> Permute (1, 0, 2) with a narrower result type (a per-pixel cast
    after the buffer): output pixels of the W x H map, raster order."""
    n = Net("trend", (3, 4, 1), seed=4)
    n.add("c1", "Conv2D", size=(3, 3), filters=2, pads=(1, 1, 1, 1))
    n.add("perm", "Permute", perm=(1, 0, 2))
    config = {**CONFIG, "LayerName": {
        **CONFIG["LayerName"], "perm": {"Precision": {"result": "ap_fixed<6,2,AP_RND,AP_SAT>"}}}}
    project = check(convert(n.graph(), config), tmp_path, "lut")
    d = project.design
    assert [(s.node, s.kind) for s in d.stages][-2:] == [("perm", "transpose"),
                                                         ("perm", "pixel")]
    assert d.items_per_image == 12 and d.item_shape == (2,)


@sim
def test_transpose_with_a_folded_convolution(tmp_path: Path) -> None:
    """c2 with ReuseFactor 2: pixels every 2 cycles, the transposer emits 2 apart."""
    config = {**CONFIG, "LayerName": {**CONFIG["LayerName"], "c2": {"ReuseFactor": 2}}}
    project = check(convert(conv_perm_conv((4, 5, 1)), config), tmp_path, "dsp", 2)
    tr = next(s for s in project.design.stages if s.kind == "transpose")
    assert "cd <= " in tr.wrapper_text


@sim
def test_upsampling_then_transpose(tmp_path: Path) -> None:
    """Conv -> UpSampling2D (2, 2) -> Permute (1, 0, 2) -> Conv -> Flatten: the
    transposer takes the upsampler's bursts (input paced every 2 cycles)."""
    n = Net("uptr", (4, 3, 1), seed=8)
    n.add("c1", "Conv2D", size=(2, 2), filters=2)
    n.add("up", "UpSampling2D", size=(2, 2))
    n.add("perm", "Permute", perm=(1, 0, 2))
    n.add("c2", "Conv2D", size=(3, 3), filters=2)
    n.add("flat", "Flatten")
    check(convert(n.graph(), CONFIG), tmp_path, "lut", 2, batch=3)


@sim
def test_two_transposes_with_a_folded_convolution(tmp_path: Path) -> None:
    """Conv -> Permute -> Conv (ReuseFactor 3) -> Permute -> Conv 2x2 on 6x5: back in
    the input's orientation, 5x4 output pixels; input pixels every 3 cycles."""
    n = Net("tr2", (6, 5, 1), seed=9)
    n.add("c1", "Conv2D", size=(3, 3), filters=2, pads=(1, 1, 1, 1))
    n.add("perm", "Permute", perm=(1, 0, 2))
    n.add("c2", "Conv2D", size=(3, 3), filters=2, pads=(1, 1, 1, 1))
    n.add("perm2", "Permute", perm=(1, 0, 2))
    n.add("c3", "Conv2D", size=(2, 2), filters=1)
    config = {**CONFIG, "LayerName": {**CONFIG["LayerName"], "c2": {"ReuseFactor": 3}}}
    project = check(convert(n.graph(), config), tmp_path, "dsp", 3, batch=3, gaps=False)
    assert project.design.items_per_image == 5 * 4


# ------------------------------------------------ absorbed at the end of the stream
@pytest.mark.parametrize("perm", [(1, 0, 2), (2, 0, 1)], ids=["hw", "channels_first"])
@pytest.mark.parametrize("style", ["lut", "dsp"])
@sim
def test_permute_before_flatten_is_absorbed(perm: tuple[int, ...], style: str,
                                            tmp_path: Path) -> None:
    """Conv -> Permute -> Flatten -> Dense: the collected vector is reordered (no buffer)."""
    n = Net("absorb", (4, 3, 2), seed=5)
    n.add("c1", "Conv2D", size=(2, 2), filters=3)
    n.add("perm", "Permute", perm=perm)
    n.add("flat", "Flatten")
    n.add("fc", "Dense", units=3)
    project = check(convert(n.graph(), CONFIG), tmp_path, style, gaps=style == "lut")
    assert [(s.node, s.kind) for s in project.design.stages] == [
        ("c1", "window"), ("perm", "collect"), ("perm", "vector"), ("flat", "vector"),
        ("fc", "vector")]


@sim
def test_permute_as_the_last_layer_gives_one_vector(tmp_path: Path) -> None:
    """Conv -> Permute (2, 0, 1) (channels first) as the output: one vector per image."""
    n = Net("last", (3, 4, 1), seed=6)
    n.add("c1", "Conv2D", size=(2, 2), filters=2)
    n.add("perm", "Permute", perm=(2, 0, 1))
    project = check(convert(n.graph(), CONFIG), tmp_path, "lut")
    assert project.design.items_per_image == 1
    assert project.design.item_shape == (2, 2, 3)


@sim
def test_1d_permute_before_flatten(tmp_path: Path) -> None:
    """Conv1D -> Permute (1, 0) (steps and channels swapped) -> Flatten -> Dense."""
    n = Net("p1d", (6, 2), seed=7)
    n.add("c1", "Conv1D", size=(3,), filters=3, pads=(1, 1))
    n.add("perm", "Permute", perm=(1, 0))
    n.add("flat", "Flatten")
    n.add("fc", "Dense", units=2)
    check(convert(n.graph(), CONFIG), tmp_path, "dsp", batch=5)


# ------------------------------------------------------------------ refused cases
def test_1d_permute_inside_the_stream_is_refused_by_name(tmp_path: Path) -> None:
    n = Net("p1dbad", (6, 2))
    n.add("c1", "Conv1D", size=(3,), filters=3)
    n.add("perm", "Permute", perm=(1, 0))
    n.add("c2", "Conv1D", size=(1,), filters=2)
    with pytest.raises(BackendError, match=r"layer 'perm': op 'Permute' with perm \(1, 0\) "
                                           r".*moves the channel axis.*perm \(1, 0, 2\)"):
        RTLProject(convert(n.graph(), CONFIG), tmp_path)


def test_channel_moving_permute_before_a_convolution_is_refused(tmp_path: Path) -> None:
    n = Net("pbad", (4, 4, 2))
    n.add("c1", "Conv2D", size=(3, 3), filters=2)
    n.add("perm", "Permute", perm=(0, 2, 1))
    n.add("relu", "Activation", function="relu")
    n.add("flat", "Flatten")
    with pytest.raises(BackendError, match=r"'perm'.*\(0, 2, 1\).*not supported inside a "
                                           r"streamed RTL design.*last layer or right before "
                                           r"a Flatten"):
        RTLProject(convert(n.graph(), CONFIG), tmp_path)


# ------------------------------------------------------------------------ Keras
@sim
def test_keras_permute_2_1_3_between_convolutions(tmp_path: Path) -> None:
    """A Keras Conv2D -> Permute((2, 1, 3)) -> Conv2D -> Flatten -> Dense on 5x3."""
    keras = pytest.importorskip("keras")
    import nnfab

    inp = keras.Input((5, 3, 1))
    x = keras.layers.Conv2D(2, 2, activation="relu", name="c1")(inp)
    x = keras.layers.Permute((2, 1, 3), name="perm")(x)
    x = keras.layers.Conv2D(2, (1, 2), name="c2")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(3, name="fc")(x)
    km = keras.Model(inp, x)
    km.set_weights([w * 0.5 for w in km.get_weights()])
    model = nnfab.convert_from_keras_model(km, {"Model": {"Precision": "ap_fixed<10,4,AP_RND"
                                                                       ",AP_SAT>"}})
    project = RTLProject(model, tmp_path)
    assert ("perm", "transpose") in [(s.node, s.kind) for s in project.design.stages]
    x = np.random.default_rng(5).normal(0, 2, (4, 5, 3, 1))
    result = project.simulate(x)
    assert np.array_equal(result.outputs, model.predict(x))
    assert result.latency == project.latency
    t = result.timing
    assert t.item_cycles.tolist() == project.design.schedule(t.pixel_cycles.tolist())
