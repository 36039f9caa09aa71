"""The board driver's own arithmetic: fixed-point conversion and the lane format."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nnfab.accel.drivers import nnfab_driver as drv
from nnfab.accel.interface import port_description
from nnfab.ir import FixedType
from nnfab.ir.types import Overflow, Rounding

TYPES = [(1, 1, True), (2, 1, True), (2, 2, False), (8, 3, True), (8, 3, False), (16, 6, True),
         (12, 14, True), (10, -2, True), (24, 10, False)]


def _values(t: FixedType, rng: np.random.Generator) -> np.ndarray:
    """Random values, exact ties, values just off ties, tiny negatives, far out of range."""
    lsb = 2.0 ** -t.frac
    span = max(abs(t.min), abs(t.max), lsb) * 3
    k = rng.integers(-(2 ** (t.width + 1)), 2 ** (t.width + 1), size=400)
    ties = (k + 0.5) * lsb
    return np.concatenate([rng.uniform(-span, span, 400), ties, ties + lsb * 1e-6,
                           ties - lsb * 1e-6, k * lsb, [-1e-300, -1e-20, 0.0, 1e-20, span * 10,
                                                        -span * 10]])


@pytest.mark.parametrize(("width", "integer", "signed"), TYPES)
def test_to_mantissas_equals_the_fixed_type_for_every_mode(width: int, integer: int,
                                                           signed: bool) -> None:
    rng = np.random.default_rng(width * 100 + integer)
    for rounding, overflow in itertools.product(Rounding, Overflow):
        t = FixedType(width, integer, signed, rounding, overflow)
        x = _values(t, rng)
        port = port_description(t, (1,), "fixed")
        got = drv.to_mantissas(x, port)
        want = t.to_mantissa(x)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (str(t), x[bad[:3]], got[bad[:3]], want[bad[:3]])


def _reference_bytes(values: list[int], lane: int, bus: int) -> bytes:
    """The format of docs/axi_stream.md built bit by bit: lane j of a beat at bits j*L."""
    per_beat = bus // lane
    out = b""
    for start in range(0, len(values), per_beat):
        beat = 0
        for j, v in enumerate(values[start:start + per_beat]):
            beat |= (v & ((1 << lane) - 1)) << (j * lane)
        out += beat.to_bytes(bus // 8, "little")
    return out


@pytest.mark.parametrize(("lane", "bus"), [(8, 32), (16, 64), (32, 64), (16, 512), (64, 128),
                                           (8, 8 * 3 * 8)])
def test_pack_lanes_follows_the_written_format(lane: int, bus: int) -> None:
    if bus not in (32, 64, 128, 256, 512):
        bus = 256
    rng = np.random.default_rng(lane + bus)
    n = 37  # not a multiple of the lanes per beat
    lo, hi = -(2 ** (lane - 1)), 2 ** (lane - 1)
    values = [int(v) for v in rng.integers(lo, hi, size=n, dtype=np.int64)]
    packed = drv.pack_lanes(np.asarray(values), lane, bus)
    assert packed.tobytes() == _reference_bytes(values, lane, bus)
    assert packed.size == drv.beats_for(n, lane, bus) * bus // 8
    back = drv.unpack_lanes(packed, n, lane, signed=True)
    assert back.tolist() == values
    unsigned = drv.unpack_lanes(packed, n, lane, signed=False)
    assert unsigned.tolist() == [v & ((1 << lane) - 1) for v in values]


def test_float_lanes_round_trip_and_reject_other_widths() -> None:
    x = np.array([1.5, -2.25, 3e-8, 7.0], dtype=np.float32)
    packed = drv.pack_lanes(x, 32, 64)
    assert packed.tobytes()[:16] == x.astype("<f4").tobytes()
    assert drv.unpack_lanes(packed, 4, 32, floats=True).tolist() == x.tolist()
    with pytest.raises(ValueError, match="32 bits"):
        drv.pack_lanes(x, 16, 64)
    with pytest.raises(ValueError, match="cannot carry"):
        drv.beats_for(3, 64, 32)
    with pytest.raises(ValueError, match="need"):
        drv.unpack_lanes(packed[:8], 4, 32)


def _desc(interface: str = "fixed") -> dict:
    tin = FixedType(16, 6, True)
    tout = FixedType(12, 4, True, Rounding.RND, Overflow.SAT)
    return {"format": "nnfab-accel-1", "interface": interface, "bus_width": 64, "route": "rtl",
            "input": port_description(tin, (4, 3), interface),
            "output": port_description(tout, (5,), interface)}


def test_codec_encodes_mantissas_and_decodes_values() -> None:
    codec = drv.Codec(_desc())
    rng = np.random.default_rng(1)
    x = rng.uniform(-40, 40, size=(7, 4, 3))
    data = codec.encode(x)
    assert data.size == codec.in_bytes(7) == 21 * 8  # 84 lanes of 16 bits, 4 per beat
    m = drv.unpack_lanes(data, 84, 16)
    assert m.tolist() == FixedType(16, 6, True).to_mantissa(x).reshape(-1).tolist()
    out_m = rng.integers(-2048, 2048, size=35)
    y = codec.decode(drv.pack_lanes(out_m, 16, 64), 7)
    assert y.shape == (7, 5)
    assert (y.reshape(-1) * 2**8).astype(np.int64).tolist() == out_m.tolist()


def test_codec_float_interface_sends_float32() -> None:
    codec = drv.Codec(_desc("float"))
    x = np.linspace(-3, 3, 24).reshape(2, 4, 3)
    data = codec.encode(x)
    assert data[:96].view("<f4").tolist() == x.astype(np.float32).reshape(-1).tolist()


def test_codec_input_errors_are_clear() -> None:
    codec = drv.Codec(_desc())
    with pytest.raises(ValueError, match=r"use x\[None\]"):
        codec.check_input(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="channels-last"):
        codec.check_input(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"shape \(n, 4, 3\)"):
        codec.check_input(np.zeros((2, 12)))
    with pytest.raises(ValueError, match="NaN"):
        codec.check_input(np.full((1, 4, 3), np.nan))
    with pytest.raises(TypeError, match="dtype"):
        codec.check_input(np.array([["a"] * 3] * 4)[None])
