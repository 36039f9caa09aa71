"""``RTLProject``: write the Verilog, simulate it with Verilator, synthesize it with Yosys."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnfab.backends.rtl import ecp5
from nnfab.backends.rtl.design import generate
from nnfab.backends.rtl.layers import RtlOptions
from nnfab.backends.rtl.sim import (
    DEFAULT_OPT,
    SimulationResult,
    build_simulator,
    simulate_mantissas,
)
from nnfab.backends.rtl.stream_harness import render_stream_harness, simulate_stream
from nnfab.backends.rtl.writer import RtlDesign
from nnfab.devices import Part, part_info
from nnfab.errors import BackendError, ConfigError
from nnfab.ir import Graph
from nnfab.tools.nextpnr import PnrReport
from nnfab.tools.nextpnr import place_and_route as ecp5_place_and_route
from nnfab.tools.yosys import SynthesisResult, synthesize

__all__ = ["DEFAULT_OPT", "ClosureRun", "RTLProject", "SimulationResult", "SynthesisReport",
           "TimingClosure",
           "adders_per_stage_for", "build_simulator", "family_for_part", "simulate_mantissas"]

log = logging.getLogger(__name__)

PIPELINE_TIMING = {"xc7": (0.9, 1.0), "xcu": (0.7, 0.8), "xcup": (0.55, 0.6),
                   "ecp5": (2.0, 2.3)}
"""Per FPGA family, (ns per adder level, ns per register stage spent outside the adders).

A rough model for ``pipeline=<clock period>``: an adder level is one carry chain of a
few CARRY4/CARRY8 blocks plus its routing; the overhead is clock-to-out, setup, and the
cast/relu logic after a tree. ``adders_per_stage = floor((period - overhead) / per
level)``, at least 1. For instance 2.5 ns on UltraScale+ gives 3 levels, 5 ns gives 8;
5 ns on 7-series gives 4. ECP5 (speed grade 6) is calibrated against nextpnr-ecp5 by
``benchmarks/bench_clock_target.py``: 2.0 ns per adder level (a CCU2C chain and its
routing), 2.3 ns outside (the achieved periods of one- and two-level stages fit that
line within 0.3 ns). A cast counts as two levels (``SumBuilder.before_cast``) and is
split at up to two levels per stage (``RtlOptions.split_casts``). Two more rules keep
the levels honest on ECP5 (measured on pixel-stream convolutions, whose critical paths
were in the kernels' sums): a compressor chain counts as two levels, its count-bit LUTs
and its carry chain (``adders.COMPRESSOR_CHAIN_LEVELS``), and the padding mask in front
of a window's kernel as one (``SumBuilder.input_levels``). The width of an adder is not
counted: a CCU2C cell (two bits) adds 0.07 ns to a chain, against 1 to 2.6 ns of
routing per level. docs/place_and_route.md has the check against nextpnr. The Xilinx
figures (a compressor chain: one level) are not calibrated (no open place-and-route);
Yosys ``ltp`` levels are their measure."""
DEFAULT_PIPELINE_FAMILY = "xcup"
"""Family assumed by the timing model when the project has no (known) part."""


def adders_per_stage_for(pipeline: Any, part: str | None = None) -> int | None:
    """Adder levels per register stage for a ``pipeline`` setting (``RTLProject``).

    ``None``: no registers inside adder trees; an ``int`` ``k >= 1``: ``k`` adder levels
    per stage; a ``float`` (or ``{"clock_period": ns}``, optionally with ``"family"``):
    a target clock period in ns, converted with ``PIPELINE_TIMING`` for the family of
    ``part`` (``DEFAULT_PIPELINE_FAMILY`` when unknown).
    """
    if pipeline is None:
        return None
    if isinstance(pipeline, bool):
        raise BackendError(f"pipeline must be an int, a clock period in ns or "
                           f"{{'clock_period': ns}}, got {pipeline!r}")
    if isinstance(pipeline, int | np.integer):
        if pipeline < 1:
            raise BackendError(f"pipeline: adder levels per stage must be >= 1, got {pipeline!r}")
        return int(pipeline)
    family = None
    if isinstance(pipeline, dict):
        unknown = set(pipeline) - {"clock_period", "family"}
        if unknown or "clock_period" not in pipeline:
            raise BackendError(f"pipeline: expected {{'clock_period': ns[, 'family': ...]}}, got "
                               f"{pipeline!r}")
        family = pipeline.get("family")
        period = pipeline["clock_period"]
    else:
        period = pipeline
    if isinstance(period, bool) or not isinstance(period, int | float | np.floating) or not (
        period > 0
    ):
        raise BackendError(f"pipeline: the clock period must be a positive number of ns, got "
                           f"{period!r}")
    if family is None and part is not None:
        try:
            family = family_for_part(part)
        except ConfigError:
            family = None
    family = family or DEFAULT_PIPELINE_FAMILY
    if family not in PIPELINE_TIMING:
        raise BackendError(f"pipeline: unknown family {family!r}; known: "
                           f"{', '.join(PIPELINE_TIMING)}")
    per_level, overhead = PIPELINE_TIMING[family]
    levels = max(1, int((float(period) - overhead) / per_level + 1e-9))
    log.info("pipeline: %.3g ns on %s -> %d adder level(s) per stage", period, family, levels)
    return levels


def pipeline_family(pipeline: Any, part: str | None = None) -> str | None:
    """The FPGA family of a ``pipeline`` setting: its ``family`` entry, else the part's."""
    if isinstance(pipeline, dict) and pipeline.get("family"):
        return str(pipeline["family"])
    if part is None:
        return None
    try:
        return family_for_part(part)
    except ConfigError:
        return None


@dataclass
class SynthesisReport:
    """Yosys resource figures for a part, and how much of the part they use."""

    part: str | None
    result: SynthesisResult
    utilization: dict[str, float] = field(default_factory=dict)

    @property
    def fits(self) -> bool | None:
        if not self.utilization:
            return None
        return all(v <= 1.0 for v in self.utilization.values())

    @property
    def lut(self) -> int:
        return self.result.lut

    @property
    def ff(self) -> int:
        return self.result.ff

    @property
    def dsp(self) -> int:
        return self.result.dsp

    @property
    def bram_18k(self) -> int:
        return self.result.bram_18k

    @property
    def carry(self) -> int:
        return self.result.carry

    @property
    def longest_path(self) -> int | None:
        return self.result.longest_path

    @property
    def seconds(self) -> float:
        return self.result.seconds

    @property
    def log_file(self) -> Path | None:
        return self.result.log_file

    def as_dict(self) -> dict[str, Any]:
        return {"part": self.part, **self.result.as_dict(), "utilization": self.utilization,
                "fits": self.fits}

    def table(self) -> str:
        """A small text table of the figures."""
        r = self.result
        rows = [("LUT", r.lut), ("FF", r.ff), ("DSP", r.dsp), ("BRAM18", r.bram_18k),
                ("CARRY", r.carry), ("LUTRAM", r.lutram), ("SRL", r.srl)]
        lines = [f"Yosys synth_xilinx -family {r.family} ({self.part or 'no part'}), "
                 f"{r.seconds:.1f} s"]
        for name, value in rows:
            key = {"LUT": "lut", "FF": "ff", "DSP": "dsp", "BRAM18": "bram_18k"}.get(name)
            pct = self.utilization.get(key, None) if key else None
            lines.append(f"  {name:<7}{value:>10}" + (f"  {100 * pct:6.2f} %" if pct is not None
                                                       else ""))
        lines.append(f"  longest path: {r.longest_path} cells")
        return "\n".join(lines)


def bus_mantissas(d: RtlDesign, x: Any) -> np.ndarray:
    """Several inputs (a list in the graph's order, or a dict by name) as ``in_data``
    mantissas: each cast to its own type (as the emulator's input layers do), then held
    in the bus type, inputs one after the other."""
    names = [name for name, _, _ in d.inputs]
    if isinstance(x, dict):
        missing = [n for n in names if n not in x]
        if missing or set(x) - set(names):
            raise BackendError(f"simulate: inputs by name must be exactly {names}; got "
                               f"{sorted(x)}")
        arrays = [x[n] for n in names]
    elif isinstance(x, list | tuple) and len(x) == len(names):
        arrays = list(x)
    else:
        raise BackendError(f"simulate: the design has {len(names)} inputs {names}; give a "
                           "list of batches (one per input, in that order) or a dict by name")
    parts = []
    batch = None
    for (name, t, shape), a in zip(d.inputs, arrays, strict=True):
        a = np.asarray(a, dtype=np.float64)
        size = int(np.prod(shape))
        if a.ndim == 0 or a[0].size != size or (batch is not None and a.shape[0] != batch):
            raise BackendError(f"simulate: input {name!r}: expected a batch of shape "
                               f"(samples, {', '.join(map(str, shape))}), got {a.shape}")
        batch = a.shape[0]
        parts.append(t.quantize(a.reshape(batch, size)))
    values = np.concatenate(parts, axis=1)
    return np.asarray(d.in_type.to_mantissa(values), dtype=np.int64)


def family_for_part(part: str) -> str:
    """``synth_xilinx -family`` for a part name (from ``devices.py`` or its prefix)."""
    info = part_info(part)
    if info is not None:
        return info.family
    name = part.lower()
    if name.startswith("lfe5"):
        return "ecp5"
    if name.startswith("xc7"):
        return "xc7"
    if name.startswith(("xczu", "xcu5", "xcu2", "xck26", "xcvu3", "xcvu5", "xcvu7", "xcvu9",
                        "xcvu1", "xcau", "xcku3p", "xcku5p", "xcku9p", "xcku11p", "xcku13p",
                        "xcku15p")) or (name.startswith(("xcvu", "xcku")) and "p-" in name):
        return "xcup"
    if name.startswith(("xcvu", "xcku")):
        return "xcu"
    raise ConfigError(
        f"cannot tell the FPGA family of part {part!r}; pass family='xc7' | 'xcu' | 'xcup' or "
        "use a part listed in nnfab.devices.PARTS"
    )


def _utilization(result: SynthesisResult, info: Part | None) -> dict[str, float]:
    if info is None:
        return {}
    out = {"lut": result.lut / info.lut, "ff": result.ff / info.ff}
    if info.dsp:
        out["dsp"] = result.dsp / info.dsp
    if info.bram_18k:
        out["bram_18k"] = result.bram_18k / info.bram_18k
    return out


@dataclass(frozen=True)
class ClosureRun:
    """One place and route of ``RTLProject.close_timing``."""

    adders_per_stage: int | None
    latency: int
    fmax_mhz: float | None


@dataclass
class TimingClosure:
    """The runs of ``RTLProject.close_timing`` and the report of the design kept."""

    target_mhz: float
    runs: list[ClosureRun]
    report: PnrReport

    @property
    def met(self) -> bool:
        return self.report.meets(self.target_mhz)

    def as_dict(self) -> dict[str, Any]:
        return {"target_mhz": self.target_mhz, "met": self.met,
                "runs": [vars(r) for r in self.runs]}

    def table(self) -> str:
        lines = [f"timing closure at {self.target_mhz:g} MHz: "
                 + ("met" if self.met else "NOT met")]
        for r in self.runs:
            levels = r.adders_per_stage if r.adders_per_stage is not None else "unpipelined"
            fmax = f"{r.fmax_mhz:.1f}" if r.fmax_mhz is not None else "-"
            lines.append(f"  adder levels per stage {levels}: latency {r.latency} cycles, "
                         f"Fmax {fmax} MHz")
        return "\n".join(lines)


class RTLProject:
    """Verilog for a typed model, with simulation (Verilator) and synthesis (Yosys).

    ``model`` is an ``NnfabModel`` (anything with a ``.graph``) or a typed ``Graph``.
    ``style``: ``"lut"`` or ``"dsp"``; ``adders_per_stage``: extra pipeline registers
    inside adder trees every that many adder levels (None: layer boundaries only);
    ``pipeline``: the same as an int, or a target clock period in ns (a float or
    ``{"clock_period": ns}``) turned into adder levels by ``adders_per_stage_for``.
    Dense layers with a reuse factor R > 1 are folded (``folded.py``): ``.ii`` is then
    the largest R and ``simulate`` presents a sample every ``.ii`` cycles. In streamed
    designs (``stream.py``) convolutions and per-pixel Dense layers with R > 1 fold too:
    pixels come every ``design.pixel_interval`` cycles (the largest R, or more when an
    upsampling enlarges a feature map) and ``.ii`` is the cycles per image.
    """

    def __init__(self, model: Any, output_dir: str | Path = "nnfab_rtl", *, style: str = "lut",
                 adders_per_stage: int | None = None, pipeline: Any = None,
                 top: str | None = None) -> None:
        graph = model if isinstance(model, Graph) else getattr(model, "graph", None)
        if not isinstance(graph, Graph):
            raise BackendError(f"RTLProject needs an NnfabModel or an IR Graph, got {model!r}")
        self.graph = graph
        self.output_dir = Path(output_dir)
        self.part: str | None = getattr(model, "part", None)
        self.clock_period: float | None = getattr(model, "clock_period", None)
        if pipeline is not None:
            if adders_per_stage is not None:
                raise BackendError("give either pipeline= or adders_per_stage=, not both")
            adders_per_stage = adders_per_stage_for(pipeline, self.part)
        family = pipeline_family(pipeline, self.part)
        self._top = top
        self.design: RtlDesign = self._generate(RtlOptions(style, adders_per_stage,
                                                           family=family))

    def _generate(self, options: RtlOptions) -> RtlDesign:
        start = time.perf_counter()
        design = generate(self.graph, options, self._top)
        self.generate_seconds = time.perf_counter() - start
        self._sources: list[Path] | None = None
        graph = self.graph
        self.design = design
        log.info("generated RTL for %r: %d layer module(s), latency %d cycles, in %.2f s",
                 graph.name, len(self.design.layers), self.design.latency,
                 self.generate_seconds)
        return design

    @property
    def latency(self) -> int:
        """Clock cycles from ``in_valid`` to ``out_valid`` (known at generation time)."""
        return self.design.latency

    @property
    def ii(self) -> int:
        return self.design.ii

    @property
    def top(self) -> str:
        return self.design.top

    @property
    def rtl_dir(self) -> Path:
        return self.output_dir / "rtl"

    def write(self) -> list[Path]:
        """Write the Verilog files (idempotent); returns their paths."""
        if self._sources is None:
            self._sources = self.design.write(self.rtl_dir)
        return self._sources

    # ------------------------------------------------------------ simulate
    def build_simulator(self, *, opt: str = DEFAULT_OPT) -> tuple[Path, float, bool]:
        """Compile (or reuse) the Verilator model; returns (executable, seconds, cached)."""
        harness = render_stream_harness(self.design) if getattr(self.design, "streamed",
                                                                 False) else None
        return build_simulator(self.design, self.write(), self.output_dir, opt=opt,
                               harness=harness)

    def simulate(self, x: Any, *, gap: int = 0, interval: int | None = None,
                 opt: str = DEFAULT_OPT) -> SimulationResult:
        """Run a batch (first axis) through the Verilated design, one sample every II clocks.

        ``x`` holds real values; they are cast to the input type as the emulator's
        input layer does. Returns the outputs as real values of the output type.
        ``interval``: clocks between samples (default and minimum: the design's ``ii``;
        streamed designs: between pixels, default and minimum ``pixel_interval``);
        ``gap = k`` inserts one more idle cycle after every ``k`` samples; ``opt`` is the
        g++ optimization level of the model (see ``DEFAULT_OPT``).
        """
        d = self.design
        if getattr(d, "streamed", False):  # pixel streams: stream_harness.py
            return simulate_stream(d, self.write(), x, self.output_dir, gap=gap,
                                   interval=interval, opt=opt)
        if len(d.inputs) > 1:
            mant_in = bus_mantissas(d, x)
        else:
            x = np.asarray(x, dtype=np.float64)
            if x.ndim == 0 or x[0].size != d.n_in:
                raise BackendError(
                    f"simulate: expected a batch of inputs of shape {d.in_shape} (first axis "
                    f"= samples), got an array of shape {x.shape}"
                )
            mant_in = np.asarray(d.in_type.to_mantissa(x.reshape(x.shape[0], d.n_in)),
                                 dtype=np.int64)
        return simulate_mantissas(d, self.write(), mant_in, self.output_dir, gap=gap,
                                  interval=interval, opt=opt)

    # ---------------------------------------------------------- synthesize
    def synthesize(self, part: str | None = None, *, family: str | None = None,
                   timeout: float | None = None) -> SynthesisReport:
        """Yosys ``synth_xilinx -flatten`` for the part's family; log in ``<dir>/synth``."""
        part = part or self.part
        if family is None:
            if part is None:
                raise ConfigError("synthesize: give a part (e.g. 'xcvu9p-flgb2104-2l-e') or a "
                                  "family ('xc7', 'xcu', 'xcup')")
            family = family_for_part(part)
        if family == "ecp5":
            raise ConfigError("synthesize() runs synth_xilinx; for ECP5 parts use "
                              "place_and_route(device=...) (Yosys synth_ecp5 + nextpnr-ecp5)")
        if ecp5.CELL_MODELS_FILE in self.design.files:
            raise ConfigError(
                f"synthesize: this design was generated for ECP5 (pipeline family "
                f"{self.design.options.family!r}) and instantiates its {ecp5.CELL} DSP cells, "
                f"which synth_xilinx ({family}) does not know; use place_and_route() or "
                f"generate it for the part's family (pipeline={{'clock_period': ns, "
                f"'family': '{family}'}})")
        sources = self.write()
        result = synthesize(sources, self.design.top, family, self.output_dir / "synth",
                            timeout=timeout)
        report = SynthesisReport(part, result,
                                 _utilization(result, part_info(part) if part else None))
        (self.output_dir / "synth" / "report.json").write_text(
            json.dumps(report.as_dict(), indent=1) + "\n"
        )
        return report

    # ----------------------------------------------------- place and route
    def place_and_route(self, device: str = "LFE5U-85F", clock_mhz: float | None = None, *,
                        timeout: float | None = None, router: str = "router1") -> PnrReport:
        """Yosys ``synth_ecp5`` + ``nextpnr-ecp5`` out of context, ports registered.

        ``device``: an ECP5 device (``nnfab.tools.nextpnr.DEVICES``) or ordering code;
        ``clock_mhz``: the target (default: 1000 / the project's ``clock_period`` in ns
        when it has one, else 100); ``router``: ``router1`` or the faster ``router2``
        (``nnfab.tools.nextpnr.place_and_route``). Files and ``report.json`` go to
        ``<dir>/pnr``.
        """
        if clock_mhz is None:
            clock_mhz = 1000.0 / self.clock_period if self.clock_period else 100.0
        work = self.output_dir / "pnr"
        (work / "report.json").unlink(missing_ok=True)
        result = ecp5_place_and_route(self.write(), self.design.top, work, device=device,
                                      clock_mhz=clock_mhz, timeout=timeout, router=router)
        report = PnrReport(result, latency=self.latency, ii=self.ii)
        (work / "report.json").write_text(json.dumps(report.as_dict(), indent=1) + "\n")
        return report

    def close_timing(self, clock_mhz: float | None = None, *, device: str = "LFE5U-85F",
                     timeout: float | None = None, router: str = "router1") -> TimingClosure:
        """Place and route; while Fmax misses ``clock_mhz`` and the adder trees hold more
        than one level per stage, regenerate with one level fewer (an unpipelined design:
        the levels of the ECP5 delay model for the target) and place and route again;
        the regenerated designs are for the ECP5 family (``RtlOptions.family``).

        The project keeps the last design (its files and ``<dir>/pnr``);
        ``<dir>/pnr/closure.json`` lists every run. When one level per stage still
        misses, a warning names the critical path: the adders are then not the limit.
        """
        if clock_mhz is None:
            clock_mhz = 1000.0 / self.clock_period if self.clock_period else 100.0
        runs: list[ClosureRun] = []
        while True:
            report = self.place_and_route(device, clock_mhz, timeout=timeout, router=router)
            levels = self.design.options.adders_per_stage
            runs.append(ClosureRun(levels, self.latency, report.fmax_mhz))
            log.info("timing closure: %s level(s) per stage, latency %d: %.1f MHz (target "
                     "%.1f)", levels or "unpipelined", self.latency, report.fmax_mhz or 0.0,
                     clock_mhz)
            if report.meets(clock_mhz) or levels == 1:
                break
            fewer = levels - 1 if levels is not None else adders_per_stage_for(
                {"clock_period": 1000.0 / clock_mhz, "family": "ecp5"})
            old = self.design.options
            self._generate(RtlOptions(old.style, fewer, old.share, "ecp5",
                                      old.compress_pipelined))
        closure = TimingClosure(clock_mhz, runs, report)
        (self.output_dir / "pnr" / "closure.json").write_text(
            json.dumps(closure.as_dict(), indent=1) + "\n")
        if not closure.met:
            cp = report.result.critical_path
            where = f" (critical path {cp.source} -> {cp.sink})" if cp else ""
            log.warning("timing closure: %.1f MHz at one adder level per stage misses the "
                        "%.1f MHz target%s; logs in %s", report.fmax_mhz or 0.0, clock_mhz,
                        where, self.output_dir / "pnr")
        return closure
