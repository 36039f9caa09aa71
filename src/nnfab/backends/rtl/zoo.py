"""Embedding in Verilog (vector designs): one constant ROM per output column.

Every index element selects, for each column ``d``, the entry ``result(weight(E[i, d]))``
of a ``case`` table over all values of the index type (zero outside ``0..V-1``, as
docs/semantics.md says); the tables are Verilog functions shared by all index elements.
Latency 0 (combinational). Conv1D/2DTranspose and LayerNormalization have no Verilog
renderer: ``to_rtl()`` refuses them naming the layer (they reach the HLS backend only).
"""

from __future__ import annotations

import numpy as np

from nnfab.backends.rtl.layers import LayerContext, LayerModule, _assemble, input_signals, renders
from nnfab.backends.rtl.verilog import ModuleBuilder
from nnfab.errors import BackendError

MAX_ROM_ENTRIES = 1 << 16
"""Largest number of index values one column table may enumerate."""


@renders("Embedding")
def render_embedding(ctx: LayerContext) -> LayerModule:
    node = ctx.node
    x_t, y_t = ctx.in_type, ctx.out_type
    n_values = x_t.max_mantissa - x_t.min_mantissa + 1
    if not x_t.is_integer or n_values > MAX_ROM_ENTRIES:
        raise BackendError(
            f"layer {node.name!r} (Embedding): the index type {x_t} must be an integer type "
            f"with at most {MAX_ROM_ENTRIES} values for the Verilog ROM; use ap_uint<B> with "
            "2**B >= the vocabulary"
        )
    w_t = node.precision.get("weight")
    if w_t is None:
        raise BackendError(f"layer {node.name!r} (Embedding) has no 'weight' precision; run "
                           "the precision passes first")
    table = np.asarray(node.weights["embeddings"], dtype=np.float64)
    vocab, dim = table.shape
    rows = y_t.to_mantissa(y_t.quantize(w_t.quantize(table)))  # (V, D) result mantissas
    shift = -x_t.frac  # index value = mantissa << shift
    entries: list[dict[int, int]] = []
    for d in range(dim):
        column: dict[int, int] = {}
        for m in range(x_t.min_mantissa, x_t.max_mantissa + 1):
            i = m << shift
            column[m] = int(rows[i, d]) if 0 <= i < vocab else 0
        entries.append(column)
    mb = ModuleBuilder(split_casts=ctx.options.adders_per_stage == 1)
    xs = input_signals(mb, x_t, ctx.in_size)
    outputs = [mb.rom(f"col{d}", x, entries[d], comment=f"column {d} of {node.name!r}")
               for x in xs for d in range(dim)]
    header = [f"Layer {node.name!r}: Embedding ({vocab}, {dim}), {ctx.in_size} x {x_t} -> "
              f"{y_t}; latency 0 (ROM)"]
    return _assemble(ctx, header, mb, outputs, 0, {"rom_entries": n_values * dim})
