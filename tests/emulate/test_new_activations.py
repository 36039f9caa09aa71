"""The new activations against an independent reference (Fractions, Python ints, math's libm).

Tables (softplus, softsign, gaussian, normal_cdf and its tanh form; elu, celu, selu for
x < 0) are rebuilt here from the rule in docs/semantics.md; piecewise-linear functions
(prelu, thresholded_relu, hard_tanh, hard_sigmoid with both slopes) are exact up to the one
result cast.
"""

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
    fr_array,
    random_on_grid,
    ref_cast,
    ref_value,
    run,
    single_op_graph,
)

SELU_A = 1.6732632423543772848170429916717
SELU_S = 1.0507009873554804934193349852946


def check(res, x, fn, out_t, key="op"):
    expected = np.empty(x.shape, dtype=object)
    over = 0
    for idx, v in np.ndenumerate(fr_array(x)):
        expected[idx], o = ref_cast(fn(v), fixed(out_t))
        over += o
    assert_bits(res.outputs[key], expected)
    assert res.overflows[key]["result"] == over


def inputs(t, edges, n=60, seed=0, width=6):
    rng = np.random.default_rng(seed)
    ft = fixed(t)
    x = np.concatenate([ft.quantize(np.array(edges, dtype=np.float64)),
                        random_on_grid(rng, ft, n)])
    pad = (-x.size) % width
    return np.concatenate([x, np.zeros(pad)]).reshape(-1, width)


# ---------------------------------------------------------------- tables
FULL = {
    "softplus": lambda v: math.log1p(math.exp(v)),
    "softsign": lambda v: v / (1 + abs(v)),
    "gaussian": lambda v: math.exp(-v * v),
    "normal_cdf": lambda v: (1 + math.erf(v / math.sqrt(2))) / 2,
    "normal_cdf_tanh": lambda v: (1 + math.tanh(math.sqrt(2 / math.pi)
                                                * (v + 0.044715 * v ** 3))) / 2,
}


def negative_fn(fn, alpha):
    if fn == "elu":
        return lambda v: alpha * math.expm1(v)
    if fn == "celu":
        return lambda v: alpha * math.expm1(v / alpha)
    return lambda v: SELU_S * SELU_A * math.expm1(v)


@pytest.mark.parametrize("fn", list(FULL))
@pytest.mark.parametrize(("in_t", "size", "half"), [
    ("ap_fixed<16,6>", 1024, 8),  # finer than the bins, beyond the range on both sides
    ("ap_fixed<6,4,AP_RND,AP_SAT>", 64, 4),  # coarser than the bins
])
def test_full_tables(fn, in_t, size, half):
    table_t = fixed("ap_fixed<14,5,AP_RND_CONV,AP_SAT>")
    out_t = "ap_fixed<10,4,AP_RND>"
    step = Fraction(2 * half, size)
    f = FULL[fn]

    def ref(v):
        i = min(max(math.floor((v + half) / step), 0), size - 1)
        centre = -half + (i + Fraction(1, 2)) * step
        return ref_value(fr(f(float(centre))), table_t)

    lsb = fixed(in_t).lsb
    x = inputs(in_t, [-half, -half - lsb, half - lsb, half, 0.0, -lsb, 30.0, -30.0])
    g = single_op_graph("Activation", [(6,)], [in_t], out_t,
                        attrs={"function": fn, "table_size": size, "table_range": half},
                        precision={"table": table_t})
    check(run(g, x), x, ref, out_t)


@pytest.mark.parametrize(("fn", "alpha"), [("elu", 1.0), ("elu", 0.5), ("celu", 2.0),
                                           ("selu", None)])
@pytest.mark.parametrize(("in_t", "out_t"), [
    ("ap_fixed<14,5>", "ap_fixed<12,4,AP_RND_CONV>"),
    ("ap_fixed<8,5,AP_RND,AP_SAT>", "ap_fixed<6,3,AP_RND,AP_SAT>"),  # saturates above 4
])
def test_negative_half_tables(fn, alpha, in_t, out_t):
    size, half = 256, 8
    step = Fraction(half, size)
    table_t = fixed("ap_fixed<16,3,AP_RND_CONV,AP_SAT>")
    param_t = fixed("ap_fixed<12,2,AP_RND_CONV,AP_SAT>")
    f = negative_fn(fn, alpha)
    scale = ref_value(fr(SELU_S), param_t)

    def ref(v):
        if v >= 0:
            return scale * v if fn == "selu" else v
        i = min(max(math.floor(v / step) + size, 0), size - 1)
        centre = -half + (i + Fraction(1, 2)) * step
        return ref_value(fr(f(float(centre))), table_t)

    lsb = fixed(in_t).lsb
    attrs = {"function": fn, "table_size": size, "table_range": half}
    if alpha is not None:
        attrs["alpha"] = alpha
    x = inputs(in_t, [0.0, -lsb, lsb, -half, -half - lsb, -half + lsb, -16.0, 15.0])
    g = single_op_graph("Activation", [(6,)], [in_t], out_t, attrs=attrs,
                        precision={"table": table_t, "param": param_t})
    check(run(g, x), x, ref, out_t)


def test_negative_half_table_bins_by_hand():
    # 4 bins over [-2, 0): centres -1.75, -1.25, -0.75, -0.25; x >= 0 passes through
    table_t = fixed("ap_fixed<16,2,AP_RND>")
    g = single_op_graph("Activation", [(6,)], ["ap_fixed<8,3>"], "ap_fixed<18,4>",
                        attrs={"function": "elu", "alpha": 1.0, "table_size": 4,
                               "table_range": 2}, precision={"table": table_t})
    x = np.array([[-3.0, -1.5, -1.46875, -0.03125, 0.0, 2.5]])
    y = run(g, x).outputs["op"][0]
    centres = [-1.75, -1.25, -1.25, -0.25]
    assert y.tolist() == [float(table_t.quantize(math.expm1(c))) for c in centres] + [0.0, 2.5]


# ------------------------------------------------------- piecewise-linear
@pytest.mark.parametrize("alpha_shape", [(1,), (4,), (3, 4)])
def test_prelu(alpha_shape):
    rng = np.random.default_rng(1)
    param_t = fixed("ap_fixed<8,2,AP_RND_CONV,AP_SAT>")
    out_t = "ap_fixed<10,4,AP_RND,AP_SAT>"
    alpha = rng.uniform(-0.6, 0.9, size=alpha_shape)
    g = single_op_graph("Activation", [(3, 4)], ["ap_fixed<10,5>"], out_t,
                        attrs={"function": "prelu"}, weights={"alpha": alpha},
                        precision={"param": param_t})
    x = random_on_grid(rng, fixed("ap_fixed<10,5>"), (20, 3, 4))
    res = run(g, x)
    full = np.broadcast_to(alpha, (3, 4))
    expected = np.empty(x.shape, dtype=object)
    over = 0
    for idx, v in np.ndenumerate(fr_array(x)):
        a = ref_value(fr(full[idx[1:]]), param_t)
        expected[idx], o = ref_cast(v if v >= 0 else a * v, fixed(out_t))
        over += o
    assert_bits(res.outputs["op"], expected)
    assert res.overflows["op"]["result"] == over


def test_prelu_alpha_overflow_and_errors():
    g = single_op_graph("Activation", [(4,)], ["ap_fixed<8,3>"], "ap_fixed<8,3>",
                        attrs={"function": "prelu"}, weights={"alpha": [0.5, 3.0, -5.0, 0.1]},
                        precision={"param": "ap_fixed<6,2,AP_TRN,AP_SAT>"})
    assert run(g, np.zeros((1, 4))).overflows["op"]["scale"] == 2
    g = single_op_graph("Activation", [(4,)], ["ap_fixed<8,3>"], "ap_fixed<8,3>",
                        attrs={"function": "prelu"}, weights={"alpha": [0.5, 0.2]},
                        precision={"param": "ap_fixed<6,2>"})
    with pytest.raises(EmulationError, match=r"'op'.*alpha.*\(2,\).*\(4,\)"):
        run(g, np.zeros((1, 4)))
    g = single_op_graph("Activation", [(4,)], ["ap_fixed<8,3>"], "ap_fixed<8,3>",
                        attrs={"function": "prelu"}, precision={"param": "ap_fixed<6,2>"})
    with pytest.raises(EmulationError, match=r"'op'.*'alpha'"):
        run(g, np.zeros((1, 4)))


@pytest.mark.parametrize("theta", [1.0, 1 / 3, -0.75, 0.0])
def test_thresholded_relu(theta):
    in_t, out_t = "ap_fixed<8,4>", "ap_fixed<6,2,AP_RND,AP_SAT>"
    lsb = fixed(in_t).lsb
    x = inputs(in_t, [theta, theta - lsb, theta + lsb, 7.9, -8.0])
    g = single_op_graph("Activation", [(6,)], [in_t], out_t,
                        attrs={"function": "thresholded_relu", "theta": theta})
    t = fr(theta)
    check(run(g, x), x, lambda v: v if v > t else 0, out_t)


@pytest.mark.parametrize(("lo", "hi"), [(-1.0, 1.0), (-0.3, 2.7), (0.0, 6.0), (0.5, 0.5)])
def test_hard_tanh(lo, hi):
    in_t, out_t = "ap_fixed<9,4>", "ap_fixed<7,2,AP_RND_CONV,AP_SAT>"
    lsb = fixed(in_t).lsb
    x = inputs(in_t, [lo, hi, lo - lsb, hi + lsb, lo + lsb, hi - lsb])
    g = single_op_graph("Activation", [(6,)], [in_t], out_t,
                        attrs={"function": "hard_tanh", "min_val": lo, "max_val": hi})
    check(run(g, x), x, lambda v: min(max(v, fr(lo)), fr(hi)), out_t)


def test_hard_tanh_bounds_checked():
    g = single_op_graph("Activation", [(2,)], ["ap_fixed<8,3>"], "ap_fixed<8,3>",
                        attrs={"function": "hard_tanh", "min_val": 1.0, "max_val": -1.0})
    with pytest.raises(ConfigError, match=r"'op'.*min_val"):
        run(g, np.zeros((1, 2)))


@pytest.mark.parametrize("slope", [1 / 6, 0.2])
def test_hard_sigmoid_slopes(slope):
    # both definitions (Keras 3 / PyTorch 1/6, Keras 2 / ONNX 0.2): exact with slope_q
    param_t = fixed("ap_fixed<18,4,AP_RND_CONV,AP_SAT>")
    in_t, out_t = "ap_fixed<12,4>", "ap_ufixed<10,1,AP_RND,AP_SAT>"
    s_q, o_q = ref_value(fr(slope), param_t), ref_value(Fraction(1, 2), param_t)
    assert s_q != fr(slope)  # neither slope is dyadic: the quantized one is what runs
    x = inputs(in_t, [-3.0, 3.0, -2.5, 2.5, 0.0, 7.99])
    g = single_op_graph("Activation", [(6,)], [in_t], out_t,
                        attrs={"function": "hard_sigmoid", "slope": slope, "offset": 0.5},
                        precision={"param": param_t})
    check(run(g, x), x, lambda v: min(max(s_q * v + o_q, 0), 1), out_t)


def test_selu_scale_overflow_reported():
    g = single_op_graph("Activation", [(2,)], ["ap_fixed<8,3>"], "ap_fixed<8,3>",
                        attrs={"function": "selu", "table_size": 16, "table_range": 4},
                        precision={"table": "ap_fixed<10,2>", "param": "ap_fixed<6,1,AP_TRN,"
                                                                      "AP_SAT>"})
    assert run(g, np.zeros((1, 2))).overflows["op"]["scale"] == 1
