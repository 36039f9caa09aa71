"""The Alveo (Vitis) and Coyote board projects: the files, and their scripts run with fake
vendor tools."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from nnfab.accel.coyote import fdev_name, write_coyote_project
from nnfab.accel.interface import AccelSettings
from nnfab.accel.vitis import memory_banks, write_vitis_project
from nnfab.errors import ConfigError

PROJECT = "myproj"
KERNEL = f"{PROJECT}_kernel"
MODULE = f"{PROJECT}_axis"
RTL_PORTS = {"aclk", "aresetn", "s_axis_tdata", "s_axis_tkeep", "s_axis_tvalid", "s_axis_tready",
             "s_axis_tlast", "m_axis_tdata", "m_axis_tkeep", "m_axis_tvalid", "m_axis_tready",
             "m_axis_tlast"}


def _kernel(root: Path, include_network: bool = False) -> Path:
    fw = root / "firmware"
    fw.mkdir(parents=True, exist_ok=True)
    (fw / f"{PROJECT}.cpp").write_text(f"void {PROJECT}() {{}}\n")
    src = fw / f"{KERNEL}.cpp"
    inc = f'#include "{PROJECT}.cpp"\n' if include_network else f'#include "{PROJECT}.h"\n'
    src.write_text(inc + f'extern "C" void {KERNEL}(const int* in, int* out, int n) {{}}\n')
    return src


def _fake_tool(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / name
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(0o755)


def _path_with(bin_dir: Path) -> str:
    return f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin"


# ------------------------------------------------------------------ Vitis
@pytest.mark.parametrize(("board", "kind"), [("alveo-u50", "HBM"), ("alveo-u280", "HBM"),
                                             ("alveo-u200", "DDR"), ("alveo-u250", "DDR")])
def test_link_config_maps_the_buffers_to_the_card_memory(tmp_path: Path, board: str,
                                                         kind: str) -> None:
    settings = AccelSettings.make("VitisAccelerator", board)
    files = write_vitis_project(tmp_path, settings, PROJECT, kernel_sources=[_kernel(tmp_path)])
    cfg = files.link_config.read_text()
    assert files.link_config == tmp_path / "accel" / "vitis" / "link.cfg"
    assert settings.board.platform and settings.board.platform in cfg
    assert f"nk={KERNEL}:1:{KERNEL}_1" in cfg
    assert f"sp={KERNEL}_1.in:{kind}[0]" in cfg
    assert f"sp={KERNEL}_1.out:{kind}[1]" in cfg
    assert "gmem0" in cfg and "gmem1" in cfg
    assert f"freqHz={int(settings.board.clock_mhz * 1e6)}:{KERNEL}_1" in cfg
    assert cfg.index("[connectivity]") < cfg.index("sp=") < cfg.index("[clock]")
    assert files.memory == [f"{kind}[0]", f"{kind}[1]"]


def test_vitis_script(tmp_path: Path) -> None:
    settings = AccelSettings.make("VitisAccelerator", "alveo-u50")
    files = write_vitis_project(tmp_path, settings, PROJECT, kernel_sources=[_kernel(tmp_path)])
    text = files.script.read_text()
    assert files.command == "sh accel/vitis/build_xclbin.sh"
    assert f"PLATFORM=${{NNFAB_VITIS_PLATFORM:-{settings.board.platform}}}" in text
    assert f'v++ -c -t "$TARGET" --platform "$PLATFORM" -k {KERNEL}' in text
    assert 'v++ -l -t "$TARGET" --platform "$PLATFORM" --config link.cfg' in text
    assert '"$root"/firmware/myproj_kernel.cpp' in text
    assert '"$root"/firmware/myproj.cpp' in text  # the network, compiled with the kernel
    assert files.outputs == {"xclbin": tmp_path / "deploy" / "nnfab_nn.xclbin"}
    assert subprocess.run(["sh", "-n", str(files.script)]).returncode == 0


def test_network_source_not_added_twice(tmp_path: Path) -> None:
    settings = AccelSettings.make("VitisAccelerator", "alveo-u50")
    files = write_vitis_project(tmp_path, settings, PROJECT,
                                kernel_sources=[_kernel(tmp_path, include_network=True)])
    assert files.sources == [tmp_path / "firmware" / f"{KERNEL}.cpp"]
    assert '"$root"/firmware/myproj.cpp' not in files.script.read_text()


def test_vitis_script_runs_with_a_fake_vpp(tmp_path: Path) -> None:
    root = tmp_path / "my project"
    settings = AccelSettings.make("VitisAccelerator", "alveo-u250")
    files = write_vitis_project(root, settings, PROJECT, kernel_sources=[_kernel(root)])
    bin_dir = tmp_path / "bin"
    calls = tmp_path / "calls.txt"
    _fake_tool(bin_dir, "v++", f'echo "$@" >> "{calls}"\nout=""\nwhile [ $# -gt 0 ]; do\n'
               '  if [ "$1" = -o ]; then out="$2"; fi\n'
               '  if [ "${1#-}" = "$1" ] && [ ! -e "$1" ] && [ "$prev" != -o ] && \\\n'
               '     [ "$prev" != -k ] && [ "$prev" != -t ] && [ "$prev" != --platform ] && \\\n'
               '     [ "$prev" != --config ] && [ "$prev" != -I ] && \\\n'
               '     [ "$prev" != --temp_dir ] && [ "$prev" != --log_dir ]; then\n'
               '    echo "missing input $1" >&2; exit 3; fi\n'
               '  prev="$1"; shift\ndone\necho fake > "$out"\n')
    env = {**os.environ, "PATH": _path_with(bin_dir)}
    env.pop("NNFAB_VITIS_TARGET", None)
    proc = subprocess.run(["sh", files.command.split()[1]], cwd=root, env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert files.outputs["xclbin"].read_text() == "fake\n"
    compile_line, link_line = calls.read_text().splitlines()
    assert compile_line.startswith(f"-c -t hw --platform {settings.board.platform} -k {KERNEL}")
    assert link_line.startswith("-l -t hw")
    assert f"{KERNEL}.hw.xo" in link_line


def test_vitis_script_fails_clearly_without_vpp(tmp_path: Path) -> None:
    settings = AccelSettings.make("VitisAccelerator", "alveo-u50")
    files = write_vitis_project(tmp_path, settings, PROJECT, kernel_sources=[_kernel(tmp_path)])
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run(["/bin/sh", str(files.script)], env={"PATH": str(empty)},
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "v++ not found" in proc.stderr


def test_memory_banks_unknown_platform() -> None:
    assert memory_banks("xilinx_u55c_gen3x16_xdma_3_202210_1") == ["HBM[0]", "HBM[1]"]
    assert memory_banks("xilinx_vck5000_gen4x8_qdma_2_202220_1") == []


def test_vitis_rejects_bad_arguments(tmp_path: Path) -> None:
    alveo = AccelSettings.make("VitisAccelerator", "alveo-u50")
    with pytest.raises(ConfigError, match="no kernel sources"):
        write_vitis_project(tmp_path, alveo, PROJECT, kernel_sources=[])
    with pytest.raises(ConfigError, match="do not exist"):
        write_vitis_project(tmp_path, alveo, PROJECT, kernel_sources=[tmp_path / "nope.cpp"])
    other = tmp_path / "other_kernel.cpp"
    other.write_text('extern "C" void other_kernel(int* in) {}\n')
    with pytest.raises(ConfigError, match=f"defines {KERNEL}"):
        write_vitis_project(tmp_path, alveo, PROJECT, kernel_sources=[other])
    zynq = AccelSettings.make("VivadoAccelerator", "pynq-z2")
    with pytest.raises(ConfigError, match="Alveo"):
        write_vitis_project(tmp_path, zynq, PROJECT, kernel_sources=[_kernel(tmp_path)])


# ------------------------------------------------------------------ Coyote
def _rtl_dir(root: Path) -> Path:
    d = root / "axis"
    d.mkdir(parents=True)
    ports = ", ".join(sorted(RTL_PORTS))
    (d / f"{MODULE}.v").write_text(f"module {MODULE}({ports}); endmodule\n")
    (d / "core.v").write_text("module core(); endmodule\n")
    return d


def _coyote(root: Path):
    settings = AccelSettings.make("CoyoteAccelerator", "u55c")
    return write_coyote_project(root, settings, PROJECT, rtl_dir=_rtl_dir(root),
                                rtl_module=MODULE), settings


def test_coyote_user_logic_instantiates_the_network(tmp_path: Path) -> None:
    files, settings = _coyote(tmp_path)
    assert settings.bus_width == 512
    text = files.user_logic.read_text()
    assert files.user_logic == tmp_path / "accel" / "coyote" / "src" / "vfpga_top.svh"
    inst = re.search(rf"{MODULE} inst_nnfab_nn \((.*?)\);", text, re.S)
    assert inst is not None
    conns = dict(re.findall(r"\.(\w+)\s*\(([^)]*)\)", inst.group(1)))
    assert set(conns) == RTL_PORTS
    for sig in ("tdata", "tkeep", "tvalid", "tready", "tlast"):
        assert conns[f"s_axis_{sig}"] == f"axis_host_recv[0].{sig}"
        assert conns[f"m_axis_{sig}"] == f"axis_host_send[0].{sig}"
    assert conns["aclk"] == "aclk" and conns["aresetn"] == "aresetn"
    for tie in ("axi_ctrl.tie_off_s()", "notify.tie_off_m()", "sq_rd.tie_off_m()",
                "sq_wr.tie_off_m()", "cq_rd.tie_off_s()", "cq_wr.tie_off_s()"):
        assert tie in text
    assert "assign axis_host_send[0].tid" in text
    assert len(re.findall(r"\bbegin\b", text)) == len(re.findall(r"\bend\b", text)) == 1


def test_coyote_cmake_readme_and_sources(tmp_path: Path) -> None:
    files, _ = _coyote(tmp_path)
    cmake = files.cmake.read_text()
    assert "find_package(CoyoteHW REQUIRED)" in cmake
    assert "set(FDEV_NAME u55c)" in cmake
    assert "set(EN_STRM 1)" in cmake and "set(N_REGIONS 1)" in cmake
    assert 'VFPGA_C0_0 "src"' in cmake and "create_hw()" in cmake
    assert cmake.count("(") == cmake.count(")")
    assert sorted(p.name for p in (files.directory / "src" / "hdl").iterdir()) == [
        "core.v", f"{MODULE}.v"]
    readme = files.readme.read_text()
    assert files.command in readme and "COYOTE_DIR" in readme and "Not checked" in readme
    assert files.outputs == {"bit": tmp_path / "deploy" / "nnfab_nn.bit"}
    assert files.command == "sh accel/coyote/build_bitfile.sh"
    assert subprocess.run(["sh", "-n", str(files.script)]).returncode == 0


def test_coyote_script_runs_with_fake_cmake_and_make(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    files, _ = _coyote(root)
    (root / "axis" / "core.v").write_text("module core(); /* rebuilt */ endmodule\n")
    bin_dir = tmp_path / "bin"
    calls = tmp_path / "calls.txt"
    _fake_tool(bin_dir, "cmake", f'echo "cmake $* in $(pwd)" >> "{calls}"\n')
    _fake_tool(bin_dir, "make", f'echo "make $*" >> "{calls}"\n'
               'if [ "$1" = bitgen ]; then mkdir -p bitstreams\n'
               '  echo bit > bitstreams/cyt_top.bit; fi\n')
    env = {**os.environ, "PATH": _path_with(bin_dir), "COYOTE_DIR": str(tmp_path / "Coyote")}
    proc = subprocess.run(["sh", "accel/coyote/build_bitfile.sh"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert files.outputs["bit"].read_text() == "bit\n"
    lines = calls.read_text().splitlines()
    assert lines[0].startswith(f"cmake .. -DFDEV_NAME=u55c -DCYT_DIR={tmp_path / 'Coyote'}")
    assert lines[0].endswith("accel/coyote/build_hw")
    assert lines[1:] == ["make project", "make bitgen"]
    assert "rebuilt" in (files.directory / "src" / "hdl" / "core.v").read_text()

    env.pop("COYOTE_DIR")
    proc = subprocess.run(["sh", "accel/coyote/build_bitfile.sh"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "COYOTE_DIR" in proc.stderr


def test_coyote_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="512"):
        write_coyote_project(tmp_path, AccelSettings.make("CoyoteAccelerator", "u55c",
                                                          bus_width=256),
                             PROJECT, rtl_dir=_rtl_dir(tmp_path), rtl_module=MODULE)
    s = AccelSettings.make("CoyoteAccelerator", "u55c")
    with pytest.raises(ConfigError, match="Verilog identifier"):
        write_coyote_project(tmp_path, s, PROJECT, rtl_dir=tmp_path / "axis", rtl_module="a-b")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no Verilog files"):
        write_coyote_project(tmp_path, s, PROJECT, rtl_dir=tmp_path / "empty",
                             rtl_module=MODULE)
    with pytest.raises(ConfigError, match="Coyote boards"):
        write_coyote_project(tmp_path, AccelSettings.make("VitisAccelerator", "alveo-u50"),
                             PROJECT, rtl_dir=tmp_path / "axis", rtl_module=MODULE)
    assert fdev_name("alveo-u280") == "u280"
    with pytest.raises(ConfigError, match="FDEV_NAME"):
        fdev_name("pynq-z2")
