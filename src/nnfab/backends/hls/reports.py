"""Vendor reports of an HLS project -> one dict.

Sources, in a project directory written by nnfab:

- C synthesis: ``<top>_prj/solution1/syn/report/csynth.xml`` (or ``<top>_csynth.xml``),
  the XML summary Vivado HLS / Vitis HLS write (``profile`` > ``UserAssignments``,
  ``PerformanceEstimates`` > ``SummaryOfTimingAnalysis`` / ``SummaryOfOverallLatency``,
  ``AreaEstimates`` > ``Resources`` / ``AvailableResources``); the text report
  ``csynth.rpt`` / ``<top>_csynth.rpt`` when there is no XML.
- Vivado synthesis: ``vivado_synth.rpt`` (``report_utilization``: tables of
  ``Site Type | Used | Fixed | [Prohibited |] Available | Util%``).

The dict::

    {"top", "part", "clock": {"target_ns", "estimated_ns", "uncertainty_ns"},
     "latency": {"min_cycles", "max_cycles", "min_ns", "max_ns"},
     "interval": {"min_cycles", "max_cycles"}, "pipeline_type",
     "resources": {"hls": {"LUT": {"used", "available", "percent"}, "FF", "DSP",
                           "BRAM_18K", "URAM"},
                   "vivado": {...same keys...}},   # when vivado_synth.rpt exists
     "files": [report paths read]}

Unknown values (``undef``, missing fields) are None. Availability missing from a report
comes from nnfab's part table (``nnfab.devices``) when the part is known.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from nnfab.devices import part_info
from nnfab.errors import BackendError

log = logging.getLogger(__name__)

RESOURCES = ("LUT", "FF", "DSP", "BRAM_18K", "URAM")
TIME_UNITS_NS = {"ps": 1e-3, "ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9, "sec": 1e9}


# ------------------------------------------------------------------ values
def _number(text: str | None) -> float | None:
    """A number from a report cell: '12', '1.5', '~0', '<0.01'; None for '-', 'undef', ''."""
    if text is None:
        return None
    t = text.strip().replace(",", "")
    if t.startswith(("~", "<")):
        t = t[1:]
    try:
        return float(t)
    except ValueError:
        return None


def _int(text: str | None) -> int | None:
    value = _number(text)
    return None if value is None else round(value)


def time_ns(text: str | None) -> float | None:
    """'50.000 ns', '0.130 us', '0.005 sec' -> ns (None when absent or undef)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*([-+0-9.eE]+)\s*([a-z]+)?\s*", text)
    if not match:
        return None
    value = float(match.group(1))
    unit = match.group(2) or "ns"
    if unit not in TIME_UNITS_NS:
        return None
    return value * TIME_UNITS_NS[unit]


def _resource(used: float | None, available: float | None) -> dict[str, Any]:
    percent = None
    if used is not None and available:
        percent = 100.0 * used / available
    return {"used": used, "available": available, "percent": percent}


def _fill_from_part(resources: dict[str, dict[str, Any]], part: str | None) -> None:
    """Availability the report does not give, from nnfab's part table."""
    info = part_info(part) if part else None
    if info is None:
        return
    table = {"LUT": info.lut, "FF": info.ff, "DSP": info.dsp, "BRAM_18K": info.bram_18k,
             "URAM": info.uram}
    for key, entry in resources.items():
        if entry["available"] is None:
            resources[key] = _resource(entry["used"], table[key])


def empty_report() -> dict[str, Any]:
    return {
        "top": None, "part": None,
        "clock": {"target_ns": None, "estimated_ns": None, "uncertainty_ns": None},
        "latency": {"min_cycles": None, "max_cycles": None, "min_ns": None, "max_ns": None},
        "interval": {"min_cycles": None, "max_cycles": None},
        "pipeline_type": None,
        "resources": {},
        "files": [],
    }


# ------------------------------------------------------------ csynth.xml
def _text(root: ET.Element, path: str) -> str | None:
    node = root.find(path)
    return None if node is None or node.text is None else node.text.strip()


def parse_csynth_xml(path: str | Path) -> dict[str, Any]:
    """The top-level C-synthesis summary (csynth.xml)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise BackendError(f"cannot read the C-synthesis report {str(path)!r}: {e}") from e
    report = empty_report()
    report["files"] = [str(path)]
    report["top"] = _text(root, "UserAssignments/TopModelName")
    report["part"] = _text(root, "UserAssignments/Part")
    clock = report["clock"]
    clock["target_ns"] = _number(_text(root, "UserAssignments/TargetClockPeriod"))
    clock["uncertainty_ns"] = _number(_text(root, "UserAssignments/ClockUncertainty"))
    perf = "PerformanceEstimates/"
    clock["estimated_ns"] = _number(_text(root, perf + "SummaryOfTimingAnalysis/"
                                          "EstimatedClockPeriod"))
    overall = perf + "SummaryOfOverallLatency/"
    latency = report["latency"]
    latency["min_cycles"] = _int(_text(root, overall + "Best-caseLatency"))
    latency["max_cycles"] = _int(_text(root, overall + "Worst-caseLatency"))
    latency["min_ns"] = time_ns(_text(root, overall + "Best-caseRealTimeLatency"))
    latency["max_ns"] = time_ns(_text(root, overall + "Worst-caseRealTimeLatency"))
    report["interval"]["min_cycles"] = _int(_text(root, overall + "Interval-min"))
    report["interval"]["max_cycles"] = _int(_text(root, overall + "Interval-max"))
    report["pipeline_type"] = (_text(root, overall + "PipelineType")
                               or _text(root, perf + "PipelineType"))
    resources = {}
    for key in RESOURCES:
        names = (key, "DSP48E") if key == "DSP" else (key,)
        used = available = None
        for name in names:
            used = used if used is not None else _number(
                _text(root, f"AreaEstimates/Resources/{name}"))
            available = available if available is not None else _number(
                _text(root, f"AreaEstimates/AvailableResources/{name}"))
        resources[key] = _resource(used, available)
    _fill_from_part(resources, report["part"])
    report["resources"] = {"hls": resources}
    _latency_ns_from_cycles(report)
    return report


def _latency_ns_from_cycles(report: dict[str, Any]) -> None:
    """Absolute latency = cycles x target clock period, where the report gives none."""
    period = report["clock"]["target_ns"]
    latency = report["latency"]
    for side in ("min", "max"):
        cycles = latency[f"{side}_cycles"]
        if latency[f"{side}_ns"] is None and cycles is not None and period is not None:
            latency[f"{side}_ns"] = cycles * period


# ------------------------------------------------------------ csynth.rpt
def _table_rows(lines: list[str]) -> list[list[str]]:
    """The cells of '|'-delimited table lines."""
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in lines if line.strip().startswith("|")]


def parse_csynth_rpt(path: str | Path) -> dict[str, Any]:
    """The text C-synthesis report (csynth.rpt / <top>_csynth.rpt)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        raise BackendError(f"cannot read the C-synthesis report {str(path)!r}: {e}") from e
    report = empty_report()
    report["files"] = [str(path)]
    lines = text.splitlines()
    for line in lines:
        m = re.search(r"HLS Report for '([^']+)'", line)
        if m and report["top"] is None:
            report["top"] = m.group(1)
        m = re.match(r"\s*\*\s*Target device:\s*(\S+)", line)
        if m and report["part"] is None:
            report["part"] = m.group(1)
    # timing: |ap_clk  |  5.00 ns|  4.123 ns|     0.62 ns|
    for cells in _table_rows(lines):
        if cells and cells[0] == "ap_clk" and len(cells) >= 4:
            report["clock"]["target_ns"] = time_ns(cells[1])
            report["clock"]["estimated_ns"] = time_ns(cells[2])
            report["clock"]["uncertainty_ns"] = time_ns(cells[3])
            break
    _rpt_latency(lines, report)
    _rpt_utilization(lines, report)
    _latency_ns_from_cycles(report)
    return report


def _section(lines: list[str], title: str) -> list[str]:
    """Lines after the first line containing ``title`` up to the next blank line pair."""
    for k, line in enumerate(lines):
        if title in line:
            out = []
            for following in lines[k + 1:]:
                if following.startswith(("+ ", "== ")) and out:
                    break
                out.append(following)
            return out
    return []


def _rpt_latency(lines: list[str], report: dict[str, Any]) -> None:
    """The first data row of the '+ Latency' summary table."""
    for cells in _table_rows(_section(lines, "+ Latency")):
        if len(cells) >= 7 and (_number(cells[0]) is not None or cells[0] in ("?", "undef")):
            latency = report["latency"]
            latency["min_cycles"], latency["max_cycles"] = _int(cells[0]), _int(cells[1])
            latency["min_ns"], latency["max_ns"] = time_ns(cells[2]), time_ns(cells[3])
            report["interval"]["min_cycles"] = _int(cells[4])
            report["interval"]["max_cycles"] = _int(cells[5])
            report["pipeline_type"] = cells[6] or None
            return


def _rpt_utilization(lines: list[str], report: dict[str, Any]) -> None:
    rows = _table_rows(_section(lines, "== Utilization Estimates"))
    header = next((r for r in rows if r and r[0] == "Name"), None)
    if header is None:
        return
    columns = {}
    for k, name in enumerate(header):
        key = "DSP" if name.startswith("DSP") else name
        if key in RESOURCES:
            columns[key] = k
    values = {r[0]: r for r in rows if r}
    total, available = values.get("Total"), values.get("Available")
    resources = {}
    for key in RESOURCES:
        k = columns.get(key)
        used = _number(total[k]) if total and k is not None and k < len(total) else None
        avail = (_number(available[k]) if available and k is not None and k < len(available)
                 else None)
        resources[key] = _resource(used, avail)
    _fill_from_part(resources, report["part"])
    report["resources"]["hls"] = resources


# ------------------------------------------------------ Vivado utilization
VIVADO_ROWS = {
    "LUT": ("CLB LUTs", "Slice LUTs"),
    "FF": ("CLB Registers", "Slice Registers"),
    "BRAM_TILE": ("Block RAM Tile",),
    "URAM": ("URAM",),
    "DSP": ("DSPs",),
}


def parse_vivado_utilization(path: str | Path, part: str | None = None) -> dict[str, Any]:
    """``report_utilization`` of Vivado synthesis -> {resource: {used, available, percent}}.

    Block RAM is counted in 18K blocks: one Block RAM Tile is two (RAMB36 = 2 x RAMB18).
    """
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        raise BackendError(f"cannot read the Vivado utilization report {str(path)!r}: {e}") from e
    found: dict[str, tuple[float | None, float | None]] = {}
    columns: dict[str, int] = {}
    for cells in _table_rows(text.splitlines()):
        if cells and cells[0] == "Site Type":
            columns = {name: k for k, name in enumerate(cells)}
            continue
        if not cells or "Used" not in columns:
            continue
        name = cells[0].rstrip("*").strip()
        for key, labels in VIVADO_ROWS.items():
            if name in labels and key not in found:
                used = _number(cells[columns["Used"]])
                k = columns.get("Available")
                found[key] = (used, _number(cells[k]) if k is not None and k < len(cells) else None)
    if not found:
        raise BackendError(
            f"{str(path)!r} does not look like a Vivado utilization report (no 'Site Type | "
            "Used | ... | Available' table with LUT/register rows)"
        )
    resources: dict[str, dict[str, Any]] = {}
    for key in ("LUT", "FF", "DSP", "URAM"):
        used, available = found.get(key, (None, None))
        resources[key] = _resource(used, available)
    tile_used, tile_available = found.get("BRAM_TILE", (None, None))
    resources["BRAM_18K"] = _resource(
        None if tile_used is None else 2 * tile_used,
        None if tile_available is None else 2 * tile_available,
    )
    resources = {key: resources[key] for key in RESOURCES}
    _fill_from_part(resources, part)
    return resources


# ------------------------------------------------------------------ project
def _project_top(project_dir: Path) -> str | None:
    tcl = project_dir / "project.tcl"
    if not tcl.is_file():
        return None
    m = re.search(r'^set project_name "([^"]+)"', tcl.read_text(), re.MULTILINE)
    return m.group(1) if m else None


def report_files(project_dir: str | Path) -> dict[str, Path]:
    """The report files present in a project directory: keys 'csynth_xml', 'csynth_rpt',
    'vivado'."""
    root = Path(project_dir)
    top = _project_top(root) or "myproject"
    report_dir = root / f"{top}_prj" / "solution1" / "syn" / "report"
    found: dict[str, Path] = {}
    for key, names in (("csynth_xml", ("csynth.xml", f"{top}_csynth.xml")),
                       ("csynth_rpt", ("csynth.rpt", f"{top}_csynth.rpt"))):
        for name in names:
            if (report_dir / name).is_file():
                found[key] = report_dir / name
                break
    if (root / "vivado_synth.rpt").is_file():
        found["vivado"] = root / "vivado_synth.rpt"
    return found


def read_report(project_dir: str | Path) -> dict[str, Any]:
    """Every report of a built project as one dict (see the module docstring)."""
    root = Path(project_dir)
    files = report_files(root)
    if not files:
        top = _project_top(root) or "myproject"
        raise BackendError(
            f"no synthesis report in {str(root)!r}: expected "
            f"{top}_prj/solution1/syn/report/csynth.xml (C synthesis) or vivado_synth.rpt "
            "(Vivado synthesis); run the build first (nnfab build, or build_prj.tcl)"
        )
    if "csynth_xml" in files:
        report = parse_csynth_xml(files["csynth_xml"])
    elif "csynth_rpt" in files:
        report = parse_csynth_rpt(files["csynth_rpt"])
    else:
        report = empty_report()
        report["top"] = _project_top(root)
    if report["part"] is None:
        tcl = root / "project.tcl"
        m = re.search(r'^set part "([^"]+)"', tcl.read_text(), re.MULTILINE) if (
            tcl.is_file()) else None
        report["part"] = m.group(1) if m else None
    if "vivado" in files:
        report["resources"]["vivado"] = parse_vivado_utilization(files["vivado"], report["part"])
        report["files"].append(str(files["vivado"]))
    return report
