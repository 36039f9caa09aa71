"""UpSampling1D/2D (nearest) inside Verilog pixel streams: Verilator == emulator bit for
bit, the measured cycles of every output == the schedule predicted at generation time
(images back to back, idle cycles inside and between images, slower pacing).

Expected values come from the emulator (``model.predict``), never from the RTL.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rtl_helpers import convert
from stream_nets import CONFIG, Net, check_stream, images, sim

from nnfab.backends.rtl import RTLProject
from nnfab.backends.rtl.upsample_stream import Upsampling, buffer_depth, upsample_times
from nnfab.errors import BackendError
from nnfab.ir import Graph
from nnfab.tools.verilator import lint


def check(model: Any, tmp_path: Path, style: str, interval: int, *, batch: int = 5,
          seed: int = 1, gaps: bool = True) -> RTLProject:
    """``check_stream``, with the whole-image interval checks."""
    return check_stream(model, tmp_path, style, interval, batch=batch, seed=seed, gaps=gaps,
                        whole_image_ii=True)


# ------------------------------------------------------------- the schedule model
def test_upsample_times_repeat_pixels_and_rows() -> None:
    """2x2 on a 2x3 image, pixels every 4 cycles: output row 0 as the pixels come
    (latency 2, one per cycle), row 1 replayed from the buffer right after."""
    u = Upsampling("up", "UpSampling2D", 2, 3, 1, 2, 2)
    assert [u.source(k)[0] for k in range(12)] == [0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2]
    out, need = upsample_times(u, [0, 4, 8, 12, 16, 20], 1)
    assert out[:12] == [2, 3, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17]
    assert out[12:] == [18, 19, 20, 21, 22, 23] + [24 + k for k in range(6)]
    assert need == 4 and buffer_depth(need) == 8  # row 0 while row 1 begins to arrive
    _, need = upsample_times(u, list(range(0, 24 * 6, 24)), 1)
    assert need == 3  # slow input: one row at a time
    # emissions at least P apart with folded kernels downstream
    out, _ = upsample_times(u, [0, 4, 8, 12, 16, 20], 3)
    assert all(b - a >= 3 for a, b in itertools.pairwise(out))


def test_a_timing_that_overflows_the_buffer_names_the_layer() -> None:
    u = Upsampling("up", "UpSampling1D", 1, 8, 2, 1, 4)
    with pytest.raises(BackendError, match=r"'up' \(UpSampling1D\).*needs 3 buffered pixels"):
        upsample_times(u, list(range(8)), 1, depth=2)


# ------------------------------------------------------------ 2-D, between convolutions
def conv_up_conv_dense() -> Graph:
    """Conv 3x3 'same' -> UpSampling2D (2, 2) -> Conv 3x3 'valid' -> Flatten -> Dense."""
    n = Net("up2d", (4, 4, 2), seed=3)
    n.add("c1", "Conv2D", size=(3, 3), filters=3, pads=(1, 1, 1, 1))
    n.add("up", "UpSampling2D", size=(2, 2))
    n.add("c2", "Conv2D", size=(3, 3), filters=2)
    n.add("flat", "Flatten")
    n.add("fc", "Dense", units=4)
    return n.graph()


@pytest.mark.parametrize("style", ["lut", "dsp"])
@sim
def test_upsampling2d_between_convolutions(style: str, tmp_path: Path) -> None:
    """16 pixels in, 64 upsampled: the input comes every 4 cycles, 64 cycles per image."""
    model = convert(conv_up_conv_dense(), CONFIG)
    project = check(model, tmp_path, style, 4, gaps=style == "lut")
    d = project.design
    assert [(s.node, s.kind) for s in d.stages] == [
        ("c1", "window"), ("up", "upsample"), ("c2", "window"), ("flat", "collect"),
        ("flat", "vector"), ("fc", "vector")]
    stage = {s["name"]: s for s in d.manifest()["stream"]["stages"]}["up"]
    assert stage["size"] == [2, 2] and stage["buffer_pixels"] == 16
    if style == "lut":
        assert lint(project.write(), project.top, tmp_path / "lint.log") == []


@pytest.mark.parametrize("size", [(1, 3), (2, 1)], ids=["1x3", "2x1"])
@sim
def test_non_square_factors_end_on_the_stream(size: tuple[int, int], tmp_path: Path) -> None:
    """Conv 'valid' -> UpSampling2D -> relu -> Conv 1x1: output pixels, raster order."""
    n = Net("upns", (5, 4, 1), seed=4)
    n.add("c1", "Conv2D", size=(2, 2), filters=2)
    n.add("up", "UpSampling2D", size=size)
    n.add("relu", "Activation", function="relu")
    n.add("c2", "Conv2D", size=(1, 1), filters=3)
    model = convert(n.graph(), CONFIG)
    # 4x3 = 12 pixels upsampled by 3 or 2 over 20 input pixels: pace 2
    project = check(model, tmp_path, "lut", 2)
    assert project.design.items_per_image == 12 * size[0] * size[1]


# ---------------------------------------------------------------------------- 1-D
@sim
def test_upsampling1d(tmp_path: Path) -> None:
    """Conv1D 'same' -> UpSampling1D 3 -> Conv1D 'valid' stride 2 -> Flatten -> Dense."""
    n = Net("up1d", (6, 2), seed=5)
    n.add("c1", "Conv1D", size=(3,), filters=3, pads=(1, 1))
    n.add("up", "UpSampling1D", size=(3,))
    n.add("c2", "Conv1D", size=(3,), filters=2, strides=(2,))
    n.add("flat", "Flatten")
    n.add("fc", "Dense", units=3)
    project = check(convert(n.graph(), CONFIG), tmp_path, "dsp", 3, batch=6)
    up = next(s for s in project.design.stages if s.kind == "upsample")
    assert up.depth <= 8  # no row to repeat: only the pixels still being repeated


# ------------------------------------------------------- autoencoder, U-Net skip, casts
@sim
def test_pool_then_upsample_keeps_one_pixel_per_cycle(tmp_path: Path) -> None:
    """Conv -> MaxPool 2 -> Conv -> UpSampling2D 2 -> Conv (an autoencoder): the map
    never outgrows the input, so the stream keeps one pixel per cycle."""
    n = Net("ae", (8, 8, 1), seed=6)
    n.add("c1", "Conv2D", size=(3, 3), filters=2, pads=(1, 1, 1, 1))
    n.add("p1", "Pooling2D", mode="max", pool_size=(2, 2))
    n.add("c2", "Conv2D", size=(3, 3), filters=2, pads=(1, 1, 1, 1))
    n.add("up", "UpSampling2D", size=(2, 2))
    n.add("c3", "Conv2D", size=(3, 3), filters=1, pads=(1, 1, 1, 1))
    check(convert(n.graph(), CONFIG), tmp_path, "lut", 1, batch=4)


@sim
def test_unet_skip_concatenates_upsampled_and_full_resolution(tmp_path: Path) -> None:
    """c1 -> pool -> c2 -> up, concatenated with c1 (a skip at full resolution): the
    join's FIFO holds the skip branch while the upsampler catches up."""
    n = Net("unet", (6, 6, 1), seed=7)
    c1 = n.add("c1", "Conv2D", size=(3, 3), filters=2, pads=(1, 1, 1, 1))
    n.add("p1", "Pooling2D", mode="avg", pool_size=(2, 2))
    n.add("c2", "Conv2D", size=(3, 3), filters=2, pads=(1, 1, 1, 1))
    up = n.add("up", "UpSampling2D", size=(2, 2))
    n.add("cat", "Concatenate", [up, c1], axis=2)
    n.add("c3", "Conv2D", size=(3, 3), filters=2)
    n.add("flat", "Flatten")
    n.add("fc", "Dense", units=3)
    config = {**CONFIG, "LayerName": {**CONFIG["LayerName"],
                                      "p1": {"Precision": {"scale": "ap_ufixed<8,0,AP_RND>"}}}}
    project = check(convert(n.graph(), config), tmp_path, "dsp", 1, batch=4)
    assert ("cat", "join") in [(s.node, s.kind) for s in project.design.stages]


@sim
def test_upsampling_first_with_a_result_cast(tmp_path: Path) -> None:
    """Input -> UpSampling2D (2, 2) with a narrower result type (a per-pixel cast after
    the buffer) -> Conv 'valid' -> Flatten -> Dense."""
    n = Net("upfirst", (3, 3, 2), seed=8)
    n.add("up", "UpSampling2D", size=(2, 2))
    n.add("c1", "Conv2D", size=(3, 3), filters=2)
    n.add("flat", "Flatten")
    n.add("fc", "Dense", units=2)
    config = {**CONFIG, "LayerName": {
        **CONFIG["LayerName"], "up": {"Precision": {"result": "ap_fixed<6,2,AP_RND,AP_SAT>"}}}}
    model = convert(n.graph(), config)
    project = check(model, tmp_path, "lut", 4, batch=4)
    kinds = [(s.node, s.kind) for s in project.design.stages]
    assert kinds[:2] == [("up", "upsample"), ("up", "pixel")]
    model.predict(images(model, 4, 1))
    assert model.overflow_report()["up"]["result"] > 0  # the cast saturates


@sim
def test_folded_convolution_after_upsampling(tmp_path: Path) -> None:
    """Conv2D ReuseFactor 2 after the upsampling: the upsampler emits every 2 cycles at
    most, the input comes every 2 * 4 cycles."""
    config = {**CONFIG, "LayerName": {**CONFIG["LayerName"], "c2": {"ReuseFactor": 2}}}
    model = convert(conv_up_conv_dense(), config)
    project = check(model, tmp_path, "dsp", 8, batch=3)
    up = next(s for s in project.design.stages if s.kind == "upsample")
    assert "cd <= " in up.wrapper_text


# ------------------------------------------------------------------ refused cases
def test_permute_in_a_stream_is_refused_by_name(tmp_path: Path) -> None:
    n = Net("perm", (4, 4, 1))
    n.add("c1", "Conv2D", size=(3, 3), filters=2)
    n.add("perm", "Permute", perm=(2, 0, 1))  # (1, 0, 2): test_stream_permute.py
    n.add("relu", "Activation", function="relu")
    with pytest.raises(BackendError, match=r"'perm'.*Permute.*not supported inside a "
                                           r"streamed RTL design.*a vector design"):
        RTLProject(convert(n.graph(), CONFIG), tmp_path)


# ------------------------------------------------------------------------ Keras
@sim
def test_keras_autoencoder_with_upsampling2d(tmp_path: Path) -> None:
    """A Keras Conv2D -> MaxPooling2D -> Conv2D -> UpSampling2D((2, 2)) -> Conv2D model."""
    keras = pytest.importorskip("keras")
    import nnfab

    inp = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="enc")(inp)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(2, 3, padding="same", name="mid")(x)
    x = keras.layers.UpSampling2D((2, 2), name="up")(x)
    x = keras.layers.Conv2D(1, 3, padding="same", name="dec")(x)
    km = keras.Model(inp, x)
    km.set_weights([w * 0.5 for w in km.get_weights()])
    model = nnfab.convert_from_keras_model(km, {"Model": {"Precision": "ap_fixed<10,4,AP_RND"
                                                                       ",AP_SAT>"}})
    project = RTLProject(model, tmp_path)
    assert ("up", "upsample") in [(s.node, s.kind) for s in project.design.stages]
    x = np.random.default_rng(5).normal(0, 2, (4, 6, 6, 1))
    result = project.simulate(x)
    assert np.array_equal(result.outputs, model.predict(x))
    assert result.latency == project.latency
    t = result.timing
    assert t.item_cycles.tolist() == project.design.schedule(t.pixel_cycles.tolist())
