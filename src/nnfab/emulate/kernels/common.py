"""Exact element-wise fixed-point arithmetic and small helpers shared by the kernels.

``Exact`` holds exact dyadic values ``m * 2**-frac`` with integer mantissas: int64
while every intermediate magnitude stays below 2**62, Python ints (object arrays)
beyond. Products and sums of any widths therefore stay exact until the one cast
the contract allows, which ``cast`` performs with the target type's rounding and
overflow modes (through ``FixedType.quantize`` when float64 holds the value
exactly, else in integer arithmetic with the same rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nnfab.emulate.base import Kernel, OverflowCounter
from nnfab.errors import EmulationError
from nnfab.ir import FixedType, Overflow, Rounding

INT64_LIMIT = 1 << 62
"""Magnitudes below this are kept in int64 (one spare bit for a final addition)."""
FLOAT_LIMIT = 1 << 53
"""Mantissas below this convert to float64 exactly."""


@dataclass(frozen=True, eq=False)
class Exact:
    """Exact values ``m * 2**-frac``; ``m`` is an int64 or object (Python int) array."""

    m: np.ndarray
    frac: int

    def __post_init__(self) -> None:
        if not isinstance(self.m, np.ndarray):  # 0-d operations return scalars
            m = np.array(self.m, dtype=object if isinstance(self.m, int) else None)
            object.__setattr__(self, "m", m)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.m.shape)


def max_abs(m: np.ndarray) -> int:
    """Largest magnitude of an integer array (0 when empty)."""
    if m.size == 0:
        return 0
    if m.dtype == object:
        return max(abs(int(v)) for v in m.ravel())
    return int(np.max(np.abs(m)))


def _objects(m: np.ndarray) -> np.ndarray:
    if m.dtype == object:
        return m
    out = np.empty(m.size, dtype=object)
    out[:] = [int(v) for v in m.ravel()]
    return out.reshape(m.shape)


def widen(m: np.ndarray, bound: int) -> np.ndarray:
    """``m`` itself, or as Python ints when results up to ``bound`` would not fit int64."""
    return _objects(m) if bound >= INT64_LIMIT else m


def from_values(x: np.ndarray | float, t: FixedType) -> Exact:
    """Values already on ``t``'s grid (as the emulator holds them) -> exact mantissas."""
    v = np.ldexp(np.asarray(x, dtype=np.float64), t.frac)
    if t.width <= 62:
        return Exact(v.astype(np.int64), t.frac)
    return Exact(_objects_from_floats(v), t.frac)


def _objects_from_floats(v: np.ndarray) -> np.ndarray:
    out = np.empty(v.shape, dtype=object)
    for idx, value in np.ndenumerate(v):
        out[idx] = int(value)
    return out


def constant(value: float, shape: tuple[int, ...] = ()) -> Exact:
    """An exact float64 constant (every finite float is dyadic)."""
    num, den = float(value).as_integer_ratio()
    frac = den.bit_length() - 1
    m = np.full(shape, num, dtype=np.int64) if abs(num) < INT64_LIMIT else np.full(
        shape, num, dtype=object
    )
    return Exact(m, frac)


def _on_grid(a: Exact, frac: int) -> np.ndarray:
    """Mantissas of ``a`` on the finer grid ``frac >= a.frac`` (exact)."""
    shift = frac - a.frac
    if shift == 0:
        return a.m
    m = widen(a.m, max_abs(a.m) << shift)
    if m.dtype == object:
        return m * (1 << shift)
    return m << np.int64(shift)


def align(*values: Exact) -> tuple[list[np.ndarray], int]:
    """Mantissas of all values on their finest common grid."""
    frac = max(v.frac for v in values)
    return [_on_grid(v, frac) for v in values], frac


def add(a: Exact, b: Exact) -> Exact:
    (ma, mb), frac = align(a, b)
    bound = max_abs(ma) + max_abs(mb)
    return Exact(widen(ma, bound) + widen(mb, bound), frac)


def sub(a: Exact, b: Exact) -> Exact:
    (ma, mb), frac = align(a, b)
    bound = max_abs(ma) + max_abs(mb)
    return Exact(widen(ma, bound) - widen(mb, bound), frac)


def mul(a: Exact, b: Exact) -> Exact:
    bound = max_abs(a.m) * max_abs(b.m)
    return Exact(widen(a.m, bound) * widen(b.m, bound), a.frac + b.frac)


def total(a: Exact, axis: int | tuple[int, ...], keepdims: bool = False) -> Exact:
    """Exact sum along ``axis``."""
    axes = (axis,) if isinstance(axis, int) else axis
    count = int(np.prod([a.m.shape[ax] for ax in axes], dtype=np.int64))
    m = widen(a.m, max_abs(a.m) * max(count, 1))
    return Exact(np.sum(m, axis=axis, keepdims=keepdims), a.frac)


def where(cond: np.ndarray, a: Exact, b: Exact) -> Exact:
    (ma, mb), frac = align(a, b)
    if ma.dtype == object or mb.dtype == object:
        ma, mb = _objects(ma), _objects(mb)
    return Exact(np.where(cond, ma, mb), frac)


def clip(a: Exact, lo: float, hi: float) -> Exact:
    """``min(max(a, lo), hi)`` for float constants ``lo <= hi`` (exact)."""
    low, high = constant(lo), constant(hi)
    (m, ml, mh), frac = align(a, low, high)
    if m.dtype == object or ml.dtype == object or mh.dtype == object:
        m, ml, mh = _objects(m), _objects(ml), _objects(mh)
    return Exact(np.where(m < ml, ml, np.where(m > mh, mh, m)), frac)


def round_to(a: Exact, frac: int, rounding: Rounding) -> Exact:
    """Round to the grid ``2**-frac`` with ``rounding``; no overflow handling (exact)."""
    shift = a.frac - frac
    if shift <= 0:
        return Exact(_on_grid(a, frac), frac)
    m = a.m if a.m.dtype == object or shift < 62 else _objects(a.m)
    floor = m >> shift
    rem = m - (floor << shift)  # in [0, 2**shift)
    half = 1 << (shift - 1)
    if rounding is Rounding.TRN:
        inc = np.zeros(m.shape, dtype=bool)
    elif rounding is Rounding.TRN_ZERO:
        inc = (rem != 0) & (m < 0)
    elif rounding is Rounding.RND:
        inc = rem >= half
    elif rounding is Rounding.RND_ZERO:
        inc = (rem > half) | ((rem == half) & (m < 0))
    elif rounding is Rounding.RND_MIN_INF:
        inc = rem > half
    elif rounding is Rounding.RND_INF:
        inc = (rem > half) | ((rem == half) & (m > 0))
    else:  # RND_CONV: ties to even
        inc = (rem > half) | ((rem == half) & ((floor & 1) == 1))
    inc = np.asarray(inc, dtype=bool)
    if floor.dtype == object:
        return Exact(floor + inc.astype(np.int64).astype(object), frac)
    return Exact(floor + inc.astype(np.int64), frac)


def cast(a: Exact, t: FixedType) -> tuple[np.ndarray, np.ndarray]:
    """Cast exact values to ``t`` (rounding, then overflow); returns (float64 values, flags)."""
    if abs(a.frac) <= 900 and max_abs(a.m) < FLOAT_LIMIT:
        return t.quantize_and_flag(np.ldexp(a.m.astype(np.float64), -a.frac))
    n = round_to(a, t.frac, t.rounding).m
    top, bottom = t.max_mantissa, t.min_mantissa
    if t.saturates_symmetric:
        bottom = -top  # the most negative mantissa counts as overflow and maps to -max
    if n.dtype != object and t.width > 61:
        n = _objects(n)
    over = np.asarray(n > top, dtype=bool)
    under = np.asarray(n < bottom, dtype=bool)
    flags = over | under
    if flags.any():
        if t.overflow is Overflow.WRAP:
            low, modulus = t.min_mantissa, 1 << t.width
            n = np.where(flags, (n - low) % modulus + low, n)
        elif t.overflow is Overflow.SAT_ZERO:
            n = np.where(flags, 0, n)
        else:
            n = np.where(over, top, np.where(under, bottom, n))
    return _to_float(n, t.frac), flags


def _to_float(n: np.ndarray, frac: int) -> np.ndarray:
    """Mantissas inside a type's range -> float64 (toward zero beyond 53 bits, as types.py)."""
    if n.dtype != object and max_abs(n) < FLOAT_LIMIT:
        return np.ldexp(n.astype(np.float64), -frac)
    out = np.empty(n.shape, dtype=np.float64)
    for idx, value in np.ndenumerate(n):
        v = int(value)
        excess = abs(v).bit_length() - 53
        if excess > 0:
            v = -((-v >> excess) << excess) if v < 0 else (v >> excess) << excess
        out[idx] = float(np.ldexp(float(v), -frac))
    return out


def cast_counted(counter: OverflowCounter, key: str, a: Exact, t: FixedType) -> np.ndarray:
    """``cast`` and record the overflows under ``key``."""
    values, flags = cast(a, t)
    counter.record(key, int(np.count_nonzero(flags)), int(flags.size))
    return values


# ------------------------------------------------------------------ node helpers
def require_attr(kernel: Kernel, key: str) -> Any:
    """``node.attrs[key]``, or an EmulationError naming the layer and the key."""
    node = kernel.node
    try:
        return node.attrs[key]
    except KeyError:
        raise EmulationError(
            f"layer {node.name!r} ({node.op}) has no {key!r} attribute; run the precision "
            "passes (nnfab.passes) before emulating, or set it in the graph"
        ) from None


def spatial_attr(
    kernel: Kernel, key: str, default: tuple[int, ...], length: int
) -> tuple[int, ...]:
    """A per-axis integer attribute (strides, pads, pool_size), checked for length and sign."""
    node = kernel.node
    value = node.attrs.get(key, default)
    try:
        values = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        values = ()
    lowest = 0 if key == "pads" else 1
    if len(values) != length or any(v < lowest for v in values):
        raise EmulationError(
            f"layer {node.name!r} ({node.op}): attribute {key!r} = {value!r} must be {length} "
            f"integer(s) >= {lowest}"
        )
    return values
