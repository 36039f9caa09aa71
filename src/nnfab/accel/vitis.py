"""The Vitis build of an Alveo card: compile the kernel, link it to the platform, xclbin.

``write_vitis_project`` writes ``<root>/accel/vitis/``:

- ``build_xclbin.sh``: ``v++ -c -t hw --platform <board.platform> -k <project>_kernel``
  on the kernel sources (plus the network's ``firmware/<project>.cpp`` unless a kernel
  source includes it), then ``v++ -l`` with ``link.cfg``, then copies the xclbin to
  ``<root>/deploy/nnfab_nn.xclbin`` (the name ``nnfab_xrt_driver.py`` loads).
  ``NNFAB_VITIS_TARGET=hw_emu`` (or ``sw_emu``) builds an emulation xclbin instead (kept in
  ``accel/vitis``); ``NNFAB_VITIS_PLATFORM`` overrides the platform.
- ``link.cfg``: one compute unit ``<project>_kernel_1``; its arguments ``in`` (m_axi
  ``gmem0``) and ``out`` (``gmem1``) on two memory banks of the card (HBM[0]/HBM[1] on
  U50/U55C/U280, DDR[0]/DDR[1] on U200/U250); the kernel clock at the board's
  ``clock_mhz``.

Not checked on this machine (no Vitis, XRT or platform here): that v++ accepts the
options of the installed version (``[clock] freqHz`` is the 2020.2-2023.2 spelling), that
the kernel meets timing, and the xclbin on a card.
"""

from __future__ import annotations

import logging
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from nnfab.accel.interface import BITFILE_STEM, AccelSettings
from nnfab.errors import ConfigError
from nnfab.ir import sanitize

log = logging.getLogger(__name__)

VITIS_DIR = Path("accel") / "vitis"
SCRIPT_NAME = "build_xclbin.sh"
MEMORY_KINDS = {"u50": "HBM", "u55c": "HBM", "u280": "HBM", "u200": "DDR", "u250": "DDR"}
"""Card (as named in the platform) -> the memory its kernels' m_axi ports map to."""
KERNEL_ARGS = (("in", "gmem0"), ("out", "gmem1"))
"""The kernel's buffer arguments and their m_axi bundles, in bank order."""


@dataclass
class VitisFiles:
    """What ``write_vitis_project`` wrote; ``command`` runs the build from ``root``."""

    root: Path
    script: Path
    link_config: Path
    command: str
    outputs: dict[str, Path]
    platform: str
    kernel: str
    memory: list[str] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)


def memory_banks(platform: str) -> list[str]:
    """The banks the kernel's input and output buffers go to on ``platform``
    (``[]`` when the card is not known: v++ then uses the platform's default bank)."""
    match = re.search(r"_(u\d+c?)_", f"_{platform.lower()}_")
    kind = MEMORY_KINDS.get(match.group(1)) if match else None
    if kind is None:
        return []
    return [f"{kind}[{i}]" for i in range(len(KERNEL_ARGS))]


def _root_path(path: Path, root: Path) -> str:
    """A shell word for ``path``: ``"$root"/rel`` when it is under ``root``."""
    path = Path(path).absolute()
    try:
        rel = path.relative_to(root)
    except ValueError:
        return shlex.quote(path.as_posix())
    return '"$root"/' + shlex.quote(rel.as_posix())


def _includes_network(source: Path, network_cpp: Path) -> bool:
    try:
        text = source.read_text(errors="replace")
    except OSError:
        return False
    return re.search(r'#\s*include\s*[<"]([^">]*/)?' + re.escape(network_cpp.name) + '[">]',
                     text) is not None


def write_vitis_project(root: Path, settings: AccelSettings, project_name: str, *,
                        kernel_sources: list[Path]) -> VitisFiles:
    """Write ``<root>/accel/vitis/`` (see the module docstring)."""
    root = Path(root).absolute()
    board = settings.board
    if board.kind != "alveo":
        raise ConfigError(f"the Vitis flow targets Alveo boards; board {board.name!r} is kind "
                          f"{board.kind!r}")
    if not board.platform:
        raise ConfigError(f"board {board.name!r} has no 'platform' (the Vitis platform name, "
                          "e.g. xilinx_u50_gen3x16_xdma_5_202210_1): add it to the board")
    if not kernel_sources:
        raise ConfigError("write_vitis_project: no kernel sources (<project>_kernel.cpp) to "
                          "compile")
    project = sanitize(project_name)
    kernel = f"{project}_kernel"
    cu = f"{kernel}_1"
    sources = [Path(p).absolute() for p in kernel_sources]
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise ConfigError(f"kernel source(s) {', '.join(missing)} do not exist")
    if not any(re.search(rf"\b{kernel}\s*\(", s.read_text(errors="replace")) for s in sources):
        raise ConfigError(f"no kernel source defines {kernel}(...) (the extern \"C\" kernel "
                          f"v++ compiles with -k {kernel}); sources: "
                          f"{', '.join(str(s) for s in sources)}")
    network_cpp = root / "firmware" / f"{project}.cpp"
    compile_sources = list(sources)
    if network_cpp.is_file() and network_cpp not in sources and not any(
            _includes_network(s, network_cpp) for s in sources):
        compile_sources.append(network_cpp)
    include_dirs: list[Path] = []
    for d in [root / "firmware", *(s.parent for s in sources)]:
        if d not in include_dirs:
            include_dirs.append(d)
    banks = memory_banks(board.platform)
    freq_hz = round(board.clock_mhz * 1e6)

    vitis_dir = root / VITIS_DIR
    vitis_dir.mkdir(parents=True, exist_ok=True)
    cfg = [f"# v++ --link configuration of nnfab project {project} (board {board.name}), "
           "written by nnfab.",
           f"# platform: {board.platform}", "", "[connectivity]", f"nk={kernel}:1:{cu}"]
    if banks:
        for (arg, bundle), bank in zip(KERNEL_ARGS, banks, strict=True):
            cfg.append(f"# argument {arg} (m_axi {bundle})")
            cfg.append(f"sp={cu}.{arg}:{bank}")
    else:
        cfg.append(f"# no memory mapping: nnfab does not know the memory of {board.platform}; "
                   "v++ uses the platform's default bank")
    cfg += ["", "[clock]", f"freqHz={freq_hz}:{cu}", ""]
    link_cfg = vitis_dir / "link.cfg"
    link_cfg.write_text("\n".join(cfg))

    inc = " ".join(f"-I {_root_path(d, root)}" for d in include_dirs)
    srcs = " \\\n    ".join(_root_path(s, root) for s in compile_sources)
    xclbin = f"{BITFILE_STEM}.$TARGET.xclbin"
    script_text = f"""#!/bin/sh
# Builds deploy/{BITFILE_STEM}.xclbin of nnfab project {project} for {board.name} with Vitis;
# written by nnfab. Needs v++ (source <Vitis>/settings64.sh) and the platform
# {board.platform} installed. Run from the project root: sh {VITIS_DIR.as_posix()}/{SCRIPT_NAME}
# NNFAB_VITIS_TARGET=hw_emu|sw_emu builds an emulation xclbin (kept in {VITIS_DIR.as_posix()}).
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
TARGET=${{NNFAB_VITIS_TARGET:-hw}}
PLATFORM=${{NNFAB_VITIS_PLATFORM:-{board.platform}}}
if ! command -v v++ >/dev/null 2>&1; then
    echo "nnfab: v++ not found: source <Vitis install>/settings64.sh first" >&2
    exit 1
fi
cd "$here"
v++ -c -t "$TARGET" --platform "$PLATFORM" -k {kernel} \\
    --temp_dir _x.$TARGET --log_dir logs.$TARGET \\
    {inc} \\
    -o {kernel}.$TARGET.xo \\
    {srcs}
v++ -l -t "$TARGET" --platform "$PLATFORM" --config link.cfg \\
    --temp_dir _x.$TARGET --log_dir logs.$TARGET \\
    -o {xclbin} {kernel}.$TARGET.xo
if [ "$TARGET" = hw ]; then
    mkdir -p "$root/deploy"
    cp "{xclbin}" "$root/deploy/{BITFILE_STEM}.xclbin"
    echo "nnfab: wrote $root/deploy/{BITFILE_STEM}.xclbin"
else
    echo "nnfab: built $here/{xclbin} (emulation; deploy/ takes the hw build only)"
fi
"""
    script = vitis_dir / SCRIPT_NAME
    script.write_text(script_text)
    script.chmod(0o755)
    command = f"sh {(VITIS_DIR / SCRIPT_NAME).as_posix()}"
    log.info("wrote the Vitis build %s (platform %s)", vitis_dir, board.platform)
    return VitisFiles(root=root, script=script, link_config=link_cfg, command=command,
                      outputs={"xclbin": root / "deploy" / f"{BITFILE_STEM}.xclbin"},
                      platform=board.platform, kernel=kernel, memory=banks,
                      sources=compile_sources)
