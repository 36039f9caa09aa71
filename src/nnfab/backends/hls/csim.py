"""Compiled C simulation: the generated HLS C++ built by g++ into a shared library.

The library holds the firmware's top-level function plus a batch entry point
(``csim/bridge.cpp``): ``predict`` hands the whole input array over in one call
(split over threads in C++), no per-sample Python loop. Builds are cached by a
SHA-256 of the generated sources, the compiler's identity and the flags, under
``$NNFAB_CACHE_DIR/csim`` (default ``~/.cache/nnfab/csim``): compiling an unchanged
model again runs no compiler.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from nnfab.backends.hls.cpp import CSIM_MAX_WIDTH
from nnfab.backends.hls.writer import (
    ABI_VERSION,
    ModelLike,
    Project,
    ProjectSettings,
    render_project,
    settings_of,
)
from nnfab.errors import BackendError
from nnfab.ir import Graph
from nnfab.tools import require_tool, run

log = logging.getLogger(__name__)

NATIVE = platform.machine().lower() in ("x86_64", "amd64")
CXX_FLAGS = ("-std=c++14", "-O3", "-fPIC", "-shared", "-pthread") + (
    ("-march=native",) if NATIVE else ()
)
"""Flags of the C-simulation build (the cache key includes them, and the CPU's identity:
``-march=native`` lets the fixed-point loops use the CPU's widest vector instructions)."""
MIN_SAMPLES_PER_THREAD = 256
"""Batches smaller than this per thread run on fewer threads."""


def cache_root() -> Path:
    """Where compiled C simulations are kept: ``$NNFAB_CACHE_DIR/csim``."""
    root = os.environ.get("NNFAB_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "nnfab"
    return base / "csim"


@lru_cache(maxsize=8)
def compiler_identity(cxx: str) -> str:
    """The compiler's path and version banner (part of the cache key)."""
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise BackendError(f"cannot run the C++ compiler {cxx!r}: {e}") from e
    return f"{cxx}\n{out.stdout.strip()}"


@lru_cache(maxsize=1)
def cpu_identity() -> str:
    """Machine, CPU model and feature flags (a native build only runs where it was built)."""
    text = platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return text + " " + platform.processor()
    for prefix in ("model name", "flags", "Features"):
        text += "\n" + next((ln for ln in lines if ln.startswith(prefix)), "")
    return text


@dataclass
class BuildResult:
    """A compiled C simulation."""

    library: Path
    key: str
    compiled: bool
    """False when the library came from the cache (no compiler run)."""
    seconds: float


def check_csim_widths(graph: Graph) -> None:
    """Reject types nnfab's C-simulation ap_fixed.h cannot hold (over 128 bits)."""
    for node in graph.nodes:
        types = dict(node.precision)
        out = graph.tensors[node.name].type
        if out is not None:
            types["result"] = out
        for key, t in types.items():
            if t.width > CSIM_MAX_WIDTH:
                raise BackendError(
                    f"layer {node.name!r}: {key} type {t} is {t.width} bits wide; nnfab's C "
                    f"simulation supports up to {CSIM_MAX_WIDTH} bits (the HLS project itself "
                    "is fine for the vendor tools). Narrow the type in the configuration."
                )
        if node.op == "Dense":
            x_type = graph.tensors[node.inputs[0]].type
            w_type = node.precision.get("weight")
            if x_type is not None and w_type is not None and (
                x_type.width + w_type.width > CSIM_MAX_WIDTH
            ):
                raise BackendError(
                    f"layer {node.name!r}: a product of the input type {x_type} and the weight "
                    f"type {w_type} needs {x_type.width + w_type.width} bits; nnfab's C "
                    f"simulation supports up to {CSIM_MAX_WIDTH}. Narrow one of them."
                )


def build_library(
    project: Project,
    *,
    cxx: str | Path | None = None,
    flags: Sequence[str] = CXX_FLAGS,
    cache_dir: str | Path | None = None,
) -> BuildResult:
    """Compile ``project``'s C simulation into a shared library, or reuse a cached one."""
    start = time.perf_counter()
    compiler = str(cxx) if cxx is not None else str(require_tool("g++"))
    flags = tuple(flags)
    h = hashlib.sha256()
    parts = (project.digest(), compiler_identity(compiler), cpu_identity(), " ".join(flags),
             str(ABI_VERSION))
    for part in parts:
        h.update(part.encode() + b"\0")
    key = h.hexdigest()
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    target = root / key[:2] / key / f"lib{project.top}.so"
    if target.is_file():
        log.debug("C simulation of %r found in the cache: %s", project.top, target)
        return BuildResult(target, key, False, time.perf_counter() - start)
    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=target.parent, prefix="build-"))
    try:
        project.write(build)
        output = build / target.name
        cmd = [compiler, *flags, "-Ifirmware", "-Ifirmware/ap_types", "csim/bridge.cpp",
               "-o", str(output)]
        log.info("compiling the C simulation of %r with %s", project.top, Path(compiler).name)
        run(cmd, target.parent / "compile.log", cwd=build, what="C simulation build (g++)")
        os.replace(output, target)  # atomic: concurrent builders of the same key agree
    finally:
        shutil.rmtree(build, ignore_errors=True)
    seconds = time.perf_counter() - start
    log.info("C simulation of %r compiled in %.1f s: %s", project.top, seconds, target)
    return BuildResult(target, key, True, seconds)


def _threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class CSimLibrary:
    """The C simulation of a model: ``compile()`` once, then ``predict(x)`` on whole batches.

    ``model`` is an ``NnfabModel`` (or anything with ``graph``, ``project_name``,
    ``backend``, ``part``, ``clock_period``) or a typed ``Graph``.
    """

    def __init__(
        self,
        model: ModelLike | Graph,
        *,
        settings: ProjectSettings | None = None,
        cxx: str | Path | None = None,
        flags: Sequence[str] = CXX_FLAGS,
        cache_dir: str | Path | None = None,
        threads: int | None = None,
    ) -> None:
        if isinstance(model, Graph):
            self.graph = model
            settings = settings or ProjectSettings()
        else:
            self.graph = model.graph
            settings = settings or settings_of(model)
        check_csim_widths(self.graph)
        self.project = render_project(self.graph, settings)
        self.cxx, self.flags, self.cache_dir = cxx, tuple(flags), cache_dir
        self.threads = threads if threads is not None else _threads()
        self.build: BuildResult | None = None
        self._lib: ctypes.CDLL | None = None

    def compile(self) -> BuildResult:
        """Build (or fetch from the cache) and load the shared library."""
        if self.build is None:
            self.build = build_library(
                self.project, cxx=self.cxx, flags=self.flags, cache_dir=self.cache_dir
            )
            lib = ctypes.CDLL(str(self.build.library))
            lib.nnfab_abi_version.restype = ctypes.c_int
            if lib.nnfab_abi_version() != ABI_VERSION:
                raise BackendError(
                    f"C simulation library {self.build.library} has ABI version "
                    f"{lib.nnfab_abi_version()}, expected {ABI_VERSION}; delete it to rebuild"
                )
            lib.nnfab_run.restype = ctypes.c_int
            lib.nnfab_run.argtypes = [
                ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p),
                ctypes.POINTER(ctypes.c_void_p), ctypes.c_long, ctypes.c_int,
            ]
            self._lib = lib
        return self.build

    def predict(
        self, x: np.ndarray | Sequence[np.ndarray] | Mapping[str, np.ndarray]
    ) -> np.ndarray | list[np.ndarray]:
        """Outputs of the compiled firmware for a batch (first axis), bit-exact.

        Inputs as for the emulator: one array, a list (one per input) or a dict by
        input name. Returns one array, or a list when the model has several outputs.
        """
        outs, _ = self._run(x, trace=False)
        return outs[0] if len(outs) == 1 else outs

    def trace(
        self, x: np.ndarray | Sequence[np.ndarray] | Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Every layer's output for a batch: ``{layer name: array}`` (as the emulator's)."""
        _, traces = self._run(x, trace=True)
        return traces

    def _run(
        self, x: np.ndarray | Sequence[np.ndarray] | Mapping[str, np.ndarray], *, trace: bool
    ) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
        self.compile()
        assert self._lib is not None
        feeds = self._inputs(x)
        n = feeds[0].shape[0]
        outs = [np.empty((n, *p.shape), dtype=np.float64) for p in self.project.outputs]
        traces = {
            node.name: np.empty((n, *self.graph.tensors[node.name].shape), dtype=np.float64)
            for node in self.graph.nodes
        } if trace else {}
        if n:
            in_ptrs = (ctypes.c_void_p * len(feeds))(*[a.ctypes.data for a in feeds])
            out_ptrs = (ctypes.c_void_p * len(outs))(*[a.ctypes.data for a in outs])
            trace_ptrs = (ctypes.c_void_p * len(traces))(
                *[a.ctypes.data for a in traces.values()]
            ) if trace else None
            threads = max(1, min(self.threads, n // MIN_SAMPLES_PER_THREAD))
            status = self._lib.nnfab_run(in_ptrs, out_ptrs, trace_ptrs, n, threads)
            if status != 0:
                raise BackendError(f"C simulation of {self.project.top!r} failed ({status})")
        return outs, traces

    def _inputs(
        self, x: np.ndarray | Sequence[np.ndarray] | Mapping[str, np.ndarray]
    ) -> list[np.ndarray]:
        ports = self.project.inputs
        names = [p.tensor for p in ports]
        if isinstance(x, Mapping):
            unknown = set(x) - set(names)
            missing = [n for n in names if n not in x]
            if unknown or missing:
                raise BackendError(
                    f"inputs by name must be exactly {names}; unknown {sorted(unknown)}, "
                    f"missing {missing}"
                )
            arrays = [x[n] for n in names]
        elif isinstance(x, np.ndarray) or not isinstance(x, Sequence):
            arrays = [x]
        else:
            arrays = list(x)
        if len(arrays) != len(ports):
            raise BackendError(f"the model has {len(ports)} input(s) {names}; got {len(arrays)}")
        feeds: list[np.ndarray] = []
        for port, a in zip(ports, arrays, strict=True):
            a = np.asarray(a, dtype=np.float64)
            if a.shape == port.shape:
                a = a[None]
            elif a.shape[1:] != port.shape:
                if a.ndim == 2 and a.shape[1] == port.size:
                    a = a.reshape(a.shape[0], *port.shape)
                else:
                    raise BackendError(
                        f"input {port.tensor!r}: expected shape (batch, "
                        f"{', '.join(map(str, port.shape))}), got {a.shape}"
                    )
            bad = int(np.count_nonzero(~np.isfinite(a)))
            if bad:
                raise BackendError(
                    f"input {port.tensor!r}: {bad} non-finite value(s) (NaN/inf) cannot be cast "
                    f"to {port.type}"
                )
            feeds.append(np.ascontiguousarray(a))
        if len({a.shape[0] for a in feeds}) > 1:
            raise BackendError(f"inputs have different batch sizes {[a.shape[0] for a in feeds]}")
        return feeds
