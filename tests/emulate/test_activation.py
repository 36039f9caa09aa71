"""Activation: piecewise-linear functions exactly, sigmoid/tanh through their tables."""

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

IN_T = "ap_fixed<10,5>"


def act_case(function, out_t, attrs=None, precision=None, in_t=IN_T, x=None, seed=0):
    rng = np.random.default_rng(seed)
    g = single_op_graph("Activation", [(6,)], [in_t], out_t,
                        attrs={"function": function, **(attrs or {})}, precision=precision)
    if x is None:
        x = random_on_grid(rng, fixed(in_t), (40, 6))
    return x, run(g, x)


def check(res, x, fn, out_t):
    xs = fr_array(x)
    expected = np.empty(x.shape, dtype=object)
    over = 0
    for idx, v in np.ndenumerate(xs):
        expected[idx], o = ref_cast(fn(v), fixed(out_t))
        over += o
    assert_bits(res.outputs["op"], expected)
    assert res.overflows["op"]["result"] == over


@pytest.mark.parametrize("out_t", ["ap_fixed<10,5>", "ap_fixed<6,3,AP_RND,AP_SAT>",
                                   "ap_ufixed<6,2,AP_RND_CONV,AP_SAT_SYM>"])
def test_linear_and_relu(out_t):
    x, res = act_case("linear", out_t)
    check(res, x, lambda v: v, out_t)
    x, res = act_case("relu", out_t)
    check(res, x, lambda v: max(v, 0), out_t)


def test_bounded_relu():
    out_t = "ap_ufixed<8,3,AP_RND>"
    x, res = act_case("relu", out_t, attrs={"max_value": 6.0})
    check(res, x, lambda v: min(max(v, 0), 6), out_t)
    # a bound that is not on the result grid (1/3 as float64), rounded at the final cast
    x, res = act_case("relu", out_t, attrs={"max_value": 1 / 3})
    check(res, x, lambda v: min(max(v, 0), fr(1 / 3)), out_t)


@pytest.mark.parametrize("out_t", ["ap_fixed<12,5,AP_RND_CONV>", "ap_fixed<8,3,AP_RND,AP_SAT>"])
def test_leaky_relu(out_t):
    param = fixed("ap_fixed<8,1,AP_RND>")
    x, res = act_case("leaky_relu", out_t, attrs={"alpha": 0.3}, precision={"param": param})
    alpha = ref_value(fr(0.3), param)
    assert alpha == Fraction(38, 128)
    check(res, x, lambda v: v if v >= 0 else alpha * v, out_t)


def test_hard_sigmoid():
    param = fixed("ap_fixed<10,2,AP_RND_CONV>")
    out_t = "ap_ufixed<8,1,AP_RND>"
    x, res = act_case("hard_sigmoid", out_t, attrs={"slope": 0.2, "offset": 0.5},
                      precision={"param": param}, in_t="ap_fixed<10,4>")
    slope, offset = ref_value(fr(0.2), param), ref_value(fr(0.5), param)
    check(res, x, lambda v: min(max(slope * v + offset, 0), 1), out_t)


def test_param_overflow_is_reported():
    _, res = act_case("leaky_relu", "ap_fixed<10,5>", attrs={"alpha": 3.0},
                      precision={"param": "ap_fixed<4,1,AP_TRN,AP_SAT>"})
    assert res.overflows["op"]["scale"] == 1


def table_ref(fn, size, half, table_t):
    """The table as the contract defines it, on Fractions and math's libm."""
    step = Fraction(2 * half) / size
    f = (lambda v: 1 / (1 + math.exp(-v))) if fn == "sigmoid" else math.tanh

    def lookup(v: Fraction) -> Fraction:
        i = min(max(math.floor((v + half) / step), 0), size - 1)
        center = -half + (i + Fraction(1, 2)) * step
        return ref_value(fr(f(float(center))), table_t)

    return lookup, step


@pytest.mark.parametrize("fn", ["sigmoid", "tanh"])
@pytest.mark.parametrize(("in_t", "size", "half"), [
    ("ap_fixed<16,5>", 1024, 8),  # input finer than the bins
    ("ap_fixed<6,4,AP_RND,AP_SAT>", 64, 4),  # input coarser than the bins (lsb 1/4 > 1/8)
    ("ap_fixed<4,7>", 8, 16),  # negative fractional bits: lsb 8, index by left shift
])
def test_table_functions(fn, in_t, size, half):
    table_t = fixed("ap_fixed<12,2,AP_RND_CONV,AP_SAT>")
    out_t = "ap_fixed<10,2,AP_RND>"
    lookup, step = table_ref(fn, size, half, table_t)
    t = fixed(in_t)
    edges = [-half, -half - t.lsb, -half + t.lsb, half - t.lsb, half, half + t.lsb,
             -half + float(step), -half + float(step) - t.lsb, 0.0, -t.lsb]
    rng = np.random.default_rng(3)
    x = np.concatenate([t.quantize(np.array(edges)), random_on_grid(rng, t, 62)]).reshape(-1, 6)
    g = single_op_graph("Activation", [(6,)], [in_t], out_t,
                        attrs={"function": fn, "table_size": size, "table_range": half},
                        precision={"table": table_t})
    res = run(g, x)
    check(res, x, lookup, out_t)


def test_table_bins_on_hand_checked_values():
    # 8 bins over [-2, 2): step 1/2; bin i is centred on -2 + (i + 1/2)/2
    table_t = fixed("ap_fixed<16,2,AP_RND>")
    g = single_op_graph("Activation", [(5,)], ["ap_fixed<8,3>"], "ap_fixed<16,2>",
                        attrs={"function": "tanh", "table_size": 8, "table_range": 2},
                        precision={"table": table_t})
    y = run(g, np.array([[-2.0, -1.53125, -1.5, 1.96875, 3.0]])).outputs["op"][0]
    centers = [-1.75, -1.75, -1.25, 1.75, 1.75]
    assert y.tolist() == [float(table_t.quantize(math.tanh(c))) for c in centers]


def test_table_step_must_be_a_power_of_two():
    g = single_op_graph("Activation", [(2,)], [IN_T], IN_T,
                        attrs={"function": "sigmoid", "table_size": 1024, "table_range": 6},
                        precision={"table": "ap_ufixed<16,0>"})
    with pytest.raises(ConfigError, match="power of two"):
        run(g, np.zeros((1, 2)))


@pytest.mark.parametrize(("function", "attrs", "key"), [
    ("sigmoid", {"table_range": 8}, "'table_size'"),
    ("leaky_relu", {}, "'alpha'"),
    ("hard_sigmoid", {"slope": 0.2}, "'offset'"),
])
def test_missing_attributes_name_the_key(function, attrs, key):
    g = single_op_graph("Activation", [(2,)], [IN_T], IN_T, attrs={"function": function, **attrs},
                        precision={"table": "ap_ufixed<16,0>", "param": "ap_fixed<8,2>"})
    with pytest.raises(EmulationError, match=rf"'op'.*{key}"):
        run(g, np.zeros((1, 2)))


def test_missing_table_type_and_unknown_function():
    g = single_op_graph("Activation", [(2,)], [IN_T], IN_T,
                        attrs={"function": "tanh", "table_size": 8, "table_range": 2})
    with pytest.raises(EmulationError, match=r"'op'.*'table'"):
        run(g, np.zeros((1, 2)))
    g = single_op_graph("Activation", [(2,)], [IN_T], IN_T, attrs={"function": "swish"})
    with pytest.raises(EmulationError, match="'swish'"):
        run(g, np.zeros((1, 2)))
