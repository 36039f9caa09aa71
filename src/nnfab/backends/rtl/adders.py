"""Sums of shifted terms as pipelined adder trees, and canonical-signed-digit constants.

A weighted sum is a list of ``Term``s, each ``+/- (signal << shift)``, plus a
constant. ``SumBuilder.reduce`` combines them two at a time, always the two that
are ready earliest (lowest adder depth, then lowest shift, so neighbours in
magnitude share an adder and widths stay small): the tree depth is minimal for the
given arrival times. Every adder is sized from the exact range of its result;
with a ``modulus_bits`` (a wrapping accumulator) adders never grow beyond what the
modulus keeps, and terms shifted past it vanish.

Pipelining: with ``levels_per_stage = k``, adders at depth ``1..k`` belong to stage
0, ``k+1..2k`` to stage 1, and so on; a value consumed in a later stage than the one
it was made in passes through registers (``ModuleBuilder.at_stage``). A builder's
``input_levels`` (logic in front of its inputs in the first stage) shift that count,
and a compressor chain counts ``chain_levels`` levels (``COMPRESSOR_CHAIN_LEVELS``).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from nnfab.backends.rtl.verilog import ModuleBuilder, Sig, bits_for, const, literal
from nnfab.tools.verilator import FAST_SIM_DEFINE


def csd(n: int) -> list[tuple[int, int]]:
    """Canonical signed digits of ``n``: ``[(shift, +1 | -1), ...]`` with no two adjacent.

    ``sum(d << s for s, d in csd(n)) == n``; the number of digits is minimal.
    """
    digits = []
    shift = 0
    while n != 0:
        if n & 1:
            d = 2 - (n & 3)  # +1 when n % 4 == 1, -1 when n % 4 == 3
            digits.append((shift, d))
            n -= d
        n >>= 1
        shift += 1
    return digits


@dataclass(frozen=True)
class Term:
    """``-(sig << shift)`` when ``neg`` else ``sig << shift``; ready at adder depth ``level``."""

    sig: Sig
    shift: int
    neg: bool
    level: int

    def value_range(self) -> tuple[int, int]:
        lo, hi = self.sig.lo << self.shift, self.sig.hi << self.shift
        return (-hi, -lo) if self.neg else (lo, hi)


@dataclass(frozen=True)
class _Row:
    """An operand of ``SumBuilder.compress``: bits ``0 .. width-1`` of ``sig`` at ``shift``
    (inverted: their complement)."""

    sig: Sig
    shift: int
    width: int
    inverted: bool
    level: int


def _popcount_functions(mb: ModuleBuilder) -> dict[int, str]:
    """Names of the module's functions giving bit 1 and bit 2 of the number of ones in
    six bits (declared once per module; logic only, no ``+``): the per-column form
    synthesis maps to one LUT per bit. nnfab's Verilator builds use the word form of
    ``_ColumnCounts`` instead."""
    names = {}
    for m in (1, 2):
        key = f"__popcount{m}"
        if key not in mb._roms:
            fn = mb.fresh(f"ones_b{m}")
            result = ("c1 ^ c2 ^ (s1 & s2)" if m == 1
                      else "(c1 & c2) | (c1 & s1 & s2) | (c2 & s1 & s2)")
            mb.functions.extend([
                f"  // bit {m} of the number of ones in v (a full adder tree)",
                f"  function {fn};",
                "    input [5:0] v;",
                "    reg s1, c1, s2, c2;",
                "    begin",
                "      s1 = v[0] ^ v[1] ^ v[2];",
                "      c1 = (v[0] & v[1]) | (v[0] & v[2]) | (v[1] & v[2]);",
                "      s2 = v[3] ^ v[4] ^ v[5];",
                "      c2 = (v[3] & v[4]) | (v[3] & v[5]) | (v[4] & v[5]);",
                f"      {fn} = {result};",
                "    end",
                "  endfunction",
            ])
            mb._roms[key] = fn
        names[m] = mb._roms[key]
    return names


class _ColumnCounts:
    """The rows of one compressor group as whole words, for nnfab's Verilator builds.

    ``SumBuilder._group`` writes each chain's row bit by bit (one popcount call per
    column), the form synthesis maps to one LUT per bit. Verilator turns every such bit
    into code of its own (40 MB of C++ for the 16-64-32-32-5 reference network). Under
    ``FAST_SIM_DEFINE`` the same rows come from word-wide full adders over the operands
    aligned at their columns: bit ``j`` of each word is the same function of the same bits
    as the per-column call, so the chains, their widths and constants are the ones
    synthesized. ``tests/backends/rtl/test_fast_sim_rows.py`` proves the two forms equal.
    """

    def __init__(self, mb: ModuleBuilder, base: str, others: list[_Row], constant: int,
                 width: int) -> None:
        self.mb, self.base, self.others, self.width = mb, base, others, width
        self.constant = constant & ((1 << width) - 1)
        self._bits: dict[tuple[int, int], str] = {}

    def _declare(self, stage: int) -> None:
        """Declare this stage's count-bit words (bits 0, 1 and 2 of the column counts)."""
        mb, w = self.mb, self.width
        lines = [f"`ifdef {FAST_SIM_DEFINE}"]

        def word(tag: str, expr: str) -> str:
            name = mb.fresh(f"{self.base}_{tag}")
            lines.append(f"  wire [{w - 1}:0] {name} = {expr};")
            return name

        ins = []
        for r in self.others:
            sig = mb.at_stage(r.sig, stage)
            body = sig.ext(r.width)
            if r.inverted:
                body = f"~{body}" if body.startswith("{") else f"~({body})"
            parts = []
            if w > r.shift + r.width:
                parts.append(literal(0, w - r.shift - r.width))
            parts.append(body)
            if r.shift:
                parts.append(literal(0, r.shift))
            ins.append(word("col", f"{{{', '.join(parts)}}}"))
        if self.constant:
            ins.append(literal(self.constant, w))
        zero = literal(0, w)
        first, second = ins[:3], ins[3:6]
        assert len(ins) <= 6, "a compressor group counts at most six bits per column"

        def xor(v: list[str]) -> str:
            return " ^ ".join(v) if v else zero

        def majority(v: list[str]) -> str:
            if len(v) < 2:
                return zero
            if len(v) == 2:
                return f"{v[0]} & {v[1]}"
            a, b, c = v
            return f"({a} & {b}) | ({a} & {c}) | ({b} & {c})"

        s1, c1 = word("s", xor(first)), word("c", majority(first))
        s2, c2 = word("s", xor(second)), word("c", majority(second))
        both = word("ss", f"{s1} & {s2}")
        self._bits[stage, 0] = word("n0", f"{s1} ^ {s2}")
        self._bits[stage, 1] = word("n1", f"{c1} ^ {c2} ^ {both}")
        self._bits[stage, 2] = word("n2", f"({c1} & {c2}) | ({c1} & {both}) | ({c2} & {both})")
        lines.append("`endif")
        mb.lines.extend(lines)

    def row(self, stage: int, m: int, width: int) -> str:
        """The ``width``-bit row of chain ``m``: bit ``m`` of the count at column ``j - m``
        at position ``j``, as a concatenation."""
        if width <= m:
            return f"{{{literal(0, width)}}}"
        if (stage, m) not in self._bits:
            self._declare(stage)
        bits = self._bits[stage, m]
        top = f"{bits}[{width - 1 - m}:0]" if width - m > 1 else f"{bits}[0]"
        return f"{{{top}, {m}'b0}}" if m else f"{{{top}}}"


COMPRESSOR_CHAIN_LEVELS = {"ecp5": 2}
"""Per FPGA family, the adder levels one chain of ``SumBuilder.compress`` counts as
(others: 1). On ECP5 Yosys maps the chain's ``+`` to CCU2C cells whose LUTs take only the
two operands' bits, so each count bit of the row is a LUT4 (a LUT4 and a PFUMX for
six-row groups) in front of the chain: a LUT level plus its route, then the carry chain.
Measured (nextpnr-ecp5, speed 6, ``benchmarks/bench_clock_target.py`` ``cnn_up``): two
chains in one stage took 7.3 ns (route 1.1 + LUT 0.24 + route 1.8 + chain 1.2, then
route 0.6 + LUT 0.24 + route 1.2 + chain 1.2) where the model allowed 4.0 ns, while a
carry chain itself grows by only 0.07 ns per CCU2C cell (two bits), so the width of an
adder hardly matters. On Xilinx parts the count bit is the LUT6 that drives the carry
chain (one level)."""


def _depth_key(t: Term) -> tuple[int, int]:
    return t.level, t.shift


@dataclass
class SumBuilder:
    """Builds adder trees in one module (see the module docstring)."""

    mb: ModuleBuilder
    levels_per_stage: int | None = None
    base_stage: int = 0
    keep: bool = False
    """Mark every adder ``(* keep *)`` (``ModuleBuilder.wire``)."""
    adders: int = 0
    adder_bits: int = 0
    input_levels: int = 0
    """Levels of logic the inputs already pass through in ``base_stage`` before the
    first adder, counted like adder levels (the padding mask of a pixel-stream window:
    a LUT after a register that drives every masked bit, ~2.1 ns on ECP5, one level).
    The first stage then holds ``levels_per_stage - input_levels`` adder levels; with
    ``input_levels >= levels_per_stage`` the first adder takes registered inputs."""
    chain_levels: int = 1
    """Adder levels one compressor chain counts as (``COMPRESSOR_CHAIN_LEVELS``)."""

    def stage_of(self, level: int) -> int:
        """Pipeline stage of an adder at depth ``level`` (leaves: level 0, stage 0)."""
        if self.levels_per_stage is None or level <= 0:
            return self.base_stage
        return self.base_stage + (level - 1 + self.input_levels) // self.levels_per_stage

    def level_at(self, stage: int) -> int:
        """The adder depth of a term made in ``stage`` from registers (its first adder
        then lies in that stage): the inverse of ``stage_of`` for pipelined builders."""
        if self.levels_per_stage is None:
            return 0
        return max(0, (stage - self.base_stage) * self.levels_per_stage - self.input_levels)

    def _used(self, level: int) -> int:
        """Levels of its stage up to and including an adder at depth ``level`` (> 0)."""
        assert self.levels_per_stage is not None
        return (level - 1 + self.input_levels) % self.levels_per_stage + 1

    def reduce(self, base: str, terms: list[Term], constant: int = 0,
               modulus_bits: int | None = None) -> Term:
        """One term equal to ``sum(terms) + constant`` (modulo ``2**modulus_bits``)."""
        live = [t for t in terms if not (t.sig.is_const and t.sig.value == 0)]
        if constant:
            shift = (constant & -constant).bit_length() - 1
            live.append(Term(const(constant >> shift), shift, False, 0))
        if modulus_bits is not None:
            live = [t for t in live if t.shift < modulus_bits]
        if not live:
            return Term(const(0), 0, False, 0)
        key = _depth_key
        heap = [(key(t), i, t) for i, t in enumerate(live)]
        heapq.heapify(heap)
        counter = len(heap)
        while len(heap) > 1:
            _, _, a = heapq.heappop(heap)
            _, _, b = heapq.heappop(heap)
            node = self.combine(base, a, b, modulus_bits)
            heapq.heappush(heap, (key(node), counter, node))
            counter += 1
        return heap[0][2]

    def combine(self, base: str, a: Term, b: Term, modulus_bits: int | None) -> Term:
        """One adder: ``a + b`` as a term (the sign of a common negation stays pending)."""
        level = max(a.level, b.level) + 1
        stage = self.stage_of(level)
        m = min(a.shift, b.shift)
        mod = None if modulus_bits is None else modulus_bits - m
        if mod is not None and mod <= 0:
            return Term(const(0, stage), m, False, level)
        sa = self.mb.at_stage(a.sig, stage)
        sb = self.mb.at_stage(b.sig, stage)
        if a.neg == b.neg:
            sig = self.mb.add(base, sa, a.shift - m, sb, b.shift - m, False, stage, mod,
                              self.keep)
            neg = a.neg
        else:
            pos, negt = (a, b) if b.neg else (b, a)
            sp, sn = (sa, sb) if b.neg else (sb, sa)
            sig = self.mb.add(base, sp, pos.shift - m, sn, negt.shift - m, True, stage, mod,
                              self.keep)
            neg = False
        if not sig.is_const:
            self.adders += 1
            self.adder_bits += sig.width
        return Term(sig, m, neg, level)

    @staticmethod
    def tree_depth(terms: list[Term], constant: int = 0) -> int:
        """The adder depth ``reduce`` reaches for these terms (pairing the earliest two)."""
        levels = [t.level for t in terms if not (t.sig.is_const and t.sig.value == 0)]
        if constant:
            levels.append(0)
        if not levels:
            return 0
        heapq.heapify(levels)
        while len(levels) > 1:
            a, b = heapq.heappop(levels), heapq.heappop(levels)
            heapq.heappush(levels, max(a, b) + 1)
        return levels[0]

    @staticmethod
    def compress_depth(terms: list[Term], group_size: int = 6, chain_levels: int = 1) -> int:
        """An upper bound of the depth ``compress`` reaches: its grouping of the earliest
        rows, each group with as many chains as its operands (and, last, the constant's
        bit) could count, each chain ``chain_levels`` levels (``SumBuilder.chain_levels``)."""
        def key(r: tuple[int, int, bool]) -> tuple[int, int]:
            return r[0], r[1]  # compress's (stable) order: level, then shift

        rows = sorted(((t.level, t.shift, t.neg) for t in terms if not t.sig.is_const), key=key)
        if not rows:
            return 0

        def chains(group: list[tuple[int, int, bool]], extra: int) -> int:
            others = len(group) - (0 if all(r[2] for r in group) else 1)
            return max(1, (others + extra).bit_length()) * chain_levels

        while True:
            group = rows[:group_size]
            if all(r[2] for r in group):
                group = rows[:group_size - 1]
            if len(group) == len(rows):
                return max(r[0] for r in rows) + chains(rows, 1)
            rows = rows[len(group):]
            rows.append((max(r[0] for r in group) + chains(group, 0), 0, False))
            rows.sort(key=key)

    def cast_stage(self, level: int) -> int:
        """The stage of the cast after a sum made at adder depth ``level``
        (``before_cast``'s rule)."""
        k = self.levels_per_stage
        if k is None or level <= 0:
            return self.base_stage
        used = self._used(level)
        cast = 1 if self.mb.split_casts else min(self.CAST_LEVELS, k)
        return self.stage_of(level) + (1 if used + cast > k else 0)

    def compress(self, base: str, terms: list[Term], constant: int, modulus_bits: int,
                 group_size: int = 6) -> Term:
        """``sum(terms) + constant`` modulo ``2**modulus_bits`` by carry chains that add
        up to five operands' bits at a time (see ``_popcount_functions``).

        Each chain computes ``X + (row << m)``, where ``row`` holds bit ``m`` of the number
        of ones among (at most) five other operands' bits (and one constant bit) at each
        position; the LUT feeding the carry chain computes that count bit itself, so an
        operand row costs one LUT per bit while a two-input adder costs one LUT per bit
        for one operand. Three chains add ``X`` and five operands (five adders would be
        needed otherwise). A chain is written ``X - ~row`` (``== X + row + 1``, the +1 is
        taken off the constant): synthesis keeps ``X`` as the operand that drives the
        carry chain's data input, which must be a plain signal. Negative terms enter
        inverted (``-v == ~v + 1 - 2**w``). The result has the exact range of the sum when
        it fits ``modulus_bits``.

        ``group_size``: rows one group of chains takes (its plain operand included). Six
        (three chains) is the fewest LUTs; four (two chains for three more operands)
        reduces 4:1 in two levels, as deep as a tree of two-input adders, for pipelined
        sums where depth costs registers.
        """
        lo = hi = constant
        for t in terms:
            a, b = t.value_range()
            lo, hi = lo + a, hi + b
        width, signed = bits_for(lo, hi)
        if width > modulus_bits:
            m_bits = modulus_bits
            lo, hi, signed = -(1 << (m_bits - 1)), (1 << (m_bits - 1)) - 1, True
        else:
            m_bits = width
        mask = (1 << m_bits) - 1
        rows: list[_Row] = []
        for t in terms:
            if t.sig.is_const:
                constant += t.sig.value << t.shift if not t.neg else -(t.sig.value << t.shift)
                continue
            # signed operands: their sign extension up to the modulus is part of the row
            w = m_bits - t.shift if t.sig.signed else min(t.sig.width, m_bits - t.shift)
            if w <= 0:
                continue
            if t.neg:
                constant += (1 - (1 << w)) << t.shift
            rows.append(_Row(t.sig, t.shift, w, t.neg, t.level))
        chains = 0
        rows.sort(key=lambda r: (r.level, r.shift))
        while True:
            group = self._pick_group(rows, group_size)
            if len(group) == len(rows):
                break
            for r in group:
                rows.remove(r)
            row, n = self._group(base, group, 0, m_bits)
            chains += n
            rows.append(row)
            rows.sort(key=lambda r: (r.level, r.shift))
        # the last group also adds the constant, less one per chain: as few chains as
        # the largest count (operand bits and that constant's bit) needs
        _, others = self._split(rows, m_bits)
        for n_last in (1, 2, 3):
            final_const = (constant - chains - n_last) & mask
            if max(self._counts(others, final_const, m_bits), default=0) < 1 << n_last:
                break
        row, _ = self._group(base, rows, final_const, m_bits, n_last)
        stage = row.sig.stage
        if row.sig.is_const:
            value = row.sig.value & mask
            if signed and value > hi:
                value -= 1 << m_bits
            return Term(const(value, stage), 0, False, row.level)
        out = self.mb.wire(f"{base}_sum", row.sig.ext(m_bits), lo, hi, stage, m_bits, signed)
        return Term(out, 0, False, row.level)

    @staticmethod
    def _pick_group(rows: list[_Row], size: int = 6) -> list[_Row]:
        """The earliest rows one group takes: a plain one and up to ``size - 1`` others."""
        group = rows[:size]
        if all(r.inverted for r in group):
            group = rows[:size - 1]
        return group

    @staticmethod
    def _split(group: list[_Row], m_bits: int) -> tuple[_Row | None, list[_Row]]:
        """The group's plain operand that drives the chains (the widest), and the rest."""
        plain = [r for r in group if not r.inverted]
        acc = (max(plain, key=lambda r: (min(r.shift + r.width, m_bits), -r.shift))
               if plain else None)
        return acc, [r for r in group if r is not acc]

    @staticmethod
    def _counts(others: list[_Row], constant: int, m_bits: int) -> list[int]:
        """The number of ones at each position: operand bits and the constant's bit."""
        counts = [0] * m_bits
        for r in others:
            for j in range(r.shift, r.shift + r.width):
                counts[j] += 1
        for j in range(m_bits):
            counts[j] += (constant >> j) & 1
        return counts

    def _group(self, base: str, group: list[_Row], constant: int, m_bits: int,
               n_rows: int | None = None) -> tuple[_Row, int]:
        """Chains adding ``group`` (and ``constant``'s bits): the result row and the number
        of chains (each adds one more; ``n_rows`` chains, or as many as the counts need)."""
        acc, others = self._split(group, m_bits)
        level = max((r.level for r in group), default=0)
        counts = self._counts(others, constant, m_bits)
        if n_rows is None:
            n_rows = max(counts, default=0).bit_length()
        words = _ColumnCounts(self.mb, base, others, constant, m_bits)
        x = acc
        x_hi = ((1 << (acc.shift + acc.width)) - 1) if acc is not None else 0
        for m in range(n_rows):
            level += self.chain_levels  # the count bits' LUTs, then the chain
            stage = self.stage_of(level)
            row_max = sum(1 << j for j in range(m, m_bits) if counts[j - m] >= 1 << m)
            x_hi = min(x_hi + row_max + 1, (1 << m_bits) - 1)
            width = max(1, x_hi.bit_length())
            bits = []
            for j in range(width - 1, -1, -1):
                bits.append(self._count_bit(others, constant, j - m, m, stage))
            x_expr = (literal(0, width) if x is None
                      else self.mb.at_stage(x.sig, stage).shifted(x.shift, width))
            if x_expr is None:
                x_expr = literal(0, width)
            expr = f"{x_expr} - ~{{{', '.join(bits)}}}"
            fast_row = words.row(stage, m, width)
            sig = self.mb.wire_with_fast_sim(f"{base}_c", expr, f"{x_expr} - ~{fast_row}", 0,
                                             x_hi, stage, width, self.keep)
            self.adders += 1
            self.adder_bits += width
            x = _Row(sig, 0, width, False, level)
        if x is None:  # nothing to add
            x = _Row(const(0), 0, 1, False, level)
        return x, n_rows

    def _count_bit(self, others: list[_Row], constant: int, j: int, m: int, stage: int) -> str:
        """Bit ``m`` of the number of ones at position ``j`` (operand bits, constant bit)."""
        if j < 0:
            return "1'b0"
        ins = []
        for r in others:
            if r.shift <= j < r.shift + r.width:
                sig = self.mb.at_stage(r.sig, stage)
                bit = sig.bit(j - r.shift)
                ins.append(f"~{bit}" if r.inverted else bit)
        if (constant >> j) & 1:
            ins.append("1'b1")
        if len(ins) < (1 << m):
            return "1'b0"
        if m == 0:
            return ins[0] if len(ins) == 1 else f"({' ^ '.join(ins)})"
        fn = _popcount_functions(self.mb)[m]
        pad = ["1'b0"] * (6 - len(ins))
        return f"{fn}({{{', '.join(pad + ins)}}})"

    CAST_LEVELS = 2
    """Adder levels a cast takes: its rounding adder, then the saturation compares and
    select (ECP5 place-and-route: a wide cast after one adder level missed a 6.7 ns
    clock by 2.7 ns)."""

    def before_cast(self, t: Term) -> Term:
        """``t`` ready for the cast that follows a sum: pipelined, a register first when
        the levels left in the current stage cannot hold the cast (``CAST_LEVELS``; with
        one level per stage the cast itself is split, ``ModuleBuilder.split_casts``)."""
        k = self.levels_per_stage
        if k is None or t.level <= 0 or t.sig.is_const:
            return t
        used = self._used(t.level)  # levels of the current stage the sum takes
        # a split cast leaves only its rounding adder in this stage
        cast = 1 if self.mb.split_casts else min(self.CAST_LEVELS, k)
        if used + cast <= k:
            return t
        return Term(self.mb.at_stage(t.sig, t.sig.stage + 1), t.shift, t.neg, t.level)

    def resolve(self, base: str, t: Term, modulus_bits: int | None = None) -> Term:
        """The term with its pending negation applied (``neg`` False)."""
        if not t.neg:
            return t
        stage = self.stage_of(t.level + 1)
        mod = None if modulus_bits is None else modulus_bits - t.shift
        sig = self.mb.add(base, const(0, stage), 0, self.mb.at_stage(t.sig, stage), 0, True,
                          stage, mod, self.keep)
        if not sig.is_const:
            self.adders += 1
            self.adder_bits += sig.width
        return Term(sig, t.shift, False, t.level + 1)


# ------------------------------------------------ common subexpressions (adder graph)
Pattern = tuple[int, int, int, int]
"""``(a, b, delta, g)``: the subexpression ``v_a + g * (v_b << delta)`` (``delta >= 0``)."""


@dataclass
class AdderGraph:
    """Result of ``share_subexpressions``: definitions and the rewritten columns.

    Variables ``0 .. n_inputs-1`` are the inputs; variable ``n_inputs + k`` is
    ``definitions[k] = (a, b, delta, g)``, i.e. ``v_a + g * (v_b << delta)``.
    Each column is a list of ``(variable, shift, sign)`` terms whose signed, shifted
    sum equals the original column.
    """

    n_inputs: int
    definitions: list[Pattern]
    columns: list[list[tuple[int, int, int]]]


_VAR_BITS = 24
_DELTA_BITS = 12
_TID_BITS = 26


def _encode(a: int, b: int, delta: int, g: int) -> int:
    return (((a << _VAR_BITS | b) << _DELTA_BITS | delta) << 1) | (g > 0)


def _decode(p: int) -> Pattern:
    g = 1 if p & 1 else -1
    p >>= 1
    delta = p & ((1 << _DELTA_BITS) - 1)
    p >>= _DELTA_BITS
    return p >> _VAR_BITS, p & ((1 << _VAR_BITS) - 1), delta, g


def share_subexpressions(n_inputs: int, columns: list[list[tuple[int, int, int]]],
                         min_count: int = 2, max_delta: int | None = None) -> AdderGraph:
    """Greedy two-term common-subexpression elimination over all columns of a layer.

    Repeatedly takes the pair pattern ``x_a +/- (x_b << delta)`` that occurs in the
    most places (ties: the smallest ``delta``), defines it once, and substitutes it
    wherever both of its terms are still free. Each substitution saves one adder.
    """
    # Patterns and occurrences are packed into ints (hashing tuples dominated the run
    # time): a pattern is _encode(a, b, delta, g); an occurrence is (column, base term
    # id, other term id). A term is (variable, shift, sign).
    cols: list[dict[int, tuple[int, int, int]]] = []
    occ: dict[int, set[int]] = {}
    next_tid = 0
    delta_mask = (1 << _DELTA_BITS) - 1
    max_delta = delta_mask if max_delta is None else min(max_delta, delta_mask)
    tid_mask = (1 << _TID_BITS) - 1

    def pairs(c: int, tid: int, add: bool, touched: set[int] | None) -> None:
        a, sa, ga = cols[c][tid]
        cbase = c << (2 * _TID_BITS)
        for other_id, (b, sb, gb) in cols[c].items():
            if other_id == tid:
                continue
            if sa < sb or (sa == sb and a <= b):
                if sb - sa > max_delta:
                    continue
                p = ((((a << _VAR_BITS) | b) << _DELTA_BITS | (sb - sa)) << 1) | (ga == gb)
                key = cbase | (tid << _TID_BITS) | other_id
            else:
                if sa - sb > max_delta:
                    continue
                p = ((((b << _VAR_BITS) | a) << _DELTA_BITS | (sa - sb)) << 1) | (ga == gb)
                key = cbase | (other_id << _TID_BITS) | tid
            entries = occ.get(p)
            if add:
                if entries is None:
                    occ[p] = {key}
                else:
                    entries.add(key)
                if touched is not None:
                    touched.add(p)
            elif entries is not None:
                entries.discard(key)

    for c, column in enumerate(columns):
        cols.append({})
        for term in column:
            cols[c][next_tid] = term
            pairs(c, next_tid, True, None)
            next_tid += 1
    heap = [(-len(v), _decode(p)[2], p) for p, v in occ.items() if len(v) >= min_count]
    heapq.heapify(heap)
    definitions: list[Pattern] = []
    while heap:
        neg, delta, p = heapq.heappop(heap)
        entries = occ.get(p)
        current = len(entries) if entries else 0
        if current < min_count:
            continue
        if current != -neg:  # stale entry: requeue with the current count
            heapq.heappush(heap, (-current, delta, p))
            continue
        assert entries is not None
        var = n_inputs + len(definitions)
        if var >= 1 << _VAR_BITS or next_tid + 2 * current >= 1 << _TID_BITS:
            break  # beyond the packing limits: stop sharing (still correct)
        used = 0
        touched: set[int] = set()
        for key in sorted(entries):
            c, ta, tb = key >> (2 * _TID_BITS), (key >> _TID_BITS) & tid_mask, key & tid_mask
            col = cols[c]
            if ta not in col or tb not in col:
                continue
            _, sa, ga = col[ta]
            for t in (ta, tb):
                pairs(c, t, False, None)
                del col[t]
            col[next_tid] = (var, sa, ga)
            pairs(c, next_tid, True, touched)
            next_tid += 1
            used += 1
        occ.pop(p, None)
        if used:
            definitions.append(_decode(p))
        for q in touched:
            n = len(occ.get(q, ()))
            if n >= min_count:
                heapq.heappush(heap, (-n, (q >> 1) & delta_mask, q))
    return AdderGraph(n_inputs, definitions, [list(col.values()) for col in cols])
