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
it was made in passes through registers (``ModuleBuilder.at_stage``).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from nnfab.backends.rtl.verilog import ModuleBuilder, Sig, const


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


@dataclass
class SumBuilder:
    """Builds adder trees in one module (see the module docstring)."""

    mb: ModuleBuilder
    levels_per_stage: int | None = None
    base_stage: int = 0
    adders: int = 0
    adder_bits: int = 0

    def stage_of(self, level: int) -> int:
        """Pipeline stage of an adder at depth ``level`` (leaves: level 0, stage 0)."""
        if self.levels_per_stage is None or level <= 0:
            return self.base_stage
        return self.base_stage + (level - 1) // self.levels_per_stage

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
        heap = [(t.level, t.shift, i, t) for i, t in enumerate(live)]
        heapq.heapify(heap)
        counter = len(heap)
        while len(heap) > 1:
            _, _, _, a = heapq.heappop(heap)
            _, _, _, b = heapq.heappop(heap)
            node = self.combine(base, a, b, modulus_bits)
            heapq.heappush(heap, (node.level, node.shift, counter, node))
            counter += 1
        return heap[0][3]

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
            sig = self.mb.add(base, sa, a.shift - m, sb, b.shift - m, False, stage, mod)
            neg = a.neg
        else:
            pos, negt = (a, b) if b.neg else (b, a)
            sp, sn = (sa, sb) if b.neg else (sb, sa)
            sig = self.mb.add(base, sp, pos.shift - m, sn, negt.shift - m, True, stage, mod)
            neg = False
        if not sig.is_const:
            self.adders += 1
            self.adder_bits += sig.width
        return Term(sig, m, neg, level)

    def resolve(self, base: str, t: Term, modulus_bits: int | None = None) -> Term:
        """The term with its pending negation applied (``neg`` False)."""
        if not t.neg:
            return t
        stage = self.stage_of(t.level + 1)
        mod = None if modulus_bits is None else modulus_bits - t.shift
        sig = self.mb.add(base, const(0, stage), 0, self.mb.at_stage(t.sig, stage), 0, True,
                          stage, mod)
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
