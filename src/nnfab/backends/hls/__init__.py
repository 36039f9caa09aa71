"""HLS C++ backend: Vivado/Vitis HLS projects and their compiled C simulation.

- ``render_project(graph, settings)`` / ``write_project(model, output_dir)``: the project
  (io_parallel or io_stream; Strategy Latency or Resource per layer; layers beyond
  ``ProjectSettings.max_unroll`` products split into sub-function blocks).
- ``CSimLibrary(model).predict(x)``: g++-compiled C simulation, bit-exact with the
  emulator, whole batches per call, cached by a hash of the generated sources.
- ``build_project(dir)`` / ``read_report(dir)``: the vendor tools and their reports.
- ``estimate(model)``: analytic resource / latency estimates, no tools needed.
"""

from nnfab.backends.hls.build import build_project, find_hls_tool
from nnfab.backends.hls.cpp import cpp_type
from nnfab.backends.hls.csim import BuildResult, CSimLibrary, build_library
from nnfab.backends.hls.estimate import Estimate, LayerEstimate, estimate
from nnfab.backends.hls.reports import read_report
from nnfab.backends.hls.writer import (
    Project,
    ProjectSettings,
    render_project,
    top_mode,
    write_project,
)

__all__ = [
    "BuildResult",
    "CSimLibrary",
    "Estimate",
    "LayerEstimate",
    "Project",
    "ProjectSettings",
    "build_library",
    "build_project",
    "cpp_type",
    "estimate",
    "find_hls_tool",
    "read_report",
    "render_project",
    "top_mode",
    "write_project",
]
