"""Run the vendor HLS tool on a written project, then read its reports.

Tools, per project backend (``project.tcl``'s ``backend``), each overridable by an
environment variable naming the executable:

- Vitis:  ``vitis_hls`` (``NNFAB_VITIS_HLS``), else ``vitis-run`` (``NNFAB_VITIS_RUN``,
  Vitis 2023.2 and later: ``vitis-run --mode hls --tcl``);
- Vivado: ``vivado_hls`` (``NNFAB_VIVADO_HLS``);
- Vivado synthesis of the exported RTL (``vsynth``): ``vivado`` (``NNFAB_VIVADO``).

The tool runs in the project directory with its output in ``nnfab_build.log`` (Vivado:
``nnfab_vivado.log``); a non-zero exit status raises ``ToolError`` naming the log. Nothing
in the project is deleted or rewritten by a build. Without a tool, ``ToolNotFoundError``
says that the project is written, where, and the command to run later.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnfab.backends.hls.reports import read_report
from nnfab.errors import BackendError, ToolNotFoundError
from nnfab.tools import run

log = logging.getLogger(__name__)

HLS_TOOLS = {
    "Vitis": (("vitis_hls", "NNFAB_VITIS_HLS"), ("vitis-run", "NNFAB_VITIS_RUN")),
    "Vivado": (("vivado_hls", "NNFAB_VIVADO_HLS"),),
}
VIVADO = ("vivado", "NNFAB_VIVADO")
BUILD_LOG = "nnfab_build.log"
VIVADO_LOG = "nnfab_vivado.log"
STEPS = ("csim", "synth", "cosim", "export", "vsynth")
RUN_TCL = "nnfab_run.tcl"
"""For vitis-run, which takes no script arguments: sets the options, then sources
build_prj.tcl."""


@dataclass(frozen=True)
class Tool:
    """A located vendor executable."""

    name: str
    path: Path


def _locate(name: str, env_var: str) -> Path | None:
    override = os.environ.get(env_var)
    if override:
        path = Path(override).expanduser()
        if path.is_dir():
            path = path / name
        if path.is_file() and os.access(path, os.X_OK):
            return path
        found = shutil.which(override)
        if found is None:
            raise ToolNotFoundError(
                f"{env_var}={override!r} does not name an executable {name}; fix or unset {env_var}"
            )
        return Path(found)
    found = shutil.which(name)
    return Path(found) if found else None


def find_hls_tool(backend: str) -> Tool | None:
    """The first HLS tool of ``backend`` found (env override, then PATH), or None."""
    if backend not in HLS_TOOLS:
        raise BackendError(f"unknown backend {backend!r}; expected one of {', '.join(HLS_TOOLS)}")
    for name, env_var in HLS_TOOLS[backend]:
        path = _locate(name, env_var)
        if path is not None:
            return Tool(name, path)
    return None


def find_vivado() -> Tool | None:
    path = _locate(*VIVADO)
    return Tool(VIVADO[0], path) if path is not None else None


def project_settings(project_dir: Path) -> dict[str, str]:
    """``set key "value"`` lines of project.tcl."""
    tcl = project_dir / "project.tcl"
    if not tcl.is_file():
        raise BackendError(
            f"{str(project_dir)!r} is not an nnfab HLS project (no project.tcl); write it first "
            "(NnfabModel.write() or nnfab convert)"
        )
    return dict(re.findall(r'^set (\w+) "?([^"\n]*)"?\s*$', tcl.read_text(), re.MULTILINE))


def tcl_options(steps: dict[str, bool]) -> str:
    """The build_prj.tcl argument: ``csim=1 synth=1 cosim=0 export=0 vsynth=0``."""
    return " ".join(f"{k}={int(bool(steps[k]))}" for k in STEPS)


def hls_command(tool_name: str, tool: str | Path, options: str) -> list[str]:
    """The command line that runs build_prj.tcl with ``options``."""
    if tool_name == "vitis-run":
        return [str(tool), "--mode", "hls", "--tcl", RUN_TCL]
    return [str(tool), "-f", "build_prj.tcl", "-tclargs", options]


def _manual_command(backend: str, options: str) -> str:
    name = HLS_TOOLS[backend][0][0]
    return f"{name} -f build_prj.tcl -tclargs {shlex.quote(options)}"


def build_project(
    project_dir: str | Path,
    *,
    csim: bool = True,
    synth: bool = True,
    cosim: bool = False,
    export: bool = False,
    vsynth: bool = False,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run the HLS tool (and Vivado for ``vsynth``) on a written project; returns the
    report dict of ``nnfab.backends.hls.reports.read_report`` (plus ``"log"``)."""
    root = Path(project_dir).resolve()
    settings = project_settings(root)
    backend = settings.get("backend", "Vitis")
    # cosim, export and Vivado synthesis need the C synthesis; nnfab runs Vivado itself
    steps = {"csim": csim, "synth": synth or cosim or export or vsynth, "cosim": cosim,
             "export": export, "vsynth": False}
    options = tcl_options(steps)
    tool = find_hls_tool(backend)
    if tool is None:
        names = " or ".join(name for name, _ in HLS_TOOLS[backend])
        variables = " / ".join(var for _, var in HLS_TOOLS[backend])
        raise ToolNotFoundError(
            f"no {backend} HLS tool found ({names} on PATH, or {variables}). The project is "
            f"written to {root}; to build it later run:\n  cd {shlex.quote(str(root))} && "
            f"{_manual_command(backend, options)}"
            + ("\n  then: vivado -mode batch -source vivado_synth.tcl" if vsynth else "")
        )
    vivado = None
    if vsynth:
        vivado = find_vivado()
        if vivado is None:
            raise ToolNotFoundError(
                f"vsynth needs Vivado: 'vivado' was not found on PATH (or set NNFAB_VIVADO). "
                f"The project is written to {root}; after the HLS build run:\n  cd "
                f"{shlex.quote(str(root))} && vivado -mode batch -source vivado_synth.tcl"
            )
    if tool.name == "vitis-run":
        (root / RUN_TCL).write_text(
            f"# Written by nnfab for vitis-run: the options of this build.\n"
            f"set ::argv [list {{{options}}}]\n"
            f"source [file join [file dirname [file normalize [info script]]] build_prj.tcl]\n"
        )
    log.info("running %s on %s (%s); log: %s", tool.name, root, options, root / BUILD_LOG)
    seconds = run(hls_command(tool.name, tool.path, options), root / BUILD_LOG, cwd=root,
                  timeout=timeout, what=f"{tool.name} ({options})")
    log.info("%s finished in %.0f s", tool.name, seconds)
    if vivado is not None:
        run([str(vivado.path), "-mode", "batch", "-nojournal", "-log", "vivado_synth.log",
             "-source", "vivado_synth.tcl"], root / VIVADO_LOG, cwd=root, timeout=timeout,
            what="Vivado synthesis")
    if not (steps["synth"] or vsynth):
        return {"log": str(root / BUILD_LOG), "files": []}
    report = read_report(root)
    report["log"] = str(root / BUILD_LOG)
    return report
