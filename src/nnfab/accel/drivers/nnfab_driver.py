"""nnfab PYNQ driver: runs an nnfab network on a Zynq board through an AXI DMA.

This file is standalone: it imports numpy and (on the board) pynq only. nnfab copies
it next to the bitfile together with ``<bitfile stem>.json``, which describes the
network's interface (types, shapes, lane widths, bus width). The bus format is
nnfab's ``docs/axi_stream.md``: one lane per element, lanes packed back to back in
``bus_width``-bit beats, TLAST on the last beat of a transfer.

On the board::

    from nnfab_driver import NeuralNetworkOverlay
    nn = NeuralNetworkOverlay("nnfab_nn.bit", X_test.shape, y_test.shape)
    y_hw, latency_s, throughput_per_s = nn.predict(X_test, profile=True)
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np

LANE_WIDTHS = (8, 16, 32, 64)
ROUNDINGS = ("AP_TRN", "AP_TRN_ZERO", "AP_RND", "AP_RND_ZERO", "AP_RND_MIN_INF", "AP_RND_INF",
             "AP_RND_CONV")
OVERFLOWS = ("AP_WRAP", "AP_SAT", "AP_SAT_ZERO", "AP_SAT_SYM")
AP_START_AUTO_RESTART = 0x81
"""Written to the HLS IP's control register (offset 0) so it runs for every transfer."""
DMA_INSTANCE = "axi_dma_0"
NN_INSTANCE = "nnfab_nn_0"


# ------------------------------------------------------------------ lanes and beats
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
    lanes = raw[:need].view(f"<{kind}{lane // 8}")
    return lanes.astype(np.uint64 if kind == "u" and lane == 64 else np.int64)


# ------------------------------------------------------------------ fixed point
def _round_scaled(v: np.ndarray, mode: str) -> np.ndarray:
    """Round values already scaled by 2**F to integers (float64), per ap_fixed's mode."""
    if mode == "AP_TRN":
        return np.floor(v)
    if mode == "AP_TRN_ZERO":
        return np.trunc(v)
    # The fraction is taken of |v| (exact for non-negative floats); v - floor(v) is not
    # exact for tiny negative v, which would round onto 1.0.
    mag = np.abs(v)
    whole = np.floor(mag)
    part = mag - whole
    neg = v < 0
    low = np.where(neg, -whole - (part > 0), whole)
    up = np.where(neg, (part > 0) & (part < 0.5), part > 0.5)
    tie = part == 0.5
    if mode == "AP_RND":
        up |= tie
    elif mode == "AP_RND_ZERO":
        up |= tie & (v < 0)
    elif mode == "AP_RND_INF":
        up |= tie & (v > 0)
    elif mode == "AP_RND_CONV":
        up |= tie & (np.fmod(low, 2.0) != 0)
    elif mode != "AP_RND_MIN_INF":
        raise ValueError(f"unknown rounding mode {mode!r}; allowed: {', '.join(ROUNDINGS)}")
    return low + up


def to_mantissas(x: np.ndarray, port: dict[str, Any]) -> np.ndarray:
    """Real values -> int64 mantissas of the port's fixed type (its rounding and overflow)."""
    width, frac, signed = int(port["width"]), int(port["frac"]), bool(port["signed"])
    if width > 52:
        raise ValueError(f"{port['type']}: the driver converts types up to 52 bits wide")
    v = np.asarray(x, dtype=np.float64) * (2.0 ** frac)
    n = _round_scaled(v, port.get("rounding", "AP_TRN"))
    lo = -(2.0 ** (width - 1)) if signed else 0.0
    hi = 2.0 ** (width - 1) - 1 if signed else 2.0 ** width - 1
    mode = port.get("overflow", "AP_WRAP")
    if mode == "AP_WRAP":
        span = 2.0 ** width
        n = np.mod(n - lo, span) + lo
    elif mode in ("AP_SAT", "AP_SAT_SYM"):
        bottom = -hi if (mode == "AP_SAT_SYM" and signed and width > 1) else lo
        n = np.clip(n, bottom, hi)
    elif mode == "AP_SAT_ZERO":
        n = np.where((n < lo) | (n > hi), 0.0, n)
    else:
        raise ValueError(f"unknown overflow mode {mode!r}; allowed: {', '.join(OVERFLOWS)}")
    return n.astype(np.int64)


def from_mantissas(m: np.ndarray, port: dict[str, Any]) -> np.ndarray:
    """int64 mantissas -> float64 values ``m * 2**-frac``."""
    return np.asarray(m, dtype=np.float64) * (2.0 ** -int(port["frac"]))


def pack_inputs(desc: dict[str, Any], xs: Any) -> np.ndarray:
    """Several inputs (a list in the network's order, or a dict by name) -> the one batch
    the bus carries: each cast to its own type, flattened, input after input."""
    ports = desc.get("inputs")
    if not ports:
        raise ValueError("this network has one input: pass its batch itself")
    names = [p["name"] for p in ports]
    if isinstance(xs, dict):
        if sorted(xs) != sorted(names):
            raise ValueError(f"inputs by name must be exactly {names}, got {sorted(xs)}")
        arrays = [xs[n] for n in names]
    else:
        arrays = list(xs)
        if len(arrays) != len(ports):
            raise ValueError(f"the network has {len(ports)} inputs {names}, got "
                             f"{len(arrays)} arrays")
    parts = []
    for k, port in enumerate(ports):
        a = np.asarray(arrays[k], dtype=np.float64)
        shape = tuple(int(d) for d in port["shape"])
        if a.ndim != len(shape) + 1 or tuple(a.shape[1:]) != shape or (
                parts and a.shape[0] != parts[0].shape[0]):
            raise ValueError(f"input {port['name']!r}: expected a batch of shape "
                             f"(n, {_dims(shape)}), got {a.shape}")
        parts.append(from_mantissas(to_mantissas(a, port), port).reshape(a.shape[0], -1))
    return np.concatenate(parts, axis=1)


# ------------------------------------------------------------------ encoding
class Codec:
    """Samples <-> transfer bytes for one interface document (``nnfab_nn.json``)."""

    def __init__(self, desc: dict[str, Any]) -> None:
        self.desc = desc
        self.bus_width = int(desc["bus_width"])
        self.floats = desc["interface"] == "float"
        self.inp, self.out = desc["input"], desc["output"]
        self.in_shape = tuple(int(d) for d in self.inp["shape"])
        self.out_shape = tuple(int(d) for d in self.out["shape"])

    def in_bytes(self, n: int) -> int:
        """Bytes of an input buffer for ``n`` samples (whole beats)."""
        return beats_for(n * self.inp["elements"], self.inp["lane"], self.bus_width) * \
            self.bus_width // 8

    def out_bytes(self, n: int) -> int:
        """Bytes of an output buffer for ``n`` samples (whole beats)."""
        return beats_for(n * self.out["elements"], self.out["lane"], self.bus_width) * \
            self.bus_width // 8

    def in_stream_bytes(self, n: int) -> int:
        """Bytes of the input transfer of ``n`` samples (TKEEP trims the last beat)."""
        return n * self.inp["elements"] * self.inp["lane"] // 8

    def out_stream_bytes(self, n: int) -> int:
        """Bytes the output transfer of ``n`` samples writes."""
        return n * self.out["elements"] * self.out["lane"] // 8

    def encode(self, x: np.ndarray) -> np.ndarray:
        """A batch of real inputs -> the input transfer's bytes."""
        if self.floats:
            return pack_lanes(np.asarray(x, dtype=np.float32), 32, self.bus_width)
        return pack_lanes(to_mantissas(x, self.inp), self.inp["lane"], self.bus_width)

    def decode(self, data: np.ndarray, n: int) -> np.ndarray:
        """The output transfer's bytes for ``n`` samples -> real outputs (n, *out_shape)."""
        count = n * self.out["elements"]
        if self.floats:
            y = unpack_lanes(data, count, 32, floats=True).astype(np.float64)
        else:
            m = unpack_lanes(data, count, self.out["lane"], signed=self.out["signed"])
            y = from_mantissas(m, self.out)
        return y.reshape((n, *self.out_shape))

    def check_shapes(self, x_shape: Any, y_shape: Any) -> None:
        """Batch shapes an overlay is sized for (first axis the batch), or None."""
        if x_shape is not None and tuple(x_shape[1:]) != self.in_shape:
            raise ValueError(f"x_shape {tuple(x_shape)}: the network takes samples of shape "
                             f"({_dims(self.in_shape)})")
        if y_shape is not None and tuple(y_shape[1:]) != self.out_shape:
            raise ValueError(f"y_shape {tuple(y_shape)}: the network gives samples of shape "
                             f"({_dims(self.out_shape)})")

    def check_input(self, x: Any) -> np.ndarray:
        """Validated batch: a real array of shape (n, *input shape), finite; a network
        with several inputs also takes them as a list or dict (``pack_inputs``)."""
        if self.desc.get("inputs") and isinstance(x, (list, tuple, dict)):
            x = pack_inputs(self.desc, x)
        x = np.asarray(x)
        if x.dtype.kind not in "fiu":
            raise TypeError(f"inputs must be a real (float or integer) array, got dtype {x.dtype}")
        if x.shape == self.in_shape:
            raise ValueError(f"inputs must be a batch of shape (n, {_dims(self.in_shape)}); "
                             f"got one sample of shape {x.shape}: use x[None]")
        if x.ndim != len(self.in_shape) + 1 or tuple(x.shape[1:]) != self.in_shape:
            hint = ""
            if x.ndim == len(self.in_shape) + 1 and sorted(x.shape[1:]) == sorted(self.in_shape):
                hint = " (the network takes channels-last samples: transpose the axes)"
            raise ValueError(f"inputs must have shape (n, {_dims(self.in_shape)}), got "
                             f"{x.shape}{hint}")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise ValueError("inputs hold NaN or infinity")
        return x


def _dims(shape: tuple[int, ...]) -> str:
    return ", ".join(str(d) for d in shape)


def load_description(bitfile: str) -> dict[str, Any]:
    """The interface document beside the bitfile (``<stem>.json``)."""
    path = os.path.splitext(bitfile)[0] + ".json"
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: nnfab writes it beside the bitfile "
                                "(copy the whole package directory to the board)")
    with open(path) as f:
        desc = json.load(f)
    if desc.get("format") != "nnfab-accel-1":
        raise ValueError(f"{path}: not an nnfab interface document")
    return desc


def run_in_chunks(run_chunk: Any, x: np.ndarray, step: int, out_shape: tuple[int, ...],
                  profile: bool) -> Any:
    """``run_chunk`` on ``x`` in slices of ``step`` samples: the outputs, or with
    ``profile`` (outputs, seconds, samples per second). Shared by every overlay."""
    start = time.perf_counter()
    parts = [run_chunk(x[i:i + step]) for i in range(0, len(x), step)]
    seconds = time.perf_counter() - start
    y = np.concatenate(parts) if parts else np.zeros((0, *out_shape))
    if not profile:
        return y
    return y, seconds, (len(x) / seconds if seconds > 0 else float("inf"))


# ------------------------------------------------------------------ the overlay
class NeuralNetworkOverlay:
    """The network on a Zynq board: load the bitfile, stream batches through the DMA.

    ``x_shape`` / ``y_shape``: the shapes of the batches to run (first axis the batch);
    they size the DMA buffers and are checked against the network. Batches larger than
    one DMA transfer (``max_batch`` samples; the DMA's length register limits a
    transfer to ``2**dma_length_bits - 1`` bytes) go in chunks.
    """

    def __init__(self, bitfile: str = "nnfab_nn.bit", x_shape: tuple[int, ...] | None = None,
                 y_shape: tuple[int, ...] | None = None, *, max_batch: int | None = None,
                 download: bool = True) -> None:
        from pynq import Overlay, allocate  # the board's library; imported on use

        self.desc = load_description(bitfile)
        self.codec = Codec(self.desc)
        self.codec.check_shapes(x_shape, y_shape)
        self.max_batch = self._transfer_limit()
        if max_batch is not None:
            if max_batch < 1:
                raise ValueError(f"max_batch must be at least 1, got {max_batch}")
            self.max_batch = min(self.max_batch, int(max_batch))
        if x_shape is not None:
            self.max_batch = min(self.max_batch, max(1, int(x_shape[0])))
        self.overlay = Overlay(bitfile, download=download)
        self.dma = getattr(self.overlay, DMA_INSTANCE)
        if self.desc.get("route") == "hls":
            getattr(self.overlay, NN_INSTANCE).write(0x00, AP_START_AUTO_RESTART)
        self._allocate = allocate
        self._in_buf = allocate(shape=(self.codec.in_bytes(self.max_batch),), dtype=np.uint8)
        self._out_buf = allocate(shape=(self.codec.out_bytes(self.max_batch),), dtype=np.uint8)

    def _transfer_limit(self) -> int:
        """The most samples one transfer can carry in either direction."""
        limit = (1 << int(self.desc.get("dma_length_bits", 26))) - 1
        c = self.codec
        widest = max(c.inp["elements"] * c.inp["lane"], c.out["elements"] * c.out["lane"])
        n = max(1, limit * 8 // widest)  # ignoring the padding of the last beat: an upper bound
        while n > 1 and (c.in_bytes(n) > limit or c.out_bytes(n) > limit):
            n -= 1
        return n

    def _run_chunk(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        data = self.codec.encode(x)
        n_out = self.codec.out_bytes(n)
        self._in_buf[: data.size] = data
        self._in_buf.flush()
        self.dma.recvchannel.transfer(self._out_buf, nbytes=n_out)
        self.dma.sendchannel.transfer(self._in_buf, nbytes=self.codec.in_stream_bytes(n))
        self.dma.sendchannel.wait()
        self.dma.recvchannel.wait()
        self._out_buf.invalidate()
        return self.codec.decode(np.asarray(self._out_buf[:n_out]), n)

    def predict(self, x: Any, profile: bool = False) -> Any:
        """Outputs for a batch; with ``profile=True`` also (latency in s, samples per s)."""
        x = self.codec.check_input(x)
        return run_in_chunks(self._run_chunk, x, self.max_batch, self.codec.out_shape, profile)

    def free(self) -> None:
        """Release the DMA buffers."""
        for buf in (self._in_buf, self._out_buf):
            freebuffer = getattr(buf, "freebuffer", None)
            if freebuffer is not None:
                freebuffer()
