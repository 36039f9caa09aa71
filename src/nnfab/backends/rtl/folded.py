"""Dense layers folded by their reuse factor: ``R`` cycles per sample on shared multipliers.

A Dense node with ``reuse_factor`` R > 1 (any ``strategy``) becomes a module that takes
a sample every R cycles (initiation interval R) and needs ``ceil(P / R)`` multipliers for
its ``P`` products, instead of one constant multiplication per nonzero weight.

Schedule. The products ``x_i * w_ij`` of all rows and outputs are numbered
output-major: product ``p = o * n_in + i`` belongs to output ``o = r * n_out + j`` (row
``r``, column ``j``) and reads input element ``r * n_in + i``. Multiplier ``m`` computes
product ``m * R + c`` in phase ``c = 0 .. R-1``; when R does not divide ``P`` the last
multiplier idles in the phases past the last product (its weight there is 0), so any
R >= 1 works. Each multiplier reads its input through a multiplexer and its weight
from a ROM (a ``case`` function), both indexed by the phase counter. Multipliers whose
weights are all zero are left out; multipliers with the same input sequence share their
multiplexer (with R dividing ``n_in``, all outputs of a row share them).

Products: ``dsp`` style writes ``$signed(x) * $signed(w)`` (for the synthesizer's DSP
blocks); ``lut`` style writes the product as the sum of the input shifted by every weight
bit position, each gated by the ROM bit (bit positions that are 0 in every phase cost
nothing, positions that are 1 in every phase need no gate), so no ``*`` appears.
A product of a variable weight costs about one adder per weight bit, where a constant
one costs one per canonical signed digit (a third of the bits, shared between outputs),
so in ``lut`` style folding saves logic only from R of about 8 on (Yosys, xcup, Dense
16 -> 8 with 6-bit weights: 1777 LUTs unfolded, 2392 at R = 4, 958 at R = 16); in ``dsp``
style the multipliers (DSP blocks) shrink R-fold (83 DSPs unfolded, 32 at R = 4).

Accumulation (docs/semantics.md section 3). Every output owns an accumulator register.
In phase 0 it loads ``accum(bias)`` plus the phase's products, then adds the products of
each further phase that belong to it (a multiplier whose products span two outputs is
gated by a comparison of the phase counter). Each product is exact and is cast to the
accumulator on its own when it is finer than the accumulator; sums wrap modulo the
accumulator width. With a wrapping accumulator the order of additions does not matter,
so the result is the emulator's (and the parallel layer's) bit for bit. When the exact
sums cannot leave the accumulator's range (e.g. the ``auto`` accumulator) the register is
only as wide as their range. A fused relu and the result cast follow the accumulator.

Interface and timing. The module has two more inputs than the parallel layers
(``layers.py``)::

    module <name> (input wire clk, input wire rst, input wire x_valid,
                   input wire [N*Wx-1:0] x, output reg [M*Wy-1:0] y);

``x`` is sampled at the rising edge where ``x_valid`` is high; phase ``c`` runs ``c + 1``
cycles later; the products of a phase pass ``D`` pipeline registers before the
accumulators; ``y`` is loaded once per sample and holds its value until the next result:
latency ``R + D + 2`` cycles from ``x_valid`` to ``y``.

Pipelining. Without ``adders_per_stage`` (``pipeline=None``) a phase is one cycle from the
phase counter through the weight ROM, the multiplier and the adders into the
accumulators (``D = 0``). With it (every clock target sets it) the datapath has stages:
the weight-ROM read and the input multiplexer end in registers (a synchronous ROM, which
the tools map to LUT ROM or block RAM); a layer on one row has no multiplexer: its held
sample rotates by one element per cycle and each multiplier reads a fixed position (in
``lut`` style through one more register, its ROMs reading registered copies of the
phase counter, ``ROMS_PER_COUNTER`` ROMs per copy); a multiplexer shared by several multipliers
feeds each through a register of its own (``keep``: synthesis does not merge the copies,
so each sits next to its multiplier); each product ends in a register (``lut``: its
adder tree, itself cut every ``adders_per_stage`` levels); and the sums of an output's
products end in a register before its accumulator adds them, so the accumulator's
adder is a stage of its own. In ``dsp`` style the multiplier has two registers on each
side: DSP blocks sit in columns away from the logic, and on ECP5 a single register on
each side leaves two long routes and the multiplier in one cycle (69 MHz for the
benchmark's autoencoder). For ECP5 (``RtlOptions.family`` ``ecp5``) the inner pair are the
block's own: each multiplier is a ``MULT18X18D`` with its input and output registers
(``ecp5.py``; Yosys does not put registers into the block), so the multiplication is a
cycle of its own inside the block; a rounded product is cast between registers of its
own. For Xilinx families the output side
keeps one register: the DSP48's own output register sits in the block, and a second
one would keep the accumulator's adder out of it (xc7: 6.7k instead of 14.2k LUTs);
the input registers are absorbed into the block's A/B registers. ``D`` counts these registers; the
control signals are delayed to match. A
sample may arrive every R cycles (it may arrive in the last phase of the previous one);
a sample arriving earlier restarts the computation. ``rst`` (synchronous) clears the busy
flag only: no register of the datapath needs a reset.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from nnfab.backends.rtl import ecp5
from nnfab.backends.rtl.adders import SumBuilder, Term
from nnfab.backends.rtl.layers import (
    LayerContext,
    LayerModule,
    const_product,
    fused_activation,
    renders_folded,
    weighted_sum_types,
)
from nnfab.backends.rtl.verilog import ModuleBuilder, Sig, bits_for, const, literal
from nnfab.ir import Overflow

ROMS_PER_COUNTER = 8
"""Weight ROMs read through one registered copy of the phase counter (pipelined ``lut``)."""


@dataclass(frozen=True)
class Multiplier:
    """One shared multiplier: per phase, the input element, the weight and the output."""

    index: int
    inputs: tuple[int, ...]
    weights: tuple[int, ...]
    owners: tuple[int, ...]  # -1: idle phase (past the last product)

    def phases_of(self, output: int) -> tuple[int, int]:
        """First and last phase whose product belongs to ``output`` (a contiguous range)."""
        phases = [c for c, o in enumerate(self.owners) if o == output]
        return phases[0], phases[-1]

    def outputs(self) -> list[int]:
        """Outputs that receive a nonzero product from this multiplier."""
        seen: dict[int, None] = {}
        for o, w in zip(self.owners, self.weights, strict=True):
            if w != 0:
                seen[o] = None
        return list(seen)


def schedule(kernel: np.ndarray, rows: int, reuse: int) -> list[Multiplier]:
    """The multipliers of a Dense layer folded ``reuse`` times (module docstring)."""
    n_in, n_out = kernel.shape
    total = rows * n_out * n_in
    count = -(-total // reuse)
    p = np.arange(count * reuse).reshape(count, reuse)
    live = p < total
    o, i = np.divmod(np.minimum(p, total - 1), n_in)
    r, j = np.divmod(o, n_out)
    w = np.where(live, kernel[i, j], 0)
    x = r * n_in + i
    out = []
    for m in range(count):
        xs = x[m].tolist()
        if not live[m].all():  # idle phases read what the last live phase read
            last = int(np.flatnonzero(live[m])[-1])
            xs[last + 1:] = [xs[last]] * (reuse - last - 1)
        out.append(Multiplier(m, tuple(xs), tuple(int(v) for v in w[m]),
                              tuple(np.where(live[m], o[m], -1).tolist())))
    return out


def variable_product(sb: SumBuilder, base: str, a: Sig, b: Sig, style: str,
                     b_values: list[int] | None = None, level: int = 0) -> Term:
    """``a * b`` of two signals as a term (exact); the operands are ready at ``level``.

    ``dsp`` style: one ``*`` at adder level ``level + 1`` (as constant products in ``dsp``
    style). ``lut`` style: ``sum_k b[k] * (a << k)`` (the sign bit of a signed ``b``
    subtracted), an adder tree of gated copies of ``a``; ``b_values`` (every value ``b``
    takes, e.g. a ROM's entries) lets bit positions constant over them skip their gate.
    """
    mb = sb.mb
    if a.is_const and not b.is_const:
        a, b = b, a
    if b.is_const:
        if level == 0:
            return const_product(sb, base, a, b.value, style, {})
        b_values = [b.value]
    if style == "dsp":
        stage = max(a.stage, b.stage, sb.stage_of(level + 1))
        return Term(mb.mul(base, mb.at_stage(a, stage), mb.at_stage(b, stage)), 0, False,
                    level + 1)
    stage = max(a.stage, b.stage)
    a, b = mb.at_stage(a, stage), mb.at_stage(b, stage)
    terms = partial_products(mb, base, a, b, b_values, 0)
    return sb.reduce(base, [Term(t.sig, t.shift, t.neg, level + t.level) for t in terms])


def partial_products(mb: ModuleBuilder, base: str, a: Sig, b: Sig,
                     b_values: list[int] | None, shift: int) -> list[Term]:
    """The terms of ``a * b * 2**shift`` in ``lut`` style (see ``variable_product``); a
    gated copy of ``a`` is ready at level 1 (its gate counts as one level of the stage)."""
    mask = (1 << b.width) - 1
    masked = [v & mask for v in b_values] if b_values is not None else None
    out = []
    for k in range(b.width):
        neg = b.signed and k == b.width - 1
        bits = {(v >> k) & 1 for v in masked} if masked is not None else {0, 1}
        if bits == {0}:
            continue
        if bits == {1}:
            out.append(Term(a, k + shift, neg, 0))
            continue
        lo, hi = min(a.lo, 0), max(a.hi, 0)
        width, signed = bits_for(lo, hi)
        gated = mb.wire(f"{base}_b{k}", f"{b.bit(k)} ? {a.ext(width)} : {literal(0, width)}",
                        lo, hi, max(a.stage, b.stage), width, signed)
        out.append(Term(gated, k + shift, neg, 1))  # the gate: one logic level
    return out


def gate(mb: ModuleBuilder, base: str, enable: Sig, value: Sig) -> Sig:
    """``enable ? value : 0`` (``enable`` a 1-bit signal; staged to ``value``'s stage)."""
    if value.is_const and value.value == 0:
        return value
    en = mb.at_stage(enable, value.stage)
    lo, hi = min(value.lo, 0), max(value.hi, 0)
    width, signed = bits_for(lo, hi)
    return mb.wire(base, f"{en.name} ? {value.ext(width)} : {literal(0, width)}", lo, hi,
                   value.stage, width, signed)


def multiplexer(mb: ModuleBuilder, base: str, select: Sig, choices: list[Sig]) -> Sig:
    """``choices[select]`` as an ``always @(*)`` case (choices of equal width and sign)."""
    if len({c.name for c in choices}) == 1:
        return choices[0]
    first = choices[0]
    name = mb.fresh(base)
    groups: dict[str, list[int]] = {}
    for phase, c in enumerate(choices):
        groups.setdefault(c.name, []).append(phase)
    mb.lines.append(f"  reg  [{first.width - 1}:0] {name};")
    mb.lines.append("  always @(*) begin")
    mb.lines.append(f"    case ({select.name})")
    for source, phases in groups.items():
        labels = ", ".join(literal(c, select.width) for c in phases)
        mb.lines.append(f"      {labels}: {name} = {source};")
    mb.lines.append(f"      default: {name} = {first.name};")
    mb.lines.append("    endcase")
    mb.lines.append("  end")
    return Sig(name, first.width, first.signed, min(c.lo for c in choices),
               max(c.hi for c in choices), select.stage)


@renders_folded("Dense")
def render_folded_dense(ctx: LayerContext) -> LayerModule:
    """A Dense layer with ``reuse_factor > 1`` (see the module docstring)."""
    node = ctx.node
    reuse = int(node.reuse_factor)
    style = ctx.options.style
    x_t, y_t = ctx.in_type, ctx.out_type
    w_t, b_t, acc_t = weighted_sum_types(ctx)
    activation = fused_activation(ctx)
    kernel = np.asarray(w_t.to_mantissa(node.weights["kernel"]), dtype=object)
    column_bias = [int(b) for b in acc_t.to_mantissa(b_t.quantize(node.weights["bias"]))]
    n_in, n_out = kernel.shape
    rows = ctx.in_size // n_in
    n_outputs = rows * n_out
    bias = [column_bias[o % n_out] for o in range(n_outputs)]
    product_frac = x_t.frac + w_t.frac
    exact_products = acc_t.frac >= product_frac
    pshift = acc_t.frac - product_frac if exact_products else 0
    acc_wrap = acc_t.replace(overflow=Overflow.WRAP)
    x_lo, x_hi = x_t.min_mantissa, x_t.max_mantissa

    mb = ModuleBuilder()
    mb._used.update({"rst", "x_valid", "busy", "cnt"})
    pipelined = ctx.options.adders_per_stage is not None
    in_stage = 1 if pipelined else 0  # weights and inputs read in registers when pipelined
    sb = SumBuilder(mb, ctx.options.adders_per_stage, base_stage=in_stage)
    last_phase = reuse - 1
    cnt_w = bits_for(0, last_phase)[0]
    cnt = Sig("cnt", cnt_w, False, 0, last_phase, 0)
    busy = Sig("busy", 1, False, 0, 1, 0)
    mb.lines += [
        "  reg  busy;",
        f"  reg  [{cnt_w - 1}:0] cnt;",
    ]
    first = mb.wire("first", f"busy & (cnt == {literal(0, cnt_w)})", 0, 1, 0, 1, False)
    last = mb.wire("last", f"busy & (cnt == {literal(last_phase, cnt_w)})", 0, 1, 0, 1, False)
    control = [
        "    if (rst)",
        "      busy <= 1'b0;",
        "    else if (x_valid)",
        "      busy <= 1'b1;",
        "    else if (last)",
        "      busy <= 1'b0;",
        "    if (x_valid)",
        f"      cnt <= {literal(0, cnt_w)};",
        f"    else if (cnt != {literal(last_phase, cnt_w)})",
        f"      cnt <= cnt + {literal(1, cnt_w)};",
    ]

    multipliers = [m for m in schedule(kernel, rows, reuse) if any(m.weights)]
    # pipelined, one row: the held sample rotates by one element per cycle, and multiplier
    # m reads element (m*R + c) mod n_in in phase c at the fixed position (m*R) mod n_in:
    # a register, where a multiplexer over the sample would be a wide tree and long routes
    rotate = pipelined and rows == 1 and bool(multipliers)
    used_inputs = (list(range(n_in)) if rotate
                   else sorted({e for m in multipliers for e in m.inputs}))
    held: dict[int, Sig] = {}
    loads = []
    for e in used_inputs:
        name = mb.fresh(f"xh{e}")
        mb.lines.append(f"  reg  [{x_t.width - 1}:0] {name};")
        loads.append(f"      {name} <= x[{e * x_t.width} +: {x_t.width}];")
        held[e] = Sig(name, x_t.width, x_t.signed, x_lo, x_hi, 0)
    if rotate:
        turns = [f"      {held[e].name} <= {held[(e + 1) % n_in].name};" for e in range(n_in)]
        control += ["    if (x_valid) begin", *loads, "    end else begin", *turns, "    end"]
    elif loads:
        control += ["    if (x_valid) begin", *loads, "    end"]

    muxes: dict[tuple[int, ...], Sig] = {}
    gates: dict[tuple[int, int], Sig] = {}
    terms: list[list[Term]] = [[] for _ in range(n_outputs)]
    users = Counter(m.inputs for m in multipliers)
    # a multiplexer shared by several multipliers feeds each through a register of its own
    replicate = pipelined and not rotate and max(users.values(), default=0) > 1
    # DSP blocks sit in columns away from the logic that feeds them: two registers on
    # each side, one next to the logic and one next to the block, so that each route
    # gets a cycle of its own
    distant = pipelined and style == "dsp"
    # on Xilinx parts the DSP48's own output register is next to it, and a second one
    # would keep the accumulator's adder out of the block (xc7: 6.7k -> 14.2k LUTs)
    distant_output = distant and ctx.options.family not in ("xc7", "xcu", "xcup")
    # on ECP5 the MULT18X18D's own input and output registers are those next to the block
    cells = distant and ctx.options.family == "ecp5"
    # the phase counter's bits would drive every weight ROM, and that load stretches the
    # counter's own increment loop: ROMs read registered copies of it, a copy per group
    split_counter = rotate and not distant
    op_stage = in_stage + 1 if replicate or distant or split_counter else in_stage
    rom_index = mb.at_stage(cnt, 1) if replicate and not distant else cnt
    counters: dict[int, Sig] = {}
    sb.base_stage = op_stage
    for m in multipliers:
        if rotate:
            position = m.index * reuse % n_in
            assert all(e == (position + c) % n_in for c, (e, o) in
                       enumerate(zip(m.inputs, m.owners, strict=True)) if o >= 0)
            xsel = mb.replica(held[position], f"xr{m.index}")  # its own register, stage 1
        else:
            if m.inputs not in muxes:
                muxes[m.inputs] = mb.at_stage(multiplexer(
                    mb, f"xs{len(muxes)}", cnt, [held[e] for e in m.inputs]), in_stage)
            xsel = muxes[m.inputs]
        if replicate:
            xsel = mb.replica(xsel, f"xr{m.index}")
        x_operand = xsel
        xsel = mb.at_stage(xsel, op_stage)
        if split_counter:
            key = m.index // ROMS_PER_COUNTER
            if key not in counters:
                counters[key] = mb.replica(cnt, f"cr{key}")
            rom_index = counters[key]
        weight = mb.rom(f"w{m.index}", rom_index, dict(enumerate(m.weights)),
                        f"weights of multiplier {m.index} per phase ({w_t} mantissas)")
        w_operand = weight
        weight = mb.at_stage(weight, op_stage)
        owners = m.outputs()
        alone = len(owners) == 1
        if exact_products and style == "lut" and alone and not weight.is_const and not pipelined:
            # one output only: the gated copies of x join that output's adder tree
            terms[owners[0]] += partial_products(mb, f"m{m.index}", xsel, weight,
                                                 list(m.weights), pshift)
            continue
        if cells and ecp5.fits(x_operand, w_operand):
            # operands from the fabric's registers into the cell's, the product in the
            # cell's output register, then one register next to the logic
            stage = max(x_operand.stage, w_operand.stage, op_stage - 1)
            sig = ecp5.registered_multiplier(mb, f"m{m.index}", mb.at_stage(x_operand, stage),
                                             mb.at_stage(w_operand, stage))
            sig = mb.at_stage(sig, max(sig.stage + 1, op_stage + 2))
            if not exact_products:  # the rounding adder between registers of its own
                sig = mb.cast(f"m{m.index}c", sig, product_frac, acc_wrap)
                sig = mb.at_stage(sig, sig.stage + 1)
            share = Term(sig, pshift if exact_products else 0, False, sb.level_at(sig.stage))
        else:
            product = variable_product(sb, f"m{m.index}", xsel, weight, style,
                                       list(m.weights))
            if pipelined:  # the product (cast to the accumulator when finer) in its register
                product = sb.resolve(f"m{m.index}n", product)
                sig = product.sig
                if not exact_products:
                    sig = mb.cast(f"m{m.index}c", sig, product_frac - product.shift, acc_wrap)
                sig = mb.at_stage(sig, sig.stage + (2 if distant_output else 1))
                share = Term(sig, (product.shift + pshift) if exact_products else 0, False,
                             sb.level_at(sig.stage))
            elif exact_products:
                if alone:
                    terms[owners[0]].append(Term(product.sig, product.shift + pshift, product.neg,
                                                 product.level))
                    continue
                product = sb.resolve(f"m{m.index}n", product)
                share = Term(product.sig, product.shift + pshift, False, product.level)
            else:
                product = sb.resolve(f"m{m.index}n", product)
                level = product.level + 1
                staged = mb.at_stage(product.sig, sb.stage_of(level))
                cast = mb.cast(f"m{m.index}c", staged, product_frac - product.shift, acc_wrap)
                share = Term(cast, 0, False, level)
        for o in owners:  # a product shared by several outputs goes where its phase says
            a, b = m.phases_of(o)
            on = gates.get((a, b))
            if on is None and not alone and not (a == 0 and b == last_phase):
                on = gates[(a, b)] = _phase_range(mb, cnt, a, b, last_phase)
            sig = share.sig if on is None or alone else gate(mb, f"m{m.index}_o{o}", on,
                                                              share.sig)
            terms[o].append(Term(sig, share.shift, False, share.level))

    sums = []
    for o in range(n_outputs):
        total = sb.reduce(f"s{o}", terms[o], 0, acc_t.width)
        sums.append(sb.resolve(f"s{o}n", total, acc_t.width))
    depth = max((t.sig.stage for t in sums if not t.sig.is_const), default=0)
    registered = {s.name for s in mb._delayed.values()}
    if pipelined and any(not t.sig.is_const and t.sig.name not in registered for t in sums):
        depth += 1  # the accumulators' adders in their own stage
    first_d, busy_d = mb.at_stage(first, depth), mb.at_stage(busy, depth)
    fin = mb.at_stage(last, depth + 1)

    acc_lines = []
    outputs = []
    wraps = acc_bits = 0
    for o in range(n_outputs):
        lo, hi = _exact_range(kernel[:, o % n_out], bias[o], x_lo, x_hi, pshift,
                              None if exact_products else product_frac - acc_t.frac)
        if acc_t.min_mantissa <= lo and hi <= acc_t.max_mantissa:
            width, signed = bits_for(lo, hi)
        else:
            width, signed = acc_t.width, acc_t.signed
            lo, hi = acc_t.min_mantissa, acc_t.max_mantissa
            wraps += 1
        psum = sums[o]
        addend = mb.at_stage(psum.sig, depth).shifted(psum.shift, width)
        if addend is None or (psum.sig.is_const and psum.sig.value == 0):
            acc = const(bias[o], depth + 1)
        else:
            name = mb.fresh(f"acc{o}")
            mb.lines.append(f"  reg  [{width - 1}:0] {name};")
            acc_lines.append(f"      {name} <= ({first_d.name} ? {literal(bias[o], width)} : "
                             f"{name}) + {addend};")
            acc = Sig(name, width, signed, lo, hi, depth + 1)
            acc_bits += width
        if activation == "relu":
            acc = mb.relu(f"y{o}_relu", acc)
        outputs.append(mb.cast(f"y{o}_res", acc, acc_t.frac, y_t))
    if acc_lines:
        control += [f"    if ({busy_d.name}) begin", *acc_lines, "    end"]
    y_w = y_t.width
    control += [f"    if ({fin.name}) begin",
                *[f"      y[{o * y_w} +: {y_w}] <= {s.ext(y_w)};" for o, s in enumerate(outputs)],
                "    end"]
    mb.regs += control
    latency = reuse + depth + 2
    nonzero = int(np.count_nonzero(kernel))
    w_in, w_out = ctx.in_size * x_t.width, n_outputs * y_w
    header = [
        f"Layer {node.name!r}: Dense {n_in} -> {n_out}"
        + (f" on {rows} rows" if rows > 1 else "")
        + (f", fused {activation}" if activation != "linear" else "")
        + f", folded by reuse factor {reuse}",
        f"  input {x_t}, weight {w_t} ({nonzero} of {kernel.size} nonzero), bias {b_t}",
        f"  accum {acc_t}, result {y_t}; style {style}",
        f"  {len(multipliers)} multiplier(s) (of {-(-kernel.size * rows // reuse)}) over "
        f"{reuse} phases, {len(muxes)} input multiplexer(s); one sample every {reuse} "
        f"cycles, latency {latency} cycle(s)",
    ]
    lines = [f"// {h}".rstrip() for h in header]
    lines += [
        f"module {ctx.module} (",
        "  input  wire clk,",
        "  input  wire rst,",
        "  input  wire x_valid,",
        f"  input  wire [{w_in - 1}:0] x,  // {ctx.in_size} x {x_t}",
        f"  output reg  [{w_out - 1}:0] y   // {n_outputs} x {y_t}",
        ");",
        *mb.functions,
        *mb.lines,
        *mb.always_block(),
        "endmodule",
    ]
    mb.n_regs += 1 + cnt_w + len(used_inputs) * x_t.width + acc_bits + w_out
    stats = {"adders": sb.adders, "adder_bits": sb.adder_bits, "nonzero_weights": nonzero,
             "multipliers": len(multipliers), "multiplexers": len(muxes),
             "reuse_factor": reuse, "wrapping_accumulators": wraps, "registers": mb.n_regs}
    return LayerModule(node.name, node.op, ctx.module, "\n".join(lines) + "\n", latency,
                       w_in, w_out, stats, ii=reuse, valid_in=True)


def _phase_range(mb: ModuleBuilder, cnt: Sig, a: int, b: int, last_phase: int) -> Sig:
    """A 1-bit signal: ``a <= cnt <= b``."""
    parts = []
    if a > 0:
        parts.append(f"(cnt >= {literal(a, cnt.width)})")
    if b < last_phase:
        parts.append(f"(cnt <= {literal(b, cnt.width)})")
    return mb.wire(f"ph{a}_{b}", " & ".join(parts), 0, 1, cnt.stage, 1, False)


def _exact_range(column: np.ndarray, bias: int, x_lo: int, x_hi: int, shift: int,
                 rounded_drop: int | None) -> tuple[int, int]:
    """Bounds of the exact sum ``bias + sum_i accum(x_i * w_i)`` in accumulator units.

    ``rounded_drop``: the number of fractional bits each product loses when it is cast
    to the accumulator on its own (the rounded value lies between the floor and the
    floor plus one; the bounds stay safe).
    """
    lo = hi = bias
    for w in column.tolist():
        if w == 0:
            continue
        a, b = sorted((x_lo * w, x_hi * w))
        if rounded_drop is None:
            lo += a << shift
            hi += b << shift
        else:
            lo += a >> rounded_drop
            hi += (b >> rounded_drop) + 1
    return lo, hi
