"""BatchNormalization: emulator vs per-element Fraction arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from nnfab.errors import EmulationError, PrecisionError
from nnfab.ir import fixed
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

IN_T = "ap_fixed<8,3>"


def bn_case(shape, w_t, b_t, acc_t, out_t, seed=0):
    rng = np.random.default_rng(seed)
    channels = shape[-1]
    scale = rng.normal(0, 1.5, size=channels)
    bias = rng.normal(0, 2.0, size=channels)
    g = single_op_graph(
        "BatchNormalization", [shape], [IN_T], out_t, weights={"scale": scale, "bias": bias},
        precision={"weight": w_t, "bias": b_t, "accum": acc_t},
    )
    x = random_on_grid(rng, fixed(IN_T), (5, *shape))
    res = run(g, x)
    sq = [ref_value(fr(v), fixed(w_t)) for v in scale]
    bq = [ref_value(fr(v), fixed(b_t)) for v in bias]
    expected = np.empty(x.shape, dtype=object)
    acc_over = res_over = 0
    for idx, v in np.ndenumerate(x):
        c = idx[-1]
        acc, wrapped = ref_accumulate([(fr(v), sq[c])], bq[c], fixed(acc_t))
        expected[idx], over = ref_cast(acc, fixed(out_t))
        acc_over += wrapped
        res_over += over
    assert_bits(res.outputs["op"], expected)
    assert res.overflows["op"]["accum"] == acc_over
    assert res.overflows["op"]["result"] == res_over
    return acc_over, res_over


@pytest.mark.parametrize("shape", [(4,), (3, 4), (2, 3, 4)])
def test_exact_accumulator(shape):
    acc_over, _ = bn_case(shape, "ap_fixed<8,3>", "ap_fixed<8,3>", "ap_fixed<20,8>",
                          "ap_fixed<10,4,AP_RND_CONV,AP_SAT>")
    assert acc_over == 0


@pytest.mark.parametrize("rounding", ["AP_TRN", "AP_RND", "AP_RND_ZERO", "AP_RND_INF"])
def test_rounded_product(rounding):
    # product has 5 + 5 fractional bits, the accumulator 3
    bn_case((3, 4), "ap_fixed<8,3>", "ap_fixed<8,3>", f"ap_fixed<12,9,{rounding}>",
            "ap_fixed<12,9>", seed=1)


def test_wrapping_accumulator():
    acc_over, _ = bn_case((6, 4), "ap_fixed<8,3>", "ap_fixed<8,3>", "ap_fixed<12,3>",
                          "ap_fixed<12,6>", seed=2)
    assert acc_over > 0


def test_wrong_channel_count_and_saturating_accumulator():
    with pytest.raises(EmulationError, match="'scale'"):
        run(single_op_graph(
            "BatchNormalization", [(3,)], [IN_T], IN_T,
            weights={"scale": np.ones(2), "bias": np.zeros(3)},
            precision={"weight": IN_T, "bias": IN_T, "accum": "ap_fixed<20,8>"},
        ), np.zeros((1, 3)))
    with pytest.raises(PrecisionError, match="'op'"):
        run(single_op_graph(
            "BatchNormalization", [(3,)], [IN_T], IN_T,
            weights={"scale": np.ones(3), "bias": np.zeros(3)},
            precision={"weight": IN_T, "bias": IN_T, "accum": "ap_fixed<20,8,AP_TRN,AP_SAT>"},
        ), np.zeros((1, 3)))
