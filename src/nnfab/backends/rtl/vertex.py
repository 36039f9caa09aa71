"""Renderers of ``VertexMask`` and ``VertexMean`` (``nnfab.ir.vertex``), vector designs.

The count ``c = clip(floor(n), 0, V)`` is the count input's mantissa shifted right by
its fractional bits and clipped; a vertex ``v`` is real when ``c > v``. ``VertexMask``
selects each element or 0 and casts it to the result type; ``VertexMean`` sums the
selected elements of each feature exactly (one adder tree) and multiplies the sum by
``scale_q(1/c)`` read from a ROM of ``V + 1`` entries indexed by ``c`` (a ``*`` in
``dsp`` style, gated shifted copies in ``lut`` style), then casts.
"""

from __future__ import annotations

import math

import numpy as np

from nnfab.backends.rtl.adders import SumBuilder, Term
from nnfab.backends.rtl.folded import variable_product
from nnfab.backends.rtl.layers import LayerContext, LayerModule, _assemble, renders
from nnfab.backends.rtl.merges import input_buses
from nnfab.backends.rtl.verilog import ModuleBuilder, Sig, const
from nnfab.ir import FixedType
from nnfab.ir.vertex import reciprocals


def _count(mb: ModuleBuilder, n_t: FixedType, n: Sig, vertices: int) -> Sig:
    """``clip(floor(n), 0, V)`` as a signal."""
    k = mb.floor_shift("count_k", n, n_t.frac) if n_t.frac > 0 else mb.shift_left(
        "count_k", n, -n_t.frac)
    k = mb.max_const("count_lo", k, 0)
    return mb.min_const("count", k, vertices)


def _selected(mb: ModuleBuilder, base: str, x: Sig, count: Sig, v: int) -> Sig:
    """``x`` when vertex ``v`` is real (``count > v``), else 0."""
    if count.lo > v:
        return x
    if count.hi <= v:
        return const(0, x.stage)
    lo, hi = min(x.lo, 0), max(x.hi, 0)
    return mb.wire(base, f"{mb.greater(count, v)} ? {x.name} : {x.width}'d0", lo, hi,
                   max(x.stage, count.stage), x.width, x.signed)


def _layout(ctx: LayerContext) -> tuple[int, int]:
    vertices, *rest = ctx.graph.tensors[ctx.node.inputs[0]].shape
    return int(vertices), math.prod(rest)


@renders("VertexMask")
def render_vertex_mask(ctx: LayerContext) -> LayerModule:
    node = ctx.node
    vertices, row = _layout(ctx)
    x_t, y_t = ctx.in_type, ctx.out_type
    mb = ModuleBuilder(split_casts=ctx.options.split_casts)
    (_, xs), (n_t, (n,)) = input_buses(mb, ctx)
    count = _count(mb, n_t, n, vertices)
    outputs = [mb.cast(f"y{e}", _selected(mb, f"s{e}", x, count, e // row), x_t.frac, y_t)
               for e, x in enumerate(xs)]
    latency = 1 + max((s.stage for s in outputs), default=0)
    header = [f"Layer {node.name!r}: VertexMask of {vertices} vertices x {row} ({x_t}) by the "
              f"count ({n_t}), result {y_t}; latency {latency} cycle(s)"]
    return _assemble(ctx, header, mb, outputs, latency, {})


@renders("VertexMean")
def render_vertex_mean(ctx: LayerContext) -> LayerModule:
    node = ctx.node
    vertices, row = _layout(ctx)
    x_t, y_t, style = ctx.in_type, ctx.out_type, ctx.options.style
    scale_t = ctx.precision("scale")
    mb = ModuleBuilder(split_casts=ctx.options.split_casts)
    sb = SumBuilder(mb, ctx.options.adders_per_stage)
    (_, xs), (n_t, (n,)) = input_buses(mb, ctx)
    count = _count(mb, n_t, n, vertices)
    values, _ = reciprocals(vertices, scale_t)
    entries = np.asarray(scale_t.to_mantissa(values), dtype=np.int64)
    scale = mb.rom("recip", count, {c: int(entries[c]) for c in range(count.lo, count.hi + 1)},
                   f"scale_q(1/count) ({scale_t}) by count, 0 at count 0")
    outputs = []
    for i in range(row):
        terms = [Term(_selected(mb, f"s{v}_{i}", xs[v * row + i], count, v), 0, False, 0)
                 for v in range(vertices)]
        total = sb.resolve(f"sum{i}_n", sb.reduce(f"sum{i}", terms))
        prod = variable_product(sb, f"p{i}", total.sig, scale, style,
                                b_values=[int(v) for v in entries], level=total.level)
        prod = sb.resolve(f"p{i}_n", prod)
        outputs.append(mb.cast(f"y{i}", prod.sig,
                               x_t.frac - total.shift + scale_t.frac - prod.shift, y_t))
    latency = 1 + max((s.stage for s in outputs), default=0)
    header = [f"Layer {node.name!r}: VertexMean of {vertices} vertices x {row} ({x_t}) by the "
              f"count ({n_t}), exact sums times scale_q(1/count) ({scale_t}), result {y_t}; "
              f"style {style}, latency {latency} cycle(s)"]
    return _assemble(ctx, header, mb, outputs, latency, {"adders": sb.adders,
                                                        "adder_bits": sb.adder_bits})
