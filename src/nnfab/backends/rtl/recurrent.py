"""SimpleRNN, LSTM and GRU: one time step every ``S`` cycles, bit for bit the emulator.

The arithmetic is that of docs/semantics.md ("SimpleRNN / LSTM / GRU") and of
``nnfab.emulate.kernels.recurrent``: every product exact (or, when it is finer than the
accumulator, cast to it on its own), one wrapping accumulator sum per gate column, the
``preact`` cast, the ``table`` / ``recurrent_table`` lookups (ROMs indexed as section
"Activation" says), exact variable products for the gates, the ``state`` casts and the
``result`` cast of every emitted state.

Interface (that of the folded layers, ``folded.py``)::

    module <name> (input wire clk, input wire rst, input wire x_valid,
                   input wire [T*n_in*Wx-1:0] x, output reg [M*Wy-1:0] y);

``x`` holds the whole sample (element ``t*n_in + i``), ``y`` the whole output (``T*u``
values with ``return_sequences``, else ``u``). The sample is latched at the rising edge
where ``x_valid`` is high, which also clears the state ``h`` (and ``c``) and starts the
step counter. Step ``t`` reads ``x_t`` through one multiplexer per input element (indexed
by the step counter; reversed with ``go_backwards``) and the state registers, and computes
the new state combinationally; with ``adders_per_stage`` the datapath is cut into ``D``
pipeline stages (adder trees every that many levels, and a register after each table
lookup and after the cell state / reset-gated state cast), so a step takes ``S = D + 1``
cycles: a phase counter runs ``0 .. S-1`` and the state registers load the new state at
the step's last phase. With ``return_sequences`` the result of every step but the last
goes into a shift register; ``y`` is loaded once, at the last step's last phase, and holds
its value until the next sample's result.

Timing: ``II = T*S`` cycles between samples (a sample may arrive in the last phase of the
previous one), latency ``T*S + 1`` cycles from ``x_valid`` to ``y``. ``rst`` clears the
busy flag only. A reuse factor is not used (the layer is not folded further).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from nnfab.backends.rtl.adders import SumBuilder, Term
from nnfab.backends.rtl.folded import multiplexer, variable_product
from nnfab.backends.rtl.layers import (
    LayerContext,
    LayerModule,
    renders,
    rounded_product_terms,
    table_lookup,
    weighted_sum_terms,
    weighted_sum_types,
    wrap_accumulator,
)
from nnfab.backends.rtl.verilog import ModuleBuilder, Sig, bits_for, cast_int, const, literal
from nnfab.errors import BackendError, GraphError
from nnfab.ir import FixedType
from nnfab.ir.recurrent import (
    GATES,
    check_recurrent,
    is_table_function,
    recurrent_table_attrs,
)
from nnfab.ir.tables import LookupTable, activation_table

log = logging.getLogger(__name__)

Value = tuple[Sig, int]
"""A signal and its frac: the real value ``sig * 2**-frac``."""


@dataclass
class Table:
    """A lookup table of the layer: its entries as mantissas of its type."""

    name: str
    table: LookupTable
    entries: np.ndarray

    @property
    def frac(self) -> int:
        return self.table.type.frac


@dataclass
class Hard:
    """A computed activation (``hard_sigmoid`` / ``hard_tanh``) cast to its table type."""

    name: str
    function: str
    type: FixedType

    @property
    def frac(self) -> int:
        return self.type.frac


@dataclass
class Step:
    """What builds one time step: the module builder, the options and the layer's types."""

    ctx: LayerContext
    mb: ModuleBuilder
    x_t: FixedType
    w_t: FixedType
    r_t: FixedType
    acc_t: FixedType
    preact: FixedType
    state: FixedType
    kernel: np.ndarray
    recurrent: np.ndarray
    bias: list[list[int]]
    state_read: FixedType | None = None  # None: the step reads the state as it is
    builders: list[SumBuilder] = field(default_factory=list)
    multipliers: int = 0
    rom_names: dict[tuple[str, str, str], str] = field(default_factory=dict)

    @property
    def pipelined(self) -> bool:
        return self.ctx.options.adders_per_stage is not None

    @property
    def style(self) -> str:
        return self.ctx.options.style

    def builder(self, stage: int) -> SumBuilder:
        """A fresh adder-tree builder whose leaves are ready in ``stage``."""
        sb = SumBuilder(self.mb, self.ctx.options.adders_per_stage, base_stage=stage)
        self.builders.append(sb)
        return sb

    def cut(self, sig: Sig) -> Sig:
        """A pipeline register after ``sig`` (pipelined datapaths only)."""
        return self.mb.at_stage(sig, sig.stage + 1) if self.pipelined else sig

    # ------------------------------------------------------------- sums
    def product_terms(self, sb: SumBuilder, base: str, xs: list[Sig], x_frac: int,
                      weights: np.ndarray, w_frac: int, cache: dict[tuple[str, int], Term]
                      ) -> list[Term]:
        """Terms of ``sum_i accum(x_i * w_i)`` in accumulator units."""
        product_frac = x_frac + w_frac
        if self.acc_t.frac >= product_frac:
            return weighted_sum_terms(sb, base, xs, weights, self.style,
                                      self.acc_t.frac - product_frac, cache)
        return rounded_product_terms(sb, base, xs, weights, self.style, product_frac,
                                     self.acc_t, cache)

    def accumulate(self, base: str, columns: list[int],
                   parts: list[tuple[list[Sig], int, np.ndarray, int]],
                   bias: list[int]) -> list[Value]:
        """The wrapped accumulator value of each column ``columns[j]``.

        ``parts``: ``(signals, their frac, weight matrix, its frac)``; column ``j`` is
        ``sum over parts of sum_i accum(x_i * M[i, columns[j]]) + bias[j]``, wrapped once.
        """
        stage = max((s.stage for xs, _, _, _ in parts for s in xs), default=0)
        sb = self.builder(stage)
        cache: dict[tuple[str, int], Term] = {}
        out = []
        for j, col in enumerate(columns):
            terms: list[Term] = []
            for k, (xs, x_frac, matrix, w_frac) in enumerate(parts):
                terms += self.product_terms(sb, f"{base}{j}_{k}", xs, x_frac, matrix[:, col],
                                            w_frac, cache)
            total = sb.reduce(f"{base}{j}", terms, int(bias[j]), self.acc_t.width)
            total = sb.before_cast(sb.resolve(f"{base}{j}_neg", total, self.acc_t.width))
            out.append(wrap_accumulator(self.mb, f"{base}{j}_acc", total, self.acc_t))
        if self.style == "dsp":
            self.multipliers += sum(1 for t in cache.values() if t.level == 1)
        return out

    def inputs(self, xs: list[Sig]) -> tuple[list[Sig], int, np.ndarray, int]:
        """The part ``x_t * W`` of a gate sum."""
        return xs, self.x_t.frac, self.kernel, self.w_t.frac

    @property
    def read_type(self) -> FixedType:
        """The type the step reads the state in (``state_read``, else ``state``)."""
        return self.state_read or self.state

    def read(self, base: str, hs: list[Sig]) -> list[Sig]:
        """The state registers as the step reads them (cast to ``state_read``)."""
        if self.state_read is None or self.state_read == self.state:
            return hs
        return [self.mb.cast(f"{base}{j}", h, self.state.frac, self.state_read)
                for j, h in enumerate(hs)]

    def states(self, hs: list[Sig], frac: int | None = None
               ) -> tuple[list[Sig], int, np.ndarray, int]:
        """The part ``h * U`` of a gate sum (``hs`` of the read type, or on ``frac``)."""
        return hs, self.read_type.frac if frac is None else frac, self.recurrent, self.r_t.frac

    def exact_sum(self, base: str, parts: list[tuple[Term, int]]) -> Value:
        """``sum`` of terms, each with its frac (exact), as one value."""
        frac = max(f for _, f in parts)
        stage = max(t.sig.stage for t, _ in parts)
        sb = self.builder(stage)
        terms = [Term(t.sig, t.shift + frac - f, t.neg, 0) for t, f in parts]
        total = sb.before_cast(sb.resolve(f"{base}_neg", sb.reduce(base, terms)))
        return total.sig, frac - total.shift

    def product(self, base: str, a: Value, b: Value, b_values: list[int]) -> tuple[Term, int]:
        """``a * b`` exactly (``b`` the gating operand of ``lut`` style, taking ``b_values``)."""
        (sa, fa), (sb_, fb) = a, b
        sb = self.builder(max(sa.stage, sb_.stage))
        term = variable_product(sb, base, sa, sb_, self.style, b_values)
        if self.style == "dsp" and not (sa.is_const or sb_.is_const):
            self.multipliers += 1
        return sb.resolve(f"{base}_n", term), fa + fb

    def cast(self, base: str, v: Value, t: FixedType) -> Sig:
        return self.mb.cast(base, v[0], v[1], t)

    # ----------------------------------------------------------- tables
    def lookup(self, base: str, v: Sig, t: FixedType, table: Table | Hard,
               then: FixedType | None = None) -> tuple[Value, list[int]]:
        """``table`` at ``v`` (a mantissa of ``t``); ``then``: the entries cast to ``then``.

        Returns the looked-up value and every value the lookup can give (for ``lut``
        products gated by it).
        """
        if isinstance(table, Hard):
            return self.hard(base, v, t.frac, table, then)
        lo, hi = t.min_mantissa, t.max_mantissa
        if not v.is_const:  # the whole type's range: every lookup shares one ROM
            v = self.mb.wire(f"{base}_v", v.ext(t.width), lo, hi, v.stage, t.width, t.signed)
        entries, frac = table.entries, table.frac
        if then is not None:
            entries = np.array([cast_int(int(e), frac, then) for e in entries], dtype=object)
            frac = then.frac
        key = (table.name, str(t), str(then))  # one ROM per table, index type and entry type
        name = self.rom_names.setdefault(key, f"{table.name}{len(self.rom_names)}")
        tb = table.table
        sig = table_lookup(self.mb, base, v, t.frac, tb.step_log2, tb.base, entries,
                           f"{tb.kind} entries ({table.table.type} mantissas"
                           + (f" cast to {then})" if then is not None else ")"), name)
        values = sorted({int(e) for e in entries})
        return (self.cut(sig), frac), values


    def hard(self, base: str, v: Sig, frac: int, fn: Hard, then: FixedType | None
             ) -> tuple[Value, list[int]]:
        """``hard_sigmoid(v) = clip(v/2 + 1/2, 0, 1)`` or ``hard_tanh(v) = clip(v, -1, 1)``
        (``v`` on the grid ``2**-frac``) cast to the table type, then to ``then``."""
        mb = self.mb
        if frac < 0:  # onto the integer grid first (exact)
            v, frac = mb.shift_left(f"{base}_i", v, -frac), 0
        if fn.function == "hard_sigmoid":  # m + 2**frac on the grid 2**-(frac+1)
            v = mb.add(f"{base}_h", v, 0, const(1 << frac, v.stage), 0, False, v.stage)
            lo, hi, frac = 0, 1 << (frac + 1), frac + 1
        else:
            lo, hi = -(1 << frac), 1 << frac
        clipped = mb.min_const(f"{base}_hi", mb.max_const(f"{base}_lo", v, lo), hi)
        sig = mb.cast(base, clipped, frac, fn.type)
        lo_c, hi_c = cast_int(lo, frac, fn.type), cast_int(hi, frac, fn.type)
        out_frac = fn.frac
        if then is not None:
            sig = mb.cast(f"{base}_s", sig, fn.frac, then)
            lo_c, hi_c, out_frac = (cast_int(lo_c, fn.frac, then),
                                    cast_int(hi_c, fn.frac, then), then.frac)
        return (self.cut(sig), out_frac), list(range(lo_c, hi_c + 1))


def _tables(ctx: LayerContext, attrs: dict) -> tuple[Table | Hard, Table | Hard | None]:
    node = ctx.node
    out: list[Table | Hard | None] = []
    for recurrent, key, fn in ((False, "table", attrs["activation"]),
                               (True, "recurrent_table", attrs["recurrent_activation"])):
        if recurrent and node.op == "SimpleRNN":
            out.append(None)
            continue
        if not is_table_function(fn):
            out.append(Hard("ract" if recurrent else "act", fn, ctx.precision(key)))
            continue
        t_attrs = recurrent_table_attrs(node.attrs, recurrent)
        prefix = "recurrent_" if recurrent else ""
        for k in ("table_size", "table_range"):
            if k not in t_attrs:
                raise BackendError(
                    f"layer {node.name!r} ({node.op}) has no {prefix + k!r} attribute; run the "
                    "precision passes (nnfab.passes) before generating RTL")
        table = activation_table(fn, t_attrs, ctx.precision(key), layer=node.name)
        out.append(Table("ract" if recurrent else "act", table,
                         np.asarray(table.mantissas(), dtype=object)))
    act, ract = out
    assert act is not None
    return act, ract


# ------------------------------------------------------------- the steps
def _simple_rnn(st: Step, xs: list[Sig], h: list[Sig], act: Table | Hard
                ) -> tuple[list[Sig], None]:
    u = len(h)
    accs = st.accumulate("a", list(range(u)), [st.inputs(xs), st.states(st.read("hr", h))],
                         st.bias[0])
    out = []
    for j, a in enumerate(accs):
        p = st.cast(f"p{j}", a, st.preact)
        (v, _), _ = st.lookup(f"h{j}_t", p, st.preact, act, then=st.state)
        out.append(v)
    return out, None


def _lstm(st: Step, xs: list[Sig], h: list[Sig], c: list[Sig], act: Table | Hard,
          ract: Table | Hard) -> tuple[list[Sig], list[Sig]]:
    u = len(h)
    accs = st.accumulate("a", list(range(4 * u)), [st.inputs(xs), st.states(st.read("hr", h))],
                         st.bias[0])
    p = [st.cast(f"p{k}", a, st.preact) for k, a in enumerate(accs)]
    c = st.read("cr", c)
    sf = st.read_type.frac
    h_new, c_new = [], []
    for j in range(u):
        i, i_vals = st.lookup(f"i{j}", p[j], st.preact, ract)
        f, f_vals = st.lookup(f"f{j}", p[u + j], st.preact, ract)
        g, _ = st.lookup(f"g{j}", p[2 * u + j], st.preact, act)
        o, o_vals = st.lookup(f"o{j}", p[3 * u + j], st.preact, ract)
        fc = st.product(f"fc{j}", (c[j], sf), f, f_vals)
        ig = st.product(f"ig{j}", g, i, i_vals)
        cj = st.cut(st.cast(f"c{j}", st.exact_sum(f"cs{j}", [fc, ig]), st.state))
        tc, _ = st.lookup(f"tc{j}", cj, st.state, act)
        oh = st.product(f"oh{j}", tc, o, o_vals)
        h_new.append(st.cast(f"h{j}", (oh[0].sig, oh[1] - oh[0].shift), st.state))
        c_new.append(cj)
    return h_new, c_new


def _gru(st: Step, xs: list[Sig], h: list[Sig], act: Table | Hard, ract: Table | Hard,
         reset_after: bool) -> tuple[list[Sig], None]:
    u = len(h)
    h = st.read("hr", h)
    sf = st.read_type.frac
    zr_bias = [sum(row[j] for row in st.bias) for j in range(2 * u)]
    zr_acc = st.accumulate("a", list(range(2 * u)), [st.inputs(xs), st.states(h)],
                            zr_bias)
    zr = [st.lookup(f"zr{k}", st.cast(f"p{k}", a, st.preact), st.preact, ract)
          for k, a in enumerate(zr_acc)]
    z, r = zr[:u], zr[u:]
    cand = list(range(2 * u, 3 * u))
    if reset_after:
        b_in, b_rec = st.bias
        ax = st.accumulate("ax", cand, [st.inputs(xs)], b_in[2 * u:])
        ah = st.accumulate("ah", cand, [st.states(h)], b_rec[2 * u:])
        pre = []
        for j in range(u):
            (rv, rf), r_vals = r[j]
            rah = st.product(f"rah{j}", ah[j], (rv, rf), r_vals)
            axj = (Term(ax[j][0], 0, False, 0), ax[j][1])
            pre.append(st.cast(f"ph{j}", st.exact_sum(f"phs{j}", [axj, rah]), st.preact))
    else:
        q = []
        for j in range(u):
            (rv, rf), r_vals = r[j]
            rh = st.product(f"rh{j}", (h[j], sf), (rv, rf), r_vals)
            q.append(st.cut(st.cast(f"q{j}", (rh[0].sig, rh[1] - rh[0].shift), st.state)))
        b = st.bias[0]
        acc = st.accumulate("ac", cand, [st.inputs(xs), st.states(q, st.state.frac)],
                            b[2 * u:])
        pre = [st.cast(f"ph{j}", a, st.preact) for j, a in enumerate(acc)]
    out = []
    for j in range(u):
        hh, _ = st.lookup(f"hh{j}", pre[j], st.preact, act)
        (zv, zf), z_vals = z[j]
        grid = max(zf, 0)  # 1 - z exactly, on z's grid (or the integer grid if coarser)
        zs = st.mb.shift_left(f"z{j}s", zv, grid - zf)
        zs_vals = [v << (grid - zf) for v in z_vals]
        omz = st.mb.add(f"omz{j}", const(1 << grid, zs.stage), 0, zs, 0, True, zs.stage)
        omz_vals = sorted({(1 << grid) - v for v in zs_vals})
        zh = st.product(f"zh{j}", (h[j], sf), (zs, grid), zs_vals)
        mh = st.product(f"mh{j}", hh, (omz, grid), omz_vals)
        out.append(st.cast(f"h{j}", st.exact_sum(f"hs{j}", [zh, mh]), st.state))
    return out, None


# ------------------------------------------------------------ the module
@renders("SimpleRNN", "LSTM", "GRU")
def render_recurrent(ctx: LayerContext) -> LayerModule:
    """A recurrent layer (see the module docstring)."""
    node = ctx.node
    if not ctx.folding:
        raise BackendError(
            f"layer {node.name!r} ({node.op}): recurrent layers need the rst/x_valid ports; "
            "they are supported in vector (non-streamed) RTL designs only")
    try:
        attrs = check_recurrent(node)
    except GraphError as e:
        raise BackendError(str(e)) from None
    if node.reuse_factor > 1:
        log.warning("layer %r (%s): reuse factor %d ignored, the RTL recurrent layer is not "
                    "folded (one time step per %s)", node.name, node.op, node.reuse_factor,
                    "pipelined step" if ctx.options.adders_per_stage else "cycle")
    u = attrs["units"]
    x_shape = ctx.graph.tensors[node.inputs[0]].shape
    if len(x_shape) != 2:
        raise BackendError(f"layer {node.name!r} ({node.op}): input of shape {x_shape}; "
                           "expected (steps, features)")
    steps, n_in = int(x_shape[0]), int(x_shape[1])
    x_t, y_t = ctx.in_type, ctx.out_type
    w_t, b_t, acc_t = weighted_sum_types(ctx)
    r_t = ctx.precision("recurrent_weight")
    preact, state = ctx.precision("preact"), ctx.precision("state")
    act, ract = _tables(ctx, attrs)
    kernel = np.asarray(w_t.to_mantissa(node.weights["kernel"]), dtype=object)
    recurrent = np.asarray(r_t.to_mantissa(node.weights["recurrent_kernel"]), dtype=object)
    width = GATES[node.op] * u
    bias_values = acc_t.quantize(b_t.quantize(np.asarray(node.weights["bias"], dtype=float)))
    bias_rows = np.asarray(acc_t.to_mantissa(bias_values.reshape(-1, width)), dtype=object)
    bias = [[int(v) for v in row] for row in bias_rows]

    mb = ModuleBuilder(split_casts=ctx.options.split_casts)
    mb._used.update({"rst", "x_valid", "busy", "step", "phase", "step_end", "fin"})
    st = Step(ctx, mb, x_t, w_t, r_t, acc_t, preact, state, kernel, recurrent, bias,
              state_read=node.precision.get("state_read"))

    step_w = bits_for(0, steps - 1)[0]
    step = Sig("step", step_w, False, 0, steps - 1, 0)
    control: list[str] = []
    mb.lines += ["  reg  busy;", f"  reg  [{step_w - 1}:0] step;"]
    # the latched sample and the current row x_t
    held = []
    loads = []
    for e in range(steps * n_in):
        name = mb.fresh(f"xh{e}")
        mb.lines.append(f"  reg  [{x_t.width - 1}:0] {name};")
        loads.append(f"      {name} <= x[{e * x_t.width} +: {x_t.width}];")
        held.append(Sig(name, x_t.width, x_t.signed, x_t.min_mantissa, x_t.max_mantissa, 0))
    order = list(range(steps - 1, -1, -1)) if attrs["go_backwards"] else list(range(steps))
    xs = [multiplexer(mb, f"xt{i}", step, [held[t * n_in + i] for t in order])
          for i in range(n_in)]

    def state_regs(prefix: str) -> list[Sig]:
        regs = []
        for j in range(u):
            name = mb.fresh(f"{prefix}{j}")
            mb.lines.append(f"  reg  [{state.width - 1}:0] {name};")
            regs.append(Sig(name, state.width, state.signed, state.min_mantissa,
                            state.max_mantissa, 0))
        return regs

    h = state_regs("h_r")
    c = state_regs("c_r") if node.op == "LSTM" else None
    if node.op == "SimpleRNN":
        h_new, c_new = _simple_rnn(st, xs, h, act)
    elif node.op == "LSTM":
        assert c is not None and ract is not None
        h_new, c_new = _lstm(st, xs, h, c, act, ract)
    else:
        assert ract is not None
        h_new, c_new = _gru(st, xs, h, act, ract, attrs["reset_after"])
    results = [mb.cast(f"r{j}", v, state.frac, y_t) for j, v in enumerate(h_new)]
    depth = max(s.stage for s in [*h_new, *(c_new or []), *results])
    h_new = [mb.at_stage(s, depth) for s in h_new]
    c_new = [mb.at_stage(s, depth) for s in c_new] if c_new is not None else None
    results = [mb.at_stage(s, depth) for s in results]
    per_step = depth + 1

    # control: busy flag, step counter, phase counter
    last_step = f"(step == {literal(steps - 1, step_w)})"
    if per_step > 1:
        ph_w = bits_for(0, per_step - 1)[0]
        mb.lines.append(f"  reg  [{ph_w - 1}:0] phase;")
        mb.lines.append(f"  wire step_end = busy & (phase == {literal(per_step - 1, ph_w)});")
    else:
        mb.lines.append("  wire step_end = busy;")
    mb.lines.append(f"  wire fin = step_end & {last_step};")
    control += [
        "    if (rst)",
        "      busy <= 1'b0;",
        "    else if (x_valid)",
        "      busy <= 1'b1;",
        "    else if (fin)",
        "      busy <= 1'b0;",
        "    if (x_valid)",
        f"      step <= {literal(0, step_w)};",
        "    else if (step_end & ~fin)",
        f"      step <= step + {literal(1, step_w)};",
    ]
    if per_step > 1:
        control += [
            "    if (x_valid | step_end)",
            f"      phase <= {literal(0, ph_w)};",
            "    else if (busy)",
            f"      phase <= phase + {literal(1, ph_w)};",
        ]
    control += ["    if (x_valid) begin", *loads, "    end"]
    updates = [(reg, new) for reg, new in zip(h, h_new, strict=True)]
    if c is not None and c_new is not None:
        updates += list(zip(c, c_new, strict=True))
    sw = state.width
    control += ["    if (x_valid) begin",
                *[f"      {reg.name} <= {literal(0, sw)};" for reg, _ in updates],
                "    end else if (step_end) begin",
                *[f"      {reg.name} <= {new.ext(sw)};" for reg, new in updates],
                "    end"]

    # outputs
    y_w = y_t.width
    seq = attrs["return_sequences"]
    reverse = seq and bool(node.attrs.get("reverse_sequence", False))
    out_bits = 0
    if seq:
        slots = []  # slots[m]: the signal holding the result of step m at the last phase
        shift_regs = []
        for m in range(steps - 1):
            name = mb.fresh(f"seq{m}")
            mb.lines.append(f"  reg  [{u * y_w - 1}:0] {name};")
            shift_regs.append(name)
        packed = "{" + ", ".join(s.ext(y_w) for s in reversed(results)) + "}"
        if shift_regs:
            control += ["    if (step_end) begin",
                        *[f"      {a} <= {b};" for a, b in
                          zip(shift_regs, [*shift_regs[1:], packed], strict=True)],
                        "    end"]
        slots = [*shift_regs, packed]
        n_out = steps * u
        fills = []
        for m, src in enumerate(slots):
            slot = steps - 1 - m if reverse else m
            fills.append(f"      y[{slot * u * y_w} +: {u * y_w}] <= {src};")
        out_bits = (steps - 1) * u * y_w
    else:
        n_out = u
        fills = [f"      y[{j * y_w} +: {y_w}] <= {s.ext(y_w)};" for j, s in enumerate(results)]
    control += ["    if (fin) begin", *fills, "    end"]
    mb.regs += control

    ii = steps * per_step
    latency = ii + 1
    w_in, w_out = ctx.in_size * x_t.width, n_out * y_w
    flags = [k for k in ("return_sequences", "go_backwards") if attrs[k]]
    if reverse:
        flags.append("reverse_sequence")
    if node.op == "GRU":
        flags.append(f"reset_after={attrs['reset_after']}")
    header = [
        f"Layer {node.name!r}: {node.op} {steps} steps x {n_in} -> {u} units"
        + (f" ({', '.join(flags)})" if flags else ""),
        f"  input {x_t}, weight {w_t}, recurrent_weight {r_t}, bias {b_t}, accum {acc_t}",
        f"  preact {preact}, state {state}, result {y_t}; style {ctx.options.style}",
        f"  {per_step} cycle(s) per step: one sample every {ii} cycles, latency {latency}",
    ]
    lines = [f"// {line}".rstrip() for line in header]
    lines += [
        f"module {ctx.module} (",
        "  input  wire clk,",
        "  input  wire rst,",
        "  input  wire x_valid,",
        f"  input  wire [{w_in - 1}:0] x,  // {ctx.in_size} x {x_t}",
        f"  output reg  [{w_out - 1}:0] y   // {n_out} x {y_t}",
        ");",
        *mb.functions,
        *mb.lines,
        *mb.always_block(),
        "endmodule",
    ]
    n_state = u * (2 if c is not None else 1)
    regs = (mb.n_regs + 1 + step_w + (bits_for(0, per_step - 1)[0] if per_step > 1 else 0)
            + len(held) * x_t.width + n_state * sw + out_bits + w_out)
    stats = {"adders": sum(sb.adders for sb in st.builders),
             "adder_bits": sum(sb.adder_bits for sb in st.builders),
             "multipliers": st.multipliers, "steps": steps, "cycles_per_step": per_step,
             "registers": regs}
    return LayerModule(node.name, node.op, ctx.module, "\n".join(lines) + "\n", latency,
                       w_in, w_out, stats, ii=ii, valid_in=True)
