"""Every 1- and 2-bit fixed-point type, every rounding and overflow mode, exhaustively.

Tiny types are where the corner cases of the contract meet: a 1-bit signed type has
``max = 0`` so ``AP_SAT_SYM``'s ``-max`` would be 0, while the vendor type keeps its one
negative value, -1. Each type is checked on every multiple of a quarter of its step over
twice its range (every tie and every overflow direction), against the independent
Fraction reference of ``test_types``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nnfab.ir.types import FixedType, Overflow, Rounding

from .test_types import OVERFLOWS, ROUNDINGS, make, ref_cast

TINY = [
    (width, integer, signed)
    for width in (1, 2)
    for integer in range(-2, 4)
    for signed in (True, False)
]


def grid(width: int, integer: int) -> np.ndarray:
    """Every multiple of step/4 in [-2 * 2**I, 2 * 2**I], plus far values."""
    step = 2.0 ** (integer - width)
    span = 2.0 ** (integer + 1)
    n = round(span / (step / 4))
    values = np.arange(-n, n + 1, dtype=np.float64) * (step / 4)
    return np.concatenate([values, [-1e9, 1e9, -0.0]])


@pytest.mark.parametrize(("width", "integer", "signed"), TINY)
def test_every_mode_matches_the_exact_reference(width: int, integer: int, signed: bool) -> None:
    values = grid(width, integer)
    for rounding, overflow in itertools.product(ROUNDINGS, OVERFLOWS):
        t = make(width, integer, signed, rounding, overflow)
        want = [ref_cast(float(x), width, integer, signed, rounding, overflow) for x in values]
        want_m = np.array([m for m, _ in want], dtype=np.int64)
        want_flag = np.array([flag for _, flag in want])
        got_m = t.to_mantissa(values)
        bad = np.flatnonzero(got_m != want_m)
        assert bad.size == 0, (str(t), values[bad[:4]], got_m[bad[:4]], want_m[bad[:4]])
        quantized, flags = t.quantize_and_flag(values)
        np.testing.assert_array_equal(quantized, want_m * 2.0 ** (integer - width), err_msg=str(t))
        np.testing.assert_array_equal(flags, want_flag, err_msg=str(t))


def test_one_bit_signed_symmetric_saturation_keeps_minus_one() -> None:
    """ap_fixed<1,1,AP_TRN,AP_SAT_SYM>: negative overflow saturates to -1, as the vendor's."""
    t = FixedType(1, 1, True, Rounding.TRN, Overflow.SAT_SYM)
    got = t.quantize(np.array([-5.0, -1.0, -0.5, 0.0, 3.0]))
    assert got.tolist() == [-1.0, -1.0, -1.0, 0.0, 0.0]
    assert not t.saturates_symmetric
    two = FixedType(2, 2, True, Rounding.TRN, Overflow.SAT_SYM)  # -2 maps to -max = -1
    assert two.quantize(np.array([-2.0])).tolist() == [-1.0]
