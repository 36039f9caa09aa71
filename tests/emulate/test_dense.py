"""Dense: emulator vs a literal fixed-point loop on Fractions."""

from __future__ import annotations

import numpy as np
import pytest

from nnfab.errors import EmulationError, PrecisionError
from nnfab.ir import FixedType, fixed
from tests.emulate.helpers import (
    assert_bits,
    fr,
    random_on_grid,
    ref_accumulate,
    ref_cast,
    ref_value,
    run,
    single_op_graph,
)


def ref_dense(x, kernel, bias, w_t, b_t, acc_t, out_t):
    """Returns (outputs as Fractions, accum overflow count, result overflow count)."""
    wq = [[ref_value(fr(v), w_t) for v in row] for row in kernel]
    bq = [ref_value(fr(v), b_t) for v in bias]
    batch, n_in = x.shape
    n_out = kernel.shape[1]
    out = np.empty((batch, n_out), dtype=object)
    acc_over = res_over = 0
    for r in range(batch):
        for j in range(n_out):
            pairs = [(fr(x[r, i]), wq[i][j]) for i in range(n_in)]
            acc, wrapped = ref_accumulate(pairs, bq[j], acc_t)
            out[r, j], over = ref_cast(acc, out_t)
            acc_over += wrapped
            res_over += over
    return out, acc_over, res_over


def dense_case(seed, in_t, w_t, b_t, acc_t, out_t, n_in=7, n_out=5, batch=24, w_scale=1.0):
    rng = np.random.default_rng(seed)
    kernel = rng.normal(0, w_scale, size=(n_in, n_out))
    bias = rng.normal(0, w_scale, size=n_out)
    g = single_op_graph(
        "Dense", [(n_in,)], [in_t], out_t, weights={"kernel": kernel, "bias": bias},
        precision={"weight": w_t, "bias": b_t, "accum": acc_t},
    )
    x = random_on_grid(rng, fixed(in_t), (batch, n_in))
    res = run(g, x)
    expected, acc_over, res_over = ref_dense(
        x, kernel, bias, fixed(w_t), fixed(b_t), fixed(acc_t), fixed(out_t)
    )
    assert_bits(res.outputs["op"], expected)
    assert res.overflows["op"]["accum"] == acc_over
    assert res.overflows["op"]["result"] == res_over
    assert res.totals["op"]["accum"] == batch * n_out
    return res, acc_over, res_over


@pytest.mark.parametrize("out_t", [
    "ap_fixed<10,4,AP_RND_CONV,AP_SAT>",
    "ap_fixed<8,2>",  # truncates and wraps
    "ap_fixed<9,3,AP_RND_ZERO,AP_SAT_SYM>",
    "ap_ufixed<8,3,AP_RND_INF,AP_SAT_ZERO>",
])
def test_exact_accumulator(out_t):
    _, acc_over, res_over = dense_case(1, "ap_fixed<8,3>", "ap_fixed<6,1>", "ap_fixed<8,2>",
                                       "ap_fixed<26,12>", out_t)
    assert acc_over == 0
    assert res_over > 0  # the narrow result types do overflow on these inputs


@pytest.mark.parametrize("rounding", ["AP_TRN", "AP_RND", "AP_RND_CONV", "AP_TRN_ZERO",
                                      "AP_RND_MIN_INF"])
def test_products_rounded_when_accumulator_is_coarser(rounding):
    # products have 5 + 5 = 10 fractional bits, the accumulator 4
    acc = f"ap_fixed<20,16,{rounding}>"
    dense_case(2, "ap_fixed<8,3>", "ap_fixed<6,1>", "ap_fixed<8,3>", acc,
               "ap_fixed<16,8,AP_RND,AP_SAT>")


def test_per_product_rounding_differs_from_rounding_the_sum():
    # x = w = 0.75 (ap_fixed<4,1>: lsb 1/8): product 9/16 rounds to 1/2 in an accumulator
    # with 1 fractional bit (TRN); eight products sum to 4, not floor(8 * 9/16 * 2) / 2.
    g = single_op_graph(
        "Dense", [(8,)], ["ap_fixed<4,1>"], "ap_fixed<16,8>",
        weights={"kernel": np.full((8, 1), 0.75), "bias": np.zeros(1)},
        precision={"weight": "ap_fixed<4,1>", "bias": "ap_fixed<4,1>",
                   "accum": "ap_fixed<16,15>"},
    )
    y = run(g, np.full((1, 8), 0.75)).outputs["op"]
    assert y[0, 0] == 4.0


def test_wrapping_accumulator_counts_overflows():
    # 10-bit accumulator with the products' 10 fractional bits can't hold most sums
    _, acc_over, _ = dense_case(3, "ap_fixed<8,3>", "ap_fixed<8,2>", "ap_fixed<8,2>",
                                "ap_fixed<14,4>", "ap_fixed<16,6>", w_scale=1.5)
    assert acc_over > 0


def test_wrapping_accumulator_with_rounded_products():
    _, acc_over, _ = dense_case(4, "ap_fixed<8,3>", "ap_fixed<8,2>", "ap_fixed<8,2>",
                                "ap_fixed<7,4,AP_RND>", "ap_fixed<16,6>", w_scale=1.5)
    assert acc_over > 0


def test_wide_types_stay_exact():
    # 40-bit inputs times 30-bit weights: products need 70 bits (beyond float64 and int64)
    dense_case(5, "ap_fixed<40,12>", "ap_fixed<30,2>", "ap_fixed<30,4>",
               "ap_fixed<48,20,AP_RND_CONV>", "ap_fixed<48,20>", batch=6)
    dense_case(6, "ap_fixed<40,12>", "ap_fixed<30,2>", "ap_fixed<30,4>",
               "ap_fixed<80,20>", "ap_fixed<40,20,AP_RND>", batch=6)


def test_weight_overflow_is_reported():
    g = single_op_graph(
        "Dense", [(2,)], ["ap_fixed<8,3>"], "ap_fixed<16,6>",
        weights={"kernel": np.array([[3.0], [-0.5]]), "bias": np.array([5.0])},
        precision={"weight": "ap_fixed<4,1,AP_TRN,AP_SAT>", "bias": "ap_fixed<4,2>",
                   "accum": "ap_fixed<20,8>"},
    )
    res = run(g, np.array([[1.0, 1.0]]))
    assert res.overflows["op"]["kernel"] == 1
    assert res.overflows["op"]["bias"] == 1
    # 3.0 saturates to 0.875; 5.0 wraps in ap_fixed<4,2> (range [-2, 1.75]) to -3 + 4 = 1.0
    assert res.outputs["op"][0, 0] == 0.875 - 0.5 + 1.0


def test_saturating_accumulator_is_rejected():
    with pytest.raises(PrecisionError, match="accumulator"):
        run(single_op_graph(
            "Dense", [(2,)], ["ap_fixed<8,3>"], "ap_fixed<16,6>",
            weights={"kernel": np.ones((2, 1)), "bias": np.zeros(1)},
            precision={"weight": "ap_fixed<8,2>", "bias": "ap_fixed<8,2>",
                       "accum": "ap_fixed<20,8,AP_TRN,AP_SAT>"},
        ), np.zeros((1, 2)))


def test_missing_precision_names_layer_and_key():
    g = single_op_graph(
        "Dense", [(2,)], ["ap_fixed<8,3>"], "ap_fixed<16,6>",
        weights={"kernel": np.ones((2, 1)), "bias": np.zeros(1)},
        precision={"weight": "ap_fixed<8,2>", "bias": "ap_fixed<8,2>"},
    )
    with pytest.raises(EmulationError, match=r"'op'.*'accum'"):
        run(g, np.zeros((1, 2)))


def test_reference_quantizer_sanity():
    # the reference itself, on hand-checked values
    t = FixedType(4, 2, True, "AP_RND_CONV", "AP_SAT_SYM")
    assert ref_cast(fr(0.125), t) == (0, False)  # tie to even (0)
    assert ref_cast(fr(0.375), t) == (fr(0.5), False)  # tie to even (2 quarters)
    assert ref_cast(fr(-2.0), t) == (fr(-1.75), True)  # -2**(W-1) is outside SAT_SYM
    assert ref_cast(fr(2.0), fixed("ap_fixed<4,2>")) == (fr(-2.0), True)
