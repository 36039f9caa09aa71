"""Yosys through ``pyosys``, in a child process.

Synthesis runs in ``python -m nnfab.tools.yosys <script>`` so that a crash of the
native library or a very long run cannot take the caller down; the parent saves
Yosys's log in the project, reports progress (each top-level pass) to the logger,
and enforces an optional timeout. ``synth_xilinx`` results are read from
``stat -json`` and ``ltp -noff`` (run with the mapped registers removed: the longest
register-to-register path, in cells).
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnfab.errors import ToolError, ToolNotFoundError

log = logging.getLogger(__name__)

FAMILIES = ("xc7", "xcu", "xcup")
"""``synth_xilinx -family`` values nnfab uses."""

SEQUENTIAL_CELLS = "t:FD* t:SRL* t:RAMB* t:RAM32* t:RAM64* t:RAM128* t:RAM256* %u"
"""Mapped Xilinx cells that hold state (a Yosys selection), left out of the longest path."""
_PASS_HEADER = re.compile(r"^(\d+(?:\.\d+)?)\. Executing (.*)$")
_LTP = re.compile(r"Longest topological path in \S+ \(length=(\d+)\)")


def pyosys_available() -> bool:
    """True when ``pyosys`` can be imported (checked in a child: importing loads a big .so)."""
    try:
        import importlib.util

        return importlib.util.find_spec("pyosys") is not None
    except (ImportError, ValueError):
        return False


@dataclass
class SynthesisResult:
    """Resource counts after ``synth_xilinx`` (Yosys's cell names mapped to FPGA resources)."""

    family: str
    top: str
    lut: int
    ff: int
    dsp: int
    bram_18k: int
    carry: int
    lutram: int
    srl: int
    longest_path: int | None
    cells: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    log_file: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "family": self.family, "top": self.top, "lut": self.lut, "ff": self.ff,
            "dsp": self.dsp, "bram_18k": self.bram_18k, "carry": self.carry,
            "lutram": self.lutram, "srl": self.srl, "longest_path": self.longest_path,
            "seconds": round(self.seconds, 3), "cells": dict(self.cells),
            "log_file": str(self.log_file) if self.log_file else None,
        }


def count_resources(cells: dict[str, int]) -> dict[str, int]:
    """Map Xilinx primitive counts to LUT / FF / DSP / BRAM(18k) / CARRY / LUTRAM / SRL.

    ``INV`` is counted as a LUT (it is a LUT1 on the device); a ``LUT6_2`` as one LUT;
    a 36k block RAM as two 18k ones.
    """
    out = dict.fromkeys(("lut", "ff", "dsp", "bram_18k", "carry", "lutram", "srl"), 0)
    for cell, n in cells.items():
        name = cell.lstrip("\\")
        if re.fullmatch(r"LUT[1-6](_2)?", name) or name == "INV":
            out["lut"] += n
        elif re.fullmatch(r"FD[A-Z0-9_]*", name):
            out["ff"] += n
        elif name.startswith("DSP48"):
            out["dsp"] += n
        elif re.fullmatch(r"RAMB18[A-Z0-9_]*", name):
            out["bram_18k"] += n
        elif re.fullmatch(r"RAMB36[A-Z0-9_]*", name):
            out["bram_18k"] += 2 * n
        elif name.startswith("CARRY"):
            out["carry"] += n
        elif re.fullmatch(r"(RAM\d+[A-Z0-9_]*|RAMS\d+|RAMD\d+)", name):
            out["lutram"] += n
        elif name.startswith("SRL"):
            out["srl"] += n
    return out


def parse_results(stat_json: Path, ltp_text: Path, family: str, top: str) -> SynthesisResult:
    """Read ``stat -json`` and ``ltp -noff`` outputs."""
    try:
        stat = json.loads(stat_json.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ToolError(f"cannot read Yosys statistics {stat_json}: {e}") from e
    design = stat.get("design") or {}
    cells = {k.lstrip("\\"): int(v) for k, v in design.get("num_cells_by_type", {}).items()}
    counts = count_resources(cells)
    longest = None
    if ltp_text.is_file():
        match = _LTP.search(ltp_text.read_text())
        if match:
            longest = int(match.group(1))
    return SynthesisResult(family=family, top=top, longest_path=longest, cells=cells, **counts)


def synth_script(sources: list[Path], top: str, family: str, out_dir: Path) -> list[str]:
    """The Yosys commands for a flat ``synth_xilinx`` run with statistics."""
    if family not in FAMILIES:
        raise ValueError(f"unknown Xilinx family {family!r}; allowed: {', '.join(FAMILIES)}")
    cmds = [f"read_verilog -defer {_quote(s)}" for s in sources]
    cmds += [
        f"hierarchy -check -top {top}",
        f"synth_xilinx -family {family} -flatten -top {top}",
        f"tee -q -o {_quote(out_dir / 'stat.json')} stat -json",
        # ltp -noff knows Yosys' own flip-flops only: remove the mapped ones (and the
        # shift registers and RAMs) so the path is register to register, in cells
        f"delete {SEQUENTIAL_CELLS}",
        f"tee -q -o {_quote(out_dir / 'ltp.txt')} ltp -noff",
    ]
    return cmds


def _quote(path: Path) -> str:
    text = str(path)
    if any(c in text for c in ' "\t'):
        return '"' + text.replace('"', '\\"') + '"'
    return text


def synthesize(
    sources: list[Path],
    top: str,
    family: str,
    work_dir: Path,
    *,
    timeout: float | None = None,
) -> SynthesisResult:
    """Run ``synth_xilinx`` on ``sources`` in a child process; log in ``work_dir/yosys.log``."""
    if not pyosys_available():
        raise ToolNotFoundError(
            "pyosys is not installed; to fix: pip install pyosys   (or nnfab[rtl])"
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("stat.json", "ltp.txt"):
        (work_dir / stale).unlink(missing_ok=True)
    script = work_dir / "synth.ys"
    script.write_text("\n".join(synth_script(sources, top, family, work_dir)) + "\n")
    log_file = work_dir / "yosys.log"
    start = time.perf_counter()
    with log_file.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nnfab.tools.yosys", str(script)],
            stdout=out, stderr=subprocess.STDOUT,
        )
        _follow(proc, log_file, start, timeout)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-30:])
        raise ToolError(
            f"Yosys synthesis failed (exit code {proc.returncode}); full log: {log_file}\n"
            f"--- last lines ---\n{tail}"
        )
    result = parse_results(work_dir / "stat.json", work_dir / "ltp.txt", family, top)
    result.seconds = seconds
    result.log_file = log_file
    log.info("yosys: %d LUT, %d FF, %d DSP, %d CARRY in %.1f s", result.lut, result.ff,
             result.dsp, result.carry, seconds)
    return result


def _follow(proc: subprocess.Popen[bytes], log_file: Path, start: float,
            timeout: float | None) -> None:
    """Wait for the child, logging each top-level pass it starts; kill it on timeout."""
    position = 0
    while True:
        try:
            proc.wait(timeout=0.5)
            finished = True
        except subprocess.TimeoutExpired:
            finished = False
        with log_file.open("rb") as f:
            f.seek(position)
            chunk = f.read()
        cut = chunk.rfind(b"\n") + 1  # only consume whole lines
        position += cut
        for line in chunk[:cut].decode("utf-8", errors="replace").splitlines():
            match = _PASS_HEADER.match(line)
            if match:
                log.info("yosys [%5.1f s] %s", time.perf_counter() - start, match.group(2))
        if finished:
            return
        if timeout is not None and time.perf_counter() - start > timeout:
            proc.kill()
            proc.wait()
            raise ToolError(
                f"Yosys synthesis did not finish within {timeout} s and was stopped; "
                f"log so far: {log_file}"
            )


def _main(argv: list[str]) -> int:
    """Child-process entry: run each line of a Yosys script through pyosys."""
    from pyosys import libyosys as ys

    (script,) = argv
    design = ys.Design()
    for line in Path(script).read_text().splitlines():
        if line.strip():
            ys.run_pass(line, design)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
