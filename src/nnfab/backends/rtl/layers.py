"""One Verilog module per layer: the renderers, registered per IR op.

Every layer module has the same interface::

    module <name> (input wire clk, input wire [N*Wx-1:0] x, output <reg|wire> [M*Wy-1:0] y);

``x`` and ``y`` hold the flattened (row-major, channels-last) tensors, element ``e``
in bits ``[e*W +: W]`` as the mantissa of the tensor's fixed-point type. A layer
with latency ``L > 0`` registers ``y`` (``L`` clock edges from ``x`` to ``y``);
``L == 0`` layers (reshapes) are wires. The arithmetic is that of
``nnfab.emulate.kernels`` / ``docs/semantics.md``.

Layers with several inputs (``merges.py``) take them concatenated on ``x``, input 0
in the lowest bits. Folded layers (``folded.py``: Dense with a reuse factor R > 1)
also take ``rst`` and ``x_valid`` and accept a sample every R cycles
(``LayerModule.ii``); renderers fold only when the caller connects those ports
(``LayerContext.folding``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from nnfab.backends.rtl.adders import (
    COMPRESSOR_CHAIN_LEVELS,
    SumBuilder,
    Term,
    csd,
    share_subexpressions,
)
from nnfab.backends.rtl.verilog import ModuleBuilder, Sig, bits_for, const, literal, type_range
from nnfab.errors import BackendError, ConfigError, PrecisionError
from nnfab.ir import FixedType, Graph, Node, Overflow
from nnfab.ir import activation_rules as rules
from nnfab.ir.ops import ACTIVATIONS
from nnfab.ir.tables import (
    TABLE_FUNCTIONS,
    activation_table,
    softmax_exp_table,
    softmax_inv_table,
)

log = logging.getLogger(__name__)

STYLES = ("lut", "dsp")


SPLIT_CAST_LEVELS = 2
"""Largest ``adders_per_stage`` at which casts are split (``RtlOptions.split_casts``)."""


@dataclass(frozen=True)
class RtlOptions:
    """Generation choices.

    ``style``: ``"lut"`` (constant multiplications as shift-and-add on canonical
    signed digits) or ``"dsp"`` (``*`` by constants, left to the synthesizer).
    ``adders_per_stage``: pipeline registers inside adder trees every that many adder
    levels (None: only at layer boundaries).
    ``share``: in ``lut`` style, share common subexpressions (pairs of shifted inputs
    recurring across the outputs of a layer) between outputs: an adder graph.
    ``family``: the FPGA family the clock target was set for (``ecp5``, ``xc7``, ...;
    None: unknown), where a register's place depends on it (``folded.py``).
    ``compress_pipelined``: pipelined ``lut`` sums too long for six-row compressor
    groups use four-row groups (as deep as two-input adder trees, fewer LUTs) instead
    of two-input adders.
    """

    style: str = "lut"
    adders_per_stage: int | None = None
    share: bool = True
    family: str | None = None
    compress_pipelined: bool = True

    @property
    def split_casts(self) -> bool:
        """Casts get a register between their rounding adder and their saturation
        (``ModuleBuilder.split_casts``) at up to ``SPLIT_CAST_LEVELS`` levels per stage:
        on ECP5 a wide cast alone took 7.9 ns where two adder levels take about 6."""
        return self.adders_per_stage is not None and self.adders_per_stage <= SPLIT_CAST_LEVELS

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise BackendError(f"RTL style must be one of {', '.join(STYLES)}, got {self.style!r}")
        aps = self.adders_per_stage
        if aps is not None and (isinstance(aps, bool) or not isinstance(aps, int) or aps < 1):
            raise BackendError(
                f"adders_per_stage must be a positive integer or None, got {aps!r}"
            )


@dataclass
class LayerModule:
    """A rendered layer: its module text and what the top needs to know."""

    node: str
    op: str
    module: str
    text: str
    latency: int
    in_width: int
    out_width: int
    stats: dict[str, int] = field(default_factory=dict)
    ii: int = 1
    """Cycles between samples the module accepts (its initiation interval)."""
    valid_in: bool = False
    """The module has the ports ``rst`` and ``x_valid`` (folded layers)."""


@dataclass
class LayerContext:
    """What a renderer gets: the node, the graph, names and options."""

    node: Node
    graph: Graph
    module: str
    options: RtlOptions
    folding: bool = False
    """The caller connects ``rst``/``x_valid``: layers with a reuse factor may fold."""
    input_levels: int = 0
    """Logic levels in front of the inputs within the stage that feeds them (the padding
    mask of a pixel-stream window: one), counted by the adder trees
    (``SumBuilder.input_levels``; unfolded Dense kernels)."""

    @property
    def in_type(self) -> FixedType:
        t = self.graph.tensors[self.node.inputs[0]].type
        assert t is not None
        return t

    @property
    def out_type(self) -> FixedType:
        t = self.graph.tensors[self.node.name].type
        assert t is not None
        return t

    @property
    def in_size(self) -> int:
        return self.graph.tensors[self.node.inputs[0]].size

    @property
    def out_size(self) -> int:
        return self.graph.tensors[self.node.name].size

    def precision(self, key: str) -> FixedType:
        try:
            return self.node.precision[key]
        except KeyError:
            raise BackendError(
                f"layer {self.node.name!r} ({self.node.op}) has no {key!r} precision; run the "
                "precision passes (nnfab.passes) before generating RTL"
            ) from None


Renderer = Callable[[LayerContext], LayerModule]
RENDERERS: dict[str, Renderer] = {}


FOLDED: dict[str, Renderer] = {}
"""Folded variants (ReuseFactor > 1) of layer renderers; ``folded.py`` registers them, so
this base module never imports the modules built on it."""


def renders(*ops: str) -> Callable[[Renderer], Renderer]:
    def wrap(fn: Renderer) -> Renderer:
        for op in ops:
            RENDERERS[op] = fn
        return fn

    return wrap


def renders_folded(*ops: str) -> Callable[[Renderer], Renderer]:
    def wrap(fn: Renderer) -> Renderer:
        for op in ops:
            FOLDED[op] = fn
        return fn

    return wrap


# ------------------------------------------------------------------ helpers
def input_signals(mb: ModuleBuilder, t: FixedType, n: int) -> list[Sig]:
    """One wire per element of the ``x`` bus."""
    lo, hi = type_range(t)
    out = []
    for e in range(n):
        name = mb.fresh(f"x{e}")
        mb.lines.append(f"  wire [{t.width - 1}:0] {name} = x[{e * t.width} +: {t.width}];")
        out.append(Sig(name, t.width, t.signed, lo, hi, 0))
    return out


def _assemble(ctx: LayerContext, header: list[str], mb: ModuleBuilder, outputs: list[Sig],
              latency: int, stats: dict[str, int]) -> LayerModule:
    t_out = ctx.out_type
    if latency > 0:
        staged = [mb.at_stage(s, latency - 1) for s in outputs]
        for e, s in enumerate(staged):
            mb.regs.append(f"    y[{e * t_out.width} +: {t_out.width}] <= {s.ext(t_out.width)};")
        mb.n_regs += len(outputs) * t_out.width
        assigns: list[str] = []
    else:
        assigns = [
            f"  assign y[{e * t_out.width} +: {t_out.width}] = {s.ext(t_out.width)};"
            for e, s in enumerate(outputs)
        ]
    inputs = [ctx.graph.tensors[t] for t in ctx.node.inputs]
    w_in = sum(t.size * t.type.width for t in inputs if t.type is not None)
    w_out = len(outputs) * t_out.width
    kind = "reg " if latency > 0 else "wire"
    in_text = ", ".join(f"{t.size} x {t.type}" for t in inputs)
    lines = [f"// {h}".rstrip() for h in header]
    lines += [
        f"module {ctx.module} (",
        "  input  wire clk,",
        f"  input  wire [{w_in - 1}:0] x,  // {in_text}",
        f"  output {kind} [{w_out - 1}:0] y   // {len(outputs)} x {t_out}",
        ");",
        *mb.functions,
        *mb.lines,
        *assigns,
        *mb.always_block(),
        "endmodule",
    ]
    stats = {**stats, "registers": mb.n_regs}
    return LayerModule(ctx.node.name, ctx.node.op, ctx.module, "\n".join(lines) + "\n", latency,
                       w_in, w_out, stats)


def frac_of(value: float) -> tuple[int, int]:
    """(mantissa, frac) with ``value == mantissa * 2**-frac`` exactly (floats are dyadic)."""
    q = Fraction(value)
    frac = q.denominator.bit_length() - 1
    return int(q * (1 << frac)) if frac >= 0 else int(q), frac


# -------------------------------------------------------------------- Dense
def const_product(sb: SumBuilder, base: str, x: Sig, c: int, style: str,
                  cache: dict[tuple[str, int], Term]) -> Term:
    """``x * c`` as a term (shared between uses of the same input and constant)."""
    if c == 0:
        return Term(const(0), 0, False, 0)
    shift = (c & -c).bit_length() - 1
    odd = abs(c) >> shift
    key = (x.name, odd)
    if key not in cache:
        if odd == 1:
            cache[key] = Term(x, 0, False, 0)
        elif style == "dsp":
            cache[key] = Term(sb.mb.mul_const(f"{base}_m{odd}", x, odd), 0, False, 1)
        else:
            digits = [Term(x, s, d < 0, 0) for s, d in csd(odd)]
            cache[key] = sb.resolve(f"{base}_m{odd}", sb.reduce(f"{base}_m{odd}", digits))
    t = cache[key]
    return Term(t.sig, t.shift + shift, (c < 0) != t.neg, t.level)


def weighted_sum_terms(sb: SumBuilder, base: str, xs: list[Sig], weights: np.ndarray,
                       style: str, product_shift: int,
                       cache: dict[tuple[str, int], Term]) -> list[Term]:
    """Terms of ``sum_i x_i * w_i`` scaled by ``2**product_shift`` (``>= 0``).

    ``lut`` style with single-digit products skips the product tree: each canonical
    signed digit of each weight becomes a term of the sum directly.
    """
    terms: list[Term] = []
    for x, w in zip(xs, weights, strict=True):
        w = int(w)
        if w == 0 or (x.is_const and x.value == 0):
            continue
        if style == "lut":
            for s, d in csd(w):
                terms.append(Term(x, s + product_shift, d < 0, 0))
        else:
            t = const_product(sb, f"{base}_x", x, w, style, cache)
            terms.append(Term(t.sig, t.shift + product_shift, t.neg, t.level))
    return terms


def weighted_sum_types(ctx: LayerContext) -> tuple[FixedType, FixedType, FixedType]:
    """The (weight, bias, accum) types of a weighted-sum layer; the accumulator must wrap."""
    w_t, b_t, acc_t = ctx.precision("weight"), ctx.precision("bias"), ctx.precision("accum")
    if acc_t.overflow is not Overflow.WRAP:
        raise PrecisionError(
            f"layer {ctx.node.name!r}: accumulator type {acc_t} saturates; accumulators must "
            "wrap (AP_WRAP)"
        )
    return w_t, b_t, acc_t


def fused_activation(ctx: LayerContext) -> str:
    """The layer's fused activation: ``linear`` or ``relu`` (others are an error)."""
    activation = ctx.node.attrs.get("activation", "linear")
    if activation not in ("linear", "relu"):
        raise BackendError(
            f"layer {ctx.node.name!r}: fused activation {activation!r} is not supported by the "
            "RTL backend; allowed: linear, relu"
        )
    return activation


def _shared_sum(sb: SumBuilder, options: RtlOptions, base: str, terms: list[Term],
                constant: int, width: int, last_stage: int | None) -> Term:
    """One output's sum of shared nonnegative terms in ``lut`` style.

    Compressor chains (three per five more operands) where they span at most two
    stages; pipelined, longer sums take groups of four (as deep as two-input adder
    trees, give or take a level, and fewer LUTs) when the cast after them stays within
    the layer's last stage (``last_stage``); otherwise a tree of two-input adders.
    Depths count ``sb.chain_levels`` per chain and the inputs' ``sb.input_levels``.
    """
    n_terms = len(terms)
    levels = options.adders_per_stage
    if n_terms > 2 and (levels is None
                        or 3 * math.ceil((n_terms - 1) / 5) * sb.chain_levels
                        + sb.input_levels <= 2 * levels):
        return sb.compress(base, terms, constant, width)
    if (n_terms > 2 and options.compress_pipelined and last_stage is not None
            and sb.cast_stage(sb.compress_depth(terms, 4, sb.chain_levels)) <= last_stage):
        return sb.compress(base, terms, constant, width, group_size=4)
    return sb.reduce(base, terms, constant, width)


@renders("Dense")
def render_dense(ctx: LayerContext) -> LayerModule:
    node = ctx.node
    if node.reuse_factor > 1 and ctx.folding:
        folded = FOLDED.get("Dense")
        if folded is None:  # pragma: no cover - the package imports folded.py
            raise BackendError("the folded Dense renderer is not registered: import "
                               "nnfab.backends.rtl (not only its layers module)")
        return folded(ctx)
    x_t, y_t = ctx.in_type, ctx.out_type
    w_t, b_t, acc_t = weighted_sum_types(ctx)
    activation = fused_activation(ctx)
    kernel = np.asarray(w_t.to_mantissa(node.weights["kernel"]), dtype=object)
    bias = acc_t.to_mantissa(b_t.quantize(node.weights["bias"]))
    n_in, n_out = kernel.shape
    rows = ctx.in_size // n_in
    product_frac = x_t.frac + w_t.frac
    exact_products = acc_t.frac >= product_frac
    mb = ModuleBuilder(split_casts=ctx.options.split_casts)
    sb = SumBuilder(mb, ctx.options.adders_per_stage, input_levels=ctx.input_levels,
                    chain_levels=COMPRESSOR_CHAIN_LEVELS.get(ctx.options.family or "", 1))
    xs = input_signals(mb, x_t, ctx.in_size)
    outputs: list[Sig] = []
    cache: dict[tuple[str, int], Term] = {}
    nonzero = int(np.count_nonzero(kernel != 0))
    shared = None
    if exact_products and ctx.options.style == "lut" and ctx.options.share:
        sb.keep = True
        shared = shared_terms(sb, xs, kernel, rows, acc_t.frac - product_frac, acc_t.width)
    last_stage = None  # the stage of the layer's last cast with two-input adder trees
    if shared is not None and ctx.options.adders_per_stage is not None:
        last_stage = max((sb.cast_stage(sb.tree_depth(p + n, int(bias[k % n_out]) + o))
                          for k, (p, n, o) in enumerate(shared)), default=0)
    for r in range(rows):
        row_x = xs[r * n_in:(r + 1) * n_in]
        for j in range(n_out):
            base = f"y{r * n_out + j}" if rows > 1 else f"y{j}"
            column = kernel[:, j]
            if shared is not None:
                # two sums of nonnegative terms (no sign extension), one subtraction
                pos, neg, offset = shared[r * n_out + j]
                total = _shared_sum(sb, ctx.options, base, pos + neg, int(bias[j]) + offset,
                                    acc_t.width, last_stage)
            else:
                if exact_products:
                    terms = weighted_sum_terms(sb, base, row_x, column, ctx.options.style,
                                               acc_t.frac - product_frac, cache)
                else:
                    terms = rounded_product_terms(sb, base, row_x, column, ctx.options.style,
                                                  product_frac, acc_t, cache)
                total = sb.reduce(base, terms, int(bias[j]), acc_t.width)
            total = sb.before_cast(sb.resolve(f"{base}_neg", total, acc_t.width))
            acc, acc_frac = wrap_accumulator(mb, f"{base}_acc", total, acc_t)
            if activation == "relu":
                acc = mb.relu(f"{base}_relu", acc)
            outputs.append(mb.cast(f"{base}_res", acc, acc_frac, y_t))
    latency = 1 + max((s.stage for s in outputs), default=0)
    header = [
        f"Layer {node.name!r}: Dense {n_in} -> {n_out}"
        + (f" on {rows} rows" if rows > 1 else "")
        + (f", fused {activation}" if activation != "linear" else ""),
        f"  input {x_t}, weight {w_t} ({nonzero} of {kernel.size} nonzero), bias {b_t}",
        f"  accum {acc_t}, result {y_t}; style {ctx.options.style}, latency {latency} cycle(s)",
    ]
    stats = {"adders": sb.adders, "adder_bits": sb.adder_bits, "nonzero_weights": nonzero,
             "multipliers": sum(1 for t in cache.values() if t.level == 1)
             if ctx.options.style == "dsp" else 0}
    return _assemble(ctx, header, mb, outputs, latency, stats)


def unsigned_inputs(mb: ModuleBuilder, xs: list[Sig]) -> tuple[list[Sig], list[int]]:
    """Every input as a nonnegative vector ``u`` and an offset: ``x == u + offset``.

    A signed ``W``-bit input with its top bit inverted is ``x + 2**(W-1)`` read unsigned
    (the inversion folds into the LUT of the first adder); unsigned inputs stay as
    they are. Nonnegative operands are zero-extended, and zero extension is free in a
    carry chain where sign extension costs one LUT per bit.
    """
    us, offsets = [], []
    for x in xs:
        if x.is_const or x.lo >= 0:
            us.append(x)
            offsets.append(0)
            continue
        w = x.width
        low = f", {x.name}[{w - 2}:0]" if w > 1 else ""
        half = 1 << (w - 1)
        us.append(mb.wire(f"{x.name}_u", f"{{~{x.name}[{w - 1}]{low}}}", x.lo + half,
                          x.hi + half, x.stage, w, False))
        offsets.append(-half)
    return us, offsets


def shared_terms(sb: SumBuilder, xs: list[Sig], kernel: np.ndarray, rows: int,
                 product_shift: int, modulus_bits: int
                 ) -> list[tuple[list[Term], list[Term], int]]:
    """Per output: its positive terms, its negative terms and a constant (``lut`` style).

    The output is ``sum(positive) - sum(negative) + constant``. Inputs become
    nonnegative (``unsigned_inputs``; the offsets go into the constant), and the
    canonical signed digits of each weight column split by sign into two columns of
    positive terms. Pairs of terms that recur across those columns become shared
    adders (``share_subexpressions``): sums of nonnegative values, as are both sums of
    an output, so no adder ever sign-extends an operand.
    """
    n_in, n_out = kernel.shape
    us, offsets = unsigned_inputs(sb.mb, xs)
    digits = [[csd(int(kernel[i, j])) for j in range(n_out)] for i in range(n_in)]
    columns = []
    constants = []
    for r in range(rows):
        live = [i for i in range(n_in)
                if not (xs[r * n_in + i].is_const and xs[r * n_in + i].value == 0)]
        for j in range(n_out):
            for sign in (1, -1):
                columns.append([(r * n_in + i, s, 1) for i in live
                                for s, d in digits[i][j] if d == sign])
            constants.append(sum(int(kernel[i, j]) * offsets[r * n_in + i]
                                 for i in live) << product_shift)
    graph = share_subexpressions(len(us), columns)
    terms = [Term(u, 0, False, 0) for u in us]  # one per variable: its value and depth
    for k, (a, b, delta, g) in enumerate(graph.definitions):
        assert g > 0, "columns of positive terms define sums only"
        ta, tb = terms[a], terms[b]
        level = max(ta.level, tb.level) + 1
        stage = sb.stage_of(level)
        sig = sb.mb.add(f"t{k}", sb.mb.at_stage(ta.sig, stage), 0, sb.mb.at_stage(tb.sig, stage),
                        delta, False, stage, modulus_bits, sb.keep)
        sb.adders += 1
        sb.adder_bits += sig.width
        terms.append(Term(sig, 0, False, level))
    out = []
    for c, constant in enumerate(constants):
        pos, neg = graph.columns[2 * c], graph.columns[2 * c + 1]
        out.append((
            [Term(terms[v].sig, s + product_shift, False, terms[v].level) for v, s, _ in pos],
            [Term(terms[v].sig, s + product_shift, True, terms[v].level) for v, s, _ in neg],
            constant,
        ))
    return out


def rounded_product_terms(sb: SumBuilder, base: str, xs: list[Sig], weights: np.ndarray,
                          style: str, product_frac: int, acc_t: FixedType,
                          cache: dict[tuple[str, int], Term]) -> list[Term]:
    """Products finer than the accumulator: each is computed exactly, then cast on its own."""
    terms = []
    for i, (x, w) in enumerate(zip(xs, weights, strict=True)):
        w = int(w)
        if w == 0:
            continue
        p = const_product(sb, f"{base}_p{i}", x, w, style, cache)
        p = sb.resolve(f"{base}_p{i}n", p)
        stage = sb.stage_of(p.level + 1)
        sig = sb.mb.at_stage(p.sig, stage)
        cast = sb.mb.cast(f"{base}_p{i}c", sig, product_frac - p.shift,
                          acc_t.replace(overflow=Overflow.WRAP))
        terms.append(Term(cast, 0, False, p.level + 1))
    return terms


def wrap_accumulator(mb: ModuleBuilder, base: str, total: Term, acc_t: FixedType
                     ) -> tuple[Sig, int]:
    """The accumulator value (``total`` modulo the accumulator) and its frac.

    ``total.sig << total.shift`` in accumulator units equals ``total.sig`` at frac
    ``acc.frac - total.shift``; it wraps only when its range leaves the accumulator's.
    """
    assert not total.neg
    sig, shift = total.sig, total.shift
    frac = acc_t.frac - shift
    lo, hi = type_range(acc_t)
    if (sig.lo << shift) >= lo and (sig.hi << shift) <= hi:
        return sig, frac
    keep = acc_t.width - shift
    if keep <= 0:
        return const(0, sig.stage), frac
    if sig.is_const:
        m = (sig.value << shift) % (1 << acc_t.width)
        if acc_t.signed and m > hi:
            m -= 1 << acc_t.width
        return const(m >> shift, sig.stage), frac
    r_lo, r_hi = (-(1 << (keep - 1)), (1 << (keep - 1)) - 1) if acc_t.signed else (
        0, (1 << keep) - 1)
    return mb.wire(base, sig.ext(keep), r_lo, r_hi, sig.stage, keep, acc_t.signed), frac


# --------------------------------------------------------------- Activation
@renders("Activation")
def render_activation(ctx: LayerContext) -> LayerModule:
    node = ctx.node
    fn = node.attrs["function"]
    x_t, y_t = ctx.in_type, ctx.out_type
    mb = ModuleBuilder(split_casts=ctx.options.split_casts)
    sb = SumBuilder(mb, ctx.options.adders_per_stage)
    xs = input_signals(mb, x_t, ctx.in_size)
    outputs = []
    detail = ""
    if fn == "linear":
        outputs = [mb.cast(f"y{e}", x, x_t.frac, y_t) for e, x in enumerate(xs)]
    elif fn == "relu":
        max_value = node.attrs.get("max_value")
        if max_value is not None:
            mv, mv_frac = frac_of(float(max_value))
            frac = max(x_t.frac, mv_frac)
            limit = mv << (frac - mv_frac)
            detail = f", max_value {max_value}"
        for e, x in enumerate(xs):
            r = mb.relu(f"y{e}_relu", x)
            frac_e = x_t.frac
            if max_value is not None:
                r = mb.shift_left(f"y{e}_al", r, frac - x_t.frac)
                r = mb.min_const(f"y{e}_min", r, limit)
                frac_e = frac
            # the select (and the clip): logic levels before the cast
            r = sb.before_cast(Term(r, 0, False, 1 if max_value is None else 2)).sig
            outputs.append(mb.cast(f"y{e}", r, frac_e, y_t))
    elif fn == "leaky_relu":
        param = ctx.precision("param")
        alpha = int(param.to_mantissa(np.array([float(node.attrs["alpha"])]))[0])
        detail = f", alpha {alpha} * 2^-{param.frac} ({param})"
        frac = x_t.frac + max(param.frac, 0)
        cache: dict[tuple[str, int], Term] = {}
        for e, x in enumerate(xs):
            outputs.append(_leaky(mb, sb, f"y{e}", x, x_t.frac, alpha, param.frac, frac,
                                  y_t, ctx.options.style, cache))
    elif fn == "hard_sigmoid":
        param = ctx.precision("param")
        slope = int(param.to_mantissa(np.array([float(node.attrs["slope"])]))[0])
        offset = int(param.to_mantissa(np.array([float(node.attrs["offset"])]))[0])
        detail = f", slope {slope} * 2^-{param.frac}, offset {offset} * 2^-{param.frac}"
        cache = {}
        for e, x in enumerate(xs):
            outputs.append(_hard_sigmoid(mb, sb, f"y{e}", x, x_t.frac, slope, offset,
                                         param.frac, y_t, ctx.options.style, cache))
    elif fn == "prelu":
        param = ctx.precision("param")
        try:
            alphas = rules.broadcast_alpha(node.weights["alpha"], ctx.graph.tensors[
                node.inputs[0]].shape, node.name)
        except (ConfigError, KeyError) as e:
            raise BackendError(f"layer {node.name!r} (prelu): {e}") from None
        alpha_m = [int(a) for a in param.to_mantissa(alphas)]
        detail = f", alpha: {len(set(alpha_m))} distinct slope(s) * 2^-{param.frac} ({param})"
        frac = x_t.frac + max(param.frac, 0)
        cache = {}
        for e, x in enumerate(xs):
            outputs.append(_leaky(mb, sb, f"y{e}", x, x_t.frac, alpha_m[e], param.frac, frac,
                                  y_t, ctx.options.style, cache))
    elif fn == "thresholded_relu":
        theta = rules.number(node.attrs, "theta", None, node.name)
        limit = rules.threshold_mantissa(theta, x_t.frac)  # x > theta iff m > limit
        detail = f", theta {theta!r} (mantissa > {limit})"
        for e, x in enumerate(xs):
            outputs.append(_thresholded(mb, f"y{e}", x, x_t.frac, limit, y_t))
    elif fn == "hard_tanh":
        lo_v, hi_v = rules.clip_bounds(node.attrs, node.name)
        (lo_m, lo_f), (hi_m, hi_f) = frac_of(lo_v), frac_of(hi_v)
        frac = max(x_t.frac, lo_f, hi_f)
        detail = f", clip to [{lo_v!r}, {hi_v!r}]"
        for e, x in enumerate(xs):
            r = mb.shift_left(f"y{e}_al", x, frac - x_t.frac)
            r = mb.max_const(f"y{e}_lo", r, lo_m << (frac - lo_f))
            r = mb.min_const(f"y{e}_hi", r, hi_m << (frac - hi_f))
            outputs.append(mb.cast(f"y{e}", r, frac, y_t))
    elif fn in rules.NEGATIVE_TABLE_FUNCTIONS:
        table = activation_table(fn, node.attrs, ctx.precision("table"), layer=node.name)
        entries = np.asarray(y_t.to_mantissa(table.values), dtype=np.int64)
        scale = rules.linear_scale(fn)
        param = ctx.precision("param") if scale is not None else None
        scale_m = None if param is None else int(param.to_mantissa(np.array([scale]))[0])
        detail = (f", x < 0: table of {table.size} x {table.type} over "
                  f"[{-table.base * table.step:g}, 0) step 2^{table.step_log2}"
                  + ("" if param is None else f"; x >= 0: {scale_m} * 2^-{param.frac} * x"))
        cache = {}
        for e, x in enumerate(xs):
            neg = table_lookup(mb, f"y{e}_t", x, x_t.frac, table.step_log2, table.base,
                               entries, f"{fn} entries (x < 0) cast to {y_t}", "tbl")
            pos = mb.relu(f"y{e}_r", x)
            if param is None or scale_m is None:
                pos = mb.cast(f"y{e}_p", pos, x_t.frac, y_t)
            else:
                prod = sb.resolve(f"y{e}_sn", const_product(sb, f"y{e}_s", pos, scale_m,
                                                            ctx.options.style, cache))
                pos = mb.cast(f"y{e}_p", prod.sig, x_t.frac + param.frac - prod.shift, y_t)
            outputs.append(_select_sign(mb, f"y{e}", x, neg, pos))
    elif fn in TABLE_FUNCTIONS:
        table = activation_table(fn, node.attrs, ctx.precision("table"), layer=node.name)
        detail = (f", table of {table.size} x {table.type} over [{-table.base * table.step:g}, "
                  f"{(table.size - table.base) * table.step:g}) step 2^{table.step_log2}")
        entries = np.asarray(y_t.to_mantissa(table.values), dtype=np.int64)
        for e, x in enumerate(xs):
            outputs.append(table_lookup(mb, f"y{e}", x, x_t.frac, table.step_log2, table.base,
                                        entries, f"{fn} entries cast to {y_t}", "tbl"))
    else:
        raise BackendError(
            f"layer {node.name!r}: activation {fn!r} is not supported by the RTL backend yet; "
            f"supported: {', '.join(ACTIVATIONS)} (relu incl. max_value)"
        )
    latency = 1
    latency = max(latency, 1 + max((s.stage for s in outputs), default=0))
    header = [
        f"Layer {node.name!r}: Activation {fn}{detail}",
        f"  {ctx.in_size} elements, input {x_t}, result {y_t}; latency {latency} cycle(s)",
    ]
    return _assemble(ctx, header, mb, outputs, latency, {"adders": sb.adders,
                                                         "adder_bits": sb.adder_bits})


def _leaky(mb: ModuleBuilder, sb: SumBuilder, base: str, x: Sig, x_frac: int, alpha: int,
           a_frac: int, frac: int, y_t: FixedType, style: str,
           cache: dict[tuple[str, int], Term]) -> Sig:
    """``x >= 0 ? x : alpha * x`` on the grid ``frac``, then cast to ``y_t``."""
    up = frac - x_frac  # x on the common grid
    pos_lo, pos_hi = max(x.lo, 0) << up, max(x.hi, 0) << up
    if x.lo >= 0:
        return mb.cast(base, x, x_frac, y_t)
    neg_x = Sig(x.name, x.width, x.signed, x.lo, min(x.hi, -1), x.stage)
    prod = const_product(sb, f"{base}_a", neg_x, alpha, style, cache)
    prod = sb.resolve(f"{base}_an", prod)
    p_up = frac - (x_frac + a_frac) + prod.shift  # product on the common grid
    k = frac - x_frac - a_frac
    p_ends = ((neg_x.lo * alpha) << k, (neg_x.hi * alpha) << k)
    lo, hi = min(*p_ends, pos_lo), max(*p_ends, pos_hi)
    width, signed = bits_for(lo, hi)
    stage = prod.sig.stage
    xs = mb.at_stage(x, stage)
    ps = prod.sig
    pos_expr = xs.shifted(up, width) if x.hi >= 0 else None
    neg_expr = ps.shifted(p_up, width)
    sel = xs.sign()
    zero = literal(0, width)
    expr = f"{sel} ? {neg_expr or zero} : {pos_expr or zero}"
    if x.hi < 0:
        expr = neg_expr or zero
    merged = mb.wire(f"{base}_lk", expr, lo, hi, stage, width, signed)
    merged = sb.before_cast(Term(merged, 0, False, prod.level + 1)).sig  # the select: a level
    return mb.cast(base, merged, frac, y_t)


def _hard_sigmoid(mb: ModuleBuilder, sb: SumBuilder, base: str, x: Sig, x_frac: int,
                  slope: int, offset: int, p_frac: int, y_t: FixedType, style: str,
                  cache: dict[tuple[str, int], Term]) -> Sig:
    """``clip(slope * x + offset, 0, 1)`` exactly, then cast to ``y_t``."""
    frac = max(x_frac + p_frac, p_frac)
    prod = const_product(sb, f"{base}_s", x, slope, style, cache)
    prod = Term(prod.sig, prod.shift + frac - (x_frac + p_frac), prod.neg, prod.level)
    total = sb.resolve(f"{base}_n", sb.reduce(f"{base}_l", [prod], offset << (frac - p_frac)))
    sig, sig_frac = total.sig, frac - total.shift
    if sig_frac < 0:  # keep the grid fine enough to hold the bound 1
        sig, sig_frac = mb.shift_left(f"{base}_al", sig, -sig_frac), 0
    clipped = mb.min_const(f"{base}_hi", mb.relu(f"{base}_lo", sig), 1 << sig_frac)
    return mb.cast(base, clipped, sig_frac, y_t)


def _thresholded(mb: ModuleBuilder, base: str, x: Sig, x_frac: int, limit: int,
                 y_t: FixedType) -> Sig:
    """``x > theta ? result(x) : 0`` where ``x > theta`` iff the mantissa exceeds ``limit``."""
    if x.hi <= limit:
        return const(0, x.stage)
    c = mb.cast(f"{base}_c", x, x_frac, y_t)
    if x.lo > limit:
        return c
    lo, hi = min(c.lo, 0), max(c.hi, 0)
    width, signed = bits_for(lo, hi)
    above = mb.greater(mb.at_stage(x, c.stage), limit)
    return mb.wire(base, f"{above} ? {c.ext(width)} : {literal(0, width)}", lo, hi, c.stage,
                   width, signed)


def _select_sign(mb: ModuleBuilder, base: str, x: Sig, neg: Sig, pos: Sig) -> Sig:
    """``x < 0 ? neg : pos`` (both already cast), in the later of their stages."""
    if x.lo >= 0:
        return pos
    if x.hi < 0:
        return neg
    stage = max(neg.stage, pos.stage)
    neg, pos = mb.at_stage(neg, stage), mb.at_stage(pos, stage)
    lo, hi = min(neg.lo, pos.lo), max(neg.hi, pos.hi)
    width, signed = bits_for(lo, hi)
    sel = mb.at_stage(x, stage).sign()
    return mb.wire(base, f"{sel} ? {neg.ext(width)} : {pos.ext(width)}", lo, hi, stage,
                   width, signed)


def table_lookup(mb: ModuleBuilder, base: str, x: Sig, x_frac: int, step_log2: int,
                 table_base: int, entries: np.ndarray, comment: str, rom_name: str) -> Sig:
    """``entries[clip(floor(x / 2**step_log2) + table_base, 0, size - 1)]``."""
    size = len(entries)
    shift = x_frac + step_log2  # floor(x / step) == m >> shift
    if shift >= 0:
        k = mb.floor_shift(f"{base}_k", x, shift)
    else:
        k = mb.shift_left(f"{base}_k", x, -shift)
    k = mb.max_const(f"{base}_kl", k, -table_base)
    k = mb.min_const(f"{base}_kh", k, size - 1 - table_base)
    table = {v: int(entries[v + table_base]) for v in range(k.lo, k.hi + 1)}
    return mb.rom(rom_name, k, table, comment)


# ------------------------------------------------------------------ Softmax
@renders("Softmax")
def render_softmax(ctx: LayerContext) -> LayerModule:
    """Max tree, exp table, exact sum, reciprocal table, product: three pipeline stages.

    Stage 0: ``d_i = max(x) - x_i`` and ``e_i = exp_table[min(d_i >> s, N-1)]``;
    stage 1: ``S = exp_sum(sum e_i)`` and ``inv = inv_table[clip(S >> s2, 0, N2-1)]``;
    stage 2: ``y_i = result(e_i * inv)``; then the output register.
    """
    node = ctx.node
    x_t, y_t = ctx.in_type, ctx.out_type
    axis = node.attrs.get("axis", -1)
    shape = ctx.graph.tensors[node.inputs[0]].shape
    if axis not in (-1, len(shape) - 1):
        raise BackendError(
            f"layer {node.name!r} (Softmax): axis {axis!r} is not supported; softmax runs over "
            "the last axis (-1)"
        )
    exp_t, inv_t = ctx.precision("exp_table"), ctx.precision("inv_table")
    sum_t = ctx.precision("exp_sum")
    exp = softmax_exp_table(node.attrs, exp_t, layer=node.name)
    inv = softmax_inv_table(node.attrs, inv_t, layer=node.name)
    exp_m = np.asarray(exp.mantissas(), dtype=np.int64)
    inv_m = np.asarray(inv.mantissas(), dtype=np.int64)
    n = shape[-1]
    rows = ctx.in_size // n
    mb = ModuleBuilder(split_casts=ctx.options.split_casts)
    sb = SumBuilder(mb, None, base_stage=1)
    xs = input_signals(mb, x_t, ctx.in_size)
    outputs: list[Sig] = []
    for r in range(rows):
        row = xs[r * n:(r + 1) * n]
        tag = f"r{r}_" if rows > 1 else ""
        top = row
        while len(top) > 1:  # comparator tree
            nxt = [mb.maximum(f"{tag}max", a, b) for a, b in zip(top[::2], top[1::2],
                                                                 strict=False)]
            top = nxt + ([top[-1]] if len(top) % 2 else [])
        peak = top[0]
        entries = []
        for e, x in enumerate(row):
            d = mb.add(f"{tag}d{e}", peak, 0, x, 0, True, 0)
            entries.append(table_lookup(mb, f"{tag}e{e}", d, x_t.frac, exp.step_log2, 0,
                                        exp_m, f"exp(-u) entries ({exp_t} mantissas)", "exp"))
        staged = [mb.at_stage(e, 1) for e in entries]
        total = sb.reduce(f"{tag}sum", [Term(e, 0, False, 0) for e in staged])
        total = sb.resolve(f"{tag}sum", total)
        s_cast = mb.cast(f"{tag}s", mb.at_stage(total.sig, 1), exp_t.frac - total.shift, sum_t)
        recip = table_lookup(mb, f"{tag}inv", s_cast, sum_t.frac, inv.step_log2, 0, inv_m,
                             f"1/S entries ({inv_t} mantissas)", "inv")
        recip2 = mb.at_stage(recip, 2)
        for e, entry in enumerate(staged):
            p = mb.mul(f"{tag}p{e}", mb.at_stage(entry, 2), recip2)
            outputs.append(mb.cast(f"{tag}y{e}", p, exp_t.frac + inv_t.frac, y_t))
    header = [
        f"Layer {node.name!r}: Softmax over {n} values" + (f" x {rows} rows" if rows > 1 else ""),
        f"  input {x_t}; exp table {exp.size} x {exp_t} (step 2^{exp.step_log2}), sum {sum_t},",
        f"  reciprocal table {inv.size} x {inv_t} (step 2^{inv.step_log2}), result {y_t}; "
        "latency 3 cycle(s)",
    ]
    return _assemble(ctx, header, mb, outputs, 3, {"adders": sb.adders,
                                                   "adder_bits": sb.adder_bits})


# ----------------------------------------------------- reshapes (no logic)
@renders("Flatten", "Reshape", "Dropout")
def render_reshape(ctx: LayerContext) -> LayerModule:
    x_t, y_t = ctx.in_type, ctx.out_type
    mb = ModuleBuilder(split_casts=ctx.options.split_casts)
    xs = input_signals(mb, x_t, ctx.in_size)
    outputs = [mb.cast(f"y{e}", x, x_t.frac, y_t) for e, x in enumerate(xs)]
    header = [f"Layer {ctx.node.name!r}: {ctx.node.op} (row-major order unchanged), "
              f"{x_t} -> {y_t}; latency 0 (wires)"]
    return _assemble(ctx, header, mb, outputs, 0, {})


@renders("ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D", "UpSampling1D",
         "UpSampling2D", "Permute", "Slice")
def render_rearrange(ctx: LayerContext) -> LayerModule:
    """Values moved without arithmetic (``nnfab.ir.rearrange``): wires, padding zeros as
    constants, each input element cast once to the result type."""
    from nnfab.ir.rearrange import gather_index

    x_t, y_t = ctx.in_type, ctx.out_type
    index = gather_index(ctx.node, ctx.graph.tensors[ctx.node.inputs[0]].shape).reshape(-1)
    mb = ModuleBuilder(split_casts=ctx.options.split_casts)
    xs = input_signals(mb, x_t, ctx.in_size)
    cast: dict[int, Sig] = {}
    for i in sorted({int(i) for i in index if i >= 0}):
        cast[i] = mb.cast(f"y{i}", xs[i], x_t.frac, y_t)
    outputs = [cast[int(i)] if i >= 0 else const(0) for i in index]
    shapes = (ctx.graph.tensors[ctx.node.inputs[0]].shape, ctx.graph.tensors[ctx.node.name].shape)
    header = [f"Layer {ctx.node.name!r}: {ctx.node.op} {shapes[0]} -> {shapes[1]}, {x_t} -> "
              f"{y_t}; latency 0 (wires)"]
    return _assemble(ctx, header, mb, outputs, 0, {})


def supported_ops() -> list[str]:
    return sorted(RENDERERS)

