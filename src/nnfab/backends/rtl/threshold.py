"""MultiThreshold (FINN / QONNX thresholds) in Verilog: comparators, a count, a level ROM.

For each element ``x`` (a mantissa of the input type, ``frac`` fractional bits) and its
threshold row (shared, per channel or per element, as ``nnfab.ir.threshold`` says),
``x >= t`` holds exactly when ``x >= ceil(t * 2**frac)``: each threshold becomes one
comparison with a constant mantissa. Thresholds the input never reaches are left out and
those it always reaches only add a constant to the count. The count selects one of the
``K + 1`` output levels, cast to the result type at generation time with the emulator's
rule (``emulate.kernels.common.cast``), from a ``case`` table. Unsorted thresholds are
fine: the count does not depend on their order.

Latency 1 (the outputs are registered); with a clock target (``adders_per_stage``) the
comparisons end in registers too (latency 2). In a pixel stream the layer runs per pixel
over the channels, so its thresholds must be shared or per channel.
"""

from __future__ import annotations

import math

import numpy as np

from nnfab.backends.rtl.layers import LayerContext, LayerModule, _assemble, input_signals, renders
from nnfab.backends.rtl.verilog import ModuleBuilder, Sig, bits_for, const
from nnfab.emulate.kernels.common import Exact, cast
from nnfab.errors import BackendError
from nnfab.ir import FixedType
from nnfab.ir.threshold import multithreshold_levels


def threshold_mantissas(thresholds: np.ndarray, x_type: FixedType) -> list[list[int]]:
    """Per row, the input mantissas ``m_t`` with ``x >= t  <=>  m >= m_t`` (clipped to
    ``[min - 0, max + 1]``: always and never reached)."""
    lo, hi = x_type.min_mantissa, x_type.max_mantissa
    scaled = np.ceil(np.asarray(thresholds, dtype=np.float64) * 2.0**x_type.frac)
    clipped = np.clip(scaled, lo, hi + 1)
    return [[int(v) for v in row] for row in clipped]


def level_mantissas(ctx: LayerContext) -> list[int]:
    """The ``K + 1`` output levels as result-type mantissas (cast as the emulator does)."""
    levels = multithreshold_levels(ctx.node)
    frac = max(max(int(lv.denominator).bit_length() - 1 for lv in levels), 0)
    ints = [int(lv * 2**frac) for lv in levels]
    mantissas = np.array(ints, dtype=object if max(map(abs, ints)) >= 1 << 62 else np.int64)
    values, _ = cast(Exact(mantissas, frac), ctx.out_type)
    return [int(m) for m in ctx.out_type.to_mantissa(np.asarray(values, dtype=np.float64))]


def threshold_row(rows: int, channels: int, element: int) -> int:
    """The threshold row of flat element ``element`` (shared, per channel, per element)."""
    if rows == 1:
        return 0
    return element % channels if rows == channels else element


@renders("MultiThreshold")
def render_multithreshold(ctx: LayerContext) -> LayerModule:
    node = ctx.node
    x_t, y_t = ctx.in_type, ctx.out_type
    thresholds = np.asarray(node.weights["thresholds"], dtype=np.float64)
    rows, k = thresholds.shape
    shape = ctx.graph.tensors[node.inputs[0]].shape
    channels = int(shape[-1]) if shape else 1
    n = ctx.in_size
    if rows not in (1, channels, n):
        raise BackendError(f"layer {node.name!r} (MultiThreshold): {rows} threshold rows for "
                           f"an input of {n} elements and {channels} channels; allowed: 1, "
                           f"{channels} or {n}")
    limits = threshold_mantissas(thresholds, x_t)
    levels = level_mantissas(ctx)
    mb = ModuleBuilder()
    xs = input_signals(mb, x_t, n)
    stage = 0 if ctx.options.adders_per_stage is None else 1
    compares = 0
    outputs: list[Sig] = []
    for e, x in enumerate(xs):
        always = 0
        bits: list[Sig] = []
        for j, m_t in enumerate(limits[threshold_row(rows, channels, e)]):
            if m_t <= x.lo:
                always += 1
            elif m_t <= x.hi:
                bit = mb.wire(f"x{e}_ge{j}", mb.greater(x, m_t - 1), 0, 1, 0, 1, False)
                bits.append(mb.at_stage(bit, stage))
        compares += len(bits)
        if not bits:
            count = const(always, stage)
        else:
            width = bits_for(0, always + len(bits))[0]
            terms = [b.ext(width) for b in bits]
            if always:
                terms.append(f"{width}'d{always}")
            count = mb.wire(f"y{e}_n", " + ".join(terms), always, always + len(bits), stage,
                            width, False)
        table = {c: levels[c] for c in range(count.lo, count.hi + 1)}
        outputs.append(mb.rom(f"lv_{count.lo}_{count.hi}", count, table,
                              f"output levels ({y_t} mantissas) by count"))
    latency = stage + 1
    header = [
        f"Layer {node.name!r}: MultiThreshold, {rows} x {k} thresholds "
        f"(out_scale {node.attrs.get('out_scale', 1.0)}, out_bias "
        f"{node.attrs.get('out_bias', 0.0)})",
        f"  {n} elements, input {x_t}, result {y_t}; {compares} comparator(s); latency "
        f"{latency} cycle(s)",
    ]
    return _assemble(ctx, header, mb, outputs, latency,
                     {"comparators": compares, "levels": math.prod(thresholds.shape[1:]) + 1})
