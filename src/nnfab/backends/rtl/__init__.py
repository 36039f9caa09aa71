"""RTL backend: synthesizable Verilog-2001 straight from the typed IR.

``RTLProject(model, output_dir, style="lut" | "dsp")`` generates one module per layer
plus a top (``clk``, ``rst``, ``in_valid``, ``in_data``, ``out_valid``, ``out_data``)
whose latency in cycles is known at generation time; ``.simulate(x)`` runs the batch
through Verilator bit for bit, ``.synthesize(part)`` measures it with Yosys.
"""

from nnfab.backends.rtl.layers import STYLES, RtlOptions, supported_ops
from nnfab.backends.rtl.project import (
    RTLProject,
    SimulationResult,
    SynthesisReport,
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
    "family_for_part",
    "generate",
    "supported_ops",
]
