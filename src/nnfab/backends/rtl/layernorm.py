"""LayerNormalization in Verilog (vector designs), step by step as docs/semantics.md says.

For each vector ``x_1..x_N`` of the last axis, on integer mantissas:

1. ``s = x_1 + ... + x_N`` (exact adder tree);
2. ``mean = mean(s * q)`` with ``q = scale(1/N)`` a constant (one cast);
3. ``d_i = x_i - mean`` (exact, on the finer of the two grids);
4. ``var = var((d_1^2 + ... + d_N^2) * q)`` (exact squares and sum, one cast);
5. ``r``: the 1/sqrt table entry of ``var``: a priority encoder finds the leading one
   ``p`` of the mantissa and takes the ``B`` bits below it (``index = p * 2^B + sub``,
   a Verilog function with one ``casez`` line per octave), then a ``case`` table;
6. ``n_i = norm(d_i * r)`` (exact product, one cast);
7. ``y_i = result(n_i * gamma_i + beta_i)`` (constant product and bias, one cast).

The squares and ``d_i * r`` are products of two signals (``dsp``: ``*``; ``lut``: adder
trees of gated copies, as folded layers do). Without a clock target the whole layer is
one cycle (latency 1); with one (``adders_per_stage``), every step ends in registers and
its sums are cut as the clock needs (latency ``7 + extra``, known at generation time).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from nnfab.backends.rtl.adders import SumBuilder, Term
from nnfab.backends.rtl.folded import variable_product
from nnfab.backends.rtl.layers import (
    LayerContext,
    LayerModule,
    _assemble,
    const_product,
    input_signals,
    renders,
)
from nnfab.backends.rtl.verilog import ModuleBuilder, Sig, literal
from nnfab.errors import BackendError
from nnfab.ir import FixedType
from nnfab.ir.tables import reciprocal
from nnfab.ir.zoo import rsqrt_table

TYPE_KEYS = ("weight", "bias", "scale", "mean", "var", "table", "norm")


def _mantissa(value: float, t: FixedType) -> int:
    """The mantissa of a value already on ``t``'s grid."""
    return int(Fraction(value) * 2**t.frac)


def _value(sb: SumBuilder, base: str, term: Term, frac: int) -> tuple[Sig, int]:
    """A term (pending negation applied) as a signal and its fractional bits."""
    t = sb.resolve(base, term)
    return t.sig, frac - t.shift


def _aligned(mb: ModuleBuilder, base: str, sig: Sig, frac: int, target: int) -> Sig:
    """``sig`` (``frac`` fractional bits) as a signal with ``target >= frac`` of them."""
    return mb.shift_left(base, sig, target - frac)


def rsqrt_index_function(mb: ModuleBuilder, name: str, width: int, bits: int) -> None:
    """Declare ``name(m)``: the 1/sqrt table index of a ``width``-bit unsigned mantissa
    ``m`` (``p * 2**bits + sub``, as ``RsqrtTable.index_mantissas``)."""
    index_w = max(1, (width * (1 << bits) - 1).bit_length())
    lines = [f"  // 1/sqrt table index: leading one p of m, the {bits} bits below it",
             f"  function [{index_w - 1}:0] {name};",
             f"    input [{width - 1}:0] m;",
             "    begin",
             "      casez (m)"]
    for p in range(width - 1, -1, -1):
        pattern = "0" * (width - 1 - p) + "1" + "?" * p
        if p >= bits:
            sub = f"m[{p - 1}:{p - bits}]"
        elif p > 0:
            sub = f"{{m[{p - 1}:0], {bits - p}'b0}}"
        else:
            sub = f"{bits}'b0"
        low = sub if index_w == bits else f"{{{{{index_w - bits}{{1'b0}}}}, {sub}}}"
        lines.append(f"        {width}'b{pattern}: {name} = {literal(p << bits, index_w)} | "
                     f"{low};")
    lines += [f"        default: {name} = {literal(0, index_w)};",
              "      endcase",
              "    end",
              "  endfunction"]
    mb.functions.extend(lines)


@renders("LayerNormalization")
def render_layernorm(ctx: LayerContext) -> LayerModule:
    node = ctx.node
    x_t, y_t = ctx.in_type, ctx.out_type
    ty = {k: ctx.precision(k) for k in TYPE_KEYS}
    n = int(ctx.graph.tensors[node.inputs[0]].shape[-1])
    vectors = ctx.in_size // n
    style = ctx.options.style
    inv_value, _ = reciprocal(n, ty["scale"])
    inv = _mantissa(inv_value, ty["scale"])
    gamma = ty["weight"].to_mantissa(ty["weight"].quantize(
        np.asarray(node.weights["gamma"], dtype=np.float64).reshape(-1)))
    beta = ty["bias"].to_mantissa(ty["bias"].quantize(
        np.asarray(node.weights["beta"], dtype=np.float64).reshape(-1)))
    table = rsqrt_table(node.attrs, ty["table"], ty["var"], layer=node.name)
    entries = [int(v) for v in table.mantissas()]
    if inv == 0:
        raise BackendError(f"layer {node.name!r} (LayerNormalization): the scale type "
                           f"{ty['scale']} rounds 1/{n} to 0")
    pipelined = ctx.options.adders_per_stage is not None
    mb = ModuleBuilder(split_casts=ctx.options.split_casts)
    sb = SumBuilder(mb, ctx.options.adders_per_stage)
    xs = input_signals(mb, x_t, ctx.in_size)
    index_fn = mb.fresh("rsqrt_index")
    rsqrt_index_function(mb, index_fn, ty["var"].width, table.bits)
    cache: dict[tuple[str, int], Term] = {}

    def step(sigs: list[Sig]) -> list[Sig]:
        """The end of a step: registers (pipelined), and the next step starts there."""
        stage = max(s.stage for s in sigs) + (1 if pipelined else 0)
        sb.base_stage = stage
        return [mb.at_stage(s, stage) for s in sigs]

    outputs: list[Sig] = []
    d_frac = max(x_t.frac, ty["mean"].frac)
    for v in range(vectors):
        b = f"v{v}"
        vx = xs[v * n:(v + 1) * n]
        sb.base_stage = 0
        # 1-2: the mean
        s_sig, s_frac = _value(sb, f"{b}_s", sb.reduce(f"{b}_sum", [
            Term(x, 0, False, 0) for x in vx]), x_t.frac)
        (s_sig,) = step([s_sig])
        m_sig, m_frac = _value(sb, f"{b}_sq", const_product(sb, f"{b}_q", s_sig, inv, style,
                                                                 cache), s_frac + ty["scale"].frac)
        (mean,) = step([mb.cast(f"{b}_mean", m_sig, m_frac, ty["mean"])])
        # 3: the differences on one grid
        ds = []
        for i, x in enumerate(vx):
            total = sb.reduce(f"{b}_d{i}", [
                Term(mb.at_stage(x, mean.stage), d_frac - x_t.frac, False, 0),
                Term(mean, d_frac - ty["mean"].frac, True, 0)])
            sig, frac = _value(sb, f"{b}_d{i}n", total, d_frac)
            ds.append(_aligned(mb, f"{b}_d{i}a", sig, frac, d_frac))
        ds = step(ds)
        # 4: the variance
        squares = [variable_product(sb, f"{b}_sq{i}", d, d, style) for i, d in enumerate(ds)]
        q_sig, q_frac = _value(sb, f"{b}_qn", sb.reduce(f"{b}_q2", squares), 2 * d_frac)
        (q_sig,) = step([q_sig])
        vq_sig, vq_frac = _value(sb, f"{b}_vqn", const_product(
            sb, f"{b}_vq", q_sig, inv, style, cache), q_frac + ty["scale"].frac)
        (var,) = step([mb.cast(f"{b}_var", vq_sig, vq_frac, ty["var"])])
        # 5: the 1/sqrt entry
        index_hi = ty["var"].width * (1 << table.bits) - 1
        index = mb.wire(f"{b}_ix", f"{index_fn}({var.ext(ty['var'].width)})", 0, index_hi,
                        var.stage, index_hi.bit_length(), False)
        (r,) = step([mb.rom("rsqrt", index, dict(enumerate(entries)),
                            f"1/sqrt table ({ty['table']} mantissas)")])
        # 6: the normalized values
        norms = []
        for i, d in enumerate(ds):
            prod = variable_product(sb, f"{b}_dr{i}", mb.at_stage(d, r.stage), r, style,
                                    entries)
            p_sig, p_frac = _value(sb, f"{b}_dr{i}n", prod, d_frac + ty["table"].frac)
            norms.append(mb.cast(f"{b}_n{i}", p_sig, p_frac, ty["norm"]))
        norms = step(norms)
        # 7: the affine map
        y_frac = max(ty["norm"].frac + ty["weight"].frac, ty["bias"].frac)
        for i, nv in enumerate(norms):
            c = i % n
            prod = const_product(sb, f"{b}_g{i}", nv, int(gamma[c]), style, cache)
            shifted = Term(prod.sig, prod.shift + y_frac - ty["norm"].frac - ty["weight"].frac,
                           prod.neg, prod.level)
            total = sb.reduce(f"{b}_y{i}", [shifted], int(beta[c]) << (y_frac - ty["bias"].frac))
            sig, frac = _value(sb, f"{b}_y{i}n", total, y_frac)
            outputs.append(mb.cast(f"{b}_y{i}c", sig, frac, y_t))
    latency = 1 + max((s.stage for s in outputs), default=0)
    header = [
        f"Layer {node.name!r}: LayerNormalization over {n} values, {vectors} vector(s), "
        f"1/sqrt table of {len(entries)} x {ty['table']}",
        f"  input {x_t}, mean {ty['mean']}, var {ty['var']}, norm {ty['norm']}, gamma "
        f"{ty['weight']}, beta {ty['bias']}, result {y_t}; latency {latency} cycle(s)",
    ]
    return _assemble(ctx, header, mb, outputs, latency,
                     {"adders": sb.adders, "adder_bits": sb.adder_bits,
                      "table_entries": len(entries)})
