"""Embedding in Verilog (vector designs): one constant ROM per output column.

Every index element selects, for each column ``d``, the entry ``result(weight(E[i, d]))``
of a ``case`` table over all values of the index type (zero outside ``0..V-1``, as
docs/semantics.md says); the tables are Verilog functions shared by all index elements.
Latency 0 (combinational).

Conv1DTranspose / Conv2DTranspose (vector designs): every output is a weighted sum of the
inputs its window covers (docs/semantics.md), so the layer is the Dense of its
equivalent matrix: entry ``(input p, channel c) -> (output q, filter f)`` is
``kernel[t, c, f]`` for the one tap ``t = q - p * stride + pad_before`` inside the kernel,
else 0 (zero weights cost nothing in the constant multiplications), with the bias per
filter. The Dense renderer then gives the same sums, casts and latency as for Dense. A
reuse factor is not applied (the folded schedule would spend cycles on the zeros).
LayerNormalization is in ``layernorm.py``.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import replace

import numpy as np

from nnfab.backends.rtl.layers import (
    RENDERERS,
    LayerContext,
    LayerModule,
    _assemble,
    input_signals,
    renders,
)
from nnfab.backends.rtl.verilog import ModuleBuilder
from nnfab.errors import BackendError
from nnfab.ir import Graph, Node
from nnfab.ir.zoo import TRANSPOSE_OPS, transpose_attrs

log = logging.getLogger(__name__)

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
    mb = ModuleBuilder(split_casts=ctx.options.split_casts)
    xs = input_signals(mb, x_t, ctx.in_size)
    outputs = [mb.rom(f"col{d}", x, entries[d], comment=f"column {d} of {node.name!r}")
               for x in xs for d in range(dim)]
    header = [f"Layer {node.name!r}: Embedding ({vocab}, {dim}), {ctx.in_size} x {x_t} -> "
              f"{y_t}; latency 0 (ROM)"]
    return _assemble(ctx, header, mb, outputs, 0, {"rom_entries": n_values * dim})


def transpose_matrix(kernel: np.ndarray, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                     strides: tuple[int, ...], pads: tuple[int, ...]) -> np.ndarray:
    """The ``(prod(in_shape), prod(out_shape))`` matrix of a transposed convolution
    (channels last; ``pads``: ``(before, after)`` per spatial axis)."""
    rank = len(strides)
    ksize, filters = kernel.shape[:rank], kernel.shape[-1]
    channels = in_shape[-1]
    matrix = np.zeros((int(np.prod(in_shape)), int(np.prod(out_shape))), dtype=np.float64)
    in_strides = np.cumprod((1, *in_shape[::-1]))[::-1][1:]
    out_strides = np.cumprod((1, *out_shape[::-1]))[::-1][1:]
    for p in itertools.product(*(range(n) for n in in_shape[:-1])):
        for t in itertools.product(*(range(k) for k in ksize)):
            q = [p[a] * strides[a] + t[a] - pads[2 * a] for a in range(rank)]
            if any(not 0 <= q[a] < out_shape[a] for a in range(rank)):
                continue
            row = int(np.dot(p, in_strides[:-1]))
            col = int(np.dot(q, out_strides[:-1]))
            matrix[row:row + channels, col:col + filters] = kernel[t]
    return matrix


@renders(*TRANSPOSE_OPS)
def render_conv_transpose(ctx: LayerContext) -> LayerModule:
    """A transposed convolution as the Dense of its equivalent matrix (module docstring)."""
    node = ctx.node
    in_shape = tuple(ctx.graph.tensors[node.inputs[0]].shape)
    out_shape = tuple(ctx.graph.tensors[node.name].shape)
    strides, pads, _ = transpose_attrs(node)
    kernel = np.asarray(node.weights["kernel"], dtype=np.float64)
    matrix = transpose_matrix(kernel, in_shape, out_shape, strides, pads)
    bias = np.tile(np.asarray(node.weights["bias"], dtype=np.float64).reshape(-1),
                   int(np.prod(out_shape[:-1])))
    if node.reuse_factor > 1:
        log.warning("layer %r (%s): ReuseFactor %d is not applied in Verilog (the layer is "
                    "unfolded)", node.name, node.op, node.reuse_factor)
    sub = Graph(name=f"{node.name}_dense")
    x = f"{node.name}_x"
    sub.add_node(Node(x, "Input", [], attrs={"shape": (matrix.shape[0],)}), (matrix.shape[0],),
                 ctx.in_type)
    attrs = {"activation": node.attrs["activation"]} if "activation" in node.attrs else {}
    sub.add_node(Node(node.name, "Dense", [x], attrs=attrs,
                      weights={"kernel": matrix, "bias": bias}, precision=dict(node.precision),
                      source_class=node.source_class),
                 (matrix.shape[1],), ctx.out_type)
    sub.outputs = [node.name]
    dense = RENDERERS["Dense"](LayerContext(sub.node(node.name), sub, ctx.module, ctx.options))
    note = (f"// Layer {node.name!r}: {node.op} {in_shape} -> {out_shape}, kernel "
            f"{kernel.shape}, strides {strides}, pads {pads}: the Dense of its "
            f"{matrix.shape[0]} x {matrix.shape[1]} matrix ({np.count_nonzero(matrix)} "
            "nonzero) below\n")
    return replace(dense, op=node.op, text=note + dense.text)
