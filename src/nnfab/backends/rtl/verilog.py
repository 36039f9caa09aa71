"""Building blocks of the Verilog writer: integer signals, a module builder, the cast.

Every value inside a generated module is an integer *mantissa* held in a plain
(unsigned-declared) Verilog vector. A ``Sig`` records what the Python side knows
about it: its width, whether its bits are two's complement (``signed``: set only
when the value can be negative) and the exact range ``[lo, hi]`` it lies in. No
generated expression relies on Verilog's signedness rules: operands are extended
explicitly (zero or sign, from ``Sig.signed``) to the width of the result, so
``+``/``-`` are exact modulo ``2**width``, and comparisons use ``$signed`` on
operands of equal width. The only multiplication (``dsp`` style) uses ``$signed``
operands of their natural widths.

``ModuleBuilder.cast`` is THE fixed-point cast of the RTL backend: one generator
for every rounding and overflow mode of ``FixedType`` (``docs/semantics.md``),
used by every layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nnfab.ir import FixedType, Overflow, Rounding, sanitize
from nnfab.tools.verilator import FAST_SIM_DEFINE


def bits_for(lo: int, hi: int) -> tuple[int, bool]:
    """(width, signed) of the narrowest vector holding every integer in ``[lo, hi]``."""
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    if lo >= 0:
        return max(1, hi.bit_length()), False
    width = max(max(hi, 0).bit_length(), (-lo - 1).bit_length()) + 1
    return width, True


def literal(value: int, width: int) -> str:
    """A sized Verilog literal holding ``value`` modulo ``2**width`` (two's complement)."""
    if width < 1:
        raise ValueError("literal width must be >= 1")
    bits = value % (1 << width)
    if width <= 4:
        return f"{width}'b{bits:0{width}b}"
    return f"{width}'h{bits:x}"


def type_range(t: FixedType) -> tuple[int, int]:
    """Mantissa range of a fixed-point type."""
    return t.min_mantissa, t.max_mantissa


@dataclass(frozen=True)
class Sig:
    """An integer value in the generated hardware (see the module docstring).

    ``name`` is a Verilog identifier, or a literal when ``lo == hi`` (a constant).
    ``stage`` is the pipeline stage (within its module) in which the value is valid.
    """

    name: str
    width: int
    signed: bool
    lo: int
    hi: int
    stage: int = 0

    @property
    def is_const(self) -> bool:
        return self.lo == self.hi

    @property
    def value(self) -> int:
        assert self.is_const, "value of a non-constant signal"
        return self.lo

    def bit(self, i: int) -> str:
        """Bit ``i`` of the infinitely sign/zero-extended value, as an expression."""
        if self.is_const:
            return "1'b1" if (self.lo >> i) & 1 else "1'b0"
        if i < self.width:
            return f"{self.name}[{i}]"
        return f"{self.name}[{self.width - 1}]" if self.signed else "1'b0"

    def sign(self) -> str:
        """Expression that is 1 when the value is negative."""
        if self.is_const:
            return "1'b1" if self.lo < 0 else "1'b0"
        return f"{self.name}[{self.width - 1}]" if self.signed else "1'b0"

    def ext(self, width: int) -> str:
        """The value as exactly ``width`` bits (extended, or truncated modulo ``2**width``)."""
        if self.is_const:
            return literal(self.lo, width)
        if width == self.width:
            return self.name
        if width < self.width:
            return f"{self.name}[{width - 1}:0]" if width > 1 else f"{self.name}[0]"
        pad = width - self.width
        fill = self.bit(self.width - 1) if self.signed else "1'b0"
        return f"{{{{{pad}{{{fill}}}}}, {self.name}}}"

    def shifted(self, shift: int, width: int) -> str | None:
        """``(value << shift)`` as ``width`` bits; None when it is 0 modulo ``2**width``."""
        if self.is_const:
            return literal(self.lo << shift, width)
        if shift >= width:
            return None
        body = self.ext(width - shift)
        return body if shift == 0 else f"{{{body}, {shift}'b0}}"


def _fits(n: Sig, t: FixedType) -> bool:
    """``n`` needs no overflow handling for ``t`` (its range lies inside t's)."""
    lo, hi = type_range(t)
    if t.saturates_symmetric:
        lo = -hi
    return lo <= n.lo and n.hi <= hi


def const(value: int, stage: int = 0) -> Sig:
    """A constant signal."""
    width, signed = bits_for(value, value)
    return Sig(literal(value, width), width, signed, value, value, stage)


@dataclass
class ModuleBuilder:
    """Collects declarations, assignments and registers of one module body."""

    lines: list[str] = field(default_factory=list)
    regs: list[str] = field(default_factory=list)
    n_regs: int = 0
    _delayed: dict[tuple[str, int], Sig] = field(default_factory=dict)
    _used: set[str] = field(default_factory=lambda: {"clk", "x", "y"})
    _count: dict[str, int] = field(default_factory=dict)
    functions: list[str] = field(default_factory=list)
    _roms: dict[str, str] = field(default_factory=dict)
    _rom_shape: dict[str, tuple[int, int, int, int, tuple[int, ...]]] = field(
        default_factory=dict)
    split_casts: bool = False
    """Register between a cast's rounding adder and its saturation (one adder level per
    stage): the two carry chains are otherwise one stage's critical path."""

    # --------------------------------------------------------------- basics
    def fresh(self, base: str) -> str:
        """A new identifier: ``base`` (sanitized), else ``base_1``, ``base_2``, ..."""
        stem = sanitize(base)
        k = self._count.get(stem, 0)
        name = stem if k == 0 else f"{stem}_{k}"
        while name.lower() in self._used:
            k += 1
            name = f"{stem}_{k}"
        self._count[stem] = k + 1
        self._used.add(name.lower())
        return name

    def comment(self, text: str) -> None:
        for line in text.splitlines():
            self.lines.append(f"  // {line}".rstrip())

    def wire(self, base: str, expr: str, lo: int, hi: int, stage: int,
             width: int | None = None, signed: bool | None = None, keep: bool = False) -> Sig:
        """Declare a wire driven by ``expr`` (which must be ``width`` bits).

        ``keep``: mark it ``(* keep *)`` so that synthesis implements it on its own (an
        adder stays one carry chain instead of joining a multi-operand sum).
        """
        if lo == hi and width is None:
            return const(lo, stage)
        w, s = bits_for(lo, hi)
        width = w if width is None else width
        signed = s if signed is None else signed
        name = self.fresh(base)
        attr = "(* keep *) " if keep else ""
        self.lines.append(f"  {attr}wire [{width - 1}:0] {name} = {expr};")
        return Sig(name, width, signed, lo, hi, stage)

    def wire_with_fast_sim(self, base: str, expr: str, fast_expr: str, lo: int, hi: int,
                           stage: int, width: int, keep: bool = False) -> Sig:
        """An unsigned ``width``-bit wire driven by ``expr``, or by the equal ``fast_expr``
        in nnfab's Verilator builds (``FAST_SIM_DEFINE``: word-wide logic that simulates
        faster than the bit-level form synthesis maps)."""
        name = self.fresh(base)
        attr = "(* keep *) " if keep else ""
        self.lines.extend([
            f"`ifdef {FAST_SIM_DEFINE}",
            f"  wire [{width - 1}:0] {name} = {fast_expr};",
            "`else",
            f"  {attr}wire [{width - 1}:0] {name} = {expr};",
            "`endif",
        ])
        return Sig(name, width, False, lo, hi, stage)

    def register(self, sig: Sig, base: str | None = None) -> Sig:
        """``sig`` delayed by one clock (its stage + 1)."""
        if sig.is_const:
            return Sig(sig.name, sig.width, sig.signed, sig.lo, sig.hi, sig.stage + 1)
        name = self.fresh(base or f"{sig.name}_q")
        self.lines.append(f"  reg  [{sig.width - 1}:0] {name};")
        self.regs.append(f"    {name} <= {sig.name};")
        self.n_regs += sig.width
        return Sig(name, sig.width, sig.signed, sig.lo, sig.hi, sig.stage + 1)

    def replica(self, sig: Sig, base: str) -> Sig:
        """``sig`` delayed by one clock in a register of its own, which synthesis keeps apart
        from equal ones (``keep`` on the register for Vivado, on its ``always`` for Yosys):
        a copy placed next to the one load it drives, instead of one net to many loads."""
        if sig.is_const:
            return Sig(sig.name, sig.width, sig.signed, sig.lo, sig.hi, sig.stage + 1)
        name = self.fresh(base)
        self.lines.append(f"  (* keep *) reg  [{sig.width - 1}:0] {name};")
        self.lines.append(f"  (* keep *) always @(posedge clk) {name} <= {sig.name};")
        self.n_regs += sig.width
        return Sig(name, sig.width, sig.signed, sig.lo, sig.hi, sig.stage + 1)

    def at_stage(self, sig: Sig, stage: int) -> Sig:
        """``sig`` as seen in ``stage`` (registered as often as needed, chains shared)."""
        if stage < sig.stage:
            raise AssertionError(f"{sig.name} used in stage {stage} before it exists")
        if sig.is_const:
            return Sig(sig.name, sig.width, sig.signed, sig.lo, sig.hi, stage)
        current = sig
        while current.stage < stage:
            key = (sig.name, current.stage + 1)
            if key not in self._delayed:
                self._delayed[key] = self.register(current, f"{sig.name}_d{current.stage + 1}")
            current = self._delayed[key]
        return current

    def always_block(self) -> list[str]:
        if not self.regs:
            return []
        return ["  always @(posedge clk) begin", *self.regs, "  end"]

    # ---------------------------------------------------------- arithmetic
    def add(self, base: str, a: Sig, sa: int, b: Sig, sb: int, subtract: bool,
            stage: int, modulus_bits: int | None = None, keep: bool = False) -> Sig:
        """``(a << sa) +/- (b << sb)``, exact or modulo ``2**modulus_bits`` (``keep``: ``wire``)."""
        b_lo, b_hi = (-(b.hi << sb), -(b.lo << sb)) if subtract else (b.lo << sb, b.hi << sb)
        lo, hi = (a.lo << sa) + b_lo, (a.hi << sa) + b_hi
        width, signed = bits_for(lo, hi)
        if modulus_bits is not None and width > modulus_bits:
            width, signed = modulus_bits, True
            lo, hi = -(1 << (modulus_bits - 1)), (1 << (modulus_bits - 1)) - 1
        ea, eb = a.shifted(sa, width), b.shifted(sb, width)
        op = "-" if subtract else "+"
        if ea is None and eb is None:
            return const(0, stage)
        if eb is None:
            expr = ea
        elif ea is None:
            expr = f"{literal(0, width)} {op} {eb}" if subtract else eb
        else:
            expr = f"{ea} {op} {eb}"
        assert expr is not None
        return self.wire(base, expr, lo, hi, stage, width, signed, keep)

    def negate(self, base: str, a: Sig, stage: int) -> Sig:
        return self.add(base, const(0, stage), 0, a, 0, True, stage)

    def relu(self, base: str, a: Sig) -> Sig:
        """``max(a, 0)``."""
        if a.lo >= 0:
            return a
        if a.hi <= 0:
            return const(0, a.stage)
        width = a.hi.bit_length()
        expr = f"{a.sign()} ? {literal(0, width)} : {a.ext(width)}"
        return self.wire(base, expr, 0, a.hi, a.stage)

    def min_const(self, base: str, a: Sig, limit: int) -> Sig:
        """``min(a, limit)``."""
        if a.hi <= limit:
            return a
        if a.lo >= limit:
            return const(limit, a.stage)
        lo, hi = a.lo, limit
        width, signed = bits_for(lo, hi)
        above = self.greater(a, limit)
        return self.wire(base, f"{above} ? {literal(limit, width)} : {a.ext(width)}", lo, hi,
                         a.stage, width, signed)

    def shift_left(self, base: str, a: Sig, k: int) -> Sig:
        """``a << k`` (``k >= 0``) as its own signal."""
        if k == 0:
            return a
        lo, hi = a.lo << k, a.hi << k
        if a.is_const:
            return const(lo, a.stage)
        expr = a.shifted(k, bits_for(lo, hi)[0])
        assert expr is not None
        return self.wire(base, expr, lo, hi, a.stage)

    def floor_shift(self, base: str, a: Sig, k: int) -> Sig:
        """``floor(a / 2**k)`` (``k >= 0``)."""
        return self._round(base, a, k, Rounding.TRN)

    def max_const(self, base: str, a: Sig, limit: int) -> Sig:
        """``max(a, limit)``."""
        if a.lo >= limit:
            return a
        if a.hi <= limit:
            return const(limit, a.stage)
        lo, hi = limit, a.hi
        width, signed = bits_for(lo, hi)
        below = self.less(a, limit)
        return self.wire(base, f"{below} ? {literal(limit, width)} : {a.ext(width)}", lo, hi,
                         a.stage, width, signed)

    def rom(self, base: str, index: Sig, entries: dict[int, int], comment: str = "") -> Sig:
        """A constant table: ``entries[v]`` for every value ``v`` the ``index`` can take.

        The table is a Verilog function (a ``case`` on the index bits), declared once
        per ``base`` and shared by every lookup with the same ``base``.
        """
        values = [entries[v] for v in range(index.lo, index.hi + 1)]
        if index.is_const:
            return const(values[0], index.stage)
        lo, hi = min(values), max(values)
        if lo == hi:
            return const(lo, index.stage)
        width, signed = bits_for(lo, hi)
        fn = self._roms.get(base)
        if fn is None:
            fn = self.fresh(f"{base}_rom")
            text = [f"  // {comment}" if comment else f"  // table {fn}",
                    f"  function [{width - 1}:0] {fn};",
                    f"    input [{index.width - 1}:0] a;",
                    "    begin",
                    "      case (a)"]
            for v, e in zip(range(index.lo, index.hi + 1), values, strict=True):
                text.append(f"        {literal(v, index.width)}: {fn} = {literal(e, width)};")
            text += [f"        default: {fn} = {literal(values[0], width)};",
                     "      endcase",
                     "    end",
                     "  endfunction"]
            self.functions.extend(text)
            self._roms[base] = fn
            self._rom_shape[fn] = (index.lo, index.hi, index.width, width, tuple(values))
        assert self._rom_shape[fn] == (index.lo, index.hi, index.width, width, tuple(values)), (
            "a shared table must be used with the same index range"
        )
        return self.wire(f"{base}_q", f"{fn}({index.name})", lo, hi, index.stage, width, signed)

    def greater(self, a: Sig, limit: int) -> str:
        """Expression: ``a > limit`` (signed comparison of equal-width operands)."""
        w = max(a.width, bits_for(min(limit, 0), max(limit, 0))[0]) + 1
        return f"($signed({a.ext(w)}) > $signed({literal(limit, w)}))"

    def less(self, a: Sig, limit: int) -> str:
        """Expression: ``a < limit``."""
        w = max(a.width, bits_for(min(limit, 0), max(limit, 0))[0]) + 1
        return f"($signed({a.ext(w)}) < $signed({literal(limit, w)}))"

    def mul_const(self, base: str, a: Sig, c: int) -> Sig:
        """``a * c`` with a ``*`` operator (``dsp`` style)."""
        if c == 0 or (a.is_const and a.value == 0):
            return const(0, a.stage)
        if a.is_const:
            return const(a.value * c, a.stage)
        ends = (a.lo * c, a.hi * c)
        lo, hi = min(ends), max(ends)
        width, signed = bits_for(lo, hi)
        wa = a.width + (0 if a.signed else 1)
        cw = bits_for(min(c, 0), max(c, 0))[0] + (0 if c < 0 else 1)
        expr = f"$signed({a.ext(wa)}) * $signed({literal(c, cw)})"
        return self.wire(base, expr, lo, hi, a.stage, width, signed)

    def mul(self, base: str, a: Sig, b: Sig) -> Sig:
        """``a * b`` of two signals (a multiplier; exact)."""
        if a.is_const:
            return self.mul_const(base, b, a.value)
        if b.is_const:
            return self.mul_const(base, a, b.value)
        ends = (a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi)
        lo, hi = min(ends), max(ends)
        width, signed = bits_for(lo, hi)
        wa = a.width + (0 if a.signed else 1)
        wb = b.width + (0 if b.signed else 1)
        expr = f"$signed({a.ext(wa)}) * $signed({b.ext(wb)})"
        return self.wire(base, expr, lo, hi, max(a.stage, b.stage), width, signed)

    def maximum(self, base: str, a: Sig, b: Sig) -> Sig:
        """``max(a, b)`` (same stage)."""
        lo, hi = max(a.lo, b.lo), max(a.hi, b.hi)
        if a.lo >= b.hi:
            return a
        if b.lo >= a.hi:
            return b
        width, signed = bits_for(lo, hi)
        w = max(a.width + (0 if a.signed else 1), b.width + (0 if b.signed else 1))
        cond = f"($signed({a.ext(w)}) > $signed({b.ext(w)}))"
        return self.wire(base, f"{cond} ? {a.ext(width)} : {b.ext(width)}", lo, hi,
                         max(a.stage, b.stage), width, signed)

    # --------------------------------------------------------------- cast
    def cast(self, base: str, a: Sig, frac: int, t: FixedType) -> Sig:
        """``a * 2**-frac`` cast to ``t`` (rounding, then overflow): the result mantissa.

        Mirrors ``FixedType.quantize`` exactly; uses the known range of ``a`` to leave
        out checks that cannot fire.
        """
        if a.is_const:
            return const(cast_int(a.value, frac, t), a.stage)
        n = self._round(base, a, frac - t.frac, t.rounding)
        rounds = frac - t.frac > 0 and t.rounding is not Rounding.TRN  # an increment adder
        saturates = t.overflow is not Overflow.WRAP  # wrapping is a bit slice: no logic
        if self.split_casts and rounds and saturates and not n.is_const and not _fits(n, t):
            n = self.at_stage(n, n.stage + 1)
        return self._overflow(base, n, t)

    def _round(self, base: str, a: Sig, drop: int, mode: Rounding) -> Sig:
        """``a / 2**drop`` rounded with ``mode`` (``a << -drop`` when ``drop <= 0``)."""
        if drop == 0:
            return a
        if drop < 0:
            return self.shift_left(f"{base}_al", a, -drop)
        q_lo, q_hi = a.lo >> drop, a.hi >> drop
        if drop < a.width:
            q = self.wire(f"{base}_fl", f"{a.name}[{a.width - 1}:{drop}]", q_lo, q_hi, a.stage,
                          a.width - drop, a.signed) if q_lo != q_hi else const(q_lo, a.stage)
        else:
            q = (self.wire(f"{base}_fl", a.sign(), q_lo, q_hi, a.stage, 1, True)
                 if q_lo != q_hi else const(q_lo, a.stage))
        if mode is Rounding.TRN:
            return q
        half = a.bit(drop - 1)
        sticky = (
            "1'b0" if drop < 2
            else (f"(|{a.name}[{min(drop - 2, a.width - 1)}:0])" if drop - 2 > 0 or a.width > 1
                  else f"{a.name}[0]")
        )
        sign = a.sign()
        if mode is Rounding.TRN_ZERO:
            inc = f"{sign} & ({half} | {sticky})"
        elif mode is Rounding.RND:
            inc = half
        elif mode is Rounding.RND_ZERO:
            inc = f"{half} & ({sticky} | {sign})"
        elif mode is Rounding.RND_MIN_INF:
            inc = f"{half} & {sticky}"
        elif mode is Rounding.RND_INF:
            inc = f"{half} & ({sticky} | ~{sign})"
        else:  # RND_CONV: ties to even
            inc = f"{half} & ({sticky} | {a.bit(drop)})"
        lo, hi = q_lo, q_hi + 1
        width, signed = bits_for(lo, hi)
        expr = f"{q.ext(width)} + {{{literal(0, width - 1)}, {inc}}}" if width > 1 else (
            f"{q.ext(1)} + ({inc})")
        return self.wire(f"{base}_rn", expr, lo, hi, a.stage, width, signed)

    def _exceeds(self, n: Sig, limit: int) -> str:
        """Expression ``n > limit``: a test of n's high bits when ``limit + 1`` is a power
        of two 2**b (a type's maximum): some bit from b up is set, n not negative."""
        v = limit + 1
        top = n.width - 1 if n.signed else n.width  # the magnitude bits end below this
        if v > 0 and v & (v - 1) == 0 and (b := v.bit_length() - 1) < top:
            bits = f"(|{n.name}[{top - 1}:{b}])"
            return f"(!{n.name}[{n.width - 1}] & {bits})" if n.signed else bits
        return self.greater(n, limit)

    def _below(self, n: Sig, limit: int) -> str:
        """Expression ``n < limit``: a bit test when ``limit`` is 0 or -(2**b) (a type's
        minimum): n negative and, for -(2**b), not all of its bits from b up set."""
        if n.signed:
            if limit == 0:
                return f"{n.name}[{n.width - 1}]"
            v = -limit
            if v > 0 and v & (v - 1) == 0 and (b := v.bit_length() - 1) < n.width - 1:
                return f"({n.name}[{n.width - 1}] & ~(&{n.name}[{n.width - 2}:{b}]))"
        return self.less(n, limit)

    def _overflow(self, base: str, n: Sig, t: FixedType) -> Sig:
        """Bring an integer into ``t``'s mantissa range with ``t``'s overflow mode."""
        t_lo, t_hi = type_range(t)
        sym = t.saturates_symmetric
        s_lo = -t_hi if sym else t_lo  # lowest value kept as is
        if n.lo >= s_lo and n.hi <= t_hi:
            return n
        if t.overflow is Overflow.WRAP:
            width = t.width
            if t.signed:
                return self.wire(f"{base}_wr", n.ext(width), t_lo, t_hi, n.stage, width, True)
            return self.wire(f"{base}_wr", n.ext(width), 0, t_hi, n.stage, width, False)
        over = self._exceeds(n, t_hi) if n.hi > t_hi else None
        under = self._below(n, s_lo) if n.lo < s_lo else None
        if t.overflow is Overflow.SAT_ZERO:
            lo, hi = min(0, max(n.lo, s_lo)), max(0, min(n.hi, t_hi))
            width, signed = bits_for(lo, hi)
            cond = " | ".join(c for c in (over, under) if c)
            expr = f"({cond}) ? {literal(0, width)} : {n.ext(width)}"
            return self.wire(f"{base}_sz", expr, lo, hi, n.stage, width, signed)
        lo, hi = min(max(n.lo, s_lo), t_hi), max(min(n.hi, t_hi), s_lo)
        if lo == hi:  # every value saturates to the same bound
            return const(lo, n.stage)
        width, signed = bits_for(lo, hi)
        expr = n.ext(width)
        if under:
            expr = f"{under} ? {literal(s_lo, width)} : {expr}"
        if over:
            expr = f"{over} ? {literal(t_hi, width)} : ({expr})" if under else (
                f"{over} ? {literal(t_hi, width)} : {expr}")
        return self.wire(f"{base}_st", expr, lo, hi, n.stage, width, signed)


def cast_int(m: int, frac: int, t: FixedType) -> int:
    """Reference cast of one exact value ``m * 2**-frac`` to ``t``'s mantissa (Python ints)."""
    drop = frac - t.frac
    if drop <= 0:
        n = m << -drop
    else:
        q, r = m >> drop, m & ((1 << drop) - 1)
        half = 1 << (drop - 1)
        mode = t.rounding
        if mode is Rounding.TRN:
            inc = False
        elif mode is Rounding.TRN_ZERO:
            inc = m < 0 and r != 0
        elif mode is Rounding.RND:
            inc = r >= half
        elif mode is Rounding.RND_ZERO:
            inc = r > half or (r == half and m < 0)
        elif mode is Rounding.RND_MIN_INF:
            inc = r > half
        elif mode is Rounding.RND_INF:
            inc = r > half or (r == half and m > 0)
        else:
            inc = r > half or (r == half and q & 1 == 1)
        n = q + int(inc)
    lo, hi = type_range(t)
    if t.saturates_symmetric:
        lo = -hi
    if lo <= n <= hi:
        return n
    if t.overflow is Overflow.WRAP:
        n %= 1 << t.width
        return n - (1 << t.width) if t.signed and n > hi else n
    if t.overflow is Overflow.SAT_ZERO:
        return 0
    return hi if n > hi else lo


def pixel_stage_ports(name: str, in_width: int, out_width: int) -> list[str]:
    """``module name (clk, rst, v_in, x_in, v_out, y_out);``: the header of a pixel-stream
    stage module (``stream.py`` and its stage modules)."""
    return [
        f"module {name} (",
        "  input  wire clk,",
        "  input  wire rst,",
        "  input  wire v_in,",
        f"  input  wire [{in_width - 1}:0] x_in,",
        "  output reg  v_out,",
        f"  output reg  [{out_width - 1}:0] y_out",
        ");",
    ]


DISTRIBUTED_BUFFER_PIXELS = 64
"""Pixel buffers up to this depth are held in LUT RAM under a clock target."""


def pixel_buffer_memory(pw: int, depth: int, timed: bool) -> str:
    """The declaration of a pixel buffer ``mem`` of ``depth`` pixels of ``pw`` bits.

    With ``timed`` (a clock target) and at most ``DISTRIBUTED_BUFFER_PIXELS`` pixels it
    is marked ``ram_style = "distributed"`` (read by Yosys and Vivado): LUT RAM, read in
    a LUT level and a small multiplexer. Left to itself Yosys puts it in an ECP5 block
    RAM without the block's output register, whose clock-to-out (about 6 ns) alone caps
    the clock near 130 MHz."""
    decl = f"  reg  [{pw - 1}:0] mem [0:{depth - 1}];"
    if timed and depth <= DISTRIBUTED_BUFFER_PIXELS:
        return '  (* ram_style = "distributed" *)\n' + decl
    return decl


def pixel_buffer_process(reset: list[str], seq: list[str]) -> list[str]:
    """The clocked process of a stage that buffers pixels in ``mem`` (written at ``wp``
    on ``v_in``, read at the registered read pointer ``rp`` on ``emit``) and
    ``endmodule``."""
    return [
        "  always @(posedge clk) begin",
        "    if (v_in) mem[wp] <= x_in;",
        "    if (emit) y_out <= mem[rp];",
        "    if (rst) begin",
        *[f"      {s}" for s in reset],
        "    end else begin",
        *[f"      {s}" for s in seq],
        "    end",
        "  end",
        "endmodule",
    ]
