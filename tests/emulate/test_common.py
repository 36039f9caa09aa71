"""The kernels' exact integer arithmetic: casts of wide values vs the Fraction reference."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from nnfab.emulate.kernels.common import (
    Exact,
    add,
    cast,
    clip,
    constant,
    from_values,
    mul,
    round_to,
    sub,
    total,
)
from nnfab.ir import FixedType, Overflow, Rounding, fixed
from tests.emulate.helpers import ref_cast, ref_round


def exact_values(e: Exact) -> list[Fraction]:
    return [Fraction(int(v)) / Fraction(2) ** e.frac for v in np.ravel(e.m)]


@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("overflow", list(Overflow))
@pytest.mark.parametrize("bits", [58, 61, 90])  # int64 path near its limit, Python ints
def test_integer_cast_path(rounding, overflow, bits):
    rng = np.random.default_rng(bits)
    frac = bits - 10
    t = FixedType(12, 6, True, rounding, overflow)
    u = FixedType(9, 3, False, rounding, overflow)
    ms = [int(v) for v in rng.integers(-(2**40), 2**40, 300)]
    ms = [v << (bits - 41) for v in ms] + [v * (1 << (bits - 41)) + (1 << (bits - 47))
                                             for v in ms[:50]]  # ties on the target grids
    ms += [(2 ** (bits - 1)) - 1, -(2 ** (bits - 1)), 0, 1, -1]
    dtype = np.int64 if bits < 62 else object
    e = Exact(np.array(ms, dtype=dtype), frac)
    for target in (t, u):
        values, flags = cast(e, target)
        for v, f, m in zip(values, flags, ms, strict=True):
            ref, ref_over = ref_cast(Fraction(m, 2**frac), target)
            assert (Fraction(float(v)), bool(f)) == (ref, ref_over), (str(target), m)


@pytest.mark.parametrize("rounding", list(Rounding))
def test_round_to(rounding):
    ms = list(range(-40, 41))
    e = Exact(np.array(ms, dtype=np.int64), 3)
    for frac in (0, 1, 3, 5):
        got = round_to(e, frac, rounding)
        assert got.frac == frac
        assert [int(v) for v in got.m] == [ref_round(Fraction(m, 8), frac, rounding) for m in ms]


def test_arithmetic_is_exact_across_widths():
    a = from_values(np.array([1.5, -0.25, 3.0]), fixed("ap_fixed<8,3>"))
    b = from_values(np.array([0.125, 2.0, -1.0]), fixed("ap_fixed<12,4>"))
    assert exact_values(add(a, b)) == [Fraction(13, 8), Fraction(7, 4), Fraction(2)]
    assert exact_values(sub(a, b)) == [Fraction(11, 8), Fraction(-9, 4), Fraction(4)]
    assert exact_values(mul(a, b)) == [Fraction(3, 16), Fraction(-1, 2), Fraction(-3)]
    assert exact_values(total(mul(a, b), axis=0)) == [Fraction(3, 16) - Fraction(7, 2)]
    assert exact_values(clip(a, 0.0, 2.0)) == [Fraction(3, 2), 0, 2]
    big = constant(2.0**-70 + 2.0**-20)
    assert exact_values(big) == [Fraction(1, 2**70) + Fraction(1, 2**20)]
    # products beyond int64 switch to Python ints and stay exact
    p = mul(mul(big, big), big)
    assert exact_values(p) == [(Fraction(1, 2**70) + Fraction(1, 2**20)) ** 3]
