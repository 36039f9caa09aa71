"""FixedType against an exact reference written here with Fraction and Python ints.

The reference (``ref_cast``) scales the exact value of the float by 2**F, rounds
it with the quantization mode, then applies the overflow mode to the rounded
integer mantissa. It shares no code with ``nnfab.ir.types``.
"""

from __future__ import annotations

import functools
import itertools
import math
import sys
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnfab.ir.types import FixedType, Overflow, Rounding, fixed

ROUNDINGS = (
    "AP_TRN",
    "AP_TRN_ZERO",
    "AP_RND",
    "AP_RND_ZERO",
    "AP_RND_MIN_INF",
    "AP_RND_INF",
    "AP_RND_CONV",
)
OVERFLOWS = ("AP_WRAP", "AP_SAT", "AP_SAT_ZERO", "AP_SAT_SYM")
MODES = list(itertools.product(ROUNDINGS, OVERFLOWS))
HALF = Fraction(1, 2)

SPECIAL_FLOATS = (
    0.0,
    -0.0,
    1e300,
    -1e300,
    1e-300,
    -1e-300,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    sys.float_info.max,
    -sys.float_info.max,
    1.0,
    -1.0,
    0.5,
    -0.5,
)


# ------------------------------------------------------------------ reference
def mantissa_range(width: int, signed: bool) -> tuple[int, int]:
    if signed:
        return -(2 ** (width - 1)), 2 ** (width - 1) - 1
    return 0, 2**width - 1


def ref_round(num: int, den: int, mode: str) -> int:
    """Round the exact value num/den (den > 0) to an integer with a quantization mode."""
    below = num // den  # floor
    twice_rest = 2 * (num - below * den)  # 2 * (v - floor(v)) * den, in [0, 2 * den)
    if mode == "AP_TRN":
        return below
    if mode == "AP_TRN_ZERO":
        return below + 1 if num < 0 and twice_rest else below
    if twice_rest < den:
        return below
    if twice_rest > den:
        return below + 1
    # exactly halfway between below and below + 1
    if mode == "AP_RND":
        return below + 1
    if mode == "AP_RND_ZERO":
        return below + 1 if num < 0 else below
    if mode == "AP_RND_MIN_INF":
        return below
    if mode == "AP_RND_INF":
        return below if num < 0 else below + 1
    if mode == "AP_RND_CONV":
        return below if below % 2 == 0 else below + 1
    raise AssertionError(mode)


def ref_round_fraction(v: Fraction, mode: str) -> int:
    """The same rounding written a second way, on Fractions (checks ref_round itself)."""
    nearest = [math.floor(v), math.ceil(v)]
    if mode == "AP_TRN":
        return nearest[0]
    if mode == "AP_TRN_ZERO":
        return math.trunc(v)
    distance = [abs(v - n) for n in nearest]
    if distance[0] != distance[1] or nearest[0] == nearest[1]:
        return nearest[0] if distance[0] < distance[1] else nearest[1]
    choose = {
        "AP_RND": max,
        "AP_RND_MIN_INF": min,
        "AP_RND_ZERO": lambda a, b: a if abs(a) < abs(b) else b,
        "AP_RND_INF": lambda a, b: a if abs(a) > abs(b) else b,
        "AP_RND_CONV": lambda a, b: a if a % 2 == 0 else b,
    }[mode]
    return choose(*nearest)


def ref_overflow(n: int, width: int, signed: bool, mode: str) -> tuple[int, bool]:
    """Apply an overflow mode to an integer mantissa; also say whether it overflowed."""
    lo, hi = mantissa_range(width, signed)
    if mode == "AP_SAT_SYM" and signed and width > 1:
        lo = -hi  # the most negative mantissa also maps to -max (1 bit: -1 stays, as vendor)
    if lo <= n <= hi:
        return n, False
    if mode == "AP_WRAP":
        m = n % (2**width)
        if signed and m >= 2 ** (width - 1):
            m -= 2**width
        return m, True
    if mode == "AP_SAT_ZERO":
        return 0, True
    return (hi if n > hi else lo), True  # AP_SAT, AP_SAT_SYM


def ref_cast(
    x: float, width: int, integer: int, signed: bool, rounding: str, overflow: str
) -> tuple[int, bool]:
    """Exact mantissa of float x cast to the type, and the overflow flag."""
    num, den = float(x).as_integer_ratio()  # x exactly; den is a power of two
    frac_bits = width - integer  # scale by 2**frac_bits
    if frac_bits >= 0:
        num <<= frac_bits
    else:
        den <<= -frac_bits
    return ref_overflow(ref_round(num, den, rounding), width, signed, overflow)


def ref_value(m: int, width: int, integer: int) -> float:
    """m * 2**(I - W) as float64: exact up to 53 bits, else rounded toward zero."""
    f = float(m)
    if abs(f) > abs(m):  # float/int comparison is exact in Python
        f = math.nextafter(f, 0.0)
    return math.ldexp(f, integer - width)


def float_toward_zero(value: Fraction) -> float:
    """The float64 nearest to value in the direction of zero."""
    f = float(value)
    if abs(Fraction(f)) > abs(value):
        f = math.nextafter(f, 0.0)
    return f


def make(width: int, integer: int, signed: bool, rounding: str, overflow: str) -> FixedType:
    return FixedType(width, integer, signed, Rounding(rounding), Overflow(overflow))


def describe(t: FixedType, x: float) -> str:
    return f"{t} (signed={t.signed}) x={x!r} ({float(x).hex()})"


def check_cast(
    width: int, integer: int, signed: bool, rounding: str, overflow: str, xs: list[float]
) -> None:
    """Every public cast entry point agrees with the reference on the values xs."""
    t = make(width, integer, signed, rounding, overflow)
    arr = np.array(xs, dtype=np.float64)
    expected = [ref_cast(x, width, integer, signed, rounding, overflow) for x in xs]

    values, flags = t.quantize_and_flag(arr)
    quantized = t.quantize(arr)
    counted, count = t.quantize_and_count(arr)
    mantissas = t.to_mantissa(arr)
    assert values.shape == arr.shape and flags.shape == arr.shape
    assert mantissas.shape == arr.shape
    assert values.dtype == np.float64
    if width <= 63:
        assert mantissas.dtype == np.int64

    got_m = [int(v) for v in mantissas.tolist()]
    got_v = values.tolist()
    got_f = flags.tolist()
    errors = []
    for x, (m, over), gm, gv, gf in zip(xs, expected, got_m, got_v, got_f, strict=True):
        want = ref_value(m, width, integer)
        if gm != m:
            errors.append(f"{describe(t, x)}: mantissa {gm}, expected {m}")
        if gv != want or math.copysign(1.0, gv) != math.copysign(1.0, want):
            # want is never -0.0: fixed point has no negative zero
            errors.append(f"{describe(t, x)}: value {gv!r}, expected {want!r}")
        if gf != over:
            errors.append(f"{describe(t, x)}: overflow flag {gf}, expected {over}")
    assert not errors, "\n".join(errors[:10]) + f"\n({len(errors)} mismatches)"
    np.testing.assert_array_equal(quantized, values)
    np.testing.assert_array_equal(counted, values)
    assert count == sum(over for _, over in expected)

    # a batch where nothing overflows may take a different (faster) path: check it too
    fits = [i for i, (_, over) in enumerate(expected) if not over]
    if fits and len(fits) < len(xs):
        part = arr[fits]
        want = [ref_value(expected[i][0], width, integer) for i in fits]
        values, flags = t.quantize_and_flag(part)
        assert values.tolist() == want and not flags.any(), f"{t} on {part.tolist()}"
        assert not (np.signbit(values) & (values == 0)).any()  # no -0.0
        counted, count = t.quantize_and_count(part)
        assert counted.tolist() == want and count == 0
        assert t.quantize(part).tolist() == want
        assert [int(m) for m in t.to_mantissa(part).tolist()] == [expected[i][0] for i in fits]


@settings(max_examples=300, deadline=None)
@given(
    num=st.integers(-(2**70), 2**70),
    shift=st.integers(0, 8),
    mode=st.sampled_from(ROUNDINGS),
)
def test_reference_rounding_agrees_with_fraction_rounding(num: int, shift: int, mode: str) -> None:
    """The two reference roundings written here agree (the reference is not the code)."""
    assert ref_round(num, 2**shift, mode) == ref_round_fraction(Fraction(num, 2**shift), mode)


def test_reference_spot_values() -> None:
    """A few hand-computed casts, so the reference itself is pinned down."""
    # ap_fixed<4,2>: lsb 0.25, range [-2, 1.75]
    assert ref_cast(0.375, 4, 2, True, "AP_TRN", "AP_WRAP") == (1, False)
    assert ref_cast(0.375, 4, 2, True, "AP_RND", "AP_WRAP") == (2, False)
    assert ref_cast(-0.375, 4, 2, True, "AP_RND", "AP_WRAP") == (-1, False)
    assert ref_cast(-0.375, 4, 2, True, "AP_RND_ZERO", "AP_WRAP") == (-1, False)
    assert ref_cast(-0.375, 4, 2, True, "AP_RND_INF", "AP_WRAP") == (-2, False)
    assert ref_cast(-0.375, 4, 2, True, "AP_RND_MIN_INF", "AP_WRAP") == (-2, False)
    assert ref_cast(-0.375, 4, 2, True, "AP_RND_CONV", "AP_WRAP") == (-2, False)
    assert ref_cast(-0.125, 4, 2, True, "AP_RND_CONV", "AP_WRAP") == (0, False)
    assert ref_cast(-0.1, 4, 2, True, "AP_TRN_ZERO", "AP_WRAP") == (0, False)
    assert ref_cast(-0.1, 4, 2, True, "AP_TRN", "AP_WRAP") == (-1, False)
    assert ref_cast(2.0, 4, 2, True, "AP_TRN", "AP_WRAP") == (-8, True)
    assert ref_cast(2.0, 4, 2, True, "AP_TRN", "AP_SAT") == (7, True)
    assert ref_cast(-2.0, 4, 2, True, "AP_TRN", "AP_SAT_SYM") == (-7, True)
    assert ref_cast(-2.0, 4, 2, True, "AP_TRN", "AP_SAT") == (-8, False)
    assert ref_cast(-2.5, 4, 2, False, "AP_TRN", "AP_SAT_SYM") == (0, True)
    assert ref_cast(5.0, 4, 2, False, "AP_TRN", "AP_WRAP") == (4, True)  # 20 mod 16
    assert ref_cast(40.0, 3, 5, True, "AP_RND", "AP_SAT_ZERO") == (0, True)
    assert ref_value(2**64 - 1, 64, 64) == float(2**64 - 2**11)


# ----------------------------------------------------------------- strategies
def nudge(x: float, steps: int) -> float:
    """Move x by |steps| floats up (steps > 0) or down (steps < 0)."""
    for _ in range(abs(steps)):
        x = math.nextafter(x, math.inf if steps > 0 else -math.inf)
    return x


@functools.cache
def edge_points(width: int, integer: int, signed: bool) -> tuple[float, ...]:
    """Ties and range edges of a type, each with its float neighbours."""
    lo, hi = mantissa_range(width, signed)
    scale = Fraction(2) ** (integer - width)
    anchors = {lo - 2, lo - 1, lo, lo + 1, -2, -1, 0, 1, 2, hi - 1, hi, hi + 1, hi + 2}
    anchors |= {2 ** (width + 3), -(2 ** (width + 3)), 2 ** (width + 60), -(2 ** (width + 60))}
    points: list[float] = []
    for k in sorted(anchors):
        for offset in (0, HALF, -HALF, Fraction(1, 4), Fraction(3, 4)):
            x = float((k + offset) * scale)
            points.extend(nudge(x, s) for s in (-1, 0, 1))
    return tuple(points)


@st.composite
def fixed_params(draw: st.DrawFn, min_width: int = 1, max_width: int = 64) -> tuple[int, int, bool]:
    favourites = [w for w in (1, 2, 8, 16, 52, 53, 54, 63, 64) if min_width <= w <= max_width]
    width = draw(st.one_of(st.sampled_from(favourites), st.integers(min_width, max_width)))
    lowest, highest = max(-40, width - 512), min(width + 40, 512)  # |I|, |W - I| <= 512
    choices = [st.just(0), st.integers(1, width)]
    if lowest < 0:
        choices.append(st.integers(lowest, -1))
    if highest > width:
        choices.append(st.integers(width + 1, highest))
    integer = draw(st.one_of(choices))
    return width, integer, draw(st.booleans())


@st.composite
def cast_inputs(draw: st.DrawFn, width: int, integer: int, signed: bool) -> float:
    """Floats at and around ties and range edges, plus random and extreme floats."""
    lo, hi = mantissa_range(width, signed)
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.floats(allow_nan=False, allow_infinity=False))
    if kind == 1:
        return draw(st.sampled_from(SPECIAL_FLOATS))
    anchor = draw(
        st.one_of(
            st.sampled_from([lo - 1, lo, lo + 1, -1, 0, 1, hi - 1, hi, hi + 1]),
            st.integers(lo - 4, hi + 4),
            st.integers(-(2 ** (width + 70)), 2 ** (width + 70)),
        )
    )
    offset = draw(st.sampled_from([0, HALF, -HALF, Fraction(1, 4), Fraction(3, 4)]))
    x = float((anchor + offset) * Fraction(2) ** (integer - width))
    return nudge(x, draw(st.integers(-2, 2)))


@st.composite
def cast_cases(
    draw: st.DrawFn, min_width: int = 1, max_width: int = 64
) -> tuple[int, int, bool, list[float]]:
    width, integer, signed = draw(fixed_params(min_width, max_width))
    xs = draw(st.lists(cast_inputs(width, integer, signed), min_size=1, max_size=24))
    return width, integer, signed, xs


# ---------------------------------------------------------------- cast tests
@pytest.mark.parametrize(("rounding", "overflow"), MODES)
@settings(max_examples=25, deadline=None)
@given(case=cast_cases())
def test_cast_matches_reference(rounding: str, overflow: str, case: tuple) -> None:
    width, integer, signed, xs = case
    check_cast(width, integer, signed, rounding, overflow, xs)


@settings(max_examples=300, deadline=None)
@given(
    case=cast_cases(),
    rounding=st.sampled_from(ROUNDINGS),
    overflow=st.sampled_from(OVERFLOWS),
)
def test_cast_matches_reference_any_mode(rounding: str, overflow: str, case: tuple) -> None:
    width, integer, signed, xs = case
    check_cast(width, integer, signed, rounding, overflow, xs)


@settings(max_examples=200, deadline=None)
@given(
    case=cast_cases(min_width=54, max_width=64),
    rounding=st.sampled_from(ROUNDINGS),
    overflow=st.sampled_from(OVERFLOWS),
)
def test_wide_types_exact_mantissa(rounding: str, overflow: str, case: tuple) -> None:
    width, integer, signed, xs = case
    check_cast(width, integer, signed, rounding, overflow, xs)


EDGE_TYPES = [
    (w, i, s) for w in (1, 2, 8, 53, 54, 64) for i in (-7, 1, w, w + 9) for s in (True, False)
]


@pytest.mark.parametrize(("rounding", "overflow"), MODES)
def test_cast_edges_grid(rounding: str, overflow: str) -> None:
    """Every tie and range edge of a fixed grid of types, deterministically."""
    for width, integer, signed in EDGE_TYPES:
        xs = [*edge_points(width, integer, signed), *SPECIAL_FLOATS]
        check_cast(width, integer, signed, rounding, overflow, xs)


@pytest.mark.parametrize(("rounding", "overflow"), MODES)
def test_cast_small_types_exhaustive(rounding: str, overflow: str) -> None:
    """Widths 1..4: every quarter-lsb point over the range and beyond, and neighbours."""
    for width in range(1, 5):
        for integer, signed in itertools.product((-2, 0, 1, width, width + 2), (True, False)):
            lo, hi = mantissa_range(width, signed)
            scale = Fraction(2) ** (integer - width)
            grid = [float(Fraction(j, 4) * scale) for j in range(4 * (lo - 3), 4 * (hi + 4))]
            xs = [nudge(x, s) for x in grid for s in (-1, 0, 1)]
            check_cast(width, integer, signed, rounding, overflow, xs)


def test_negative_just_above_tie() -> None:
    """-0.5 lsb + 1 ulp is closer to 0 than to -1 in every round-to-nearest mode."""
    x = math.nextafter(-0.5, 0.0)
    for rounding in ROUNDINGS[2:]:
        t = make(8, 8, True, rounding, "AP_WRAP")
        assert int(t.to_mantissa(x)) == 0, rounding
        assert float(t.quantize(x)) == 0.0, rounding
    # scaled to a fractional type: same point in lsb units
    t = make(8, 2, True, "AP_RND_MIN_INF", "AP_WRAP")
    assert float(t.quantize(math.nextafter(-(2.0**-7), 0.0))) == 0.0


@pytest.mark.parametrize(("rounding", "overflow"), MODES)
@pytest.mark.parametrize("width", [8, 53, 60, 64])
def test_scalar_input(rounding: str, overflow: str, width: int) -> None:
    t = make(width, 3, True, rounding, overflow)
    for x in (-3.30078125, 2.5 * 2.0 ** (3 - width), 1e300, -0.0):
        m, over = ref_cast(x, width, 3, True, rounding, overflow)
        q = t.quantize(x)
        assert np.ndim(q) == 0
        assert int(t.to_mantissa(x)) == m
        assert t.quantize_and_count(x)[1] == int(over)
        exact = m * Fraction(2) ** (3 - width)
        assert Fraction(float(q)) == (exact if width <= 53 else Fraction(float_toward_zero(exact)))


def test_multidimensional_arrays_keep_shape() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(scale=20.0, size=(3, 4, 5))
    for width in (12, 60):
        t = make(width, 4, True, "AP_RND_CONV", "AP_SAT")
        values, flags = t.quantize_and_flag(x)
        assert values.shape == flags.shape == t.to_mantissa(x).shape == x.shape
        flat = [ref_cast(float(v), width, 4, True, "AP_RND_CONV", "AP_SAT") for v in x.ravel()]
        assert [int(m) for m in t.to_mantissa(x).ravel()] == [m for m, _ in flat]
        assert flags.ravel().tolist() == [over for _, over in flat]


def test_to_mantissa_dtype() -> None:
    x = np.array([1.5, -2.25])
    assert FixedType(53, 10).to_mantissa(x).dtype == np.int64
    assert FixedType(63, 10).to_mantissa(x).dtype == np.int64
    wide = FixedType(64, 10, rounding=Rounding.RND).to_mantissa(x)
    assert [int(v) for v in wide] == [3 * 2**53, -9 * 2**52]
    assert all(type(v) is int for v in wide)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_input_rejected(bad: float) -> None:
    t = FixedType(8, 3)
    with pytest.raises(ValueError, match="non-finite"):
        t.quantize(np.array([1.0, bad]))
    with pytest.raises(ValueError, match="non-finite"):
        t.to_mantissa(bad)


def test_count_on_known_values() -> None:
    t = fixed("ap_fixed<4,2,AP_TRN,AP_SAT>")  # range [-2, 1.75], lsb 0.25
    values, count = t.quantize_and_count(np.array([-3.0, -2.0, 1.75, 1.8, 2.0, 0.1, 100.0]))
    assert values.tolist() == [-2.0, -2.0, 1.75, 1.75, 1.75, 0.0, 1.75]
    assert count == 3  # -3.0, 2.0 and 100.0; 1.8 truncates to 1.75 first
    sym = t.replace(overflow=Overflow.SAT_SYM)
    values, count = sym.quantize_and_count(np.array([-2.0, -1.75, -9.0]))
    assert values.tolist() == [-1.75, -1.75, -1.75]
    assert count == 2


# ---------------------------------------------------------------- attributes
@settings(max_examples=300, deadline=None)
@given(
    params=fixed_params(),
    rounding=st.sampled_from(ROUNDINGS),
    overflow=st.sampled_from(OVERFLOWS),
)
def test_attributes(params: tuple[int, int, bool], rounding: str, overflow: str) -> None:
    width, integer, signed = params
    t = make(width, integer, signed, rounding, overflow)
    lo, hi = mantissa_range(width, signed)
    scale = Fraction(2) ** (integer - width)
    assert (t.width, t.integer, t.signed) == (width, integer, signed)
    assert t.rounding == rounding and t.overflow == overflow
    assert t.frac == width - integer
    assert Fraction(t.lsb) == scale
    assert Fraction(t.min) == lo * scale
    if width <= 53:
        assert Fraction(t.max) == hi * scale
    else:
        assert Fraction(t.max) == Fraction(float_toward_zero(hi * scale))
    assert t.is_integer == (integer >= width)
    # the extremes are fixed points of a saturating cast
    sat = t.replace(overflow=Overflow.SAT)
    assert float(sat.quantize(t.min)) == t.min
    assert float(sat.quantize(t.max)) == t.max


def test_defaults_and_equality() -> None:
    t = FixedType(16, 6)
    assert t.signed is True
    assert t.rounding is Rounding.TRN and t.overflow is Overflow.WRAP
    assert t == FixedType(16, 6, True, Rounding.TRN, Overflow.WRAP)
    assert t != FixedType(16, 6, False)
    assert len({t, FixedType(16, 6), FixedType(16, 7)}) == 2
    assert FixedType(np.int64(16), np.int32(6)) == t
    assert t.replace(width=20) == FixedType(20, 6)
    assert FixedType.parse(t) is t
    assert FixedType(8, 3, rounding="AP_RND").rounding is Rounding.RND  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("width", "integer"), [(0, 0), (-1, 0), (513, 3), (16, 600), (16, -600), (8.0, 3), (8, 2.5)]
)
def test_constructor_rejects(width: object, integer: object) -> None:
    with pytest.raises(ValueError):
        FixedType(width, integer)  # type: ignore[arg-type]


# ------------------------------------------------------------------- parsing
TRN, WRAP = "AP_TRN", "AP_WRAP"
SPELLINGS = [
    # text, (width, integer, signed, rounding, overflow), canonical text
    ("ap_fixed<16,6>", (16, 6, True, TRN, WRAP), "ap_fixed<16,6>"),
    ("ap_fixed<16,6,AP_RND>", (16, 6, True, "AP_RND", WRAP), "ap_fixed<16,6,AP_RND>"),
    ("ap_fixed<16,6,AP_TRN>", (16, 6, True, TRN, WRAP), "ap_fixed<16,6>"),
    (
        "ap_fixed<16,6,AP_RND_CONV,AP_SAT>",
        (16, 6, True, "AP_RND_CONV", "AP_SAT"),
        "ap_fixed<16,6,AP_RND_CONV,AP_SAT>",
    ),
    ("ap_fixed<16,6,AP_TRN,AP_WRAP>", (16, 6, True, TRN, WRAP), "ap_fixed<16,6>"),
    ("ap_fixed<16,6,AP_TRN,AP_WRAP,0>", (16, 6, True, TRN, WRAP), "ap_fixed<16,6>"),
    (
        "ap_fixed<10,4,AP_RND_INF,AP_SAT_SYM,0>",
        (10, 4, True, "AP_RND_INF", "AP_SAT_SYM"),
        "ap_fixed<10,4,AP_RND_INF,AP_SAT_SYM>",
    ),
    (
        "ap_fixed<16,6,AP_TRN,AP_SAT>",
        (16, 6, True, TRN, "AP_SAT"),
        "ap_fixed<16,6,AP_TRN,AP_SAT>",
    ),
    (
        "ap_ufixed<8,0,AP_RND,AP_SAT>",
        (8, 0, False, "AP_RND", "AP_SAT"),
        "ap_ufixed<8,0,AP_RND,AP_SAT>",
    ),
    ("ap_ufixed<8,3>", (8, 3, False, TRN, WRAP), "ap_ufixed<8,3>"),
    ("ap_int<8>", (8, 8, True, TRN, WRAP), "ap_int<8>"),
    ("ap_uint<4>", (4, 4, False, TRN, WRAP), "ap_uint<4>"),
    ("ap_uint<64>", (64, 64, False, TRN, WRAP), "ap_uint<64>"),
    ("fixed<16,6>", (16, 6, True, TRN, WRAP), "ap_fixed<16,6>"),
    ("fixed<8,8>", (8, 8, True, TRN, WRAP), "ap_int<8>"),
    ("ufixed<8,8>", (8, 8, False, TRN, WRAP), "ap_uint<8>"),
    ("fixed<8,8,AP_RND>", (8, 8, True, "AP_RND", WRAP), "ap_fixed<8,8,AP_RND>"),
    (
        "ufixed<5,-2,RND_ZERO,SAT_ZERO>",
        (5, -2, False, "AP_RND_ZERO", "AP_SAT_ZERO"),
        "ap_ufixed<5,-2,AP_RND_ZERO,AP_SAT_ZERO>",
    ),
    ("int<7>", (7, 7, True, TRN, WRAP), "ap_int<7>"),
    ("uint<1>", (1, 1, False, TRN, WRAP), "ap_uint<1>"),
    ("ap_fixed<16,6,RND,SAT>", (16, 6, True, "AP_RND", "AP_SAT"), "ap_fixed<16,6,AP_RND,AP_SAT>"),
    (
        "ap_fixed<12,3,rnd_min_inf,sat_sym>",
        (12, 3, True, "AP_RND_MIN_INF", "AP_SAT_SYM"),
        "ap_fixed<12,3,AP_RND_MIN_INF,AP_SAT_SYM>",
    ),
    (
        "  ap_fixed < 16 , 6 , AP_RND , AP_SAT >  ",
        (16, 6, True, "AP_RND", "AP_SAT"),
        "ap_fixed<16,6,AP_RND,AP_SAT>",
    ),
    ("ap_fixed<8,12>", (8, 12, True, TRN, WRAP), "ap_fixed<8,12>"),
    ("ap_fixed<8,-3>", (8, -3, True, TRN, WRAP), "ap_fixed<8,-3>"),
    ("ap_fixed<1,1>", (1, 1, True, TRN, WRAP), "ap_int<1>"),
    ("ap_fixed<64,0,TRN_ZERO>", (64, 0, True, "AP_TRN_ZERO", WRAP), "ap_fixed<64,0,AP_TRN_ZERO>"),
]


@pytest.mark.parametrize(("text", "fields", "canonical"), SPELLINGS)
def test_parse_spellings(text: str, fields: tuple, canonical: str) -> None:
    t = FixedType.parse(text)
    width, integer, signed, rounding, overflow = fields
    assert (t.width, t.integer, t.signed) == (width, integer, signed)
    assert t.rounding.value == rounding and t.overflow.value == overflow
    assert isinstance(t.rounding, Rounding) and isinstance(t.overflow, Overflow)
    assert str(t) == canonical
    assert FixedType.parse(canonical) == t
    assert fixed(text) == t


@settings(max_examples=300, deadline=None)
@given(
    params=fixed_params(max_width=512),
    rounding=st.sampled_from(ROUNDINGS),
    overflow=st.sampled_from(OVERFLOWS),
)
def test_str_parse_round_trip(params: tuple[int, int, bool], rounding: str, overflow: str) -> None:
    width, integer, signed = params
    t = make(width, integer, signed, rounding, overflow)
    text = str(t)
    assert FixedType.parse(text) == t
    assert str(FixedType.parse(text)) == text
    # the canonical text is what an HLS compiler expects: prefix and argument count
    kind = "ap_" + ("" if signed else "u")
    if integer == width and rounding == TRN and overflow == WRAP:
        assert text == f"{kind}int<{width}>"
    else:
        assert text.startswith(f"{kind}fixed<{width},{integer}")
        # a written overflow mode needs the rounding mode before it
        assert (overflow in text) == (overflow != WRAP)
        assert (rounding in text) == (rounding != TRN or overflow != WRAP)


@settings(max_examples=300, deadline=None)
@given(
    params=fixed_params(),
    rounding=st.sampled_from(ROUNDINGS),
    overflow=st.sampled_from(OVERFLOWS),
    prefix=st.sampled_from(["ap_", ""]),
    ap_modes=st.booleans(),
    trailing_n=st.booleans(),
    space=st.sampled_from(["", " ", "  "]),
)
def test_parse_generated_spellings(
    params: tuple[int, int, bool],
    rounding: str,
    overflow: str,
    prefix: str,
    ap_modes: bool,
    trailing_n: bool,
    space: str,
) -> None:
    width, integer, signed = params
    q = rounding if ap_modes else rounding.removeprefix("AP_")
    o = overflow if ap_modes else overflow.removeprefix("AP_")
    args = [str(width), str(integer), q, o] + (["0"] if trailing_n else [])
    kind = "fixed" if signed else "ufixed"
    text = f"{space}{prefix}{kind}{space}<{space}{(space + ',' + space).join(args)}{space}>{space}"
    assert FixedType.parse(text) == make(width, integer, signed, rounding, overflow)


BAD_SPECS = [
    "ap_fixed<16>",
    "ap_fixed<>",
    "ap_fixed<16,>",
    "ap_fixed<,6>",
    "ap_fixed<16,6,AP_FOO>",
    "ap_fixed<16,6,AP_RND,AP_BAR>",
    "ap_fixed<16,6,AP_SAT>",  # an overflow mode where the rounding mode goes
    "ap_fixed<16,6,AP_RND,AP_TRN>",  # a rounding mode where the overflow mode goes
    "ap_fixed<16,6,,AP_SAT>",
    "ap_fixed<0,0>",
    "ap_fixed<-4,2>",
    "ap_fixed<600,2>",
    "ap_fixed<16,600>",
    "ap_int<0>",
    "ap_uint<-1>",
    "ap_int<8,3>",
    "ap_int<>",
    "ap_fixed<16,6,AP_RND,AP_SAT,3>",
    "ap_fixed<16,6,AP_RND,AP_SAT,x>",
    "ap_fixed<16,6,AP_RND,AP_SAT,0,1>",
    "ap_fixed<16.0,6>",
    "ap_fixed<1_6,6>",
    "ap_fixed<16,6",
    "ap_fixed16,6>",
    "ap_fixed<16,6>x",
    "ap_fixed<ap_fixed<16,6>>",
    "float<16,6>",
    "ap_fixed(16,6)",
    "garbage",
    "",
    "   ",
]


@pytest.mark.parametrize("spec", BAD_SPECS)
def test_parse_rejects(spec: str) -> None:
    with pytest.raises(ValueError) as info:
        FixedType.parse(spec)
    message = str(info.value)
    assert repr(spec) in message
    assert "fixed<W,I" in message and "int<W>" in message  # the grammar is shown
    assert "AP_RND_CONV" in message and "AP_SAT_SYM" in message


@pytest.mark.parametrize("spec", [None, 16, 16.0, ("ap_fixed", 16, 6)])
def test_parse_rejects_non_strings(spec: object) -> None:
    with pytest.raises(ValueError, match="fixed<W,I"):
        FixedType.parse(spec)  # type: ignore[arg-type]


# ---------------------------------------------------------------- holds (lossless casts)
@settings(max_examples=300, deadline=None)
@given(
    outer=st.tuples(st.integers(1, 12), st.integers(-4, 8), st.booleans(),
                    st.sampled_from(["AP_WRAP", "AP_SAT", "AP_SAT_SYM"])),
    inner=st.tuples(st.integers(1, 12), st.integers(-4, 8), st.booleans()),
)
def test_holds_means_every_value_survives_the_cast(outer: tuple, inner: tuple) -> None:
    """``outer.holds(inner)`` iff casting every value of ``inner`` to ``outer`` is lossless."""
    w, i, s, ovf = outer
    target = FixedType(w, i, s, "AP_TRN", ovf)
    source = FixedType(*inner)
    step = Fraction(2) ** -source.frac
    values = [m * step for m in range(source.min_mantissa, source.max_mantissa + 1)]
    lossless = all(
        Fraction(float(target.quantize(float(v)))) == v for v in values
    )
    assert target.holds(source) == lossless


def test_holds_sat_sym_excludes_most_negative() -> None:
    sym = FixedType(8, 3, True, "AP_TRN", "AP_SAT_SYM")
    assert not sym.holds(FixedType(8, 3, True))
    assert sym.holds(FixedType(7, 2, True))
    assert FixedType(8, 3, True).holds(sym)
