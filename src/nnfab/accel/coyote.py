"""The Coyote hardware project: the network's Verilog as the user logic of a vFPGA.

``write_coyote_project`` writes ``<root>/accel/coyote/``:

- ``src/vfpga_top.svh``: the vFPGA user logic. It instantiates the network's AXI4-Stream
  wrapper ``rtl_module`` (route "rtl") between Coyote's host streams: input
  ``axis_host_recv[0]`` (host memory -> vFPGA), output ``axis_host_send[0]`` (vFPGA ->
  host memory), 512-bit TDATA in nnfab's lane format (``docs/axi_stream.md``); the output
  carries the TID of the last input beat; every other vFPGA interface is tied off.
- ``src/hdl/``: a copy of the Verilog (``build_bitfile.sh`` copies it again before building).
- ``CMakeLists.txt``: Coyote's hardware flow (``find_package(CoyoteHW)``, host streams on,
  card memory off, one vFPGA region, ``FDEV_NAME`` from the board).
- ``build_bitfile.sh``: ``cmake`` + ``make project`` + ``make bitgen`` in
  ``accel/coyote/build_hw``, then copies ``bitstreams/cyt_top.bit`` to
  ``<root>/deploy/nnfab_nn.bit``. Needs ``COYOTE_DIR`` (a Coyote checkout) and Vivado.
- ``README.md``: the steps.

Not checked on this machine (no Coyote checkout, no Vivado): that Coyote's CMake flow of
the checked-out version accepts this project (written for Coyote v2: ``load_apps``,
``validation_checks_hw``, ``create_hw``, the ``AXI4SR`` interface with ``tid``), that the
SystemVerilog compiles, timing, and the bitstream on a card.

``sw/``: the host side, ``nnfab_coyote.cpp`` (a C interface over Coyote's C++ ``cThread``
API, one local transfer per batch, loaded by ``nnfab_coyote_driver.CoyoteOverlay``, and a
test program for the test vectors) with its ``CMakeLists.txt``. Written for Coyote v2's
``cThread`` / ``getMem`` / ``invoke(LOCAL_TRANSFER)`` / ``checkCompleted``; not compiled
here against Coyote (the simulated board stands in for the library instead).
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from nnfab.accel.interface import BITFILE_STEM, AccelSettings
from nnfab.errors import ConfigError
from nnfab.ir import sanitize

log = logging.getLogger(__name__)

COYOTE_DIR = Path("accel") / "coyote"
SCRIPT_NAME = "build_bitfile.sh"
BUS_WIDTH = 512
"""Coyote's host streams are 512 bits wide."""
FDEVS = ("u55c", "u280", "u250", "u200", "u50", "vcu118", "enzian")
"""Coyote's ``FDEV_NAME`` values nnfab knows; the board name (minus ``alveo-``) must be one."""
RTL_EXTENSIONS = (".v", ".sv", ".vh", ".svh")
_VERILOG_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


@dataclass
class CoyoteFiles:
    """What ``write_coyote_project`` wrote; ``command`` runs the build from ``root``."""

    root: Path
    directory: Path
    user_logic: Path
    cmake: Path
    script: Path
    readme: Path
    command: str
    outputs: dict[str, Path]
    fdev: str
    sources: list[Path] = field(default_factory=list)


def fdev_name(board_name: str) -> str:
    """Coyote's ``FDEV_NAME`` for a board (``u55c`` -> ``u55c``, ``alveo-u280`` -> ``u280``)."""
    name = board_name.lower().removeprefix("alveo-").removeprefix("xilinx-")
    if name not in FDEVS:
        raise ConfigError(f"board {board_name!r}: Coyote builds for FDEV_NAME "
                          f"{', '.join(FDEVS)}; name the board after one of them")
    return name


def _user_logic(project: str, module: str) -> str:
    ports = [("aclk", "aclk"), ("aresetn", "aresetn")]
    for ours, theirs in (("s_axis", "axis_host_recv[0]"), ("m_axis", "axis_host_send[0]")):
        for sig in ("tdata", "tkeep", "tvalid", "tready", "tlast"):
            ports.append((f"{ours}_{sig}", f"{theirs}.{sig}"))
    width = max(len(p) for p, _ in ports)
    conns = ",\n".join(f"    .{p:<{width}} ({s})" for p, s in ports)
    return f"""// vFPGA user logic of nnfab project {project}: written by nnfab.
//
// The network's AXI4-Stream wrapper {module} between Coyote's host streams:
//   axis_host_recv[0] (host memory -> vFPGA) -> {module} -> axis_host_send[0] (-> host memory)
// TDATA is {BUS_WIDTH} bits in nnfab's lane format (docs/axi_stream.md); TLAST ends a
// transfer. One host thread at a time: the output carries the TID of the last input beat.

import lynxTypes::*;

{module} inst_nnfab_nn (
{conns}
);

logic [$bits(axis_host_recv[0].tid)-1:0] nnfab_tid;
always_ff @(posedge aclk) begin
    if (!aresetn) nnfab_tid <= '0;
    else if (axis_host_recv[0].tvalid && axis_host_recv[0].tready)
        nnfab_tid <= axis_host_recv[0].tid;
end
assign axis_host_send[0].tid = nnfab_tid;

// Unused vFPGA interfaces
always_comb axi_ctrl.tie_off_s();
always_comb notify.tie_off_m();
always_comb sq_rd.tie_off_m();
always_comb sq_wr.tie_off_m();
always_comb cq_rd.tie_off_s();
always_comb cq_wr.tie_off_s();
"""


def _cmake(project: str, fdev: str) -> str:
    return f"""# Coyote hardware project of nnfab project {project}: written by nnfab.
# Configure with: cmake .. -DFDEV_NAME={fdev} -DCYT_DIR=<Coyote checkout>
# (or set COYOTE_DIR); then: make project && make bitgen
cmake_minimum_required(VERSION 3.5)

if(NOT DEFINED CYT_DIR)
    if(DEFINED ENV{{COYOTE_DIR}})
        set(CYT_DIR $ENV{{COYOTE_DIR}})
    else()
        message(FATAL_ERROR "nnfab: set CYT_DIR (-DCYT_DIR=...) or COYOTE_DIR to a Coyote "
                            "checkout (https://github.com/fpgasystems/Coyote)")
    endif()
endif()
if(NOT DEFINED FDEV_NAME)
    set(FDEV_NAME {fdev})
endif()
set(CMAKE_MODULE_PATH ${{CMAKE_MODULE_PATH}} ${{CYT_DIR}}/cmake)
find_package(CoyoteHW REQUIRED)

project({project}_coyote)

# host streams (host memory <-> vFPGA) only, one vFPGA
set(EN_STRM 1)
set(EN_MEM 0)
set(N_REGIONS 1)

validation_checks_hw()

# the user logic: src/vfpga_top.svh, the network's Verilog in src/hdl/
load_apps(
    VFPGA_C0_0 "src"
)

create_hw()
"""


def _script(project: str, fdev: str, rtl_dir: str) -> str:
    return f"""#!/bin/sh
# Builds deploy/{BITFILE_STEM}.bit (Coyote shell + the network of nnfab project {project}) for
# {fdev}; written by nnfab. Needs COYOTE_DIR (a Coyote checkout), cmake and Vivado on PATH.
# Run from the project root: sh {COYOTE_DIR.as_posix()}/{SCRIPT_NAME}   (takes hours)
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ -z "$COYOTE_DIR" ]; then
    echo "nnfab: set COYOTE_DIR to a Coyote checkout (https://github.com/fpgasystems/Coyote)" >&2
    exit 1
fi
mkdir -p "$here/src/hdl"
for f in {rtl_dir}/*.v {rtl_dir}/*.sv {rtl_dir}/*.vh {rtl_dir}/*.svh; do
    if [ -f "$f" ]; then cp "$f" "$here/src/hdl/"; fi
done
mkdir -p "$here/build_hw"
cd "$here/build_hw"
cmake .. -DFDEV_NAME={fdev} -DCYT_DIR="$COYOTE_DIR"
make project
make bitgen
mkdir -p "$root/deploy"
cp bitstreams/cyt_top.bit "$root/deploy/{BITFILE_STEM}.bit"
echo "nnfab: wrote $root/deploy/{BITFILE_STEM}.bit"
"""


def _readme(project: str, fdev: str, module: str, command: str) -> str:
    return f"""# Coyote build of nnfab project {project}

Written by nnfab. The network's AXI4-Stream wrapper `{module}` (nnfab's Verilog route) is
the user logic of one Coyote vFPGA on `{fdev}`, between the host streams
`axis_host_recv[0]` and `axis_host_send[0]` ({BUS_WIDTH}-bit, nnfab's lane format:
docs/axi_stream.md in nnfab).

## Build the bitstream

Needs a checkout of Coyote (https://github.com/fpgasystems/Coyote, v2 flow), cmake and the
Vivado version that Coyote release asks for, on the build machine:

    export COYOTE_DIR=/path/to/Coyote
    {command}

`build_bitfile.sh` copies the Verilog into `src/hdl/`, configures `build_hw/` with
`cmake .. -DFDEV_NAME={fdev}`, runs `make project` and `make bitgen` (hours) and copies
`build_hw/bitstreams/cyt_top.bit` to `deploy/{BITFILE_STEM}.bit`.

## Files

- `src/vfpga_top.svh`: the vFPGA user logic (instantiates `{module}`, ties off the rest)
- `src/hdl/`: the network's Verilog
- `CMakeLists.txt`: Coyote's hardware flow (host streams, no card memory, one vFPGA)

## On the host

Load the bitstream and Coyote's driver as Coyote's documentation says, then build the host
library and test program in `sw/`:

    cmake -S sw -B sw/build -DCYT_DIR=$COYOTE_DIR && cmake --build sw/build
    sw/build/nnfab_coyote_test ../../deploy/X_test.bin ../../deploy/y_test.bin

and from Python (copy `sw/build/libnnfab_coyote.so` into `deploy/`):

    from nnfab_coyote_driver import CoyoteOverlay
    y = CoyoteOverlay("nnfab_nn.bit").predict(X_test, y_test.shape, batch_size=1024)

Each batch is one local transfer (host memory -> vFPGA 0 -> host memory) of the byte
stream `deploy/nnfab_nn.json` describes.

## Not checked by nnfab

This project was written without Coyote or Vivado: the CMake flow, the SystemVerilog and
the bitstream were not built or run on a card. Coyote releases that name the stream ID
`tdest` instead of `tid` need that one line of `vfpga_top.svh` changed.
"""


def _write_host(sw: Path, project: str) -> None:
    """``sw/``: the host library + test program and their CMake project."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from nnfab.backends.hls.writer import _version

    env = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                      undefined=StrictUndefined, keep_trailing_newline=True)
    sw.mkdir(parents=True, exist_ok=True)
    values = {"project": project, "version": _version()}
    (sw / "nnfab_coyote.cpp").write_text(env.get_template("coyote_host.cpp.j2").render(**values))
    (sw / "CMakeLists.txt").write_text(
        env.get_template("coyote_host_cmake.txt.j2").render(**values))


def write_coyote_project(root: Path, settings: AccelSettings, project_name: str, *,
                         rtl_dir: Path, rtl_module: str) -> CoyoteFiles:
    """Write ``<root>/accel/coyote/`` (see the module docstring)."""
    root = Path(root).absolute()
    board = settings.board
    if board.kind != "coyote":
        raise ConfigError(f"the Coyote flow targets Coyote boards; board {board.name!r} is kind "
                          f"{board.kind!r}")
    if settings.bus_width != BUS_WIDTH:
        raise ConfigError(f"Coyote's host streams are {BUS_WIDTH} bits wide: bus_width must be "
                          f"{BUS_WIDTH}, got {settings.bus_width}")
    if not rtl_module or not _VERILOG_ID.fullmatch(rtl_module):
        raise ConfigError(f"rtl_module must be a Verilog identifier, got {rtl_module!r}")
    fdev = fdev_name(board.name)
    project = sanitize(project_name)
    rtl_dir = Path(rtl_dir).absolute()
    if not rtl_dir.is_dir():
        raise ConfigError(f"rtl_dir {rtl_dir} is not a directory (write the Verilog first)")
    sources = sorted(p for p in rtl_dir.iterdir() if p.is_file() and p.suffix in RTL_EXTENSIONS)
    if not any(p.suffix in (".v", ".sv") for p in sources):
        raise ConfigError(f"rtl_dir {rtl_dir} holds no Verilog files (*.v, *.sv)")

    directory = root / COYOTE_DIR
    hdl = directory / "src" / "hdl"
    hdl.mkdir(parents=True, exist_ok=True)
    for p in sources:
        shutil.copyfile(p, hdl / p.name)
    user_logic = directory / "src" / "vfpga_top.svh"
    user_logic.write_text(_user_logic(project, rtl_module))
    cmake = directory / "CMakeLists.txt"
    cmake.write_text(_cmake(project, fdev))
    try:
        rel = rtl_dir.relative_to(root)
        rtl_word = '"$root"/' + shlex.quote(rel.as_posix()) if rel.parts else '"$root"'
    except ValueError:
        rtl_word = shlex.quote(rtl_dir.as_posix())
    script = directory / SCRIPT_NAME
    script.write_text(_script(project, fdev, rtl_word))
    script.chmod(0o755)
    command = f"sh {(COYOTE_DIR / SCRIPT_NAME).as_posix()}"
    _write_host(directory / "sw", project)
    readme = directory / "README.md"
    readme.write_text(_readme(project, fdev, rtl_module, command))
    log.info("wrote the Coyote project %s (FDEV_NAME %s)", directory, fdev)
    return CoyoteFiles(root=root, directory=directory, user_logic=user_logic, cmake=cmake,
                       script=script, readme=readme, command=command,
                       outputs={"bit": root / "deploy" / f"{BITFILE_STEM}.bit"}, fdev=fdev,
                       sources=sources)
