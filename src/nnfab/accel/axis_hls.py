"""The AXI4-Stream top of the HLS project, its IP export script and its C simulation.

``write_axis_top(model, root)`` adds to the HLS project in ``root``:

- ``firmware/<project>_axi.h/.cpp``: ``<project>_axi(in_stream, out_stream)`` with
  ``axis`` ports and an ``s_axilite`` control port, one transfer per start (the driver
  starts it with auto-restart), lanes per ``docs/axi_stream.md`` (``interface="float"``:
  float32 lanes converted to and from the fixed types in the fabric; ``"fixed"``: the
  mantissas), TLAST on the last output beat, any batch length; and
  ``<project>_kernel(in, out, n)``, the memory-mapped kernel for Alveo cards;
- ``firmware/nnfab_axis.h``: nnfab's beat and lane helpers (both builds);
- ``build_axi_ip.tcl``: HLS synthesis and ``export_design`` of the top as an IP.

``AxisCSim(model, work_dir)`` compiles the same sources with g++ against nnfab's own
``ap_fixed.h`` / ``hls_stream.h`` and runs byte streams (``run_bytes``) or memory
buffers (``run_kernel``) through them: the simulated board's ``csim`` engine.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from nnfab.errors import BackendError, ConfigError

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates")
HEADER = Path(__file__).with_name("include") / "nnfab_axis.h"
IP_VENDOR, IP_LIBRARY, IP_VERSION = "nnfab.org", "hls", "1.0"
CXX_FLAGS = ("-std=c++14", "-O2")


def ip_vlnv(project_name: str) -> str:
    """The VLNV of the exported IP (what the block design instantiates)."""
    return f"{IP_VENDOR}:{IP_LIBRARY}:{project_name}_axi:{IP_VERSION}"


def _env() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                       keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)


def render_axis_top(model: Any) -> dict[str, str]:
    """The files of the AXI4-Stream top (relative path -> text), nothing written."""
    from nnfab.backends.hls.writer import _version, render_project, settings_of

    settings = model.accel
    if settings is None:
        raise ConfigError("the AXI4-Stream top needs accelerator settings (backend "
                          "'VivadoAccelerator' / 'VitisAccelerator' and a board)")
    project = render_project(model.graph, settings_of(model))
    if len(project.outputs) != 1:
        raise BackendError(f"the AXI4-Stream top takes one output; {project.top!r} has "
                           f"{len(project.outputs)}")
    pout = project.outputs[0]
    doc = model_interface(model)
    stream = model.graph.io_type == "io_stream"
    top = project.top
    common = {"top": top, "version": _version(), "guard": top.upper(),
              "interface": settings.interface}
    env = _env()
    values = dict(
        common, bus=settings.bus_width, in_lane=doc["input"]["lane"],
        out_lane=doc["output"]["lane"], n_in=sum(p.size for p in project.inputs),
        n_out=pout.size, inputs=_input_ports(project.inputs), bus_type=_bus_type(model.graph),
        out_type=pout.type_name, stream=stream, out_pack=pout.pack, out_tx=pout.n_tx,
        out_width=pout.width)
    vitis = model.hls_backend == "Vitis"
    return {
        f"firmware/{top}_axi.h": env.get_template("axis_top.h.j2").render(**values),
        f"firmware/{top}_axi.cpp": env.get_template("axis_top.cpp.j2").render(**values),
        f"firmware/{top}_kernel.cpp": env.get_template("axis_kernel.cpp.j2").render(**values),
        "firmware/nnfab_axis.h": HEADER.read_text(),
        "build_axi_ip.tcl": env.get_template("build_axi_ip.tcl.j2").render(
            **common, tool="vitis_hls" if vitis else "vivado_hls", vitis=vitis,
            vlnv=ip_vlnv(top), vendor=IP_VENDOR, library=IP_LIBRARY, ip_version=IP_VERSION),
        "accel/csim/main.cpp": env.get_template("axis_csim_main.cpp.j2").render(**common),
    }


def _input_ports(ports: list[Any]) -> list[dict[str, Any]]:
    """The network's inputs as the top reads them: a local array each (``x`` for one
    input, ``x0``, ``x1`` ... for several), their lanes ``[offset, end)`` of a sample."""
    out, offset = [], 0
    for k, p in enumerate(ports):
        out.append({"array": "x" if len(ports) == 1 else f"x{k}", "tensor": p.tensor,
                    "type": p.type_name, "size": p.size, "offset": offset,
                    "end": offset + p.size, "pack": p.pack, "tx": p.n_tx, "width": p.width,
                    "stream": f"net_in{k}" if len(ports) > 1 else "net_in"})
        offset += p.size
    return out


def _bus_type(graph: Any) -> str:
    """The C++ type of the input lanes' mantissas with ``interface="fixed"``: several
    inputs share the bus type (``docs/axi_stream.md``)."""
    from nnfab.backends.hls.cpp import cpp_type
    from nnfab.ir.types import union_of

    return cpp_type(union_of([graph.tensors[name].type for name in graph.inputs]))


def model_interface(model: Any) -> dict[str, Any]:
    from nnfab.accel.interface import describe

    return describe(model.graph, model.accel, model.project_name)


def write_axis_top(model: Any, root: str | Path) -> list[Path]:
    """Write the AXI4-Stream top into the HLS project at ``root``; returns the sources
    (``firmware/<project>_axi.cpp``, ``firmware/<project>_kernel.cpp`` ...)."""
    root = Path(root)
    written = []
    for rel, text in render_axis_top(model).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not (path.exists() and path.read_text() == text):
            path.write_text(text)
        written.append(path)
    log.info("wrote the AXI4-Stream top %s_axi (%s lanes, %d-bit bus) in %s",
             model.project_name, model.accel.interface, model.accel.bus_width, root)
    return written


class AxisCSim:
    """The AXI4-Stream top and the kernel compiled with g++ (cached by content)."""

    def __init__(self, model: Any, work_dir: str | Path) -> None:
        self.model = model
        self.work_dir = Path(work_dir)
        self._exe: Path | None = None

    def build(self) -> Path:
        """Compile (or reuse) the C simulation; returns the executable."""
        if self._exe is not None:
            return self._exe
        from nnfab.backends.hls.csim import cache_root
        from nnfab.backends.hls.writer import render_project, settings_of
        from nnfab.tools import require_tool, run

        cxx = str(require_tool("g++"))
        project = render_project(self.model.graph, settings_of(self.model))
        files = dict(project.files)
        files.update(render_axis_top(self.model))
        h = hashlib.sha256(" ".join((cxx, *CXX_FLAGS)).encode())
        for rel in sorted(files):
            h.update(rel.encode() + b"\0" + files[rel].encode() + b"\0")
        key = h.hexdigest()[:24]
        exe = cache_root() / "axis-csim" / key / "csim"
        if not exe.is_file():
            exe.parent.mkdir(parents=True, exist_ok=True)
            build = Path(tempfile.mkdtemp(dir=exe.parent, prefix="build-"))
            try:
                for rel, text in files.items():
                    path = build / rel
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text)
                top = project.top
                cmd = [cxx, *CXX_FLAGS, "-Ifirmware", "-Ifirmware/ap_types", "accel/csim/main.cpp",
                       f"firmware/{top}_kernel.cpp", "-o", "csim.exe"]
                self.work_dir.mkdir(parents=True, exist_ok=True)
                run(cmd, self.work_dir / "compile.log", cwd=build,
                    what="C simulation of the AXI4-Stream top (g++)")
                os.replace(build / "csim.exe", exe)
            finally:
                shutil.rmtree(build, ignore_errors=True)
        self._exe = exe
        return exe

    def _run(self, args: list[str], data: np.ndarray) -> np.ndarray:
        from nnfab.tools import run

        exe = self.build()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        f_in, f_out = self.work_dir / "in.bin", self.work_dir / "out.bin"
        f_out.unlink(missing_ok=True)
        np.ascontiguousarray(np.asarray(data, dtype=np.uint8).reshape(-1)).tofile(f_in)
        run([exe, args[0], f_in, f_out, *args[1:]], self.work_dir / "run.log",
            what="C simulation of the AXI4-Stream top")
        return np.fromfile(f_out, dtype=np.uint8)

    def run_bytes(self, data: np.ndarray) -> np.ndarray:
        """One transfer's bytes through ``<project>_axi``; the bytes its output keeps."""
        if np.asarray(data).size == 0:
            raise BackendError("a transfer carries at least one byte")
        return self._run(["stream"], data)

    def run_kernel(self, data: np.ndarray, n_samples: int) -> np.ndarray:
        """``<project>_kernel`` on ``n_samples`` from a memory buffer (whole beats)."""
        return self._run(["kernel", str(int(n_samples))], data)
