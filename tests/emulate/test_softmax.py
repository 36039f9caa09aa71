"""Softmax: emulator vs the contract's five steps on Fractions."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from nnfab.errors import ConfigError, EmulationError
from nnfab.ir import fixed
from tests.emulate.helpers import (
    assert_bits,
    fr,
    random_on_grid,
    ref_cast,
    ref_value,
    run,
    single_op_graph,
)

EXP_T = "ap_ufixed<12,1,AP_RND_CONV,AP_SAT>"
INV_T = "ap_ufixed<12,1,AP_RND,AP_SAT>"


def ref_softmax(row, attrs, exp_t, sum_t, inv_t, out_t):
    """One row; returns (outputs, exp_sum overflowed, result overflow count)."""
    n_exp, r_exp = attrs["table_size"], Fraction(attrs["exp_range"])
    n_inv, r_inv = attrs["inv_table_size"], Fraction(attrs["inv_range"])
    step_e, step_i = r_exp / n_exp, r_inv / n_inv
    xs = [fr(v) for v in row]
    top = max(xs)
    entries = []
    for v in xs:
        i = min(math.floor((top - v) / step_e), n_exp - 1)
        entries.append(ref_value(fr(math.exp(-float(i * step_e))), exp_t))
    s, sum_over = ref_cast(sum(entries), sum_t)
    j = min(max(math.floor(s / step_i), 0), n_inv - 1)
    inv = ref_value(1 / ((j + Fraction(1, 2)) * step_i), inv_t)
    outs, over = [], 0
    for e in entries:
        y, o = ref_cast(e * inv, out_t)
        outs.append(y)
        over += o
    return outs, sum_over, over


def softmax_case(in_t, shape, attrs, sum_t, out_t, seed=0, x=None):
    rng = np.random.default_rng(seed)
    g = single_op_graph("Softmax", [shape], [in_t], out_t, attrs=attrs,
                        precision={"exp_table": EXP_T, "inv_table": INV_T, "exp_sum": sum_t})
    if x is None:
        x = random_on_grid(rng, fixed(in_t), (20, *shape))
    res = run(g, x)
    rows = x.reshape(-1, shape[-1])
    expected = np.empty(rows.shape, dtype=object)
    sum_over = res_over = 0
    for r, row in enumerate(rows):
        outs, s_over, over = ref_softmax(row, attrs, fixed(EXP_T), fixed(sum_t), fixed(INV_T),
                                         fixed(out_t))
        expected[r] = outs
        sum_over += s_over
        res_over += over
    assert_bits(res.outputs["op"], expected.reshape(x.shape))
    assert res.overflows["op"]["exp_sum"] == sum_over
    assert res.overflows["op"]["result"] == res_over
    return res, sum_over


ATTRS = {"table_size": 256, "exp_range": 8, "inv_table_size": 128, "inv_range": 8}


@pytest.mark.parametrize("in_t", ["ap_fixed<10,4>", "ap_fixed<16,6,AP_RND>", "ap_fixed<6,5>"])
def test_softmax(in_t):
    softmax_case(in_t, (5,), ATTRS, "ap_ufixed<15,4>", "ap_ufixed<10,0,AP_RND,AP_SAT>")


def test_softmax_on_rank3_input_and_signed_result():
    softmax_case("ap_fixed<10,4>", (2, 3, 4), {**ATTRS, "inv_range": 4}, "ap_ufixed<14,3>",
                 "ap_fixed<9,1,AP_RND_CONV>", seed=1)


def test_softmax_ties_and_far_inputs():
    # equal inputs (uniform output), one far below the exp range, exact bin edges
    x = np.array([[1.0, 1.0, 1.0, 1.0, 1.0],
                  [3.0, -15.0, 3.0 - 1 / 32, 3.0 - 1 / 16, -5.0],
                  [0.0, -7.96875, -8.0, -0.03125, 2.0]])
    softmax_case("ap_fixed<10,5>", (5,), ATTRS, "ap_ufixed<15,4>",
                 "ap_ufixed<12,0,AP_RND_CONV,AP_SAT>", x=x)


def test_narrow_sum_wraps_and_is_counted():
    # ap_ufixed<12,2> holds sums below 4: rows with many large entries wrap
    x = np.zeros((3, 5))
    x[1] = [0.0, -4.0, -4.0, -4.0, -4.0]
    x[2] = [0.0, 0.0, 0.0, -0.5, 0.0]
    _, sum_over = softmax_case("ap_fixed<10,4>", (5,), ATTRS, "ap_ufixed<12,2>",
                               "ap_ufixed<10,0,AP_RND,AP_SAT>", x=x)
    assert sum_over == 2


def test_unreachable_reciprocal_bins_are_not_reported():
    g = single_op_graph("Softmax", [(4,)], ["ap_fixed<10,4>"], "ap_ufixed<10,0>", attrs=ATTRS,
                        precision={"exp_table": EXP_T, "inv_table": INV_T,
                                   "exp_sum": "ap_ufixed<14,3>"})
    res = run(g, np.zeros((1, 4)))
    assert "table" not in res.overflows["op"]
    # S = 4 falls in reciprocal bin 64 (step 1/16), centred on 64.5/16: 1/S ~ 16/64.5,
    # which is 508/2048 in ap_ufixed<12,1,AP_RND>, and 1 * 508/2048 fits the result exactly
    assert res.outputs["op"].tolist() == [[508 / 2048] * 4]


def test_missing_attribute_and_bad_step():
    g = single_op_graph("Softmax", [(4,)], ["ap_fixed<10,4>"], "ap_ufixed<10,0>",
                        attrs={k: v for k, v in ATTRS.items() if k != "inv_range"},
                        precision={"exp_table": EXP_T, "inv_table": INV_T,
                                   "exp_sum": "ap_ufixed<14,3>"})
    with pytest.raises(EmulationError, match=r"'op'.*'inv_range'"):
        run(g, np.zeros((1, 4)))
    g = single_op_graph("Softmax", [(4,)], ["ap_fixed<10,4>"], "ap_ufixed<10,0>",
                        attrs={**ATTRS, "inv_range": 5},
                        precision={"exp_table": EXP_T, "inv_table": INV_T,
                                   "exp_sum": "ap_ufixed<14,3>"})
    with pytest.raises(ConfigError, match="power of two"):
        run(g, np.zeros((1, 4)))
