"""RTL backend: synthesizable Verilog-2001 straight from the typed IR.

``RTLProject(model, output_dir, style="lut" | "dsp", pipeline=...)`` generates one
module per layer plus a top (``clk``, ``rst``, ``in_valid``, ``in_data``, ``out_valid``,
``out_data``) whose latency in cycles is known at generation time; ``.simulate(x)``
runs the batch through Verilator bit for bit, ``.synthesize(part)`` measures it with
Yosys. Layer renderers: ``layers.py`` (Dense, Activation, Softmax, reshapes),
``folded.py`` (Dense with a reuse factor R > 1: II = R), ``merges.py``
(BatchNormalization, Merge, Concatenate; graphs may branch).
"""

from nnfab.backends.rtl import folded, merges  # noqa: F401  (register their renderers)
from nnfab.backends.rtl.layers import STYLES, RtlOptions, supported_ops
from nnfab.backends.rtl.project import (
    RTLProject,
    SimulationResult,
    SynthesisReport,
    adders_per_stage_for,
    family_for_part,
)
from nnfab.backends.rtl.writer import RtlDesign, generate

__all__ = [
    "STYLES",
    "RTLProject",
    "RtlDesign",
    "RtlOptions",
    "SimulationResult",
    "SynthesisReport",
    "adders_per_stage_for",
    "family_for_part",
    "generate",
    "supported_ops",
]
