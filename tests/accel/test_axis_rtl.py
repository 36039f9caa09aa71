"""The Verilog AXI4-Stream wrapper under Verilator == the emulator, bit for bit.

Expected outputs come from the emulator (``model.predict``); the bytes on the bus are
packed and unpacked by the driver's ``pack_lanes`` / ``unpack_lanes`` (the one
implementation of docs/axi_stream.md). Random TVALID gaps and TREADY stalls must not
lose, repeat or reorder a sample; with no stalls a wide enough bus carries one sample
per cycle.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "backends" / "rtl"))

from rtl_helpers import convert, mlp_graph, needs_verilator, sample_inputs
from test_rtl_stream import CNN_CONFIG, CONFIG, single_layer, small_cnn

from nnfab.accel.axis_rtl import AxisRtlWrapper, geometry
from nnfab.accel.drivers.nnfab_driver import pack_lanes, unpack_lanes
from nnfab.errors import ConfigError
from nnfab.tools.verilator import lint

pytestmark = needs_verilator

MLP_CONFIG = {"Model": {"Precision": "ap_fixed<8,3>", "ReuseFactor": 1}}


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory):
    model = convert(mlp_graph([6, 5, 3]), MLP_CONFIG)
    rtl = model.to_rtl(tmp_path_factory.mktemp("mlp"))
    x = sample_inputs(rtl.design.in_type, 6, 300, seed=3)
    return model, rtl, x, np.asarray(model.predict(x))


def test_wrapper_lints_clean(mlp, tmp_path: Path) -> None:
    _, rtl, _, _ = mlp
    w = AxisRtlWrapper(rtl, 64, tmp_path)
    warnings = lint(w.write(), w.module, tmp_path / "lint.log")
    assert warnings == []
    text = (tmp_path / f"{w.module}.v").read_text()
    for port in ("aclk", "aresetn", "s_axis_tdata", "s_axis_tkeep", "s_axis_tvalid",
                 "s_axis_tready", "s_axis_tlast", "m_axis_tdata", "m_axis_tkeep",
                 "m_axis_tvalid", "m_axis_tready", "m_axis_tlast"):
        assert port in text


@pytest.mark.parametrize("bus_width", [32, 64, 128, 512])
def test_fully_parallel_bit_exact_under_random_stalls(mlp, bus_width: int, tmp_path: Path) -> None:
    _model, rtl, x, want = mlp
    w = AxisRtlWrapper(rtl, bus_width, tmp_path)
    for in_gap, out_stall, seed in ((0.0, 0.0, 0), (0.3, 0.5, 1), (0.6, 0.8, 2)):
        got = w.simulate(x, in_gap=in_gap, out_stall=out_stall, seed=seed)
        np.testing.assert_array_equal(got.outputs, want, err_msg=f"gap {in_gap} stall {out_stall}")
        lanes = 3 * len(x)  # 3 outputs of 8 bits: 8-bit lanes
        assert got.run.out_beats == -(-lanes // (bus_width // 8))
        assert got.run.stats["out_lasts"] == 1
    assert got.run.stats["stall_cycles"] > 0


def test_one_sample_per_cycle_when_the_bus_is_wide_enough(mlp, tmp_path: Path) -> None:
    _model, rtl, x, want = mlp
    # 6 inputs of 8 bits = 48 bits, 3 outputs = 24 bits: a 64-bit bus carries a sample a beat
    got = AxisRtlWrapper(rtl, 64, tmp_path).simulate(x)
    np.testing.assert_array_equal(got.outputs, want)
    overhead = got.run.cycles - len(x)
    assert 0 <= overhead <= rtl.latency + 12, got.run.stats
    # a 32-bit bus is the limit instead: 1.5 input beats per sample
    narrow = AxisRtlWrapper(rtl, 32, tmp_path / "narrow").simulate(x)
    assert narrow.run.in_cycles == -(-6 * len(x) // 4)


def test_transfers_end_after_their_last_whole_sample(mlp, tmp_path: Path) -> None:
    """Transfers back to back, each ending on its TLAST beat; lanes after the last whole
    sample of a TLAST beat are dropped."""
    model, rtl, x, _ = mlp
    w = AxisRtlWrapper(rtl, 64, tmp_path)
    t = rtl.design.in_type
    m = np.asarray(t.to_mantissa(x[:12]), dtype=np.int64)
    first = pack_lanes(m[:3], 8, 64)[:18]
    # whole beats (TKEEP all ones): 4 samples + 4 padding lanes, which are no sample
    second = pack_lanes(m[3:7], 8, 64)
    # 1 sample + 5 lanes of a second one (a protocol error): the partial sample is dropped;
    # the whole one had left before TLAST came, so its output joins the next transfer's
    third = pack_lanes(np.r_[m[7], m[8, :5]], 8, 64)[:11]
    fourth = pack_lanes(m[9:12], 8, 64)[:18]
    run = w.simulate_transfers([first, second, third, fourth], in_gap=0.2, out_stall=0.4,
                               seed=5)
    kept = [x[:3], x[3:7], np.r_[x[7:8], x[9:12]]]
    assert len(run.transfers) == len(kept)
    for out, xs in zip(run.transfers, kept, strict=True):
        want = np.asarray(model.predict(xs))
        y = unpack_lanes(out, want.size, 8).reshape(want.shape)
        np.testing.assert_array_equal(np.ldexp(y.astype(float), -rtl.design.out_type.frac), want)
        assert out.size == want.size  # 8-bit lanes: TKEEP keeps exactly the outputs' bytes


def test_tkeep_says_where_a_short_transfer_ends(mlp, tmp_path: Path) -> None:
    """One sample on a 512-bit bus: the beat's 58 zero lanes would make 9 more samples;
    TKEEP (as a DMA engine sets it from the byte count) says they are not there."""
    _model, rtl, x, want = mlp
    w = AxisRtlWrapper(rtl, 512, tmp_path)
    got = w.simulate(x[:1])
    np.testing.assert_array_equal(got.outputs, want[:1])
    assert got.run.data.size == 3 and got.run.out_beats == 1
    whole = pack_lanes(np.asarray(rtl.design.in_type.to_mantissa(x[:1]), np.int64), 8, 512)
    padded = w.simulate_bytes(whole)  # all 64 bytes kept: 10 samples, 9 of them zeros
    assert padded.data.size == 30


@pytest.mark.parametrize("reuse", [3])
def test_folded_design_under_stalls(reuse: int, tmp_path: Path) -> None:
    model = convert(mlp_graph([8, 6, 4], seed=1),
                    {"Model": {"Precision": "ap_fixed<10,4>", "ReuseFactor": reuse}})
    rtl = model.to_rtl(tmp_path / "rtl")
    assert rtl.ii == reuse
    x = sample_inputs(rtl.design.in_type, 8, 120, seed=4)
    want = np.asarray(model.predict(x))
    w = AxisRtlWrapper(rtl, 128, tmp_path / "axis")
    got = w.simulate(x, in_gap=0.4, out_stall=0.6, seed=7)
    np.testing.assert_array_equal(got.outputs, want)
    fast = w.simulate(x)
    assert fast.run.cycles <= reuse * len(x) + rtl.latency + 16  # one sample every ii cycles


def test_pixel_stream_cnn_under_stalls(tmp_path: Path) -> None:
    model = convert(small_cnn(), CNN_CONFIG)
    rtl = model.to_rtl(tmp_path / "rtl")
    assert getattr(rtl.design, "streamed", False)
    rng = np.random.default_rng(0)
    x = rng.uniform(-4, 4, size=(5, 10, 10, 2))
    want = np.asarray(model.predict(x))
    w = AxisRtlWrapper(rtl, 64, tmp_path / "axis")
    got = w.simulate(x, in_gap=0.3, out_stall=0.7, seed=3)
    np.testing.assert_array_equal(got.outputs, want)


def test_pixel_stream_with_many_items_per_image(tmp_path: Path) -> None:
    """A convolution's output is a stream of pixels: the FIFO holds an image's items."""
    model = convert(single_layer("Conv2D", (5, 6, 2), size=(3, 3), filters=3), CONFIG)
    rtl = model.to_rtl(tmp_path / "rtl")
    d = rtl.design
    assert d.items_per_image == 12
    g = geometry(rtl, 32)
    assert g.fifo_depth >= d.items_per_image
    rng = np.random.default_rng(1)
    x = rng.uniform(-4, 4, size=(4, 5, 6, 2))
    want = np.asarray(model.predict(x))
    got = AxisRtlWrapper(rtl, 32, tmp_path / "axis").simulate(x, in_gap=0.2, out_stall=0.6,
                                                               seed=9)
    np.testing.assert_array_equal(got.outputs, want)


def test_bad_bus_width_and_fifo_depth_are_clear_errors(mlp, tmp_path: Path) -> None:
    _, rtl, _, _ = mlp
    with pytest.raises(ConfigError, match="bus_width must be one of"):
        AxisRtlWrapper(rtl, 48, tmp_path)
    with pytest.raises(ConfigError, match="in_gap is a probability"):
        AxisRtlWrapper(rtl, 64, tmp_path).simulate_transfers([np.zeros(8, np.uint8)], in_gap=1.0)
