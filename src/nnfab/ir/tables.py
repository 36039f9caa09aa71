"""Lookup tables and constants shared by the emulator and the HLS and RTL backends.

Every non-linear function (sigmoid, tanh, softplus, softsign, the negative halves of
elu / celu / selu (``activation_rules``), the exponential and the reciprocal of
softmax) and every non-trivial constant (``1/count`` of average pooling and of
``Merge(average)``) is built here, as pure functions of a node's attributes and
fixed-point types, so that all backends embed the very same numbers. The tables
are defined in ``docs/semantics.md``; in short a table of ``N`` entries with bin
width ``step`` (a power of two) maps an input ``u`` to the entry

    index(u) = clip(floor(u / step) + base, 0, N - 1)

where ``base`` is ``N/2`` for sigmoid/tanh (the table covers ``[-R, R)``), ``N`` for the
negative-half tables of elu/celu/selu (``[-R, 0)``) and ``0``
for the softmax exponential (indexed by ``max(x) - x >= 0``) and reciprocal
(indexed by the sum ``S``). Because ``step`` is a power of two, ``floor(u/step)``
of a fixed-point ``u = m * 2**-F`` is the arithmetic shift ``m >> (F + log2 step)``.

Backends must use these functions rather than re-evaluating the functions: the
entries of sigmoid, tanh and exp come from float64 libm and are only reproducible
by taking them from here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from nnfab.errors import ConfigError
from nnfab.ir import activation_rules as rules
from nnfab.ir.types import FixedType

TABLE_FUNCTIONS = rules.FULL_TABLE_FUNCTIONS + rules.NEGATIVE_TABLE_FUNCTIONS
"""Activation functions evaluated through a lookup table (``activation_rules``: elu, celu and
selu only for ``x < 0``)."""

TABLE_DEFAULTS: dict[str, dict[str, int | float]] = {
    "sigmoid": {"table_size": 1024, "table_range": 8.0},
    "tanh": {"table_size": 1024, "table_range": 4.0},
    "softmax": {"table_size": 1024, "exp_range": 8.0, "inv_table_size": 1024},
    **rules.TABLE_DEFAULTS_EXTRA,
}
"""Attribute defaults a precision pass fills in; softmax ``inv_range`` is
``softmax_inv_range(number of classes)``."""

TABLE_TYPE_DEFAULTS: dict[str, str] = {
    "sigmoid": "ap_ufixed<18,1,AP_RND_CONV,AP_SAT>",
    "tanh": "ap_fixed<18,2,AP_RND_CONV,AP_SAT>",
    "exp_table": "ap_ufixed<18,1,AP_RND_CONV,AP_SAT>",
    "inv_table": "ap_ufixed<18,1,AP_RND_CONV,AP_SAT>",
    "param": "ap_fixed<18,4,AP_RND_CONV,AP_SAT>",
    "scale": "ap_ufixed<18,1,AP_RND_CONV,AP_SAT>",
    **rules.TABLE_TYPE_EXTRA,
}
"""Proposed default types: ``table`` of sigmoid/tanh (by function), softmax
``exp_table``/``inv_table``, ``param`` (leaky_relu alpha, hard_sigmoid slope and
offset) and ``scale`` (reciprocals of pooling and Merge(average)). The softmax
``exp_sum`` default is ``softmax_sum_type``."""

EXACT_SURROGATE_LIMIT = 2**50
"""``quantize_rational`` is exact while |q| * 2**F stays below this."""


# --------------------------------------------------------------------- checks
def _where(layer: str) -> str:
    return f"layer {layer!r}: " if layer else ""


def table_size(attrs: Mapping[str, Any], key: str, layer: str = "") -> int:
    """``attrs[key]`` as a table size: an integer power of two, at least 2."""
    value = _require(attrs, key, layer)
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        if isinstance(value, float | np.floating) and float(value).is_integer():
            value = int(value)
        else:
            raise ConfigError(
                f"{_where(layer)}{key} must be an integer power of two >= 2, got {value!r}"
            )
    value = int(value)
    if value < 2 or value & (value - 1):
        raise ConfigError(
            f"{_where(layer)}{key} must be an integer power of two >= 2, got {value!r}"
        )
    return value


def table_range(attrs: Mapping[str, Any], key: str, layer: str = "") -> float:
    """``attrs[key]`` as a positive finite range."""
    value = _require(attrs, key, layer)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{_where(layer)}{key} must be a positive finite number, got {value!r}")
    return number


def power_of_two_step(span: float, size: int, what: str, layer: str = "") -> float:
    """``span / size`` checked to be an exact power of two (the table bin width)."""
    step = Fraction(span) / size
    top = step.numerator if step.denominator == 1 else step.denominator
    if (step.numerator != 1 and step.denominator != 1) or top & (top - 1):
        raise ConfigError(
            f"{_where(layer)}{what}: the bin width {float(step)!r} (range {span!r} over "
            f"{size} entries) must be a power of two (e.g. 2**-6) so that the index is a "
            "bit shift; change the range or the table size"
        )
    return float(step)


def _require(attrs: Mapping[str, Any], key: str, layer: str) -> Any:
    try:
        return attrs[key]
    except KeyError:
        raise ConfigError(
            f"{_where(layer)}attribute {key!r} is missing; run the precision passes "
            "(nnfab.passes) to fill table defaults"
        ) from None


# ------------------------------------------------------------------ rationals
def quantize_rational(value: Fraction | int, t: FixedType) -> tuple[float, bool]:
    """Cast an exact rational to ``t`` (rounding then overflow); returns (value, overflowed).

    Exact whenever ``|value| * 2**t.frac < 2**50``: the rational is replaced by a
    dyadic stand-in with the same floor and the same position of its remainder
    relative to one half, which every rounding mode treats identically.
    """
    q = Fraction(value)
    scaled = q * (Fraction(2) ** t.frac)
    floor = math.floor(scaled)
    rem = scaled - floor
    if abs(floor) < EXACT_SURROGATE_LIMIT:
        if rem == 0:
            stand_in = float(floor)
        elif rem < Fraction(1, 2):
            stand_in = floor + 0.25
        elif rem == Fraction(1, 2):
            stand_in = floor + 0.5
        else:
            stand_in = floor + 0.75
        real = math.ldexp(stand_in, -t.frac)
    else:
        real = float(q)  # far outside any type up to 50 bits: only the overflow matters
    out, flags = t.quantize_and_flag(np.array([real]))
    return float(out[0]), bool(flags[0])


SUM_SCALE_TYPE = FixedType(1, 1, False)
"""The scale of a ``sum`` global pooling: exactly 1, in ``ap_ufixed<1,1>``."""


def pool_scale_type(mode: str, scale_type: FixedType) -> FixedType:
    """The type of a pooling's scale: ``scale_type``, or ``SUM_SCALE_TYPE`` for ``sum``."""
    return SUM_SCALE_TYPE if mode == "sum" else scale_type


def pool_scale(mode: str, count: int, scale_type: FixedType) -> tuple[float, bool]:
    """A pooling's scale for a window of ``count`` inputs: ``scale_q(1/count)`` for
    ``avg``, 1 for ``sum``; returns (value, overflowed)."""
    if mode == "sum":
        return 1.0, False
    return reciprocal(count, scale_type)


def reciprocal(count: int, scale_type: FixedType) -> tuple[float, bool]:
    """``scale_q(1/count)``: the average's scale factor; returns (value, overflowed)."""
    if count < 1:
        raise ConfigError(f"reciprocal of {count!r}: the count must be a positive integer")
    return quantize_rational(Fraction(1, count), scale_type)


# ---------------------------------------------------------------- the tables
@dataclass(frozen=True, eq=False)
class LookupTable:
    """A table ``values[index(u)]`` with ``index(u) = clip(floor(u/step) + base, 0, size-1)``."""

    kind: str
    type: FixedType
    step: float
    base: int
    inputs: np.ndarray
    """Argument at which each entry's function was evaluated (for comments and tests)."""
    reals: np.ndarray
    """Function values before quantization."""
    values: np.ndarray
    """Entries: ``type.quantize(reals)`` (float64 on the type's grid)."""
    overflow: np.ndarray
    """True where an entry overflowed the table type (saturated or wrapped)."""

    @property
    def size(self) -> int:
        return int(self.values.size)

    @property
    def step_log2(self) -> int:
        """``log2(step)`` (an integer, often negative)."""
        return int(math.frexp(self.step)[1] - 1)

    def mantissas(self) -> np.ndarray:
        """The entries' integer mantissas (what the backends store)."""
        return self.type.to_mantissa(self.values)

    def index(self, u: np.ndarray | float) -> np.ndarray:
        """Entry index of real inputs ``u`` (exact: ``u / step`` scales by a power of two)."""
        k = np.floor(np.asarray(u, dtype=np.float64) / self.step)
        return np.clip(k + self.base, 0, self.size - 1).astype(np.int64)

    def index_mantissas(self, m: np.ndarray, frac: int) -> np.ndarray:
        """Entry index of inputs ``m * 2**-frac`` given as integer mantissas (int64 or object)."""
        shift = frac + self.step_log2  # floor(u / step) == m >> shift
        m = np.asarray(m)
        if shift >= 0:
            if m.dtype != object:
                shift = min(shift, 63)  # int64 >> 63 is already 0 or -1
            k = m >> shift
        else:  # u / step is an integer: scaling a float by 2**-shift is exact (or clips anyway)
            k = np.ldexp(m.astype(np.float64), -shift)
        if m.dtype == object:
            k = np.asarray(
                [min(max(int(v) + self.base, 0), self.size - 1) for v in np.ravel(k)],
                dtype=np.int64,
            ).reshape(m.shape)
            return k
        return np.clip(k + self.base, 0, self.size - 1).astype(np.int64)

    def lookup(self, u: np.ndarray | float) -> np.ndarray:
        """``values[index(u)]``."""
        return self.values[self.index(u)]


def _table(kind: str, t: FixedType, step: float, base: int, inputs: np.ndarray,
           reals: np.ndarray) -> LookupTable:
    values, flags = t.quantize_and_flag(reals)
    return LookupTable(kind, t, step, base, inputs, reals, values, flags)


def activation_table(
    function: str, attrs: Mapping[str, Any], table_type: FixedType, layer: str = ""
) -> LookupTable:
    """An activation table: ``attrs`` holds ``table_size`` N and ``table_range`` R.

    It covers ``[-R, R)`` in N bins of width ``2R/N`` (a power of two); entry ``i``
    is ``table_type.quantize(f(-R + (i + 0.5) * step))``. Negative-half tables (elu,
    celu, selu) cover ``[-R, 0)`` in N bins of ``R/N`` (``base = N``).
    """
    if function not in TABLE_FUNCTIONS:
        raise ConfigError(
            f"{_where(layer)}no lookup table for function {function!r}; tables exist for "
            f"{', '.join(TABLE_FUNCTIONS)}"
        )
    size = table_size(attrs, "table_size", layer)
    half = table_range(attrs, "table_range", layer)
    step = power_of_two_step(rules.table_span(function, half), size, f"{function} table", layer)
    base = rules.table_base(function, size)
    centers = (np.arange(size, dtype=np.float64) - base + 0.5) * step
    reals = rules.table_reals(function, centers, attrs, layer)
    return _table(function, table_type, step, base, centers, reals)


def softmax_exp_table(
    attrs: Mapping[str, Any], exp_type: FixedType, layer: str = ""
) -> LookupTable:
    """``exp(-u)`` for ``u = max(x) - x >= 0``: ``table_size`` N bins of ``exp_range/N``.

    Entry ``i`` is ``exp_type.quantize(exp(-i * step))`` (the bin's left edge, so
    the maximum itself maps to ``exp(0) = 1``); inputs beyond the range use entry N-1.
    """
    size = table_size(attrs, "table_size", layer)
    span = table_range(attrs, "exp_range", layer)
    step = power_of_two_step(span, size, "softmax exp table", layer)
    edges = np.arange(size, dtype=np.float64) * step
    return _table("exp", exp_type, step, 0, edges, np.exp(-edges))


def softmax_inv_table(
    attrs: Mapping[str, Any], inv_type: FixedType, layer: str = ""
) -> LookupTable:
    """``1/S``: ``inv_table_size`` N2 bins of ``inv_range/N2`` over ``[0, inv_range)``.

    Entry ``j`` is ``inv_type`` applied to the exact rational ``1/((j + 0.5) * step)``.
    """
    size = table_size(attrs, "inv_table_size", layer)
    span = table_range(attrs, "inv_range", layer)
    step = power_of_two_step(span, size, "softmax reciprocal table", layer)
    exact_step = Fraction(step)
    centers = np.array([(j + 0.5) * step for j in range(size)], dtype=np.float64)
    reals = np.array([2.0 / ((2 * j + 1) * step) for j in range(size)], dtype=np.float64)
    pairs = [quantize_rational(1 / ((j + Fraction(1, 2)) * exact_step), inv_type)
             for j in range(size)]
    values = np.array([v for v, _ in pairs], dtype=np.float64)
    flags = np.array([f for _, f in pairs], dtype=bool)
    return LookupTable("inv", inv_type, step, 0, centers, reals, values, flags)


def softmax_inv_range(n_classes: int) -> float:
    """Default ``inv_range``: the smallest power of two >= the number of classes (>= 2)."""
    return float(2 ** math.ceil(math.log2(max(int(n_classes), 2))))


def softmax_sum_type(n_classes: int, exp_type: FixedType) -> FixedType:
    """Default ``exp_sum``: holds the exact sum of ``n_classes`` exp entries without wrapping."""
    extra = math.ceil(math.log2(max(int(n_classes), 2)))
    return FixedType(exp_type.width + extra, exp_type.integer + extra, exp_type.signed)


# ------------------------------------------------------------------- pooling
def pool_counts(
    in_spatial: Sequence[int],
    pool_size: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[int],
) -> np.ndarray:
    """Number of non-padding inputs in each pooling window (shape: output spatial)."""
    counts = np.ones((), dtype=np.int64)
    for ax, (n, k, s) in enumerate(zip(in_spatial, pool_size, strides, strict=True)):
        before, after = int(pads[2 * ax]), int(pads[2 * ax + 1])
        n_out = (n + before + after - k) // s + 1
        starts = np.arange(max(n_out, 0), dtype=np.int64) * s - before
        per_axis = np.maximum(np.minimum(starts + k, n) - np.maximum(starts, 0), 0)
        counts = np.multiply.outer(counts, per_axis)
    return counts
