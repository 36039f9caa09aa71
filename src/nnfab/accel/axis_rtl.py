"""The AXI4-Stream wrapper of nnfab's Verilog: no HLS tool anywhere on the route.

``AxisRtlWrapper(rtl, bus_width, output_dir)`` wraps an ``RTLProject``'s top (ports
``clk, rst, in_valid, in_data, out_valid, out_data``, no back-pressure) in a module
``<top>_axis`` with ``aclk``/``aresetn`` and ``s_axis_*``/``m_axis_*`` (TDATA, TKEEP,
TVALID, TREADY, TLAST), following the bus format of ``docs/axi_stream.md``:

- an input skid buffer (registered TREADY), a lane buffer that turns beats into the
  network's input words (samples wider than the bus span beats, narrower ones share
  them), TLAST ending a transfer after its last whole sample;
- credit-based admission: a sample enters the network only when the output FIFO has
  room for its outputs on top of everything in flight, so TREADY low on ``m_axis``
  stalls ``s_axis`` and nothing is lost or repeated (fully parallel, folded and
  pixel-stream designs alike);
- an output FIFO of items, a lane buffer that packs them into beats, TLAST on the beat
  that carries the last lane of an input transfer's last sample.

``simulate_bytes`` runs the wrapper under Verilator with random TVALID gaps and
TREADY stalls (the C++ harness in ``templates/axis_harness.cpp.j2``); ``simulate(x)``
does the same from real values; ``synthesize`` and ``wrapper_cost`` measure it with
Yosys.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from nnfab.accel.drivers.nnfab_driver import lane_width, pack_lanes, unpack_lanes
from nnfab.errors import BackendError, ConfigError, ToolError

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates")
BUS_WIDTHS = (32, 64, 128, 256, 512)
FIFO_BITS_LIMIT = 1 << 18
"""Output FIFOs are sized for full throughput up to this many bits (then to the minimum,
one sample's items, with a note: the design then admits a sample only as room frees)."""


def _bits(n: int) -> int:
    """Bits of an unsigned counter that holds 0..n (at least 1)."""
    return max(1, int(n).bit_length())


def _env() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                       keep_trailing_newline=True, trim_blocks=False)


@dataclass(frozen=True)
class AxisGeometry:
    """The numbers the wrapper is generated from (see the template's header)."""

    bus_width: int
    in_lane: int
    in_width: int
    in_words: int  # elements per network input word (a sample, or a pixel)
    out_lane: int
    out_width: int
    out_signed: bool
    out_items: int  # elements per network output item
    interval: int  # cycles between network input words (ii, or the pixel interval)
    pixels: int  # input words per sample (1, or pixels per image)
    items: int  # output items per sample
    fifo_depth: int  # output FIFO, in items

    @property
    def lanes_in(self) -> int:
        return self.bus_width // self.in_lane

    @property
    def lanes_out(self) -> int:
        return self.bus_width // self.out_lane


def geometry(rtl: Any, bus_width: int, fifo_depth: int | None = None) -> AxisGeometry:
    """The wrapper's geometry for an ``RTLProject`` (or its ``design``) and a bus width."""
    if bus_width not in BUS_WIDTHS:
        raise ConfigError(f"bus_width must be one of {', '.join(map(str, BUS_WIDTHS))}, "
                          f"got {bus_width!r}")
    d = getattr(rtl, "design", rtl)
    streamed = bool(getattr(d, "streamed", False))
    in_lane, out_lane = lane_width(d.in_type.width), lane_width(d.out_type.width)
    for side, lane in (("input", in_lane), ("output", out_lane)):
        if lane > bus_width:
            raise ConfigError(f"the {side} lanes are {lane} bits wide, wider than the "
                              f"{bus_width}-bit bus; choose a wider bus_width")
    if streamed:
        words, pixels, items = d.pixel_in, d.pixels_per_image, d.items_per_image
        out_items, interval = d.item_size, d.pixel_interval
    else:
        words, pixels, items, out_items, interval = d.n_in, 1, 1, d.n_out, d.ii
    item_bits = out_items * d.out_type.width + 1
    if fifo_depth is None:
        in_flight = math.ceil(max(d.latency, 1) / max(d.ii, 1)) + 2
        fifo_depth = items * in_flight + 2
        if fifo_depth * item_bits > FIFO_BITS_LIMIT:
            fifo_depth = max(items + 2, FIFO_BITS_LIMIT // item_bits)
            log.info("the output FIFO of %s is capped at %d items (%d bits): samples are "
                     "admitted as room frees", d.top, fifo_depth, fifo_depth * item_bits)
    if fifo_depth < items:
        raise ConfigError(f"fifo_depth must hold one sample's {items} output items, "
                          f"got {fifo_depth}")
    return AxisGeometry(bus_width, in_lane, d.in_type.width, words, out_lane,
                        d.out_type.width, d.out_type.signed, out_items, interval, pixels,
                        items, int(fifo_depth))


def _concat(parts: list[str]) -> str:
    """A Verilog concatenation of the non-empty parts (most significant first)."""
    parts = [p for p in parts if p]
    return parts[0] if len(parts) == 1 else "{" + ", ".join(parts) + "}"


def render_verilog(module: str, core: str, g: AxisGeometry) -> str:
    """The wrapper module's Verilog text."""
    ki, ni, wi = g.lanes_in, g.in_words, g.in_width
    ko, no, wo = g.lanes_out, g.out_items, g.out_width
    ci, co = ni + ki - 1, ko + no - 1
    gi, go = math.gcd(ni, ki), math.gcd(no, ko)
    in_positions = list(range(0, ci - ki + 1, gi))
    out_positions = list(range(0, ko, go))

    def in_place(p: int) -> str:
        pad = (ci - p - ki) * wi
        return _concat([f"{pad}'d0" if pad else "", "beat_elems",
                        f"ibuf_shifted[{p * wi - 1}:0]" if p else ""])

    def out_place(p: int) -> str:
        pad = (co - p - no) * wo
        return _concat([f"{pad}'d0" if pad else "", f"fifo_head[{no * wo - 1}:0]",
                        f"obuf_shifted[{p * wo - 1}:0]" if p else ""])

    def out_lane(j: int) -> str:
        elem = f"beat_elems_out[{j * wo + wo - 1}:{j * wo}]"
        extra = g.out_lane - wo
        if not extra:
            return elem
        fill = (f"{{{extra}{{beat_elems_out[{j * wo + wo - 1}]}}}}" if g.out_signed
                else f"{extra}'d0")
        return f"{fill}, {elem}"

    truncations = [(c, c - c % ni) for c in range(ci + 1) if c % ni]
    depth = g.fifo_depth
    flag_depth = depth // max(g.items, 1) + 2
    return _env().get_template("axis_rtl.v.j2").render(
        module=module, core=core, B=g.bus_width, LI=g.in_lane, LO=g.out_lane, KI=ki, KO=ko,
        WI=wi, WO=wo, NI=ni, NO=no, CI=ci, CO=co, GI=gi, II=g.interval, P=g.pixels,
        Q=g.items, D=depth, FD=flag_depth, out_signed=g.out_signed,
        ICW=_bits(ci), OCW=_bits(co), KW=_bits(ki), CRW=_bits(depth), PIW=_bits(g.pixels - 1),
        IIW=_bits(g.interval - 1), FPW=_bits(flag_depth - 1), QW=_bits(g.items - 1),
        DPW=_bits(depth - 1), in_positions=in_positions, out_positions=out_positions,
        truncations=truncations, in_place=in_place, out_place=out_place, out_lane=out_lane)


@dataclass
class AxisRun:
    """One Verilator run of the wrapper."""

    data: np.ndarray  # the output bytes (as TKEEP keeps them), all transfers back to back
    transfers: list[np.ndarray]  # the output, one array per TLAST
    cycles: int  # from the first input beat offered to the last output beat
    in_beats: int
    out_beats: int
    in_cycles: int  # first to last accepted input beat, inclusive
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class AxisSimulation:
    """``AxisRtlWrapper.simulate``: outputs as real values and the run behind them."""

    outputs: np.ndarray
    mantissas: np.ndarray
    run: AxisRun

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return self.outputs if dtype is None else self.outputs.astype(dtype)

    @property
    def samples_per_cycle(self) -> float:
        """Input samples accepted per cycle while the input was streaming."""
        return len(self.outputs) / max(self.run.in_cycles, 1)


class AxisRtlWrapper:
    """The ``<top>_axis`` wrapper around an ``RTLProject``; files in ``output_dir``."""

    def __init__(self, rtl: Any, bus_width: int, output_dir: str | Path, *,
                 fifo_depth: int | None = None) -> None:
        self.rtl = rtl
        self.design = getattr(rtl, "design", rtl)
        self.geometry = geometry(self.design, bus_width, fifo_depth)
        self.bus_width = bus_width
        self.output_dir = Path(output_dir)
        self.module = f"{self.design.top}_axis"
        self._sources: list[Path] | None = None

    def verilog(self) -> str:
        return render_verilog(self.module, self.design.top, self.geometry)

    def write(self) -> list[Path]:
        """The wrapper and a copy of the network's Verilog in ``output_dir`` (self-contained)."""
        if self._sources is None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            network = self.rtl.write() if hasattr(self.rtl, "write") else []
            copies = []
            for src in network:
                dst = self.output_dir / Path(src).name
                shutil.copyfile(src, dst)
                copies.append(dst)
            top = self.output_dir / f"{self.module}.v"
            top.write_text(self.verilog())
            self._sources = [*copies, top]
            log.info("wrote the AXI4-Stream wrapper %s (%d-bit bus) in %s", self.module,
                     self.bus_width, self.output_dir)
        return self._sources

    # ---------------------------------------------------------------- simulation
    def _harness(self) -> str:
        return _env().get_template("axis_harness.cpp.j2").render(
            B=self.bus_width, module=self.module)

    def build_simulator(self, *, opt: str | None = None) -> Path:
        """Compile (or reuse) the Verilator model of the wrapper; returns the executable.

        ``opt``: g++ optimization of the model (default: the network simulation's, -O0,
        which compiles large LUT-style designs several times faster than -O1)."""
        from nnfab.backends.rtl.sim import DEFAULT_OPT, cached_build
        from nnfab.tools.verilator import find_verilator

        opt = opt or DEFAULT_OPT
        sources = self.write()
        harness = self._harness()
        inst = find_verilator()
        h = hashlib.sha256(harness.encode())
        for s in sources:
            h.update(s.name.encode() + b"\0" + s.read_bytes() + b"\0")
        h.update(inst.version.encode() + str(inst.cxx).encode() + opt.encode())
        exe, _, _ = cached_build("axis-sim", h.hexdigest()[:24], sources, harness,
                                 self.module, self.output_dir, opt=opt)
        return exe

    def simulate_transfers(self, transfers: list[np.ndarray], *, in_gap: float = 0.0,
                           out_stall: float = 0.0, seed: int = 0,
                           max_cycles: int | None = None) -> AxisRun:
        """Send transfers (byte arrays) back to back; TLAST ends each, and its beat's TKEEP
        keeps the transfer's last bytes, as a DMA engine sends a buffer of that length.

        ``in_gap``: probability that TVALID stays low in a cycle where a beat could be
        offered; ``out_stall``: probability that TREADY is low in a cycle.
        """
        from nnfab.tools import run

        for name, p in (("in_gap", in_gap), ("out_stall", out_stall)):
            if not 0.0 <= p < 1.0:
                raise ConfigError(f"{name} is a probability in [0, 1), got {p!r}")
        beat_bytes = self.bus_width // 8
        chunks, lasts, keeps = [], [], []
        full = (1 << beat_bytes) - 1
        for t in transfers:
            raw = np.ascontiguousarray(np.asarray(t, dtype=np.uint8).reshape(-1))
            if raw.size == 0:
                raise BackendError("a transfer carries at least one byte")
            n = -(-raw.size // beat_bytes)
            tail = raw.size - (n - 1) * beat_bytes  # bytes in the last beat
            padded = np.zeros(n * beat_bytes, dtype=np.uint8)
            padded[: raw.size] = raw
            chunks.append(padded)
            lasts.append(np.r_[np.zeros(n - 1, np.uint8), np.ones(1, np.uint8)])
            keeps.append(np.r_[np.full(n - 1, full, np.uint64),
                               np.array([(1 << tail) - 1], np.uint64)])
        data = np.concatenate(chunks)
        n_beats = data.size // beat_bytes
        exe = self.build_simulator()
        run_dir = self.output_dir / "sim"
        run_dir.mkdir(parents=True, exist_ok=True)
        names = ("in.bin", "in_last.bin", "in_keep.bin", "out.bin", "out_last.bin",
                 "out_keep.bin", "stats.json")
        f_in, f_last, f_keep, f_out, f_out_last, f_out_keep, f_stats = (run_dir / n
                                                                        for n in names)
        for f in (f_out, f_out_last, f_out_keep, f_stats):
            f.unlink(missing_ok=True)
        data.tofile(f_in)
        np.concatenate(lasts).tofile(f_last)
        np.concatenate(keeps).astype("<u8").tofile(f_keep)
        g = self.geometry
        if max_cycles is None:
            slow = 1.0 / ((1.0 - in_gap) * (1.0 - out_stall))
            out_beats = n_beats * g.lanes_in * g.out_items * g.lanes_out // max(g.in_words, 1)
            max_cycles = int((n_beats * (g.interval + 2) + out_beats + 64) * slow * 4
                             + 20 * (self.design.latency + self.design.ii) + 20_000)
        run([exe, f_in, f_last, f_keep, f_out, f_out_last, f_out_keep, f_stats, n_beats,
             int(in_gap * 1_000_000), int(out_stall * 1_000_000), seed, max_cycles],
            run_dir / "sim.log", what="Verilator simulation of the AXI4-Stream wrapper")
        stats = json.loads(f_stats.read_text())
        if stats["out_lasts"] < len(transfers) and not stats.get("timeout"):
            log.warning("%s: %d of %d output transfers ended with TLAST (an input transfer "
                        "that ends inside a sample loses its TLAST; docs/axi_stream.md)",
                        self.module, stats["out_lasts"], len(transfers))
        if stats.get("timeout"):
            raise ToolError(f"the AXI4-Stream wrapper {self.module} stopped producing output "
                            f"({stats['out_beats']} beats, {stats['out_lasts']} of "
                            f"{len(transfers)} TLASTs after {max_cycles} cycles); log: "
                            f"{run_dir / 'sim.log'}")
        if stats.get("extra_beats"):
            raise ToolError(f"{self.module} sent {stats['extra_beats']} beat(s) after the last "
                            f"TLAST; log: {run_dir / 'sim.log'}")
        beats = np.fromfile(f_out, dtype=np.uint8).reshape(-1, beat_bytes)
        out_last = np.fromfile(f_out_last, dtype=np.uint8).astype(bool)
        out_keep = np.fromfile(f_out_keep, dtype="<u8")
        out_transfers = _split_transfers(beats, out_last, out_keep, full, self.module)
        return AxisRun(data=np.concatenate(out_transfers) if out_transfers else
                       np.zeros(0, np.uint8), transfers=out_transfers,
                       cycles=int(stats["cycles"]), in_beats=int(stats["in_beats"]),
                       out_beats=int(stats["out_beats"]), in_cycles=int(stats["in_cycles"]),
                       stats=stats)

    def simulate_bytes(self, data: np.ndarray, *, in_gap: float = 0.0, out_stall: float = 0.0,
                       seed: int = 0) -> AxisRun:
        """One transfer in, its output transfer back (``AxisRun.data``)."""
        result = self.simulate_transfers([data], in_gap=in_gap, out_stall=out_stall, seed=seed)
        if len(result.transfers) != 1:
            raise ToolError(f"{self.module}: the output carried no TLAST (a transfer must end "
                            f"with a whole sample); log: {self.output_dir / 'sim' / 'sim.log'}")
        return result

    def simulate(self, x: Any, *, in_gap: float = 0.0, out_stall: float = 0.0,
                 seed: int = 0) -> AxisSimulation:
        """Real-valued inputs (batch first) through the wrapper: cast to the input type
        (as the emulator does), packed per the bus format, unpacked on the way out."""
        d = self.design
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 0 or x[0].size != d.n_in:
            raise BackendError(f"simulate: expected a batch of inputs of shape {d.in_shape}, "
                               f"got {x.shape}")
        n = x.shape[0]
        m_in = d.in_type.to_mantissa(x.reshape(n, d.n_in))
        lane = self.geometry.in_lane
        data = pack_lanes(np.asarray(m_in, dtype=np.int64), lane, self.bus_width)
        data = data[: n * d.n_in * lane // 8]  # the transfer's bytes, as a DMA sends them
        result = self.simulate_bytes(data, in_gap=in_gap, out_stall=out_stall, seed=seed)
        m_out = unpack_lanes(result.data, n * d.n_out, self.geometry.out_lane,
                             signed=d.out_type.signed).reshape(n, *d.out_shape)
        values = np.ldexp(m_out.astype(np.float64), -d.out_type.frac)
        return AxisSimulation(values, m_out, result)

    # ---------------------------------------------------------------- synthesis
    def synthesize(self, part: str, *, timeout: float | None = None) -> Any:
        """Yosys ``synth_xilinx`` of wrapper + network for the part's family."""
        from nnfab.backends.rtl.project import SynthesisReport, family_for_part
        from nnfab.devices import part_info
        from nnfab.tools.yosys import synthesize

        result = synthesize(self.write(), self.module, family_for_part(part),
                            self.output_dir / "synth", timeout=timeout)
        info = part_info(part)
        return SynthesisReport(part, result, _utilisation(result, info))


def _split_transfers(beats: np.ndarray, last: np.ndarray, keep: np.ndarray, full: int,
                     module: str) -> list[np.ndarray]:
    """The output beats as the bytes a DMA engine writes: one array per TLAST.

    Every beat but a transfer's last keeps all bytes; the last keeps a prefix.
    """
    out, start = [], 0
    for end in np.flatnonzero(last):
        for k in keep[start:end]:
            if int(k) != full:
                raise ToolError(f"{module} sent a beat before TLAST with TKEEP {int(k):#x}")
        tail = int(keep[end])
        kept = tail.bit_length()
        if tail != (1 << kept) - 1 or kept == 0:
            raise ToolError(f"{module}: the TLAST beat's TKEEP {tail:#x} is not a prefix of bytes")
        out.append(np.concatenate([beats[start:end].reshape(-1), beats[end, :kept]]))
        start = end + 1
    return out


def _utilisation(result: Any, info: Any) -> dict[str, float]:
    from nnfab.backends.rtl.project import _utilization

    return _utilization(result, info)


def wrapper_cost(rtl: Any, bus_width: int, part: str, *,
                 work_dir: str | Path | None = None) -> dict[str, dict[str, int]]:
    """LUT/FF/DSP/BRAM of the network alone and of what the wrapper adds (Yosys)."""
    base = Path(work_dir) if work_dir is not None else Path(rtl.output_dir) / "axis_cost"
    network = rtl.synthesize(part)
    wrapper = AxisRtlWrapper(rtl, bus_width, base).synthesize(part)
    keys = ("lut", "ff", "dsp", "bram_18k")
    net = {k: int(getattr(network, k)) for k in keys}
    total = {k: int(getattr(wrapper, k)) for k in keys}
    return {"network": net, "wrapper": {k: total[k] - net[k] for k in keys}, "total": total}
