"""nnfab PYNQ driver: runs an nnfab network on a Zynq board through an AXI DMA.

This file is standalone: it imports numpy and (on the board) pynq only. nnfab copies
it next to the bitfile together with ``<bitfile stem>.json``, which describes the
network's interface (types, shapes, lane widths, bus width). The bus format is
nnfab's ``docs/axi_stream.md``: one lane per element, lanes packed back to back in
``bus_width``-bit beats, TLAST on the last beat of a transfer.
"""

from __future__ import annotations

import numpy as np

LANE_WIDTHS = (8, 16, 32, 64)


def lane_width(width: int) -> int:
    """The lane (bits) that carries an element ``width`` bits wide."""
    for lane in LANE_WIDTHS:
        if width <= lane:
            return lane
    raise ValueError(f"an element of {width} bits is wider than the widest lane (64 bits)")


def beats_for(n_lanes: int, lane: int, bus_width: int) -> int:
    """Beats of ``bus_width`` bits that carry ``n_lanes`` lanes of ``lane`` bits."""
    if bus_width % lane or bus_width < lane:
        raise ValueError(f"a {bus_width}-bit bus cannot carry {lane}-bit lanes")
    per_beat = bus_width // lane
    return -(-n_lanes // per_beat)


def pack_lanes(values: np.ndarray, lane: int, bus_width: int) -> np.ndarray:
    """Integer (or float32 for 32-bit float lanes) values -> the byte stream of a transfer.

    ``values`` holds one element per lane in transfer order (samples, then row-major
    elements); the result is ``uint8`` bytes: lanes little-endian, zero lanes padding
    the last beat.
    """
    flat = np.ascontiguousarray(np.asarray(values).reshape(-1))
    if flat.dtype.kind == "f":
        if lane != 32:
            raise ValueError("float lanes are 32 bits wide")
        lanes = flat.astype("<f4")
    else:
        lanes = flat.astype(f"<i{lane // 8}")
    n_beats = beats_for(lanes.size, lane, bus_width)
    out = np.zeros(n_beats * bus_width // 8, dtype=np.uint8)
    raw = lanes.view(np.uint8)
    out[: raw.size] = raw
    return out


def unpack_lanes(data: np.ndarray | bytes, n_lanes: int, lane: int, *, signed: bool = True,
                 floats: bool = False) -> np.ndarray:
    """The first ``n_lanes`` lanes of a transfer's byte stream as integers (or float32)."""
    raw = np.frombuffer(bytes(data) if isinstance(data, bytes | bytearray) else
                        np.ascontiguousarray(data).view(np.uint8), dtype=np.uint8)
    need = n_lanes * lane // 8
    if raw.size < need:
        raise ValueError(f"the transfer holds {raw.size} bytes; {n_lanes} lanes of {lane} bits "
                         f"need {need}")
    if floats:
        return raw[:need].view("<f4").copy()
    kind = "i" if signed else "u"
    return raw[:need].view(f"<{kind}{lane // 8}").astype(np.int64)
