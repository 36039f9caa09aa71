"""Independent fixed-point reference arithmetic and tiny graph builders for emulator tests.

The reference works on ``fractions.Fraction`` and Python ints, written from the
rules in docs/semantics.md (not from nnfab's code): tests compare the emulator
with it bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from nnfab.emulate import EmulationResult, Emulator
from nnfab.ir import FixedType, Graph, Node, Overflow, Rounding, fixed, infer_shapes

HALF = Fraction(1, 2)


# ----------------------------------------------------------------- reference casts
def ref_round(v: Fraction, frac: int, rounding: Rounding) -> int:
    """The integer mantissa of ``v`` rounded onto the grid 2**-frac."""
    s = Fraction(v) * Fraction(2) ** frac
    fl = math.floor(s)
    r = s - fl
    if r == 0:
        return fl
    if rounding is Rounding.TRN:
        return fl
    if rounding is Rounding.TRN_ZERO:
        return fl + 1 if s < 0 else fl
    if r != HALF:
        return fl + 1 if r > HALF else fl
    # exact ties
    if rounding is Rounding.RND:
        return fl + 1
    if rounding is Rounding.RND_ZERO:
        return fl + 1 if s < 0 else fl
    if rounding is Rounding.RND_MIN_INF:
        return fl
    if rounding is Rounding.RND_INF:
        return fl + 1 if s > 0 else fl
    return fl + 1 if fl % 2 else fl  # RND_CONV


def ref_cast(v: Fraction | int | float, t: FixedType) -> tuple[Fraction, bool]:
    """Cast to ``t``: rounding, then overflow; returns (value, overflowed)."""
    n = ref_round(Fraction(v), t.frac, t.rounding)
    if t.signed:
        lo, hi = -(2 ** (t.width - 1)), 2 ** (t.width - 1) - 1
    else:
        lo, hi = 0, 2**t.width - 1
    if t.overflow is Overflow.SAT_SYM and t.signed:
        lo = -hi
    overflowed = not lo <= n <= hi
    if overflowed:
        if t.overflow is Overflow.WRAP:
            low = -(2 ** (t.width - 1)) if t.signed else 0
            n = (n - low) % 2**t.width + low
        elif t.overflow is Overflow.SAT_ZERO:
            n = 0
        else:
            n = hi if n > hi else lo
    return Fraction(n) / Fraction(2) ** t.frac, overflowed


def ref_value(v: Fraction | int | float, t: FixedType) -> Fraction:
    return ref_cast(v, t)[0]


def fr(x: float) -> Fraction:
    return Fraction(float(x))


def fr_array(x: np.ndarray) -> np.ndarray:
    """float64 array -> object array of exact Fractions."""
    out = np.empty(np.shape(x), dtype=object)
    for idx, v in np.ndenumerate(np.asarray(x, dtype=np.float64)):
        out[idx] = Fraction(float(v))
    return out


def cast_array(x: np.ndarray, t: FixedType) -> tuple[np.ndarray, int]:
    """Element-wise ``ref_cast`` of an object array; returns (Fractions, overflow count)."""
    out = np.empty(x.shape, dtype=object)
    count = 0
    for idx, v in np.ndenumerate(x):
        out[idx], over = ref_cast(v, t)
        count += over
    return out, count


def to_float(x: np.ndarray) -> np.ndarray:
    out = np.empty(np.shape(x), dtype=np.float64)
    for idx, v in np.ndenumerate(x):
        f = float(v)
        assert Fraction(f) == v, f"reference value {v} is not a float64"
        out[idx] = f
    return out


def assert_bits(actual: np.ndarray, expected: np.ndarray) -> None:
    """Bit-for-bit equality of emulator output and Fraction reference."""
    exp = to_float(expected)
    assert actual.shape == exp.shape, (actual.shape, exp.shape)
    bad = np.argwhere(actual != exp)
    if bad.size:
        idx = tuple(bad[0])
        raise AssertionError(
            f"{len(bad)} of {actual.size} values differ; first at {idx}: emulator "
            f"{actual[idx]!r}, reference {exp[idx]!r}"
        )


# ------------------------------------------------------------------- random data
def random_on_grid(
    rng: np.random.Generator, t: FixedType, shape: Sequence[int] | int
) -> np.ndarray:
    """Values of ``t`` with mantissas uniform over the whole range (extremes included)."""
    lo = -(2 ** (t.width - 1)) if t.signed else 0
    hi = 2 ** (t.width - 1) - 1 if t.signed else 2**t.width - 1
    m = rng.integers(lo, hi, size=shape, endpoint=True)
    flat = m.reshape(-1)
    if flat.size >= 4:  # always include both extremes and zero
        flat[0], flat[1], flat[2] = lo, hi, 0
    return np.ldexp(m.astype(np.float64), -t.frac)


# ------------------------------------------------------------------ graph building
def single_op_graph(
    op: str,
    in_shapes: Sequence[tuple[int, ...]],
    in_types: Sequence[FixedType | str],
    out_type: FixedType | str,
    attrs: dict[str, Any] | None = None,
    weights: dict[str, np.ndarray] | None = None,
    precision: dict[str, FixedType | str] | None = None,
) -> Graph:
    """Input(s) -> one ``op`` node named ``op``, with explicit types, shapes inferred."""
    g = Graph("t")
    names = []
    for i, (shape, t) in enumerate(zip(in_shapes, in_types, strict=True)):
        name = f"in{i}"
        g.add_node(Node(name, "Input", [], attrs={"shape": tuple(shape)}), tuple(shape), fixed(t))
        names.append(name)
    g.add_node(
        Node(
            "op",
            op,
            names,
            attrs=dict(attrs or {}),
            weights={k: np.asarray(v, dtype=np.float64) for k, v in (weights or {}).items()},
            precision={k: fixed(v) for k, v in (precision or {}).items()},
        ),
        (1,),
        fixed(out_type),
    )
    g.outputs = ["op"]
    infer_shapes(g)
    return g


def run(graph: Graph, *xs: np.ndarray) -> EmulationResult:
    return Emulator(graph).run(list(xs) if len(xs) > 1 else xs[0])


def elementwise(fn: Callable[..., Any], *arrays: np.ndarray) -> np.ndarray:
    """Apply ``fn`` to matching elements of same-shaped object arrays."""
    out = np.empty(arrays[0].shape, dtype=object)
    for idx in np.ndindex(arrays[0].shape):
        out[idx] = fn(*(a[idx] for a in arrays))
    return out


def ref_accumulate(
    pairs: Sequence[tuple[Fraction, Fraction]], bias: Fraction, acc: FixedType
) -> tuple[Fraction, bool]:
    """A literal accumulator loop: each product cast to ``acc``, every addition wrapped.

    Returns the accumulator value and whether the exact sum of the rounded products
    and the cast bias lies outside ``acc`` (the wrap changed the result).
    """
    value = Fraction(0)
    exact = 0
    for x, w in pairs:
        p = Fraction(x) * Fraction(w)
        value = ref_value(value + ref_value(p, acc), acc)
        exact += ref_round(p, acc.frac, acc.rounding)
    b = ref_value(bias, acc)
    value = ref_value(value + b, acc)
    exact += ref_round(b, acc.frac, acc.rounding)
    lo = -(2 ** (acc.width - 1)) if acc.signed else 0
    hi = 2 ** (acc.width - 1) - 1 if acc.signed else 2**acc.width - 1
    return value, not lo <= exact <= hi
