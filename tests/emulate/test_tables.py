"""nnfab.ir.tables: table geometry, entries, exact rational casts, pooling counts, defaults."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from nnfab.errors import ConfigError
from nnfab.ir import FixedType, Overflow, Rounding, fixed
from nnfab.ir.tables import (
    TABLE_DEFAULTS,
    TABLE_TYPE_DEFAULTS,
    activation_table,
    pool_counts,
    quantize_rational,
    reciprocal,
    softmax_exp_table,
    softmax_inv_range,
    softmax_inv_table,
    softmax_sum_type,
)
from tests.emulate.helpers import fr, ref_cast, ref_value


@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("overflow", list(Overflow))
def test_quantize_rational_matches_reference(rounding, overflow):
    rng = np.random.default_rng(len(rounding.value) * 7 + len(overflow.value))
    for signed in (True, False):
        t = FixedType(6, 2, signed, rounding, overflow)
        values = [Fraction(int(n), int(d)) for n, d in zip(rng.integers(-400, 400, 60),
                                                           rng.integers(1, 40, 60), strict=True)]
        values += [Fraction(k, 32) for k in range(-80, 80, 3)]  # ties on the 2**-4 grid
        for q in values:
            value, over = quantize_rational(q, t)
            ref, ref_over = ref_cast(q, t)
            assert (Fraction(value), over) == (ref, ref_over), (str(t), q)


def test_reciprocal():
    t = fixed("ap_ufixed<8,1,AP_RND>")
    assert reciprocal(4, t) == (0.25, False)
    assert reciprocal(3, t) == (float(Fraction(43, 128)), False)  # 128/3 = 42.67 -> 43
    assert reciprocal(1, fixed("ap_ufixed<8,0,AP_TRN,AP_SAT>")) == (255 / 256, True)
    with pytest.raises(ConfigError):
        reciprocal(0, t)


@pytest.mark.parametrize("fn", ["sigmoid", "tanh"])
def test_activation_table_entries_and_index(fn):
    t = fixed("ap_fixed<14,2,AP_RND_CONV,AP_SAT>")
    table = activation_table(fn, {"table_size": 64, "table_range": 2}, t)
    f = (lambda v: 1 / (1 + math.exp(-v))) if fn == "sigmoid" else math.tanh
    step = Fraction(1, 16)
    assert table.size == 64 and table.step == 1 / 16 and table.step_log2 == -4
    assert table.base == 32
    for i in range(64):
        center = -2 + (i + Fraction(1, 2)) * step
        assert Fraction(table.inputs[i]) == center
        assert Fraction(table.values[i]) == ref_value(fr(f(float(center))), t)
    assert table.mantissas().tolist() == [int(v * 2**12) for v in table.values]
    # index: left edges belong to their bin; outside [-R, R) clips
    u = np.array([-2.0, -2 - 1e-9, -2 + 1 / 16, -2 + 1 / 16 - 2**-20, 0.0, -2**-20, 2 - 2**-20,
                  2.0, 100.0, -100.0])
    assert table.index(u).tolist() == [0, 0, 1, 0, 32, 31, 63, 63, 63, 0]


def test_index_from_mantissas_matches_index():
    table = activation_table("tanh", {"table_size": 256, "table_range": 4},
                             fixed("ap_fixed<16,2>"))
    rng = np.random.default_rng(0)
    for frac in (-3, 0, 2, 5, 6, 11, 40):
        m = rng.integers(-(2**20), 2**20, 500)
        # floor(u / step) + base, clipped, with step 1/32
        values = [Fraction(int(v)) * Fraction(2) ** -frac for v in m]
        expected = [min(max(math.floor(u * 32) + 128, 0), 255) for u in values]
        assert table.index_mantissas(m, frac).tolist() == expected
        assert table.index_mantissas(m.astype(object), frac).tolist() == expected
        assert table.index(np.ldexp(m.astype(float), -frac)).tolist() == expected


def test_softmax_tables():
    attrs = {"table_size": 128, "exp_range": 4, "inv_table_size": 64, "inv_range": 8}
    exp_t, inv_t = fixed("ap_ufixed<12,1,AP_RND>"), fixed("ap_ufixed<10,1,AP_RND,AP_SAT>")
    exp = softmax_exp_table(attrs, exp_t)
    inv = softmax_inv_table(attrs, inv_t)
    assert exp.base == 0 and exp.step == 1 / 32 and inv.step == 1 / 8
    for i in range(128):
        assert Fraction(exp.values[i]) == ref_value(fr(math.exp(-i / 32)), exp_t)
    assert exp.values[0] == 1.0
    for j in range(64):
        value, over = ref_cast(1 / ((j + Fraction(1, 2)) / 8), inv_t)
        assert (Fraction(inv.values[j]), bool(inv.overflow[j])) == (value, over)
    assert inv.overflow[:8].any() and not inv.overflow[8:].any()


@pytest.mark.parametrize(("attrs", "key"), [
    ({"table_size": 1000, "table_range": 8}, "table_size"),
    ({"table_size": 1, "table_range": 8}, "table_size"),
    ({"table_size": True, "table_range": 8}, "table_size"),
    ({"table_size": "64", "table_range": 8}, "table_size"),
    ({"table_size": 64, "table_range": -8}, "table_range"),
    ({"table_size": 64, "table_range": float("inf")}, "table_range"),
    ({"table_size": 64, "table_range": 3}, "power of two"),
    ({"table_size": 64}, "table_range"),
])
def test_bad_table_attributes(attrs, key):
    with pytest.raises(ConfigError, match=key):
        activation_table("sigmoid", attrs, fixed("ap_ufixed<16,0>"), layer="act")


def test_only_sigmoid_and_tanh_have_tables():
    with pytest.raises(ConfigError, match="'relu'"):
        activation_table("relu", {"table_size": 8, "table_range": 1}, fixed("ap_fixed<8,2>"))


def test_defaults_build_valid_tables():
    for key, text in TABLE_TYPE_DEFAULTS.items():
        assert fixed(text) is not None, key
    for fn in ("sigmoid", "tanh"):
        table = activation_table(fn, TABLE_DEFAULTS[fn], fixed(TABLE_TYPE_DEFAULTS[fn]))
        assert not table.overflow.any()
    for n in (1, 2, 3, 10, 16, 17, 1000):
        r = softmax_inv_range(n)
        assert r >= n and r >= 2 and (r / 2 < n or r == 2)
        attrs = {**TABLE_DEFAULTS["softmax"], "inv_range": r}
        exp_t = fixed(TABLE_TYPE_DEFAULTS["exp_table"])
        exp = softmax_exp_table(attrs, exp_t)
        assert not exp.overflow.any() and exp.values[0] == 1.0
        softmax_inv_table(attrs, fixed(TABLE_TYPE_DEFAULTS["inv_table"]))
        # the default sum type holds n maximal entries exactly
        sum_t = softmax_sum_type(n, exp_t)
        assert ref_cast(n * Fraction(exp_t.max), sum_t) == (n * Fraction(exp_t.max), False)


def brute_counts(shape, size, strides, pads):
    axes = []
    for ax, (n, k, s) in enumerate(zip(shape, size, strides, strict=True)):
        before, after = pads[2 * ax], pads[2 * ax + 1]
        n_out = (n + before + after - k) // s + 1
        axes.append([sum(1 for p in range(o * s - before, o * s - before + k) if 0 <= p < n)
                     for o in range(n_out)])
    return [math.prod(c) for c in itertools.product(*axes)]


@pytest.mark.parametrize(("shape", "size", "strides", "pads"), [
    ((7,), (3,), (2,), (1, 1)),
    ((5,), (2,), (2,), (0, 1)),
    ((5, 6), (3, 2), (1, 2), (1, 1, 0, 1)),
    ((4, 4), (2, 2), (2, 2), (0, 0, 0, 0)),
])
def test_pool_counts(shape, size, strides, pads):
    counts = pool_counts(shape, size, strides, pads)
    assert counts.reshape(-1).tolist() == brute_counts(shape, size, strides, pads)
