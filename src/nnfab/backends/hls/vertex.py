"""HLS renderers of ``VertexMask`` and ``VertexMean`` (``nnfab.ir.vertex``), io_parallel:
the count ``c = clip(floor(n), 0, V)`` taken once per sample, then unrolled loops."""

from __future__ import annotations

import math

from nnfab.backends.hls.cpp import ConstArray
from nnfab.backends.hls.layers import (
    LayerCode,
    RenderContext,
    _precision,
    _result_typedef,
    renderer,
)
from nnfab.ir import FixedType, Node, Overflow, Rounding
from nnfab.ir.vertex import reciprocals


def _count_lines(ctx: RenderContext, node: Node, code: LayerCode, vertices: int) -> list[str]:
    """Statements defining ``<count>``: the sample's count, clipped to 0..V."""
    n = node.inputs[1]
    nt = ctx.tensor_type(n)
    integer = max(nt.integer + (0 if nt.signed else 1), 2)
    floor_t = ctx.ident(node, "count_t")
    code.typedefs.append((floor_t, FixedType(integer, integer, True, Rounding.TRN,
                                             Overflow.WRAP), "floor of the count"))
    k, c = ctx.ident(node, "k"), ctx.ident(node, "count")
    return [
        f"const long long {k} = {floor_t}({ctx.array(n)}[0]).to_int64();",
        f"const unsigned {c} = {k} < 0 ? 0u : ({k} > {vertices} ? {vertices}u : "
        f"static_cast<unsigned>({k}));",
    ]


@renderer("VertexMask")
def render_vertex_mask(ctx: RenderContext, node: Node) -> LayerCode:
    """``x[v]`` for the real vertices ``v < count``, 0 for the padding ones."""
    src = node.inputs[0]
    vertices, *rest = ctx.shape(src)
    row = math.prod(rest)
    code = LayerCode(node, typedefs=[_result_typedef(ctx, node)])
    out, out_t, x = ctx.array(node.name), ctx.type_name(node.name), ctx.array(src)
    c = ctx.ident(node, "count")
    code.call = [
        *_count_lines(ctx, node, code, vertices),
        f"for (unsigned v = 0; v < {vertices}; v++) {{",
        "  NNFAB_PRAGMA(HLS UNROLL)",
        f"  for (unsigned i = 0; i < {row}; i++) {{",
        "    NNFAB_PRAGMA(HLS UNROLL)",
        f"    {out}[v * {row} + i] = v < {c} ? {out_t}({x}[v * {row} + i]) : {out_t}(0);",
        "  }",
        "}",
    ]
    return code


@renderer("VertexMean")
def render_vertex_mean(ctx: RenderContext, node: Node) -> LayerCode:
    """``result(S * scale_q(1/count))``: S the exact sum over the real vertices."""
    src = node.inputs[0]
    vertices, *rest = ctx.shape(src)
    row = math.prod(rest)
    x_t = ctx.tensor_type(src)
    extra = max(1, math.ceil(math.log2(vertices))) if vertices > 1 else 0
    sum_type = FixedType(x_t.width + extra, x_t.integer + extra, x_t.signed)
    scale_type = _precision(node, "scale")
    sum_t, scale_t, table = (ctx.ident(node, k) for k in ("sum_t", "scale_t", "scales"))
    code = LayerCode(node, typedefs=[_result_typedef(ctx, node),
                                     (sum_t, sum_type, "exact sum over the vertices"),
                                     (scale_t, scale_type, "scale")])
    values, _ = reciprocals(vertices, scale_type)
    code.arrays = [ConstArray(table, scale_t, scale_type, values,
                              comment=f"scale(1/count) of {node.name!r} by count (0: 0)")]
    out, out_t, x = ctx.array(node.name), ctx.type_name(node.name), ctx.array(src)
    c, acc = ctx.ident(node, "count"), ctx.ident(node, "sum")
    code.call = [
        *_count_lines(ctx, node, code, vertices),
        f"for (unsigned i = 0; i < {row}; i++) {{",
        "  NNFAB_PRAGMA(HLS UNROLL)",
        f"  {sum_t} {acc} = 0;",
        f"  for (unsigned v = 0; v < {vertices}; v++) {{",
        "    NNFAB_PRAGMA(HLS UNROLL)",
        f"    if (v < {c}) {acc} += {x}[v * {row} + i];",
        "  }",
        f"  {out}[i] = {out_t}({acc} * nnfab::load<{scale_t}>({table}[{c}]));",
        "}",
    ]
    return code
