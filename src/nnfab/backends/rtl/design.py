"""Which generator a graph takes: a pixel stream (``stream.py``) for convolutions and
poolings, the fully parallel / folded vector design (``writer.py``) otherwise.

The RTL backend's modules build on each other in one direction::

    verilog -> adders -> layers -> folded, merges, vertex -> writer -> stream_join, stream
    -> design
    harness -> sim -> stream_harness -> project (RTLProject)
"""

from __future__ import annotations

from nnfab.backends.rtl.layers import RtlOptions
from nnfab.backends.rtl.stream import generate_stream, is_streamed
from nnfab.backends.rtl.writer import RtlDesign, generate_parallel
from nnfab.ir import Graph


def generate(graph: Graph, options: RtlOptions | None = None, top: str | None = None
             ) -> RtlDesign:
    """The design of a typed graph (see the module docstring)."""
    if is_streamed(graph):
        return generate_stream(graph, options, top)
    return generate_parallel(graph, options, top)
