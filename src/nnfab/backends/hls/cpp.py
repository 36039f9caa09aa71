"""C++ spellings: fixed-point types, constants and constant arrays for the HLS backend."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from nnfab.errors import BackendError
from nnfab.ir import FixedType, Overflow, Rounding

CSIM_MAX_WIDTH = 128
"""Widest type nnfab's own ap_fixed.h (g++ C simulation) supports."""

MANTISSA_TYPES = (
    (8, True, "int8_t"), (16, True, "int16_t"), (32, True, "int32_t"), (64, True, "int64_t"),
    (8, False, "uint8_t"), (16, False, "uint16_t"), (32, False, "uint32_t"),
    (64, False, "uint64_t"),
)


def cpp_type(t: FixedType) -> str:
    """``ap_fixed<W,I[,Q[,O]]>`` / ``ap_ufixed<...>``.

    Always the fixed-point spelling, also for integers: vendor ``ap_int`` converts
    from floating point with its own rules, while ``ap_fixed<W,W>`` follows the
    documented quantization modes like every other type.
    """
    kind = "ap_fixed" if t.signed else "ap_ufixed"
    args = [str(t.width), str(t.integer)]
    if t.overflow is not Overflow.WRAP:
        args += [t.rounding.value, t.overflow.value]
    elif t.rounding is not Rounding.TRN:
        args.append(t.rounding.value)
    return f"{kind}<{','.join(args)}>"


def exact_type(value: float) -> FixedType:
    """The narrowest signed type holding the float ``value`` exactly."""
    num, den = Fraction(float(value)).as_integer_ratio()
    frac = den.bit_length() - 1
    width = max(abs(num).bit_length() + 1, 2)
    return FixedType(width, width - frac, True)


def double_literal(value: float) -> str:
    """A C++ double literal that parses back to exactly ``value``."""
    value = float(value)
    if not np.isfinite(value):
        raise BackendError(f"cannot write the non-finite constant {value!r} into C++ code")
    text = repr(value)
    return text if ("." in text or "e" in text or "inf" in text) else text + ".0"


def int_literal(value: int) -> str:
    """A C++ integer literal of ``value`` for an int64/uint64 context."""
    value = int(value)
    if value == -(2**63):
        return "(-9223372036854775807LL - 1)"
    if -(2**31) <= value < 2**31:
        return str(value)
    if value < 2**63:
        return f"{value}LL"
    return f"{value}ULL"


def mantissa_ctype(t: FixedType) -> str | None:
    """The narrowest C integer type holding every mantissa of ``t`` (None beyond 64 bits)."""
    for bits, signed, name in MANTISSA_TYPES:
        if signed == t.signed and t.width <= bits:
            return name
    return None


@dataclass
class ConstArray:
    """A constant array of a fixed-point type: weights, biases or a lookup table."""

    name: str
    """C++ identifier of the array."""
    type_name: str
    """Name of the typedef of its element type."""
    type: FixedType
    values: np.ndarray
    """Element values, already on ``type``'s grid (float64)."""
    comment: str = ""

    @property
    def size(self) -> int:
        return int(self.values.size)

    def mantissa_ctype(self) -> str | None:
        return mantissa_ctype(self.type)

    def mantissa_text(self, per_line: int = 16) -> str:
        """Comma-separated exact integer mantissas (for nnfab's C simulation)."""
        mantissas = self.type.to_mantissa(self.values.ravel())
        return _wrap([int_literal(int(m)) for m in mantissas], per_line)

    def value_text(self, per_line: int = 8) -> str:
        """Comma-separated double literals (for the vendor tools), exact up to 53 bits."""
        return _wrap([double_literal(v) for v in self.values.ravel()], per_line)


def _wrap(items: list[str], per_line: int) -> str:
    lines = [", ".join(items[k : k + per_line]) for k in range(0, len(items), per_line)]
    return ",\n    ".join(lines)
