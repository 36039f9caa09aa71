"""Merge and Concatenate: exact element-wise arithmetic, one result cast."""

from __future__ import annotations

from fractions import Fraction
from functools import reduce

import numpy as np
import pytest

from nnfab.errors import EmulationError, GraphError
from nnfab.ir import fixed
from tests.emulate.helpers import (
    assert_bits,
    elementwise,
    fr_array,
    random_on_grid,
    ref_cast,
    ref_value,
    run,
    single_op_graph,
)

TYPES = ["ap_fixed<8,3>", "ap_fixed<6,1,AP_RND>", "ap_ufixed<5,4>", "ap_fixed<12,7>"]
SCALE_T = "ap_ufixed<8,1,AP_RND_CONV,AP_SAT>"


def merge_case(mode, n, out_t, shape=(3, 4), seed=0, types=TYPES):
    rng = np.random.default_rng(seed)
    in_types = types[:n]
    g = single_op_graph("Merge", [shape] * n, in_types, out_t, attrs={"mode": mode},
                        precision={"scale": SCALE_T})
    xs = [random_on_grid(rng, fixed(t), (7, *shape)) for t in in_types]
    res = run(g, *xs)
    fx = [fr_array(x) for x in xs]
    if mode == "add":
        exact = elementwise(lambda *v: sum(v), *fx)
    elif mode == "subtract":
        exact = elementwise(lambda a, b: a - b, *fx)
    elif mode == "multiply":
        exact = elementwise(lambda *v: reduce(lambda a, b: a * b, v), *fx)
    else:
        scale = ref_value(Fraction(1, n), fixed(SCALE_T))
        exact = elementwise(lambda *v: sum(v) * scale, *fx)
    expected = np.empty(exact.shape, dtype=object)
    over = 0
    for idx, v in np.ndenumerate(exact):
        expected[idx], o = ref_cast(v, fixed(out_t))
        over += o
    assert_bits(res.outputs["op"], expected)
    assert res.overflows["op"]["result"] == over
    return over


@pytest.mark.parametrize("mode", ["add", "multiply", "average"])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_merge(mode, n):
    merge_case(mode, n, "ap_fixed<12,6,AP_RND_CONV,AP_SAT>", seed=n)


def test_subtract_wraps_and_rounds():
    over = merge_case("subtract", 2, "ap_fixed<6,3,AP_RND>")
    assert over > 0


def test_wide_product_is_exact():
    # four 30-bit factors: 120-bit exact product before the cast
    types = ["ap_fixed<30,3>", "ap_fixed<30,2>", "ap_fixed<30,4>", "ap_fixed<30,1>"]
    merge_case("multiply", 4, "ap_fixed<50,12,AP_RND_CONV>", types=types, shape=(5,))
    merge_case("average", 3, "ap_fixed<40,6,AP_RND>", types=types, shape=(5,))


def test_subtract_needs_two_inputs_and_mode_is_checked():
    g = single_op_graph("Merge", [(2,)] * 3, TYPES[:3], "ap_fixed<8,3>",
                        attrs={"mode": "subtract"})
    with pytest.raises(EmulationError, match="exactly 2"):
        run(g, np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)))
    g = single_op_graph("Merge", [(2,)] * 2, TYPES[:2], "ap_fixed<8,3>", attrs={"mode": "max"})
    with pytest.raises(EmulationError, match="'max'"):
        run(g, np.zeros((1, 2)), np.zeros((1, 2)))


@pytest.mark.parametrize(("axis", "shapes"), [
    (0, [(2, 3), (4, 3)]),
    (1, [(2, 3), (2, 1), (2, 2)]),
])
def test_concatenate(axis, shapes):
    rng = np.random.default_rng(4)
    out_t = "ap_fixed<6,2,AP_RND,AP_SAT>"
    types = TYPES[: len(shapes)]
    g = single_op_graph("Concatenate", shapes, types, out_t, attrs={"axis": axis})
    xs = [random_on_grid(rng, fixed(t), (5, *s)) for t, s in zip(types, shapes, strict=True)]
    res = run(g, *xs)
    parts = []
    over = 0
    for x in xs:
        part = np.empty(x.shape, dtype=object)
        for idx, v in np.ndenumerate(fr_array(x)):
            part[idx], o = ref_cast(v, fixed(out_t))
            over += o
        parts.append(part)
    assert_bits(res.outputs["op"], np.concatenate(parts, axis=axis + 1))
    assert res.overflows["op"]["result"] == over
    assert over > 0


def test_concatenate_shape_mismatch():
    with pytest.raises(GraphError):
        single_op_graph("Concatenate", [(2, 3), (3, 3)], TYPES[:2], "ap_fixed<8,3>",
                        attrs={"axis": 1})
