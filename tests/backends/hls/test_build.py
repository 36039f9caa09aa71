"""NnfabModel.build / build_project with stand-in vendor tools (small scripts on PATH).

The stand-ins record how they were called, write the report files a real run leaves
(copies of tests/backends/hls/data) and exit with a chosen status.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from hls_helpers import mlp_graph

import nnfab
from nnfab.backends.hls.build import build_project, find_hls_tool
from nnfab.errors import ToolError, ToolNotFoundError

DATA = Path(__file__).parent / "data"

FAKE = """#!{python}
import json, os, shutil, sys
from pathlib import Path
cwd = Path.cwd()
calls = Path(os.environ["FAKE_CALLS"])
with calls.open("a") as f:
    f.write(json.dumps({{"tool": {name!r}, "argv": sys.argv[1:], "cwd": str(cwd)}}) + "\\n")
print("fake {name} running")
if {name!r} == "vivado":
    shutil.copy({data!r} + "/vivado_synth.rpt", cwd / "vivado_synth.rpt")
else:
    reports = cwd / "myproject_prj" / "solution1" / "syn" / "report"
    reports.mkdir(parents=True, exist_ok=True)
    shutil.copy({data!r} + "/vitis_csynth.xml", reports / "csynth.xml")
print("ERROR: [HLS 200-70] something failed" if os.environ.get("FAKE_EXIT") else "done")
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
"""


def fake_tool(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(FAKE.format(python=sys.executable, name=name, data=str(DATA)))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An environment without vendor tools: PATH holds only an empty directory."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    for var in ("NNFAB_VITIS_HLS", "NNFAB_VITIS_RUN", "NNFAB_VIVADO_HLS", "NNFAB_VIVADO",
                "FAKE_EXIT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FAKE_CALLS", str(tmp_path / "calls.jsonl"))
    return bin_dir


def calls(tmp_path: Path) -> list[dict]:
    path = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def model(tmp_path: Path, backend: str = "Vitis") -> nnfab.NnfabModel:
    return nnfab.convert_graph(mlp_graph((4, 3), softmax=False), backend=backend,
                               output_dir=tmp_path / "prj")


def test_vitis_hls_build_runs_in_the_project_and_returns_the_report(
    env: Path, tmp_path: Path
) -> None:
    fake_tool(env, "vitis_hls")
    hm = model(tmp_path)
    report = hm.build(csim=True, synth=True)
    root = (tmp_path / "prj").resolve()
    (call,) = calls(tmp_path)
    assert call["tool"] == "vitis_hls" and call["cwd"] == str(root)
    assert call["argv"] == ["-f", "build_prj.tcl", "-tclargs",
                            "csim=1 synth=1 cosim=0 export=0 vsynth=0"]
    assert "fake vitis_hls running" in (root / "nnfab_build.log").read_text()
    assert report["log"] == str(root / "nnfab_build.log")
    assert report["latency"]["max_cycles"] == 52
    assert report["resources"]["hls"]["DSP"]["used"] == 212
    assert (root / "build_prj.tcl").is_file() and (root / "nnfab_model.json").is_file()


def test_cosim_and_vsynth_imply_synthesis_and_run_vivado(env: Path, tmp_path: Path) -> None:
    fake_tool(env, "vitis_hls")
    fake_tool(env, "vivado")
    report = model(tmp_path).build(csim=False, synth=False, cosim=True, vsynth=True)
    hls, vivado = calls(tmp_path)
    assert hls["argv"][-1] == "csim=0 synth=1 cosim=1 export=0 vsynth=0"
    assert vivado["tool"] == "vivado"
    assert vivado["argv"][:2] == ["-mode", "batch"] and "vivado_synth.tcl" in vivado["argv"]
    assert report["resources"]["vivado"]["LUT"]["used"] == 39120


def test_no_tool_says_where_the_project_is_and_what_to_run(env: Path, tmp_path: Path) -> None:
    hm = model(tmp_path)
    with pytest.raises(ToolNotFoundError) as info:
        hm.build(csim=False, synth=True)
    message = str(info.value)
    root = (tmp_path / "prj").resolve()
    assert "vitis_hls or vitis-run" in message and "NNFAB_VITIS_HLS" in message
    assert f"written to {root}" in message
    assert f"cd {root} && vitis_hls -f build_prj.tcl -tclargs " \
           "'csim=0 synth=1 cosim=0 export=0 vsynth=0'" in message
    assert (root / "build_prj.tcl").is_file() and (root / "firmware" / "myproject.cpp").is_file()
    vivado = model(tmp_path, backend="Vivado")
    vivado.output_dir = tmp_path / "prj2"
    with pytest.raises(ToolNotFoundError, match=r"vivado_hls.*NNFAB_VIVADO_HLS"):
        vivado.build()


def test_vsynth_without_vivado_is_reported_before_running_anything(
    env: Path, tmp_path: Path
) -> None:
    fake_tool(env, "vitis_hls")
    with pytest.raises(ToolNotFoundError, match=r"vivado -mode batch -source vivado_synth\.tcl"):
        model(tmp_path).build(vsynth=True)
    assert calls(tmp_path) == []


def test_failing_tool_names_the_log_and_leaves_user_files_alone(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_tool(env, "vitis_hls")
    hm = model(tmp_path)
    x = np.linspace(-1, 1, 8).reshape(2, 4)
    root = hm.write(tb_input=x)
    notes = root / "my_notes.txt"
    notes.write_text("mine")
    tb = (root / "tb_data" / "tb_input_features.dat").read_text()
    monkeypatch.setenv("FAKE_EXIT", "3")
    with pytest.raises(ToolError) as info:
        build_project(root)
    message = str(info.value)
    assert "exit code 3" in message and str(root.resolve() / "nnfab_build.log") in message
    assert "HLS 200-70" in message  # the log's tail travels in the error
    assert notes.read_text() == "mine"
    assert (root / "tb_data" / "tb_input_features.dat").read_text() == tb


def test_environment_overrides_and_vitis_run(env: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "tools"
    runner = fake_tool(elsewhere, "vitis-run")
    monkeypatch.setenv("NNFAB_VITIS_RUN", str(runner))
    tool = find_hls_tool("Vitis")
    assert tool is not None and tool.name == "vitis-run"
    report = model(tmp_path).build(csim=False)
    (call,) = calls(tmp_path)
    assert call["argv"] == ["--mode", "hls", "--tcl", "nnfab_run.tcl"]
    script = (tmp_path / "prj" / "nnfab_run.tcl").read_text()
    assert "set ::argv [list {csim=0 synth=1 cosim=0 export=0 vsynth=0}]" in script
    assert "build_prj.tcl" in script and report["latency"]["min_cycles"] == 47
    hls = fake_tool(elsewhere, "vitis_hls")
    monkeypatch.setenv("NNFAB_VITIS_HLS", str(hls))
    assert find_hls_tool("Vitis").name == "vitis_hls"  # vitis_hls first
    monkeypatch.setenv("NNFAB_VIVADO_HLS", str(tmp_path / "nope"))
    with pytest.raises(ToolNotFoundError, match="NNFAB_VIVADO_HLS"):
        find_hls_tool("Vivado")


def test_build_without_synthesis_returns_only_the_log(env: Path, tmp_path: Path) -> None:
    fake_tool(env, "vitis_hls")
    report = model(tmp_path).build(csim=True, synth=False)
    assert set(report) == {"log", "files"}
    assert os.path.isfile(report["log"])


def test_cli_build_and_report(env: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from nnfab.cli import cli

    root = model(tmp_path).write()
    runner = CliRunner()
    res = runner.invoke(cli, ["build", str(root)])
    assert isinstance(res.exception, ToolNotFoundError)
    assert "vitis_hls -f build_prj.tcl" in str(res.exception)
    fake_tool(env, "vitis_hls")
    res = runner.invoke(cli, ["build", str(root), "--no-csim"])
    assert res.exit_code == 0, res.output
    assert calls(tmp_path)[0]["argv"][-1] == "csim=0 synth=1 cosim=0 export=0 vsynth=0"
    assert "47 .. 52" in res.output and "DSP" in res.output
    res = runner.invoke(cli, ["report", str(root), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["resources"]["hls"]["LUT"]["used"] == 45678
