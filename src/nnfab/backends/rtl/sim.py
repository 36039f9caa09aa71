"""Verilator runs of a generated design: build (cached) and stream samples through it.

The fully parallel and folded designs use the harness of ``harness.py``; pixel streams
pass their own (``stream_harness.py``, built on this module).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnfab.backends.rtl.harness import render_harness
from nnfab.backends.rtl.writer import RtlDesign
from nnfab.errors import BackendError, ToolError
from nnfab.tools import run
from nnfab.tools.verilator import build_executable, cache_dir, find_verilator

log = logging.getLogger(__name__)

DEFAULT_OPT = "-O0"
"""g++ optimization of the Verilated model: -O0 builds faster than -O1 and simulates
about 2.5x slower (the 16-64-32-32-5 ``lut`` reference network of
``benchmarks/bench_rtl.py``: 7 s + 2.0 s per 100k samples, against 12 s + 0.8 s);
pass ``opt="-O1"`` for long simulations."""
MAX_PORT_ELEMENT_WIDTH = 63
"""Widest input/output element the simulation harness exchanges (int64 mantissas)."""

@dataclass
class SimulationResult:
    """Outputs of a Verilator run and what was measured."""

    outputs: np.ndarray  # real values, shape (batch, *output shape)
    mantissas: np.ndarray  # int64 mantissas of the output type, same shape
    latency: int  # measured, in clock cycles
    ii: int  # measured smallest distance between consecutive outputs (cycles)
    cycles: int
    build_seconds: float
    sim_seconds: float
    cached: bool
    build_dir: Path

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """``np.asarray(result)`` is the outputs."""
        return np.asarray(self.outputs, dtype=dtype)

    def __len__(self) -> int:
        return len(self.outputs)


def _check_ports(d: RtlDesign) -> None:
    for what, t in (("input", d.in_type), ("output", d.out_type)):
        if t.width > MAX_PORT_ELEMENT_WIDTH:
            raise BackendError(
                f"the {what} type {t} is {t.width} bits wide; the simulation harness "
                f"exchanges up to {MAX_PORT_ELEMENT_WIDTH}-bit mantissas"
            )


def build_simulator(design: RtlDesign, sources: list[Path], project_dir: Path, *,
                    opt: str = DEFAULT_OPT, harness: str | None = None
                    ) -> tuple[Path, float, bool]:
    """Compile (or reuse from the cache) a Verilator model of ``design`` with the harness.

    Builds live in ``<cache>/rtl-sim/<hash of Verilog, harness, tools, flags>``; a failed
    build's logs are copied to ``project_dir/sim_build_logs``. Returns (executable,
    build seconds, whether the build was reused).
    """
    _check_ports(design)
    d = design
    harness = harness if harness is not None else render_harness(
        d.top, d.n_in, d.in_type.width, d.n_out, d.out_type.width, d.out_type.signed)
    inst = find_verilator()
    key = hashlib.sha256(
        "\0".join([d.content_hash(), harness, inst.version, str(inst.cxx), opt]).encode()
    ).hexdigest()[:24]
    return cached_build("rtl-sim", key, sources, harness, d.top, project_dir, opt=opt)


def cached_build(kind: str, key: str, sources: list[Path], harness: str, top: str,
                 project_dir: Path, *, opt: str = DEFAULT_OPT) -> tuple[Path, float, bool]:
    """Verilate ``sources`` (top ``top``) with ``harness`` into ``<cache>/<kind>/<key>``,
    or reuse that build. The build happens in a temporary folder renamed into place
    (parallel builds of the same key agree); a failed build's logs are copied to
    ``project_dir/sim_build_logs``. Returns (executable, build seconds, reused)."""
    final = cache_dir() / kind / key
    exe = final / "sim"
    if exe.is_file():
        log.info("reusing the Verilator build %s", final)
        return exe, 0.0, True
    start = time.perf_counter()
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=final.parent))
    try:
        src_dir = work / "src"
        src_dir.mkdir()
        copies = []
        for s in sources:
            shutil.copy2(s, src_dir / s.name)
            copies.append(src_dir / s.name)
        (work / "harness.cpp").write_text(harness)
        build_executable(copies, work / "harness.cpp", top, work, opt=opt)
    except BaseException:
        logs = Path(project_dir) / "sim_build_logs"
        shutil.rmtree(logs, ignore_errors=True)
        shutil.copytree(work, logs, ignore=shutil.ignore_patterns("*.o", "obj_dir"))
        shutil.rmtree(work, ignore_errors=True)
        raise
    try:
        os.replace(work, final)
    except OSError:  # a parallel build of the same key got there first
        shutil.rmtree(work, ignore_errors=True)
        if not exe.is_file():
            raise
    seconds = time.perf_counter() - start
    log.info("built the Verilator model of %s in %.1f s (%s)", top, seconds, final)
    return exe, seconds, False


def simulate_mantissas(design: RtlDesign, sources: list[Path], mantissas: np.ndarray,
                       project_dir: Path, *, gap: int = 0, interval: int | None = None,
                       opt: str = DEFAULT_OPT) -> SimulationResult:
    """Stream ``(batch, n_in)`` input mantissas through the design; files in ``project_dir/sim``.

    A sample enters every ``interval`` cycles (default: the design's ``ii``, the fastest
    it accepts).
    """
    d = design
    mant_in = np.asarray(mantissas, dtype=np.int64).reshape(-1, d.n_in)
    batch = mant_in.shape[0]
    if isinstance(gap, bool) or not isinstance(gap, int) or gap < 0:
        raise BackendError(f"simulate: gap must be an integer >= 0, got {gap!r}")
    if interval is None:
        interval = d.ii
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < d.ii:
        raise BackendError(f"simulate: interval must be an integer >= the design's II "
                           f"({d.ii}), got {interval!r}")
    exe, build_seconds, cached = build_simulator(d, sources, project_dir, opt=opt)
    run_dir = project_dir / "sim"
    run_dir.mkdir(parents=True, exist_ok=True)
    f_in, f_out = run_dir / "inputs.bin", run_dir / "outputs.bin"
    f_stats = run_dir / "stats.json"
    f_out.unlink(missing_ok=True)
    f_stats.unlink(missing_ok=True)
    np.ascontiguousarray(mant_in).astype("<i8").tofile(f_in)
    max_cycles = batch * interval + (batch // gap + 1 if gap else 0) + 4 * d.latency + 100
    start = time.perf_counter()
    try:
        run([exe, f_in, f_out, f_stats, batch, gap, max_cycles, interval], run_dir / "sim.log",
            what="Verilator simulation")
    except ToolError as e:
        raise ToolError(
            f"{e}\n(the design produced fewer outputs than inputs, or the harness failed)"
        ) from e
    sim_seconds = time.perf_counter() - start
    stats = json.loads(f_stats.read_text())
    mant_out = np.fromfile(f_out, dtype="<i8").reshape(batch, *d.out_shape)
    values = np.ldexp(mant_out.astype(np.float64), -d.out_type.frac)
    return SimulationResult(
        outputs=values, mantissas=mant_out, latency=int(stats["latency"]),
        ii=int(stats["ii_min"]) if stats["ii_min"] >= 0 else 1, cycles=int(stats["cycles"]),
        build_seconds=build_seconds, sim_seconds=sim_seconds, cached=cached,
        build_dir=exe.parent,
    )
