"""RTL backend: synthesizable Verilog-2001 straight from the typed IR.

``RTLProject(model, output_dir, style="lut" | "dsp", pipeline=...)`` generates one
module per layer plus a top (``clk``, ``rst``, ``in_valid``, ``in_data``, ``out_valid``,
``out_data``) whose latency in cycles is known at generation time; ``.simulate(x)``
runs the batch through Verilator bit for bit, ``.synthesize(part)`` measures it with
Yosys. Layer renderers: ``layers.py`` (Dense, Activation, Softmax, reshapes),
``folded.py`` (Dense with a reuse factor R > 1: II = R), ``merges.py``
(BatchNormalization, Merge, Concatenate; graphs may branch), ``recurrent.py``
(SimpleRNN, LSTM, GRU: one time step per S cycles, II = steps * S), ``threshold.py``
(MultiThreshold), ``zoo.py`` (Embedding, Conv1D/2DTranspose), ``layernorm.py``
(LayerNormalization), ``vertex.py`` (VertexMask, VertexMean), ``stream.py``
(convolutions and poolings as pixel streams with line buffers).
"""

from nnfab.backends.rtl import (  # noqa: F401  (register their renderers)
    folded,
    layernorm,
    merges,
    recurrent,
    shape_ops,
    threshold,
    vertex,
    zoo,
)
from nnfab.backends.rtl.design import generate
from nnfab.backends.rtl.layers import STYLES, RtlOptions
from nnfab.backends.rtl.layers import supported_ops as _layer_ops
from nnfab.backends.rtl.project import (
    RTLProject,
    SimulationResult,
    SynthesisReport,
    adders_per_stage_for,
    family_for_part,
)
from nnfab.backends.rtl.stream import WINDOW_OPS
from nnfab.backends.rtl.writer import RtlDesign


def supported_ops() -> list[str]:
    """IR ops the RTL backend renders: per-vector layers plus the streamed window ops."""
    return sorted(set(_layer_ops()) | set(WINDOW_OPS))


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
