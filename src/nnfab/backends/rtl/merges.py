"""Renderers for BatchNormalization (unfused), Merge and Concatenate.

BatchNormalization (docs/semantics.md section 3): per element of channel ``c``,
``result(accum(x * scale_c) + accum(bias_c))``: a constant multiplication (canonical
signed digits in ``lut`` style, ``*`` in ``dsp`` style), the product cast to the
accumulator on its own when it is finer, the cast bias added, the sum wrapped to the
accumulator, then the result cast: the Dense datapath with one input per output.

Merge (section 4): the inputs arrive concatenated on ``x`` (input 0 in the lowest bits,
see ``layers.py``) and are combined per element exactly before the one result cast:
``add`` and ``subtract`` as an adder tree on the common (finest) grid, ``multiply`` as a
product tree (``variable_product``: ``*`` in ``dsp`` style, gated shifted copies in
``lut`` style), ``average`` as the exact sum times the constant ``scale_q(1/n)``,
``maximum`` / ``minimum`` as a comparator tree on the common grid (``extrema.py``).

Dot (two vectors): the products as in ``multiply``, summed exactly in one adder tree,
then the result cast.

Concatenate: each input element is cast to the result type and placed at its position
along ``axis`` (row-major, channels-last). Pure wiring (latency 0) when every input
already has the result type, else one register stage.

The top (``writer.py``) balances the branches of the graph with delay registers so
that all inputs of a merge carry the same sample in the same cycle.
"""

from __future__ import annotations

import numpy as np

from nnfab.backends.rtl.adders import SumBuilder, Term, csd
from nnfab.backends.rtl.extrema import extremum
from nnfab.backends.rtl.folded import variable_product
from nnfab.backends.rtl.layers import (
    LayerContext,
    LayerModule,
    _assemble,
    renders,
    rounded_product_terms,
    weighted_sum_terms,
    weighted_sum_types,
    wrap_accumulator,
)
from nnfab.backends.rtl.verilog import ModuleBuilder, Sig, const, type_range
from nnfab.errors import BackendError
from nnfab.ir import FixedType
from nnfab.ir.ops import MERGE_MODES
from nnfab.ir.tables import reciprocal


def input_buses(mb: ModuleBuilder, ctx: LayerContext) -> list[tuple[FixedType, list[Sig]]]:
    """One wire per element of every input (inputs concatenated on ``x``, input 0 first)."""
    out = []
    offset = 0
    for k, name in enumerate(ctx.node.inputs):
        tensor = ctx.graph.tensors[name]
        t = tensor.type
        assert t is not None
        lo, hi = type_range(t)
        sigs = []
        for e in range(tensor.size):
            wire = mb.fresh(f"x{k}_{e}")
            mb.lines.append(f"  wire [{t.width - 1}:0] {wire} = x[{offset} +: {t.width}];")
            sigs.append(Sig(wire, t.width, t.signed, lo, hi, 0))
            offset += t.width
        out.append((t, sigs))
    return out


def _latency(outputs: list[Sig]) -> int:
    return 1 + max((s.stage for s in outputs), default=0)


# ------------------------------------------------------- BatchNormalization
@renders("BatchNormalization")
def render_batchnorm(ctx: LayerContext) -> LayerModule:
    node = ctx.node
    x_t, y_t = ctx.in_type, ctx.out_type
    w_t, b_t, acc_t = weighted_sum_types(ctx)
    channels = ctx.graph.tensors[node.inputs[0]].shape[-1]
    arrays = {}
    for key in ("scale", "bias"):
        values = np.asarray(node.weights[key], dtype=np.float64).reshape(-1)
        if values.size != channels:
            raise BackendError(
                f"layer {node.name!r} (BatchNormalization): weight {key!r} has {values.size} "
                f"values, the input has {channels} channels"
            )
        arrays[key] = values
    scale = np.asarray(w_t.to_mantissa(arrays["scale"]), dtype=object)
    bias = acc_t.to_mantissa(b_t.quantize(arrays["bias"]))
    product_frac = x_t.frac + w_t.frac
    exact = acc_t.frac >= product_frac
    mb = ModuleBuilder(split_casts=ctx.options.split_casts)
    sb = SumBuilder(mb, ctx.options.adders_per_stage)
    (_, xs), = input_buses(mb, ctx)
    cache: dict[tuple[str, int], Term] = {}
    outputs = []
    for e, x in enumerate(xs):
        c = e % channels
        base = f"y{e}"
        weights = scale[c:c + 1]
        if exact:
            terms = weighted_sum_terms(sb, base, [x], weights, ctx.options.style,
                                       acc_t.frac - product_frac, cache)
        else:
            terms = rounded_product_terms(sb, base, [x], weights, ctx.options.style,
                                          product_frac, acc_t, cache)
        total = sb.reduce(base, terms, int(bias[c]), acc_t.width)
        total = sb.resolve(f"{base}_neg", total, acc_t.width)
        acc, acc_frac = wrap_accumulator(mb, f"{base}_acc", total, acc_t)
        outputs.append(mb.cast(f"{base}_res", acc, acc_frac, y_t))
    latency = _latency(outputs)
    header = [
        f"Layer {node.name!r}: BatchNormalization over {channels} channel(s), "
        f"{ctx.in_size} elements",
        f"  input {x_t}, scale {w_t}, bias {b_t}, accum {acc_t}, result {y_t}; "
        f"style {ctx.options.style}, latency {latency} cycle(s)",
    ]
    stats = {"adders": sb.adders, "adder_bits": sb.adder_bits,
             "nonzero_weights": int(np.count_nonzero(scale))}
    return _assemble(ctx, header, mb, outputs, latency, stats)


# -------------------------------------------------------------------- Merge
@renders("Merge")
def render_merge(ctx: LayerContext) -> LayerModule:
    node = ctx.node
    mode = node.attrs.get("mode")
    n = len(node.inputs)
    if mode not in MERGE_MODES:
        raise BackendError(f"layer {node.name!r} (Merge): mode {mode!r} is not one of "
                           f"{', '.join(MERGE_MODES)}")
    if n < 2 or (mode == "subtract" and n != 2):
        raise BackendError(f"layer {node.name!r} (Merge): mode {mode!r} cannot take {n} "
                           "input(s)")
    sizes = {ctx.graph.tensors[t].size for t in node.inputs}
    if len(sizes) != 1:
        raise BackendError(f"layer {node.name!r} (Merge): inputs of different sizes {sizes}")
    y_t = ctx.out_type
    style = ctx.options.style
    mb = ModuleBuilder(split_casts=ctx.options.split_casts)
    sb = SumBuilder(mb, ctx.options.adders_per_stage)
    buses = input_buses(mb, ctx)
    frac = max(t.frac for t, _ in buses)
    detail = ""
    scale_m = scale_frac = 0
    if mode == "average":
        scale_t = ctx.precision("scale")
        value, _ = reciprocal(n, scale_t)
        scale_m = int(scale_t.to_mantissa(np.array([value]))[0])
        scale_frac = scale_t.frac
        detail = f", scale 1/{n} -> {scale_m} * 2^-{scale_frac} ({scale_t})"
    outputs = []
    for e in range(len(buses[0][1])):
        base = f"y{e}"
        if mode in ("maximum", "minimum"):  # exact compares on the common (finest) grid
            best = extremum(mb, base, [mb.shift_left(f"{base}_a{k}", sigs[e], frac - t.frac)
                                       for k, (t, sigs) in enumerate(buses)], mode)
            outputs.append(mb.cast(base, best, frac, y_t))
            continue
        if mode == "multiply":
            prod = Term(buses[0][1][e], 0, False, 0)
            p_frac = buses[0][0].frac
            for k, (t, sigs) in enumerate(buses[1:], start=1):
                a = sb.resolve(f"{base}_p{k}n", prod)
                step = variable_product(sb, f"{base}_p{k}", a.sig, sigs[e], style,
                                        level=a.level)
                prod = Term(step.sig, step.shift + a.shift, step.neg, step.level)
                p_frac += t.frac
            total = sb.resolve(f"{base}_n", prod)
            outputs.append(mb.cast(base, total.sig, p_frac - total.shift, y_t))
            continue
        terms = [Term(sigs[e], frac - t.frac, mode == "subtract" and k == 1, 0)
                 for k, (t, sigs) in enumerate(buses)]
        sig_frac = frac
        if mode == "average" and style == "lut":
            # (x_1 + ... + x_n) * scale as one tree: every input times each digit of scale
            terms = [Term(t.sig, t.shift + s, d < 0, 0) for t in terms for s, d in csd(scale_m)]
            sig_frac += scale_frac
        total = sb.resolve(f"{base}_n", sb.reduce(f"{base}_s", terms))
        sig, sig_frac = total.sig, sig_frac - total.shift
        if mode == "average" and style == "dsp":
            stage = sb.stage_of(total.level + 1)
            sig = mb.mul_const(f"{base}_avg", mb.at_stage(sig, stage), scale_m)
            sig_frac += scale_frac
        outputs.append(mb.cast(base, sig, sig_frac, y_t))
    latency = _latency(outputs)
    types = ", ".join(str(t) for t, _ in buses)
    header = [
        f"Layer {node.name!r}: Merge {mode} of {n} inputs ({types}){detail}",
        f"  {len(outputs)} elements, result {y_t}; style {style}, latency {latency} cycle(s)",
    ]
    return _assemble(ctx, header, mb, outputs, latency, {"adders": sb.adders,
                                                         "adder_bits": sb.adder_bits})


# ---------------------------------------------------------------------- Dot
@renders("Dot")
def render_dot(ctx: LayerContext) -> LayerModule:
    """``result(sum_i x_i * z_i)``: products (``variable_product``) in one exact adder tree."""
    node = ctx.node
    y_t, style = ctx.out_type, ctx.options.style
    mb = ModuleBuilder(split_casts=ctx.options.split_casts)
    sb = SumBuilder(mb, ctx.options.adders_per_stage)
    (ta, xa), (tb, xb) = input_buses(mb, ctx)
    if len(xa) != len(xb):
        raise BackendError(f"layer {node.name!r} (Dot): inputs of {len(xa)} and {len(xb)} "
                           "elements; a dot product needs two vectors of one length")
    terms = [variable_product(sb, f"p{e}", a, b, style) for e, (a, b) in
             enumerate(zip(xa, xb, strict=True))]
    total = sb.resolve("sum_n", sb.reduce("sum", terms))
    out = mb.cast("y0", total.sig, ta.frac + tb.frac - total.shift, y_t)
    latency = _latency([out])
    header = [f"Layer {node.name!r}: Dot of two {len(xa)}-vectors ({ta}, {tb}), exact sum, "
              f"result {y_t}; style {style}, latency {latency} cycle(s)"]
    return _assemble(ctx, header, mb, [out], latency, {"adders": sb.adders,
                                                       "adder_bits": sb.adder_bits})


# ------------------------------------------------------------------- MatMul
@renders("MatMul")
def render_matmul(ctx: LayerContext) -> LayerModule:
    """``result(sum_k a[g, i, k] * b[g, k, j])``: one exact adder tree of products
    (``variable_product``) per output, as ``Dot``."""
    node = ctx.node
    y_t, style = ctx.out_type, ctx.options.style
    mb = ModuleBuilder(split_casts=ctx.options.split_casts)
    sb = SumBuilder(mb, ctx.options.adders_per_stage)
    (ta, xa), (tb, xb) = input_buses(mb, ctx)
    *lead, m, k = ctx.graph.tensors[node.inputs[0]].shape
    n = ctx.graph.tensors[node.inputs[1]].shape[-1]
    groups = int(np.prod(lead, dtype=np.int64))
    outputs: list[Sig] = []
    for g in range(groups):
        for i in range(m):
            for j in range(n):
                e = (g * m + i) * n + j
                terms = [variable_product(sb, f"p{e}_{q}", xa[(g * m + i) * k + q],
                                          xb[(g * k + q) * n + j], style) for q in range(k)]
                total = sb.resolve(f"sum{e}_n", sb.reduce(f"sum{e}", terms))
                outputs.append(mb.cast(f"y{e}", total.sig, ta.frac + tb.frac - total.shift,
                                       y_t))
    latency = _latency(outputs)
    header = [f"Layer {node.name!r}: MatMul {groups} x ({m} x {k}) ({ta}) by ({k} x {n}) "
              f"({tb}), exact sums, result {y_t}; style {style}, latency {latency} cycle(s)"]
    return _assemble(ctx, header, mb, outputs, latency, {"adders": sb.adders,
                                                        "adder_bits": sb.adder_bits})


# -------------------------------------------------------------- ElementCast
@renders("ElementCast")
def render_element_cast(ctx: LayerContext) -> LayerModule:
    """Each element cast to its own type (``mb.cast``), then to the result type (exact
    when that holds the element's type); zero-width elements are 0."""
    from nnfab.ir.element_cast import element_type, element_types, modes

    node = ctx.node
    y_t = ctx.out_type
    mb = ModuleBuilder(split_casts=ctx.options.split_casts)
    ((x_t, xs),) = input_buses(mb, ctx)
    shape = ctx.graph.tensors[node.name].shape
    rounding, overflow = modes(node)
    outputs: list[Sig | None] = [None] * len(xs)
    for key, mask in sorted(element_types(node, shape).items()):
        t = element_type(*key, rounding, overflow)
        for e in np.flatnonzero(mask.reshape(-1)):
            if t is None:
                outputs[e] = const(0)
                continue
            own = mb.cast(f"e{e}", xs[e], x_t.frac, t)
            outputs[e] = mb.cast(f"y{e}", own, t.frac, y_t)
    done = [s for s in outputs if s is not None]
    assert len(done) == len(xs)
    latency = _latency(done)
    header = [f"Layer {node.name!r}: ElementCast of {len(xs)} elements ({x_t}) to their own "
              f"types, result {y_t}; latency {latency} cycle(s)"]
    return _assemble(ctx, header, mb, done, latency, {})


# -------------------------------------------------------------- Concatenate
@renders("Concatenate")
def render_concatenate(ctx: LayerContext) -> LayerModule:
    node = ctx.node
    y_t = ctx.out_type
    out_shape = ctx.graph.tensors[node.name].shape
    axis = node.attrs.get("axis")
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer) or not (
        0 <= axis < len(out_shape)
    ):
        raise BackendError(
            f"layer {node.name!r} (Concatenate): axis {axis!r} must be an integer in "
            f"0..{len(out_shape) - 1} (an axis of the shape without the batch)"
        )
    mb = ModuleBuilder(split_casts=ctx.options.split_casts)
    buses = input_buses(mb, ctx)
    # number every input element, then let NumPy place them along the axis
    flat: list[tuple[int, Sig]] = []
    parts = []
    for k, (t, sigs) in enumerate(buses):
        shape = ctx.graph.tensors[node.inputs[k]].shape
        parts.append(np.arange(len(flat), len(flat) + len(sigs)).reshape(shape))
        flat += [(t.frac, s) for s in sigs]
    order = np.concatenate(parts, axis=int(axis)).reshape(-1)
    if order.size != ctx.out_size:
        raise BackendError(f"layer {node.name!r} (Concatenate): the inputs make "
                           f"{order.size} elements, the output has {ctx.out_size}")
    casts = {}
    for g, (frac, s) in enumerate(flat):
        casts[g] = mb.cast(f"c{g}", s, frac, y_t)
    outputs = [casts[int(g)] for g in order]
    wires_only = all(casts[g] is flat[g][1] for g in casts)
    latency = 0 if wires_only else 1 + max(s.stage for s in outputs)  # split casts: 2
    types = ", ".join(str(t) for t, _ in buses)
    header = [
        f"Layer {node.name!r}: Concatenate {len(buses)} inputs ({types}) on axis {axis} -> "
        f"{out_shape}, result {y_t}; latency {latency}"
        + (" (wires)" if wires_only else " cycle(s)"),
    ]
    return _assemble(ctx, header, mb, outputs, latency, {})
