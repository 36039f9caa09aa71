"""Fixed-point types: ``FixedType`` and the parser for the Vivado/hls4ml spellings.

A value of ``FixedType(width=W, integer=I, signed=s)`` is an integer mantissa
``m`` times ``2**-F`` with ``F = W - I``; ``m`` lies in ``[-2**(W-1), 2**(W-1)-1]``
(signed) or ``[0, 2**W - 1]`` (unsigned). Casting a real number applies the
quantization (rounding) mode first, then the overflow mode, as Xilinx documents
``ap_fixed``. ``docs/semantics.md`` is the full contract.

Exactness: ``quantize`` works on float64 and is exact for every type up to 53
bits wide. For wider types (any width up to ``MAX_WIDTH``) the rounding step is
still exact; ``to_mantissa`` returns the exact integer mantissas (int64 up to 63
bits, Python ints beyond), while ``quantize`` returns the exact value rounded
toward zero to float64 (which differs from it only where the value needs more than
53 significant bits, e.g. the maximum of a 64-bit type), so it stays in range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

MAX_WIDTH = 512
"""Widest type accepted (bits)."""
MAX_ABS_BINARY_POINT = 512
"""Largest |integer| and |fractional| bit count accepted (keeps float64 scaling exact)."""
FLOAT_EXACT_WIDTH = 53
"""Types up to this width are represented exactly by float64."""


class Rounding(StrEnum):
    """Quantization modes of ``ap_fixed``."""

    TRN = "AP_TRN"  # toward minus infinity (floor)
    TRN_ZERO = "AP_TRN_ZERO"  # toward zero
    RND = "AP_RND"  # to nearest, ties toward plus infinity
    RND_ZERO = "AP_RND_ZERO"  # to nearest, ties toward zero
    RND_MIN_INF = "AP_RND_MIN_INF"  # to nearest, ties toward minus infinity
    RND_INF = "AP_RND_INF"  # to nearest, ties away from zero
    RND_CONV = "AP_RND_CONV"  # to nearest, ties to even


class Overflow(StrEnum):
    """Overflow modes of ``ap_fixed``."""

    WRAP = "AP_WRAP"  # two's complement wrap-around
    SAT = "AP_SAT"  # clamp to [min, max]
    SAT_ZERO = "AP_SAT_ZERO"  # out-of-range values become zero
    SAT_SYM = "AP_SAT_SYM"  # signed: clamp to [-max, max]; unsigned: as AP_SAT


GRAMMAR = (
    "accepted forms: [ap_]fixed<W,I>, [ap_]fixed<W,I,Q>, [ap_]fixed<W,I,Q,O>, "
    "[ap_]fixed<W,I,Q,O,0> (also ufixed), [ap_]int<W>, [ap_]uint<W>; "
    f"W an integer 1..{MAX_WIDTH}, I an integer (may be negative or larger than W); "
    f"Q one of {', '.join(m.value for m in Rounding)}; "
    f"O one of {', '.join(m.value for m in Overflow)} (the AP_ prefix is optional)"
)

_SPEC_RE = re.compile(r"^\s*(?:ap_)?(u?fixed|u?int)\s*<([^<>]*)>\s*$", re.IGNORECASE)
_INT_RE = re.compile(r"\s*[+-]?[0-9]+\s*")


def _parse_mode(token: str, enum: type[Rounding] | type[Overflow], spec: str) -> str:
    name = token.strip().upper()
    if not name.startswith("AP_"):
        name = "AP_" + name
    try:
        return enum(name)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise ValueError(
            f"fixed-point type {spec!r}: unknown mode {token.strip()!r}; allowed here: "
            f"{allowed}; {GRAMMAR}"
        ) from None


def _parse_int(token: str, what: str, spec: str) -> int:
    # int() alone would also take "1_6" or non-ASCII digits
    if not _INT_RE.fullmatch(token):
        raise ValueError(
            f"fixed-point type {spec!r}: {what} {token.strip()!r} is not an integer; {GRAMMAR}"
        )
    return int(token)


@dataclass(frozen=True, slots=True)
class FixedType:
    """An ``ap_fixed``-style binary fixed-point type (see the module docstring)."""

    width: int
    integer: int
    signed: bool = True
    rounding: Rounding = Rounding.TRN
    overflow: Overflow = Overflow.WRAP

    def __post_init__(self) -> None:
        if (
            isinstance(self.width, bool)
            or not isinstance(self.width, int | np.integer)
            or not 1 <= self.width <= MAX_WIDTH
        ):
            raise ValueError(
                f"fixed-point width must be an integer 1..{MAX_WIDTH}, got {self.width!r}"
            )
        if isinstance(self.integer, bool) or not isinstance(self.integer, int | np.integer):
            raise ValueError(f"fixed-point integer bits must be an integer, got {self.integer!r}")
        if not isinstance(self.signed, bool | np.bool_):
            raise ValueError(f"fixed-point 'signed' must be True or False, got {self.signed!r}")
        if abs(self.integer) > MAX_ABS_BINARY_POINT or abs(self.frac) > MAX_ABS_BINARY_POINT:
            raise ValueError(
                f"fixed-point type <{self.width},{self.integer}>: integer and fractional bit "
                f"counts must lie within +-{MAX_ABS_BINARY_POINT}"
            )
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "integer", int(self.integer))
        object.__setattr__(self, "signed", bool(self.signed))
        object.__setattr__(self, "rounding", Rounding(self.rounding))
        object.__setattr__(self, "overflow", Overflow(self.overflow))

    # ----------------------------------------------------------------- parsing
    @classmethod
    def parse(cls, spec: str | FixedType) -> FixedType:
        """Parse ``ap_fixed<16,6>``-style text; a ``FixedType`` is returned as is."""
        if isinstance(spec, FixedType):
            return spec
        if not isinstance(spec, str):
            raise ValueError(f"fixed-point type must be a string, got {spec!r}; {GRAMMAR}")
        match = _SPEC_RE.match(spec)
        if not match:
            raise ValueError(f"cannot parse fixed-point type {spec!r}; {GRAMMAR}")
        kind = match.group(1).lower()
        args = [a for a in match.group(2).split(",")]
        signed = not kind.startswith("u")
        if kind.endswith("int"):
            if len(args) != 1:
                raise ValueError(
                    f"{spec!r}: an integer type takes exactly one argument <W>; {GRAMMAR}"
                )
            width = _parse_int(args[0], "width", spec)
            if not 1 <= width <= MAX_WIDTH:
                raise ValueError(f"{spec!r}: width must be 1..{MAX_WIDTH}; {GRAMMAR}")
            return cls(width, width, signed)
        if not 2 <= len(args) <= 5:
            raise ValueError(f"{spec!r}: a fixed type takes 2 to 5 arguments; {GRAMMAR}")
        width = _parse_int(args[0], "width", spec)
        integer = _parse_int(args[1], "integer bits", spec)
        if not 1 <= width <= MAX_WIDTH:
            raise ValueError(f"{spec!r}: width must be 1..{MAX_WIDTH}; {GRAMMAR}")
        rounding = _parse_mode(args[2], Rounding, spec) if len(args) > 2 else Rounding.TRN
        overflow = _parse_mode(args[3], Overflow, spec) if len(args) > 3 else Overflow.WRAP
        if len(args) > 4 and _parse_int(args[4], "saturation bits", spec) != 0:
            raise ValueError(
                f"{spec!r}: saturation bits N other than 0 are not supported by nnfab "
                f"(use AP_SAT / AP_SAT_SYM / AP_SAT_ZERO instead); {GRAMMAR}"
            )
        try:
            return cls(width, integer, signed, Rounding(rounding), Overflow(overflow))
        except ValueError as e:
            raise ValueError(f"{spec!r}: {e}; {GRAMMAR}") from None

    # -------------------------------------------------------------- properties
    @property
    def frac(self) -> int:
        """Fractional bits F = W - I (may be negative, or larger than W)."""
        return self.width - self.integer

    @property
    def lsb(self) -> float:
        """Value of one unit in the last place, 2**-F."""
        return float(2.0**-self.frac)

    @property
    def saturates_symmetric(self) -> bool:
        """AP_SAT_SYM on a signed type wider than 1 bit: the range is [-max, max].

        A 1-bit signed type keeps its one negative value, -1, as the vendor type does
        (its -max would be 0).
        """
        return self.overflow is Overflow.SAT_SYM and self.signed and self.width > 1

    @property
    def min_mantissa(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_mantissa(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def min(self) -> float:
        """Smallest representable value (exact as float64)."""
        return float(np.ldexp(float(self.min_mantissa), -self.frac))

    @property
    def max(self) -> float:
        """Largest representable value (float64 rounded down for types over 53 bits)."""
        return float(np.ldexp(float(_floor_to_53_bits(self.max_mantissa)), -self.frac))

    @property
    def is_integer(self) -> bool:
        return self.frac <= 0

    def __str__(self) -> str:
        prefix = "ap_" if self.signed else "ap_u"
        if (
            self.frac == 0
            and self.rounding is Rounding.TRN
            and self.overflow is Overflow.WRAP
        ):
            return f"{prefix}int<{self.width}>"
        text = f"{prefix}fixed<{self.width},{self.integer}"
        if self.overflow is not Overflow.WRAP:
            text += f",{self.rounding.value},{self.overflow.value}"
        elif self.rounding is not Rounding.TRN:
            text += f",{self.rounding.value}"
        return text + ">"

    def holds(self, other: FixedType) -> bool:
        """True when every value of ``other`` is a value of this type (a lossless cast)."""
        return self.frac >= other.frac and _range_contains(self, other)

    def replace(self, **changes: object) -> FixedType:
        """A copy with some fields changed."""
        fields = {
            "width": self.width,
            "integer": self.integer,
            "signed": self.signed,
            "rounding": self.rounding,
            "overflow": self.overflow,
        }
        fields.update(changes)
        return FixedType(**fields)  # type: ignore[arg-type]

    # -------------------------------------------------------------- arithmetic
    def quantize(self, x: np.ndarray | float) -> np.ndarray:
        """Cast real values to this type; float64 results (see module docstring)."""
        values, _ = self.quantize_and_flag(x)
        return values

    def quantize_and_count(self, x: np.ndarray | float) -> tuple[np.ndarray, int]:
        """``quantize`` plus how many values overflowed (wrapped, saturated or zeroed)."""
        fast = self._cast_in_range(x)
        if fast is not None:
            return fast, 0
        values, flags = self.quantize_and_flag(x)
        return values, int(np.count_nonzero(flags))

    def quantize_and_flag(self, x: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """``quantize`` plus a boolean array: True where the value overflowed."""
        fast = self._cast_in_range(x)
        if fast is not None:
            return fast, np.zeros(fast.shape, dtype=bool)
        n, over, under = self._round(x)
        if self.width <= FLOAT_EXACT_WIDTH:
            m = self._overflow_float(n, over, under)
            return m * (2.0**-self.frac) + 0.0, over | under  # + 0.0: no -0.0
        exact = self._overflow_int(n, over, under)
        flat = [_int_to_float_toward_zero(int(v), -self.frac) for v in exact.ravel()]
        return np.asarray(flat, dtype=np.float64).reshape(n.shape), over | under

    def _cast_in_range(self, x: np.ndarray | float) -> np.ndarray | None:
        """Fast path: the cast when no value overflows, else None (few array passes).

        Taken for float-exact widths with F >= 0 (no scaling underflow possible) when
        the rounded mantissas lie in range; everything else goes the general way.
        """
        if self.width > FLOAT_EXACT_WIDTH or self.frac < 0:
            return None
        x = np.asarray(x, dtype=np.float64)
        if x.size == 0 or x.ndim == 0:
            return None
        with np.errstate(all="ignore"):  # inf/nan make top/bottom non-finite: general path
            n = x * (2.0**self.frac)
            if self.rounding is Rounding.TRN:
                np.floor(n, out=n)  # in place: the common mode, one temporary less
            else:
                n = self._round_scaled(n)
            top, bottom = n.max(), n.min()
        if not (np.isfinite(top) and np.isfinite(bottom)):
            return None
        hi = 2.0 ** (self.width - 1 if self.signed else self.width)
        lo = -(2.0 ** (self.width - 1)) if self.signed else 0.0
        if top >= hi or bottom < lo or (
            bottom == lo and self.saturates_symmetric
        ):
            return None
        n *= 2.0**-self.frac
        n += 0.0  # no -0.0
        return n

    def to_mantissa(self, x: np.ndarray | float) -> np.ndarray:
        """Exact integer mantissas of the cast values (int64 up to 63 bits, else objects)."""
        n, over, under = self._round(x)
        if self.width <= FLOAT_EXACT_WIDTH:
            return self._overflow_float(n, over, under).astype(np.int64)
        exact = self._overflow_int(n, over, under)
        return exact.astype(np.int64) if self.width <= 63 else exact

    # ------------------------------------------------------------ internals
    def _round(self, x: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scale by 2**F and round; returns integer-valued floats and range masks."""
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(over="ignore"):  # overflow to inf is handled just below
            v = x * (2.0**self.frac)  # exact: a power-of-two scale, barring over/underflow
        if not np.isfinite(v).all():
            if not np.isfinite(x).all():
                bad = int(np.count_nonzero(~np.isfinite(x)))
                raise ValueError(f"cannot cast {bad} non-finite value(s) (NaN/inf) to {self}")
            # Beyond float range the mantissa is a multiple of 2**W: any stand-in with the
            # same sign and that property behaves identically.
            v = np.where(np.isinf(v), np.copysign(2.0 ** (self.width + 2), x), v)
        if self.frac < 0:
            # Values scaled below float resolution behave like any tiny value of their sign.
            tiny = (x != 0) & (np.abs(v) < 2.0**-900)
            if tiny.any():
                v = np.where(tiny, np.copysign(2.0**-900, x), v)
        n = self._round_scaled(v)
        hi = float(2.0 ** (self.width - 1 if self.signed else self.width))  # first value above max
        lo = float(-(2.0 ** (self.width - 1))) if self.signed else 0.0
        over = n >= hi
        under = n <= lo if self.saturates_symmetric else n < lo
        return n, over, under

    def _round_scaled(self, v: np.ndarray) -> np.ndarray:
        """Round values already scaled by 2**F to integers, per the quantization mode."""
        mode = self.rounding
        if mode is Rounding.TRN:
            n = np.floor(v)
        elif mode is Rounding.TRN_ZERO:
            n = np.trunc(v)
        elif mode is Rounding.RND_CONV:
            n = np.rint(v)  # round half to even, exact on float64 (IEEE round-to-nearest)
        else:
            # Work on |v|: the fraction of a non-negative float is exact, while v - floor(v)
            # is not for small negative v (it can round onto the tie 0.5).
            a = np.abs(v)
            fa = np.floor(a)
            ra = a - fa
            neg = v < 0
            f = np.where(neg, -fa - (ra > 0), fa)  # floor(v)
            above = np.where(neg, (ra > 0) & (ra < 0.5), ra > 0.5)  # v - floor(v) > 1/2
            tie = ra == 0.5
            if mode is Rounding.RND:
                inc = above | tie
            elif mode is Rounding.RND_ZERO:
                inc = above | (tie & neg)
            elif mode is Rounding.RND_MIN_INF:
                inc = above
            elif mode is Rounding.RND_INF:
                inc = above | (tie & ~neg)
            else:  # RND_CONV
                inc = above | (tie & (np.fmod(f, 2.0) != 0))
            n = f + inc
        return n

    def _overflow_float(self, n: np.ndarray, over: np.ndarray, under: np.ndarray) -> np.ndarray:
        mode = self.overflow
        if mode is Overflow.WRAP:
            if not (over.any() or under.any()):
                return n
            m = 2.0**self.width
            r = np.fmod(n, m)
            if self.signed:
                half = m / 2
                r = np.where(r >= half, r - m, r)
                r = np.where(r < -half, r + m, r)
            else:
                r = np.where(r < 0, r + m, r)
            return r + 0.0  # turn -0.0 into 0.0
        if mode is Overflow.SAT_ZERO:
            return np.where(over | under, 0.0, n)
        top = float(self.max_mantissa)
        bottom = float(self.min_mantissa)
        if self.saturates_symmetric:
            bottom = float(-self.max_mantissa)
        return np.where(over, top, np.where(under, bottom, n))

    def _overflow_int(self, n: np.ndarray, over: np.ndarray, under: np.ndarray) -> np.ndarray:
        """Exact overflow handling on Python ints (types wider than 53 bits)."""
        if n.ndim:
            ints = np.frompyfunc(int, 1, 1)(n).astype(object)
        else:
            ints = np.asarray(int(n), dtype=object)
        mode = self.overflow
        top, bottom = self.max_mantissa, self.min_mantissa
        if self.saturates_symmetric:
            bottom = -top
        out = np.empty(n.shape, dtype=object)
        for idx, value in np.ndenumerate(ints):
            if over[idx] or under[idx]:
                if mode is Overflow.WRAP:
                    value %= 1 << self.width
                    if self.signed and value > top:
                        value -= 1 << self.width
                elif mode is Overflow.SAT_ZERO:
                    value = 0
                else:
                    value = top if over[idx] else bottom
            out[idx] = value
        return out


def union_of(types: list[FixedType]) -> FixedType:
    """The narrowest type holding each of ``types`` exactly (signed if any is; ``AP_TRN``,
    ``AP_WRAP``): the widest integer part without sign, the finest step."""
    signed = any(t.signed for t in types)
    magnitude = max(t.integer - int(t.signed) for t in types)  # integer bits without sign
    frac = max(t.frac for t in types)
    integer = magnitude + int(signed)
    return FixedType(max(1, integer + frac), integer, signed)


def _range_contains(outer: FixedType, inner: FixedType) -> bool:
    """Exact comparison of ranges on the common grid (Python ints, no float rounding)."""
    shift = max(outer.frac, inner.frac)
    lo_outer = outer.min_mantissa
    if outer.saturates_symmetric:
        lo_outer += 1  # a cast to AP_SAT_SYM maps the most negative value to -max
    lo_o = lo_outer << (shift - outer.frac)
    hi_o = outer.max_mantissa << (shift - outer.frac)
    lo_i = inner.min_mantissa << (shift - inner.frac)
    hi_i = inner.max_mantissa << (shift - inner.frac)
    return lo_o <= lo_i and hi_i <= hi_o


def _floor_to_53_bits(value: int) -> int:
    """The largest integer <= value that float64 represents exactly (value >= 0)."""
    excess = value.bit_length() - FLOAT_EXACT_WIDTH
    return value if excess <= 0 else (value >> excess) << excess


def _int_to_float_toward_zero(mantissa: int, exponent: int) -> float:
    """mantissa * 2**exponent as float64, rounded toward zero (stays inside the type)."""
    magnitude = _floor_to_53_bits(abs(mantissa))
    return float(np.ldexp(float(-magnitude if mantissa < 0 else magnitude), exponent))


def fixed(spec: str | FixedType) -> FixedType:
    """Parse a type spelled as Vivado/hls4ml spell it, e.g. ``fixed("ap_fixed<16,6>")``."""
    return FixedType.parse(spec)
