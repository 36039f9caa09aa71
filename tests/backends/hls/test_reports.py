"""Parsing vendor reports (files in tests/backends/hls/data, written in the documented
formats of Vitis HLS / Vivado HLS csynth.xml and csynth.rpt and Vivado report_utilization)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nnfab.backends.hls.reports import (
    parse_csynth_rpt,
    parse_csynth_xml,
    parse_vivado_utilization,
    read_report,
    time_ns,
)
from nnfab.errors import BackendError

DATA = Path(__file__).parent / "data"


def check(resource: dict, used: float | None, available: float | None) -> None:
    assert resource["used"] == used and resource["available"] == available
    if used is None or not available:
        assert resource["percent"] is None
    else:
        assert resource["percent"] == pytest.approx(100 * used / available, rel=1e-12)


def test_vitis_csynth_xml() -> None:
    r = parse_csynth_xml(DATA / "vitis_csynth.xml")
    assert r["top"] == "myproject" and r["part"] == "xcvu9p-flgb2104-2L-e"
    assert r["clock"] == {"target_ns": 5.0, "estimated_ns": 4.372, "uncertainty_ns": 0.62}
    assert r["latency"]["min_cycles"] == 47 and r["latency"]["max_cycles"] == 52
    assert r["latency"]["min_ns"] == pytest.approx(235.0)  # "0.235 us"
    assert r["latency"]["max_ns"] == pytest.approx(260.0)
    assert r["interval"] == {"min_cycles": 1, "max_cycles": 1}
    assert r["pipeline_type"] == "yes"
    hls = r["resources"]["hls"]
    check(hls["LUT"], 45678, 1182240)
    check(hls["FF"], 12345, 2364480)
    check(hls["DSP"], 212, 6840)
    check(hls["BRAM_18K"], 4, 4320)
    check(hls["URAM"], 0, 960)


def test_vivado_hls_csynth_xml_with_undefined_values_and_part_table() -> None:
    r = parse_csynth_xml(DATA / "vivado_hls_csynth.xml")
    assert r["latency"]["min_cycles"] == 1153 and r["latency"]["max_cycles"] is None
    assert r["latency"]["min_ns"] == pytest.approx(1153 * 10.0)  # cycles x target period
    assert r["latency"]["max_ns"] is None
    assert r["interval"] == {"min_cycles": 1154, "max_cycles": None}
    assert r["pipeline_type"] == "dataflow"
    hls = r["resources"]["hls"]
    # no AvailableResources in this report: xc7z020clg400-1 from nnfab's part table
    check(hls["DSP"], 110, 220)
    check(hls["LUT"], 31900, 53200)
    check(hls["FF"], 20480, 106400)
    check(hls["BRAM_18K"], 37, 280)
    check(hls["URAM"], None, 0)


def test_csynth_text_report() -> None:
    r = parse_csynth_rpt(DATA / "vitis_csynth.rpt")
    assert r["top"] == "myproject" and r["part"] == "xcvu9p-flgb2104-2L-e"
    assert r["clock"] == {"target_ns": 5.0, "estimated_ns": 4.125, "uncertainty_ns": 1.35}
    assert r["latency"] == {"min_cycles": 14, "max_cycles": 15, "min_ns": 70.0, "max_ns": 75.0}
    assert r["interval"] == {"min_cycles": 4, "max_cycles": 4}
    assert r["pipeline_type"] == "dataflow"
    hls = r["resources"]["hls"]
    check(hls["LUT"], 2423, 1182240)
    check(hls["FF"], 1245, 2364480)
    check(hls["DSP"], 12, 6840)
    check(hls["BRAM_18K"], 2, 4320)
    check(hls["URAM"], 0, 960)


def test_vivado_utilization_ultrascale_plus() -> None:
    v = parse_vivado_utilization(DATA / "vivado_synth.rpt")
    check(v["LUT"], 39120, 1182240)
    check(v["FF"], 10880, 2364480)
    check(v["DSP"], 198, 6840)
    check(v["BRAM_18K"], 5, 4320)  # 2.5 tiles of 36 Kb = 5 blocks of 18 Kb
    check(v["URAM"], 0, 960)


def test_vivado_utilization_7_series() -> None:
    v = parse_vivado_utilization(DATA / "vivado_synth_7series.rpt", part="xc7z020clg400-1")
    check(v["LUT"], 6540, 53200)
    check(v["FF"], 4096, 106400)
    check(v["DSP"], 81, 220)
    check(v["BRAM_18K"], 14, 280)
    check(v["URAM"], None, 0)


def test_not_a_utilization_report(tmp_path: Path) -> None:
    bad = tmp_path / "x.rpt"
    bad.write_text("hello\n| a | b |\n")
    with pytest.raises(BackendError, match="does not look like a Vivado utilization report"):
        parse_vivado_utilization(bad)


@pytest.mark.parametrize(("text", "ns"), [("50.000 ns", 50.0), ("0.130 us", 130.0),
                                           ("0.005 sec", 5e6), ("1.5 ms", 1.5e6),
                                           ("undef", None), (None, None), ("12", 12.0)])
def test_time_units(text: str | None, ns: float | None) -> None:
    assert time_ns(text) == (pytest.approx(ns) if ns is not None else None)


def make_project(root: Path, top: str = "myproject") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "project.tcl").write_text(
        f'set project_name "{top}"\nset backend "Vitis"\nset part "xcvu9p-flgb2104-2l-e"\n')
    return root / f"{top}_prj" / "solution1" / "syn" / "report"


def test_read_report_prefers_xml_and_adds_vivado(tmp_path: Path) -> None:
    reports = make_project(tmp_path / "prj")
    reports.mkdir(parents=True)
    shutil.copy(DATA / "vitis_csynth.xml", reports / "csynth.xml")
    shutil.copy(DATA / "vitis_csynth.rpt", reports / "csynth.rpt")
    shutil.copy(DATA / "vivado_synth.rpt", tmp_path / "prj" / "vivado_synth.rpt")
    r = read_report(tmp_path / "prj")
    assert r["latency"]["max_cycles"] == 52  # from the XML, not the text report
    check(r["resources"]["vivado"]["LUT"], 39120, 1182240)
    assert [Path(f).name for f in r["files"]] == ["csynth.xml", "vivado_synth.rpt"]


def test_read_report_falls_back_to_text_and_names_missing_files(tmp_path: Path) -> None:
    reports = make_project(tmp_path / "prj", top="net")
    with pytest.raises(BackendError, match=r"net_prj/solution1/syn/report/csynth.xml"):
        read_report(tmp_path / "prj")
    reports.mkdir(parents=True)
    shutil.copy(DATA / "vitis_csynth.rpt", reports / "net_csynth.rpt")
    assert read_report(tmp_path / "prj")["latency"]["min_cycles"] == 14
