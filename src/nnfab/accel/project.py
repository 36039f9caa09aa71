"""An accelerator project: the network's wrapper, the board project, the files for the
board (``deploy/``) and the build that turns them into a bitfile.

Layout under the model's ``output_dir`` (``root``)::

    <HLS project>            firmware/, build_prj.tcl ... (``NnfabModel.write``)
    firmware/<project>_axi.*  the HLS AXI4-Stream top, build_axi_ip.tcl (route "hls")
    rtl/ (sim/, synth/), axis/  the Verilog and its AXI4-Stream wrapper (route "rtl")
    accel/accel.json          the interface document + the settings to reload the project
    accel/vivado|vitis|coyote the board project for the board's kind
    build_bitfile.sh          the one command that builds the bitfile where the tools are
    deploy/                   what goes on the board: nnfab_driver.py, nnfab_nn.json,
                              validate.py, X_test.npy, y_test.npy (+ nnfab_nn.bit/.hwh or
                              nnfab_nn.xclbin once built)
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnfab.accel.interface import BITFILE_STEM, AccelSettings, describe, write_description
from nnfab.errors import ConfigError

log = logging.getLogger(__name__)

DMA_LENGTH_BITS = 26
"""Width of the AXI DMA's buffer length register the board projects configure: one
transfer moves at most ``2**26 - 1`` bytes; the driver chunks larger batches."""
DRIVERS = Path(__file__).with_name("drivers")
TEMPLATES = Path(__file__).with_name("templates")
DEFAULT_TEST_SAMPLES = 256
EXTRA_DRIVERS = {"alveo": ("nnfab_xrt_driver", "AlveoOverlay"),
                 "coyote": ("nnfab_coyote_driver", "CoyoteOverlay")}
"""Board kinds whose host driver is not the PYNQ one: (module, overlay class)."""


@dataclass
class AcceleratorFiles:
    """What ``write_accelerator`` wrote."""

    root: Path
    description: Path
    deploy: Path
    script: Path
    board_files: Any = None
    wrapper: Any = None
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def command(self) -> str:
        """The one command that builds the bitfile on a machine with the vendor tools."""
        return f"bash {self.script}"


def interface_document(model: Any) -> dict[str, Any]:
    """``describe`` plus what reloading the project needs."""
    settings: AccelSettings = model.accel
    doc = describe(model.graph, settings, model.project_name)
    doc["dma_length_bits"] = DMA_LENGTH_BITS
    doc["backend"] = model.backend
    doc["project_name"] = model.project_name
    doc["clock_period"] = model.clock_period
    return doc


def load_accel_model(root: str | Path) -> Any:
    """The ``NnfabModel`` of a written accelerator project directory."""
    from nnfab.config import load_config
    from nnfab.ir import Graph
    from nnfab.model import NnfabModel

    root = Path(root)
    doc_path = root / "accel" / "accel.json"
    if not doc_path.is_file():
        raise ConfigError(f"{root} is not an nnfab accelerator project (no accel/accel.json); "
                          "convert with backend='VivadoAccelerator' and a board, then write()")
    doc = json.loads(doc_path.read_text())
    config_path = root / "nnfab_config.yml"
    config = load_config(config_path) if config_path.is_file() else {}
    settings = AccelSettings.make(doc["backend"], doc["board"], interface=doc["interface"],
                                  bus_width=doc["bus_width"], route=doc["route"])
    return NnfabModel(Graph.load(root / "nnfab_model.json"), config, output_dir=root,
                      project_name=doc["project_name"], backend=doc["backend"],
                      part=doc["part"], board=doc["board"], clock_period=doc["clock_period"],
                      accel=settings)


def default_test_inputs(model: Any, n: int = DEFAULT_TEST_SAMPLES, seed: int = 0) -> Any:
    """Inputs spread over the input type's range, for a project written without data (a
    list, one batch per input, for a network with several)."""
    rng = np.random.default_rng(seed)
    xs = [rng.uniform(t.type.min, t.type.max, size=(n, *t.shape))
          for t in (model.graph.tensors[name] for name in model.graph.inputs)]
    return xs[0] if len(xs) == 1 else xs


def bus_inputs(model: Any, x: Any) -> np.ndarray:
    """The batch the bus carries: ``x`` itself, or several inputs packed (``pack_inputs``)."""
    if len(model.graph.inputs) > 1 and isinstance(x, list | tuple | dict):
        from nnfab.accel.drivers.nnfab_driver import pack_inputs
        from nnfab.accel.interface import describe

        return pack_inputs(describe(model.graph, model.accel, "p"), x)
    return np.asarray(x)


def split_inputs(model: Any, packed: np.ndarray) -> Any:
    """The bus batch of a network with several inputs back as one batch per input."""
    if len(model.graph.inputs) == 1:
        return packed
    out, offset = [], 0
    for name in model.graph.inputs:
        t = model.graph.tensors[name]
        out.append(packed[:, offset:offset + t.size].reshape(len(packed), *t.shape))
        offset += t.size
    return out


def expected_outputs(model: Any, x: np.ndarray) -> np.ndarray:
    """What the board returns for ``x``: the emulator's outputs, through the bus format.

    ``interface="float"``: inputs travel as float32 (so the emulator sees float32
    values) and outputs come back as float32.
    """
    if model.accel.interface == "float":
        x32 = np.asarray(bus_inputs(model, x), dtype=np.float32).astype(np.float64)
        y = np.asarray(model.predict(split_inputs(model, x32)))
        return y.astype(np.float32).astype(np.float64)
    return np.asarray(model.predict(split_inputs(model, bus_inputs(model, x))),
                      dtype=np.float64)


def axis_wrapper(model: Any) -> Any:
    """The Verilog route's AXI4-Stream wrapper: the network's Verilog in ``<root>/rtl``
    (with ``sim/`` and ``synth/`` beside it), the wrapper in ``<root>/axis``."""
    from nnfab.accel.axis_rtl import AxisRtlWrapper

    root = Path(model.output_dir)
    return AxisRtlWrapper(model.to_rtl(root), model.accel.bus_width, root / "axis")


def _wrap_network(model: Any, root: Path) -> tuple[Any, Path | None, str | None, list[Path]]:
    """Write the AXI4-Stream wrapper of the chosen route; returns (wrapper, rtl dir,
    module name, sources)."""
    settings: AccelSettings = model.accel
    if settings.route == "hls":
        from nnfab.accel.axis_hls import write_axis_top

        return None, None, None, write_axis_top(model, root)
    wrapper = axis_wrapper(model)
    sources = wrapper.write()
    return wrapper, wrapper.output_dir, wrapper.module, sources


def _board_project(model: Any, root: Path, rtl_dir: Path | None, rtl_module: str | None,
                   sources: list[Path]) -> Any:
    settings: AccelSettings = model.accel
    kind = settings.board.kind
    if kind == "zynq":
        from nnfab.accel.vivado import write_vivado_project

        ip_repo = ip_vlnv = None
        if settings.route == "hls":
            from nnfab.accel.axis_hls import ip_vlnv as vlnv_for

            ip_repo = root / f"{model.project_name}_prj" / "solution1" / "impl" / "ip"
            ip_vlnv = vlnv_for(model.project_name)
        return write_vivado_project(root, settings, model.project_name, route=settings.route,
                                    ip_repo=ip_repo, ip_vlnv=ip_vlnv, rtl_dir=rtl_dir,
                                    rtl_module=rtl_module)
    if kind == "alveo":
        from nnfab.accel.vitis import write_vitis_project

        kernels = [p for p in sources if p.name.endswith("_kernel.cpp")]
        return write_vitis_project(root, settings, model.project_name, kernel_sources=kernels)
    from nnfab.accel.coyote import write_coyote_project

    if rtl_dir is None or rtl_module is None:
        raise ConfigError("the Coyote shell takes the Verilog route (route='rtl')")
    return write_coyote_project(root, settings, model.project_name, rtl_dir=rtl_dir,
                                rtl_module=rtl_module)


def _build_script(model: Any, root: Path, board_files: Any) -> Path:
    """``build_bitfile.sh``: every vendor step, in order, from the project root."""
    settings: AccelSettings = model.accel
    lines = ["#!/bin/sh", "# Builds the bitfile on a machine with the vendor tools; written "
             "by nnfab.", "set -e", 'cd "$(dirname "$0")"']
    if settings.route == "hls" and settings.board.kind == "zynq":
        tool = "vitis_hls" if model.hls_backend == "Vitis" else "vivado_hls"
        lines.append(f"{tool} -f build_axi_ip.tcl")
    lines.append(str(board_files.command))
    path = root / "build_bitfile.sh"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return path


def _write_validate(deploy: Path, desc: dict[str, Any]) -> Path:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                      keep_trailing_newline=True)
    driver_module, overlay_class = EXTRA_DRIVERS.get(desc["kind"],
                                                     ("nnfab_driver", "NeuralNetworkOverlay"))
    text = env.get_template("validate.py.j2").render(
        bitfile=f"{BITFILE_STEM}.{_bit_suffix(desc)}", board=desc["board"],
        driver_module=driver_module, overlay_class=overlay_class)
    path = deploy / "validate.py"
    path.write_text(text)
    return path


def _encode_outputs(codec: Any, y: np.ndarray) -> np.ndarray:
    """Expected outputs as the bytes the output transfer carries."""
    from nnfab.accel.drivers.nnfab_driver import pack_lanes, to_mantissas

    if codec.floats:
        return pack_lanes(np.asarray(y, dtype=np.float32), 32, codec.bus_width)
    return pack_lanes(to_mantissas(y, codec.out), codec.out["lane"], codec.bus_width)


def _bit_suffix(desc: dict[str, Any]) -> str:
    return "xclbin" if desc["kind"] == "alveo" else "bit"


def write_deploy(model: Any, root: Path, doc: dict[str, Any], x_test: Any = None) -> Path:
    """``deploy/``: the driver, the interface document, validate.py and the test vectors."""
    deploy = root / "deploy"
    deploy.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DRIVERS / "nnfab_driver.py", deploy / "nnfab_driver.py")
    if doc["kind"] in EXTRA_DRIVERS:
        name = EXTRA_DRIVERS[doc["kind"]][0]
        shutil.copyfile(DRIVERS / f"{name}.py", deploy / f"{name}.py")
    write_description(doc, deploy / f"{BITFILE_STEM}.json")
    _write_validate(deploy, doc)
    if x_test is None:
        old = deploy / "X_test.npy"
        x_test = np.load(old) if old.is_file() else default_test_inputs(model)
    x_test = bus_inputs(model, x_test)  # several inputs: the packed bus batch
    y_test = expected_outputs(model, x_test)
    np.save(deploy / "X_test.npy", x_test)
    np.save(deploy / "y_test.npy", y_test)
    if doc["kind"] == "coyote":  # the C++ test program's vectors: the transfers' bytes
        from nnfab.accel.drivers.nnfab_driver import Codec

        codec = Codec(doc)
        n = len(x_test)
        codec.encode(x_test)[: codec.in_stream_bytes(n)].tofile(deploy / "X_test.bin")
        _encode_outputs(codec, y_test)[: codec.out_stream_bytes(n)].tofile(deploy / "y_test.bin")
    return deploy


def write_accelerator(model: Any, x_test: Any = None) -> AcceleratorFiles:
    """Everything for the board, short of the vendor tools (see the module docstring).

    The HLS project must already be written into ``model.output_dir``
    (``NnfabModel.write`` calls this after it).
    """
    if model.accel is None:
        raise ConfigError("write_accelerator: the model has no accelerator settings")
    root = Path(model.output_dir)
    doc = interface_document(model)
    description = write_description(doc, root / "accel" / "accel.json")
    wrapper, rtl_dir, rtl_module, sources = _wrap_network(model, root)
    board_files = _board_project(model, root, rtl_dir, rtl_module, sources)
    script = _build_script(model, root, board_files)
    deploy = write_deploy(model, root, doc, x_test)
    files = AcceleratorFiles(root=root, description=description, deploy=deploy, script=script,
                             board_files=board_files, wrapper=wrapper,
                             outputs=bitfile_outputs(root, doc))
    from nnfab.accel.fit import check_fit

    check_fit(model, warn=True)
    log.info("wrote accelerator project %s; build the bitfile with: %s", root, files.command)
    return files


def bitfile_outputs(root: Path, doc: dict[str, Any]) -> dict[str, Path]:
    """Where the build puts its outputs (fixed paths in ``deploy/``)."""
    deploy = Path(root) / "deploy"
    if doc["kind"] == "alveo":
        return {"xclbin": deploy / f"{BITFILE_STEM}.xclbin"}
    if doc["kind"] == "coyote":
        return {"bit": deploy / f"{BITFILE_STEM}.bit"}
    return {"bit": deploy / f"{BITFILE_STEM}.bit", "hwh": deploy / f"{BITFILE_STEM}.hwh"}


def build_bitfile(model: Any, files: AcceleratorFiles, *, timeout: float | None = None
                  ) -> dict[str, Any]:
    """Run the vendor steps when the tools are here; otherwise say what to run.

    Returns ``{"status": "built", outputs...}`` or ``{"status": "written", "command":
    ..., "missing": [tools]}`` (with a warning in the log).
    """
    from nnfab.backends.hls.build import find_hls_tool, find_vivado
    from nnfab.tools import run

    settings: AccelSettings = model.accel
    root = files.root
    kind = settings.board.kind
    if kind != "zynq":
        return _written(files, [("v++" if kind == "alveo" else "Coyote's cmake flow")])
    missing = []
    hls_tool = None
    if settings.route == "hls":
        hls_tool = find_hls_tool(model.hls_backend)
        if hls_tool is None:
            missing.append("vitis_hls" if model.hls_backend == "Vitis" else "vivado_hls")
    if find_vivado() is None:
        missing.append("vivado")
    if missing:
        return _written(files, missing)
    if hls_tool is not None:
        cmd = ([str(hls_tool.path), "--mode", "hls", "--tcl", "build_axi_ip.tcl"]
               if hls_tool.name == "vitis-run" else [str(hls_tool.path), "-f", "build_axi_ip.tcl"])
        run(cmd, log_file=root / "accel" / "hls_ip.log", cwd=root, timeout=timeout,
            what="HLS IP export")
    from nnfab.accel.vivado import run_vivado

    result = run_vivado(files.board_files, timeout=timeout)
    result.setdefault("status", "built")
    return result


def _written(files: AcceleratorFiles, missing: list[str]) -> dict[str, Any]:
    log.warning("%s not found: the accelerator project is written in %s; build the bitfile "
                "on a machine with %s by running:\n    %s", ", ".join(missing), files.root,
                " and ".join(missing), files.command)
    return {"status": "written", "command": files.command, "missing": missing,
            "root": str(files.root), "outputs": {k: str(v) for k, v in files.outputs.items()}}
