"""The Vivado project of a Zynq board: block design, bitstream, PYNQ overlay files.

``write_vivado_project`` writes ``<root>/accel/vivado/build_bitfile.tcl``: a Vivado batch
script that creates the project for the board's part (and board part), adds the network
(the HLS IP of route "hls" from its IP repository, or the Verilog of route "rtl" as a
block-design module reference), builds the block design -- processing system, AXI DMA
``axi_dma_0`` in simple mode, the network ``nnfab_nn_0``, interconnects, the PS fabric
clock at the board's ``clock_mhz`` and its reset --, implements it and copies the bitstream
and the hardware handoff to ``<root>/deploy/nnfab_nn.bit`` / ``nnfab_nn.hwh``, the names
``nnfab_driver.py`` loads. Every path in the script is relative to the project root,
found from the script's own location, so the directory can be moved to the build machine.

``run_vivado`` runs it when Vivado is here; otherwise it says what to run.

Checked on this machine: the script runs in ``tclsh`` with stub Vivado commands
(``nnfab.accel.tclcheck``). Not checked here (no Vivado): that Vivado 20xx accepts the IP
configuration names and values, that the board files are installed, timing closure, and
the bitfile on a board.
"""

from __future__ import annotations

import logging
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from nnfab.accel.interface import BITFILE_STEM, AccelSettings
from nnfab.errors import ConfigError, ToolError
from nnfab.ir import sanitize

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates")
DEFAULT_JOBS = 4
"""``launch_runs -jobs``; ``NNFAB_VIVADO_JOBS`` overrides it when the script runs."""
VIVADO_DIR = Path("accel") / "vivado"
SCRIPT_NAME = "build_bitfile.tcl"
HP_WIDTH = {"zynq7": 64, "zynqmp": 128}
"""Data width of the PS high-performance slave port the DMA writes through."""
PS_IP = {"zynq7": "processing_system7", "zynqmp": "zynq_ultra_ps_e"}
ROUTE_EXTENSIONS = (".v", ".sv", ".vh", ".svh")
"""Files of ``rtl_dir`` the script adds (headers too, for `` `include``)."""
_SAFE = re.compile(r"[A-Za-z0-9_.:/+@%=,-]+")
_VLNV = re.compile(r"[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+:[A-Za-z_][A-Za-z0-9_]*:[0-9][0-9.]*")
_VERILOG_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


@dataclass
class VivadoFiles:
    """What ``write_vivado_project`` wrote; ``command`` runs it from ``root``."""

    root: Path
    tcl: Path
    command: str
    argv: list[str]
    outputs: dict[str, Path]
    log: Path
    project_dir: Path
    route: str = "hls"
    sources: list[Path] = field(default_factory=list)


def tcl_word(text: str) -> str:
    """``text`` as one Tcl word (bare when safe, else braced or backslash-escaped)."""
    text = str(text)
    if text and _SAFE.fullmatch(text):
        return text
    if "\\" not in text and "\n" not in text and _balanced(text):
        return "{" + text + "}"
    return "".join("\\" + c if c in '\\$[]{}";# \t' else ("\\n" if c == "\n" else c)
                   for c in text) or "{}"


def _balanced(text: str) -> bool:
    depth = 0
    for c in text:
        depth += {"{": 1, "}": -1}.get(c, 0)
        if depth < 0:
            return False
    return depth == 0


def tcl_path(path: Path, root: Path) -> str:
    """A Tcl expression for ``path``: ``[file join $root a b]`` when it is under ``root``."""
    path = Path(path).absolute()
    try:
        rel = path.relative_to(Path(root).absolute())
    except ValueError:
        return tcl_word(path.as_posix())
    if not rel.parts:
        return "$root"
    return "[file join $root " + " ".join(tcl_word(p) for p in rel.parts) + "]"


def _format_mhz(mhz: float) -> str:
    return str(int(mhz)) if float(mhz).is_integer() else f"{mhz:g}"


def _rtl_sources(rtl_dir: Path) -> list[Path]:
    if not rtl_dir.is_dir():
        raise ConfigError(f"route 'rtl': rtl_dir {rtl_dir} is not a directory (write the "
                          "Verilog wrapper first)")
    files = sorted(p for p in rtl_dir.iterdir() if p.suffix in ROUTE_EXTENSIONS and p.is_file())
    if not any(p.suffix in (".v", ".sv") for p in files):
        raise ConfigError(f"route 'rtl': rtl_dir {rtl_dir} holds no Verilog files (*.v, *.sv)")
    return files


def _check_board(settings: AccelSettings) -> None:
    board = settings.board
    if board.kind != "zynq" or board.ps not in PS_IP:
        raise ConfigError(f"the Vivado block design targets Zynq boards (ps zynq7 or zynqmp); "
                          f"board {board.name!r} is kind {board.kind!r} with ps {board.ps!r}")


def write_vivado_project(root: Path, settings: AccelSettings, project_name: str, *,
                         route: str, ip_repo: Path | None = None, ip_vlnv: str | None = None,
                         rtl_dir: Path | None = None, rtl_module: str | None = None,
                         jobs: int = DEFAULT_JOBS) -> VivadoFiles:
    """Write ``<root>/accel/vivado/build_bitfile.tcl`` (see the module docstring).

    Route "hls" takes ``ip_repo`` (may not exist yet: the HLS export runs first) and
    ``ip_vlnv``; route "rtl" takes ``rtl_dir`` (every ``*.v`` in it is added) and
    ``rtl_module`` (its top, with ports aclk, aresetn, s_axis_*, m_axis_*).
    """
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from nnfab.accel.project import DMA_LENGTH_BITS

    root = Path(root).absolute()
    _check_board(settings)
    project = sanitize(project_name)
    board = settings.board
    context: dict[str, object] = {}
    sources: list[Path] = []
    if route == "hls":
        if ip_repo is None or not ip_vlnv:
            raise ConfigError("route 'hls' needs ip_repo (the HLS export's IP directory) and "
                              "ip_vlnv (vendor:library:name:version)")
        if not _VLNV.fullmatch(ip_vlnv):
            raise ConfigError(f"ip_vlnv must be vendor:library:name:version, got {ip_vlnv!r}")
        context.update(ip_repo=tcl_path(Path(ip_repo), root), ip_vlnv=ip_vlnv)
    elif route == "rtl":
        if rtl_dir is None or not rtl_module:
            raise ConfigError("route 'rtl' needs rtl_dir (the Verilog directory) and "
                              "rtl_module (the top module's name)")
        if not _VERILOG_ID.fullmatch(rtl_module):
            raise ConfigError(f"rtl_module must be a Verilog identifier, got {rtl_module!r}")
        sources = _rtl_sources(Path(rtl_dir))
        context.update(rtl_files=[tcl_path(p, root) for p in sources], rtl_module=rtl_module)
    else:
        raise ConfigError(f"route must be 'hls' or 'rtl', got {route!r}")
    if not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs must be a positive integer, got {jobs!r}")

    vivado_dir = root / VIVADO_DIR
    tcl = vivado_dir / SCRIPT_NAME
    log_path = vivado_dir / "vivado.log"
    argv = ["-mode", "batch", "-notrace", "-source", (VIVADO_DIR / SCRIPT_NAME).as_posix(),
            "-log", (VIVADO_DIR / "vivado.log").as_posix(),
            "-journal", (VIVADO_DIR / "vivado.jou").as_posix()]
    command = "vivado " + shlex.join(argv)
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                      keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["tcl"] = tcl_word
    text = env.get_template("vivado_bitfile.tcl.j2").render(
        project=project, board=board.name, command=command, part=board.part,
        board_part=board.vivado_board_part or "", route=route, ps=board.ps,
        ps_ip=PS_IP[board.ps], bus_width=settings.bus_width,
        mm_width=max(32, settings.bus_width), hp_width=HP_WIDTH[board.ps],
        dma_length_bits=DMA_LENGTH_BITS, clock_mhz=_format_mhz(board.clock_mhz), jobs=jobs,
        **context)
    vivado_dir.mkdir(parents=True, exist_ok=True)
    tcl.write_text(text)
    deploy = root / "deploy"
    outputs = {"bit": deploy / f"{BITFILE_STEM}.bit", "hwh": deploy / f"{BITFILE_STEM}.hwh"}
    log.info("wrote the Vivado project script %s (board %s, route %s)", tcl, board.name, route)
    return VivadoFiles(root=root, tcl=tcl, command=command, argv=argv, outputs=outputs,
                       log=log_path, project_dir=vivado_dir / BITFILE_STEM, route=route,
                       sources=sources)


def run_vivado(files: VivadoFiles, *, timeout: float | None = None) -> dict[str, object]:
    """Build the bitfile with Vivado when it is found (``NNFAB_VIVADO`` or PATH).

    Returns ``{"status": "built", "outputs": {...}, "log": ...}``, or without Vivado
    ``{"status": "written", "command": ..., "missing": ["vivado"]}`` (and a warning).
    A failed run, or one that leaves no fresh ``deploy/nnfab_nn.bit``/``.hwh``, raises
    ``ToolError`` naming the logs.
    """
    from nnfab.backends.hls.build import find_vivado
    from nnfab.tools import run

    tool = find_vivado()
    outputs = {k: str(v) for k, v in files.outputs.items()}
    if tool is None:
        log.warning("vivado not found (PATH or NNFAB_VIVADO): the Vivado project is written in "
                    "%s; build the bitfile on a machine with Vivado by running, in %s:\n    %s",
                    files.tcl, files.root, files.command)
        return {"status": "written", "command": files.command, "missing": ["vivado"],
                "root": str(files.root), "outputs": outputs}
    stdout_log = files.log.with_name("build.log")
    start = time.time()
    log.info("running Vivado on %s (log: %s)", files.tcl, files.log)
    seconds = run([str(tool.path), *files.argv], stdout_log, cwd=files.root, timeout=timeout,
                  what="Vivado (block design and bitstream)")
    stale = [f"{k} ({p})" for k, p in files.outputs.items()
             if not p.is_file() or p.stat().st_mtime < start - 2.0]
    if stale:
        raise ToolError(f"Vivado finished but did not write {', '.join(stale)}; see its log "
                        f"{files.log} (and {stdout_log})")
    log.info("Vivado built %s in %.0f s", ", ".join(outputs.values()), seconds)
    return {"status": "built", "outputs": outputs, "log": str(files.log), "seconds": seconds}
