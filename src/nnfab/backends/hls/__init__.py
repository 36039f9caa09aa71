"""HLS C++ backend: Vivado/Vitis HLS projects and their compiled C simulation.

- ``render_project(graph, settings)`` / ``write_project(model, output_dir)``: the project.
- ``CSimLibrary(model).predict(x)``: g++-compiled C simulation, bit-exact with the
  emulator, whole batches per call, cached by a hash of the generated sources.
"""

from nnfab.backends.hls.cpp import cpp_type
from nnfab.backends.hls.csim import BuildResult, CSimLibrary, build_library
from nnfab.backends.hls.writer import (
    Project,
    ProjectSettings,
    render_project,
    write_project,
)

__all__ = [
    "BuildResult",
    "CSimLibrary",
    "Project",
    "ProjectSettings",
    "build_library",
    "cpp_type",
    "render_project",
    "write_project",
]
