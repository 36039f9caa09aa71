"""The Zynq board project: the Vivado Tcl script, checked in tclsh with stub Vivado commands."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from nnfab.accel.interface import AccelSettings
from nnfab.accel.tclcheck import check_tcl, find_tclsh
from nnfab.accel.vivado import VivadoFiles, run_vivado, tcl_word, write_vivado_project
from nnfab.errors import ConfigError, ToolError

PROJECT = "myproj"
VLNV = f"nnfab.org:hls:{PROJECT}_axi:1.0"
MODULE = f"{PROJECT}_axis"
PS_CELLS = {"zynq7": "processing_system7_0", "zynqmp": "zynq_ultra_ps_e_0"}
CLOCK_KEYS = {"zynq7": "CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ",
              "zynqmp": "CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ"}

needs_tclsh = pytest.mark.skipif(find_tclsh() is None, reason="tclsh is not installed")


def _ip_repo(root: Path) -> Path:
    repo = root / f"{PROJECT}_prj" / "solution1" / "impl" / "ip"
    repo.mkdir(parents=True)
    (repo / "component.xml").write_text("<fake/>\n")
    return repo


def _rtl_dir(root: Path) -> Path:
    d = root / "axis"
    d.mkdir(parents=True)
    (d / f"{MODULE}.v").write_text(f"module {MODULE}(input wire aclk); endmodule\n")
    (d / "core.v").write_text("module core(input wire clk); endmodule\n")
    (d / "defs.vh").write_text("`define NNFAB_TEST 1\n")
    (d / "notes.txt").write_text("not Verilog\n")
    return d


def _write(root: Path, board: str, route: str, **kw: object) -> tuple[VivadoFiles,
                                                                        AccelSettings]:
    settings = AccelSettings.make("VivadoAccelerator", board, route=route, **kw)
    if route == "hls":
        files = write_vivado_project(root, settings, PROJECT, route="hls",
                                     ip_repo=_ip_repo(root), ip_vlnv=VLNV, rtl_dir=None,
                                     rtl_module=None)
    else:
        files = write_vivado_project(root, settings, PROJECT, route="rtl", ip_repo=None,
                                     ip_vlnv=None, rtl_dir=_rtl_dir(root), rtl_module=MODULE)
    return files, settings


def _check(files: VivadoFiles, settings: AccelSettings, **kw: object):
    repo = files.root / f"{PROJECT}_prj" / "solution1" / "impl" / "ip"
    kw.setdefault("part", settings.board.part)
    kw.setdefault("board_part", settings.board.vivado_board_part)
    kw.setdefault("ip_repo", repo if files.route == "hls" else None)
    return check_tcl(files.tcl, **kw)


def _dict_of(call) -> dict[str, str]:
    """``set_property -dict [list K V ...] obj`` -> {K: V}."""
    words = call.args[1].split()
    return dict(zip(words[0::2], words[1::2], strict=True))


def _cell_props(check, cell: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for call in check.calls_to("set_property"):
        if call.args and call.args[0] == "-dict" and call.args[-1] == f"/{cell}":
            props.update(_dict_of(call))
    return props


@needs_tclsh
@pytest.mark.parametrize("board", ["pynq-z2", "zcu102"])
@pytest.mark.parametrize("route", ["hls", "rtl"])
def test_generated_script_passes_the_check(tmp_path: Path, board: str, route: str) -> None:
    files, settings = _write(tmp_path, board, route)
    b = settings.board
    assert files.tcl == tmp_path / "accel" / "vivado" / "build_bitfile.tcl"
    check = _check(files, settings)
    assert check.ok, check.errors
    assert not check.warnings, check.warnings
    text = files.tcl.read_text()
    assert f"set part {b.part}" in text
    assert "set dma_length_bits 26" in text
    assert "axi_dma_0" in text and "nnfab_nn_0" in text
    assert f"set bus_width {settings.bus_width}" in text

    (project,) = check.calls_to("create_project")
    assert project.option("-part") == b.part
    assert Path(project.args[1]) == tmp_path / "accel" / "vivado" / "nnfab_nn"
    cells = {c.args[-1]: c for c in check.calls_to("create_bd_cell")}
    assert {"axi_dma_0", "nnfab_nn_0", PS_CELLS[b.ps], "rst_ps_0"} <= set(cells)
    if route == "hls":
        assert cells["nnfab_nn_0"].option("-vlnv") == VLNV
        assert check.ip_repos == [tmp_path / f"{PROJECT}_prj" / "solution1" / "impl" / "ip"]
    else:
        assert cells["nnfab_nn_0"].option("-type") == "module"
        assert cells["nnfab_nn_0"].option("-reference") == MODULE
        added = sorted(f for f in check.files if f.parent == tmp_path / "axis")
        assert added == [tmp_path / "axis" / n for n in ("core.v", "defs.vh", f"{MODULE}.v")]
        assert not check.ip_repos

    dma = _cell_props(check, "axi_dma_0")
    assert dma["CONFIG.c_include_sg"] == "0"
    assert dma["CONFIG.c_sg_length_width"] == "26"
    assert dma["CONFIG.c_m_axis_mm2s_tdata_width"] == str(settings.bus_width)
    assert dma["CONFIG.c_s_axis_s2mm_tdata_width"] == str(settings.bus_width)
    ps = _cell_props(check, PS_CELLS[b.ps])
    assert float(ps[CLOCK_KEYS[b.ps]]) == b.clock_mhz

    (launch,) = check.calls_to("launch_runs")
    assert launch.args[0] == "impl_1" and launch.option("-to_step") == "write_bitstream"
    assert check.calls_to("assign_bd_address") and check.calls_to("validate_bd_design")
    destinations = {dst for _, dst in check.copies}
    assert destinations == {files.outputs["bit"], files.outputs["hwh"]}
    assert files.outputs == {"bit": tmp_path / "deploy" / "nnfab_nn.bit",
                             "hwh": tmp_path / "deploy" / "nnfab_nn.hwh"}
    assert not files.outputs["bit"].exists()  # the check wrote nothing


@needs_tclsh
def test_hls_control_port_only_on_the_hls_route(tmp_path: Path) -> None:
    hls, s = _write(tmp_path / "a", "pynq-z2", "hls")
    rtl, _ = _write(tmp_path / "b", "pynq-z2", "rtl")
    for files, want in ((hls, True), (rtl, False)):
        check = _check(files, s)
        nets = [" ".join(c.args) for c in check.calls_to("connect_bd_intf_net")]
        assert any("nnfab_nn_0/s_axi_control" in n for n in nets) is want
        assert any("nnfab_nn_0/" + ("in_stream" if want else "s_axis") in n for n in nets)
        props = _cell_props(check, "axi_ctrl_ic")
        assert props["CONFIG.NUM_MI"] == ("2" if want else "1")


@needs_tclsh
def test_bus_width_override_reaches_the_dma(tmp_path: Path) -> None:
    files, settings = _write(tmp_path, "zcu102", "rtl", bus_width=32)
    check = _check(files, settings)
    assert check.ok, check.errors
    dma = _cell_props(check, "axi_dma_0")
    assert dma["CONFIG.c_m_axis_mm2s_tdata_width"] == "32"
    assert dma["CONFIG.c_m_axi_mm2s_data_width"] == "32"


@needs_tclsh
def test_script_is_relocatable_and_handles_spaces(tmp_path: Path) -> None:
    files, settings = _write(tmp_path / "my project", "pynq-z2", "rtl")
    moved = tmp_path / "elsewhere [x]"
    shutil.copytree(files.root, moved)
    check = check_tcl(moved / "accel" / "vivado" / "build_bitfile.tcl",
                      part=settings.board.part, board_part=settings.board.vivado_board_part)
    assert check.ok, check.errors
    assert all(moved in f.parents for f in check.files)


@needs_tclsh
def test_syntax_error_fails_the_check(tmp_path: Path) -> None:
    files, settings = _write(tmp_path, "pynq-z2", "hls")
    lines = files.tcl.read_text().splitlines()
    n = next(i for i, line in enumerate(lines) if line.startswith("create_bd_design"))
    lines[n] = "create_bd_design $bd_name {"
    files.tcl.write_text("\n".join(lines) + "\n")
    check = _check(files, settings)
    assert not check.ok
    assert any(f"build_bitfile.tcl:{n + 1}:" in e and "Tcl error" in e for e in check.errors), \
        check.errors


@needs_tclsh
def test_tcl_error_in_control_flow_fails_the_check(tmp_path: Path) -> None:
    files, settings = _write(tmp_path, "pynq-z2", "hls")
    text = files.tcl.read_text().replace("set nn_clock ap_clk\n", "")
    files.tcl.write_text(text)
    check = _check(files, settings)
    assert not check.ok
    assert any("Tcl error" in e and "nn_clock" in e for e in check.errors), check.errors


@needs_tclsh
def test_missing_rtl_file_fails_the_check(tmp_path: Path) -> None:
    files, settings = _write(tmp_path, "zcu102", "rtl")
    (tmp_path / "axis" / "core.v").unlink()
    check = _check(files, settings)
    assert not check.ok
    assert any("add_files" in e and "core.v does not exist" in e for e in check.errors), \
        check.errors


@needs_tclsh
def test_wrong_part_board_part_and_ip_repo_fail_the_check(tmp_path: Path) -> None:
    files, settings = _write(tmp_path, "pynq-z2", "hls")
    check = _check(files, settings, part="xc7z010clg400-1")
    assert not check.ok
    assert any("create_project uses part 'xc7z020clg400-1'" in e for e in check.errors)
    check = _check(files, settings, board_part="digilentinc.com:zybo:part0:1.0")
    assert any("board_part is" in e for e in check.errors), check.errors
    other = tmp_path / "other_ip"
    check = _check(files, settings, ip_repo=other)
    assert any("ip_repo_paths is" in e for e in check.errors), check.errors
    assert _check(files, settings).ok


@needs_tclsh
def test_missing_ip_repo_fails_like_vivado_would(tmp_path: Path) -> None:
    files, settings = _write(tmp_path, "pynq-z2", "hls")
    shutil.rmtree(tmp_path / f"{PROJECT}_prj")
    check = check_tcl(files.tcl, part=settings.board.part)  # repo not declared as produced
    assert not check.ok
    assert any("HLS IP repository" in e for e in check.errors), check.errors
    assert _check(files, settings).ok  # the expected repo counts as produced by the HLS step


@needs_tclsh
def test_typo_in_a_vivado_command_is_reported(tmp_path: Path) -> None:
    files, settings = _write(tmp_path, "pynq-z2", "rtl")
    files.tcl.write_text(files.tcl.read_text().replace("validate_bd_design", "validat_bd_design"))
    check = _check(files, settings)
    assert any("validat_bd_design" in w for w in check.warnings)


@needs_tclsh
@pytest.mark.parametrize("text", ["plain", "a b", "x{y}z", "$HOME", "[exit 3]", "a\\b", "q\"r",
                                  "}{", "", "tab\there", "semi;colon #x"])
def test_tcl_word_is_one_literal_word(text: str) -> None:
    tclsh = find_tclsh()
    proc = subprocess.run([str(tclsh)], input=f"puts -nonewline [list {tcl_word(text)}]\n",
                          capture_output=True, text=True, timeout=10)
    got = subprocess.run([str(tclsh)], input=f"puts -nonewline [lindex {{{proc.stdout}}} 0]\n",
                         capture_output=True, text=True, timeout=10).stdout
    assert proc.returncode == 0
    assert got == text


def test_writer_rejects_bad_arguments(tmp_path: Path) -> None:
    s = AccelSettings.make("VivadoAccelerator", "pynq-z2", route="rtl")
    with pytest.raises(ConfigError, match="no Verilog files"):
        (tmp_path / "empty").mkdir()
        write_vivado_project(tmp_path, s, PROJECT, route="rtl", ip_repo=None, ip_vlnv=None,
                             rtl_dir=tmp_path / "empty", rtl_module=MODULE)
    with pytest.raises(ConfigError, match="Verilog identifier"):
        write_vivado_project(tmp_path, s, PROJECT, route="rtl", ip_repo=None, ip_vlnv=None,
                             rtl_dir=_rtl_dir(tmp_path), rtl_module="bad name")
    with pytest.raises(ConfigError, match="ip_vlnv"):
        write_vivado_project(tmp_path, s, PROJECT, route="hls", ip_repo=tmp_path, ip_vlnv=None,
                             rtl_dir=None, rtl_module=None)
    with pytest.raises(ConfigError, match="vendor:library:name:version"):
        write_vivado_project(tmp_path, s, PROJECT, route="hls", ip_repo=tmp_path,
                             ip_vlnv="nnfab_axi", rtl_dir=None, rtl_module=None)
    with pytest.raises(ConfigError, match="route must be"):
        write_vivado_project(tmp_path, s, PROJECT, route="vhdl", ip_repo=None, ip_vlnv=None,
                             rtl_dir=None, rtl_module=None)
    alveo = AccelSettings.make("VitisAccelerator", "alveo-u50")
    with pytest.raises(ConfigError, match="Zynq boards"):
        write_vivado_project(tmp_path, alveo, PROJECT, route="hls", ip_repo=tmp_path,
                             ip_vlnv=VLNV, rtl_dir=None, rtl_module=None)


def _no_vivado(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("NNFAB_VIVADO", raising=False)


def test_run_vivado_without_vivado_says_what_to_run(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    files, _ = _write(tmp_path, "pynq-z2", "rtl")
    _no_vivado(monkeypatch, tmp_path)
    with caplog.at_level(logging.WARNING, logger="nnfab.accel.vivado"):
        result = run_vivado(files)
    assert result["status"] == "written"
    assert result["missing"] == ["vivado"]
    assert result["command"] == files.command
    assert files.command.startswith("vivado -mode batch")
    assert "-source accel/vivado/build_bitfile.tcl" in files.command
    assert "-log accel/vivado/vivado.log" in files.command
    assert any(files.command in r.getMessage() for r in caplog.records)


def _fake_vivado(tmp_path: Path, body: str) -> Path:
    exe = tmp_path / "fake_vivado"
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(0o755)
    return exe


def test_run_vivado_runs_the_command_and_checks_outputs(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    files, _ = _write(tmp_path / "p", "pynq-z2", "rtl")
    exe = _fake_vivado(tmp_path, 'echo "args: $*"\ntest -f accel/vivado/build_bitfile.tcl\n'
                                 "mkdir -p deploy\ntouch deploy/nnfab_nn.bit deploy/nnfab_nn.hwh\n")
    monkeypatch.setenv("NNFAB_VIVADO", str(exe))
    result = run_vivado(files, timeout=30)
    assert result["status"] == "built"
    assert result["outputs"] == {k: str(v) for k, v in files.outputs.items()}
    build_log = (files.root / "accel" / "vivado" / "build.log").read_text()
    assert "-source accel/vivado/build_bitfile.tcl" in build_log


def test_run_vivado_without_outputs_raises(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    files, _ = _write(tmp_path / "p", "pynq-z2", "rtl")
    monkeypatch.setenv("NNFAB_VIVADO", str(_fake_vivado(tmp_path, "exit 0\n")))
    with pytest.raises(ToolError, match=r"vivado\.log"):
        run_vivado(files, timeout=30)
    monkeypatch.setenv("NNFAB_VIVADO", str(_fake_vivado(tmp_path, "echo boom; exit 2\n")))
    with pytest.raises(ToolError):
        run_vivado(files, timeout=30)


def test_check_skips_without_tclsh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, settings = _write(tmp_path, "pynq-z2", "rtl")
    monkeypatch.setenv("NNFAB_TCLSH", str(tmp_path / "no_such_tclsh"))
    check = check_tcl(files.tcl, part=settings.board.part)
    assert check.skipped and "tclsh" in check.skipped
    assert not check.ok
    assert os.environ["NNFAB_TCLSH"]
