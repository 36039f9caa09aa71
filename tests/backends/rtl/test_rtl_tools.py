"""nnfab.tools: locating tools, running them, parsing Yosys statistics."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from nnfab.errors import ToolError, ToolNotFoundError
from nnfab.tools import env_var_for, require_tool, run
from nnfab.tools.yosys import count_resources, parse_results, synth_script


def _fake_tool(directory: Path, name: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_env_var_names() -> None:
    assert env_var_for("verilator") == "NNFAB_VERILATOR"
    assert env_var_for("vitis_hls") == "NNFAB_VITIS_HLS"
    assert env_var_for("g++") == "NNFAB_CXX"


def test_env_override_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = _fake_tool(tmp_path, "mytool")
    monkeypatch.setenv("NNFAB_MYTOOL", str(tool))
    assert require_tool("mytool") == tool.resolve()
    monkeypatch.setenv("NNFAB_MYTOOL", str(tmp_path))  # a directory holding the tool
    assert require_tool("mytool") == tool.resolve()


def test_bad_env_override_names_the_variable(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNFAB_MYTOOL", str(tmp_path / "nope"))
    with pytest.raises(ToolNotFoundError, match=r"NNFAB_MYTOOL=.*nope.*fix or unset"):
        require_tool("mytool")


def test_missing_tool_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NNFAB_NO_SUCH_TOOL_XYZ", raising=False)
    with pytest.raises(ToolNotFoundError, match=r"not found on PATH.*NNFAB_NO_SUCH_TOOL_XYZ"):
        require_tool("no_such_tool_xyz", hint="install it from the moon")
    with pytest.raises(ToolNotFoundError, match="install it from the moon"):
        require_tool("no_such_tool_xyz", hint="install it from the moon")


def test_extra_dirs_are_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NNFAB_HIDDENTOOL", raising=False)
    monkeypatch.setenv("PATH", os.defpath)
    tool = _fake_tool(tmp_path, "hiddentool")
    assert require_tool("hiddentool", extra_dirs=[tmp_path]) == tool.resolve()


def test_run_logs_output_and_succeeds(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "ok.log"
    run([sys.executable, "-c", "print('hello from the tool')"], log)
    assert "hello from the tool" in log.read_text()


def test_run_failure_names_the_log_and_exit_code(tmp_path: Path) -> None:
    log = tmp_path / "bad.log"
    code = "import sys; print('something broke'); sys.exit(3)"
    with pytest.raises(ToolError) as info:
        run([sys.executable, "-c", code], log, what="mytool")
    text = str(info.value)
    assert "mytool failed with exit code 3" in text
    assert str(log) in text
    assert "something broke" in text


def test_run_timeout(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="did not finish within"):
        run([sys.executable, "-c", "import time; time.sleep(10)"], tmp_path / "t.log",
            timeout=0.5)


def test_count_resources_maps_xilinx_cells() -> None:
    cells = {"LUT2": 3, "LUT6": 4, "INV": 1, "FDRE": 10, "FDSE": 2, "CARRY4": 5,
             "DSP48E2": 2, "RAMB36E2": 1, "RAMB18E2": 1, "SRL16E": 1, "RAM32M": 2,
             "IBUF": 9, "BUFG": 1}
    got = count_resources(cells)
    assert got == {"lut": 8, "ff": 12, "dsp": 2, "bram_18k": 3, "carry": 5, "lutram": 2,
                   "srl": 1}


def test_parse_results(tmp_path: Path) -> None:
    stat_json = tmp_path / "stat.json"
    stat_json.write_text(json.dumps({"design": {"num_cells_by_type": {
        "LUT3": 7, "FDRE": 5, "CARRY8": 1}}}))
    ltp = tmp_path / "ltp.txt"
    ltp.write_text("\nLongest topological path in top (length=12):\n  0: x\n")
    r = parse_results(stat_json, ltp, "xcup", "top")
    assert (r.lut, r.ff, r.carry, r.longest_path) == (7, 5, 1, 12)


def test_synth_script_uses_the_family_and_flattens() -> None:
    cmds = synth_script([Path("/a b/x.v")], "top", "xc7", Path("/out"))
    assert 'read_verilog -defer "/a b/x.v"' in cmds
    assert "synth_xilinx -family xc7 -flatten -top top" in cmds
    assert any(c.startswith("tee -q -o /out/stat.json stat -json") for c in cmds)
    with pytest.raises(ValueError, match="family"):
        synth_script([], "top", "xc9", Path("/out"))
