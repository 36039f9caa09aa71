"""Merge maximum / minimum: exact comparison of inputs of any types, then one result cast."""

from __future__ import annotations

import numpy as np
import pytest

from nnfab.ir import fixed
from tests.emulate.helpers import (
    assert_bits,
    elementwise,
    fr_array,
    random_on_grid,
    ref_cast,
    run,
    single_op_graph,
)

TYPES = ["ap_fixed<8,3>", "ap_ufixed<6,2>", "ap_fixed<10,1,AP_RND>"]


def case(mode, in_types, out_t, xs=None, shape=(2, 3), seed=0):
    rng = np.random.default_rng(seed)
    g = single_op_graph("Merge", [shape] * len(in_types), in_types, out_t, attrs={"mode": mode})
    if xs is None:
        xs = [random_on_grid(rng, fixed(t), (30, *shape)) for t in in_types]
    res = run(g, *xs)
    pick = max if mode == "maximum" else min
    exact = elementwise(lambda *v: pick(v), *[fr_array(x) for x in xs])
    expected = np.empty(exact.shape, dtype=object)
    over = 0
    for idx, v in np.ndenumerate(exact):
        expected[idx], o = ref_cast(v, fixed(out_t))
        over += o
    assert_bits(res.outputs["op"], expected)
    assert res.overflows["op"]["result"] == over
    return res, xs


@pytest.mark.parametrize("mode", ["maximum", "minimum"])
@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("out_t", ["ap_fixed<12,4>", "ap_fixed<5,2,AP_RND_CONV,AP_SAT>",
                                   "ap_ufixed<4,1,AP_RND,AP_SAT_ZERO>"])
def test_random_mixed_types(mode, n, out_t):
    case(mode, TYPES[:n], out_t)


@pytest.mark.parametrize("mode", ["maximum", "minimum"])
def test_ties_and_grids(mode):
    # equal values on different grids, values one lsb apart, signed against unsigned
    a = np.array([[0.5, -1.0, 3.96875, 0.0, 0.03125, -4.0]])
    b = np.array([[0.5, 0.0, 3.9375, 0.0, 0.0, 3.9375]])
    res, _ = case(mode, ["ap_fixed<8,3>", "ap_ufixed<6,2>"], "ap_fixed<8,3>", xs=[a, b],
                  shape=(6,))
    want = np.maximum(a, b) if mode == "maximum" else np.minimum(a, b)
    assert res.outputs["op"].tolist() == want.tolist()


def test_saturation_counted():
    a = np.array([[7.5, -8.0, 1.0]])
    b = np.array([[-8.0, -7.0, 0.5]])
    res, _ = case("maximum", ["ap_fixed<8,4>", "ap_fixed<8,4>"],
                  "ap_fixed<6,2,AP_TRN,AP_SAT>", xs=[a, b], shape=(3,))
    assert res.overflows["op"]["result"] == 2
    assert res.outputs["op"].tolist() == [[1.9375, -2.0, 1.0]]


@pytest.mark.parametrize(("types", "out_t"), [
    (["ap_fixed<8,3>", "ap_ufixed<6,2>"], "ap_fixed<16,8>"),  # exact: the sum fits
    (["ap_fixed<10,1,AP_RND>", "ap_fixed<8,4>"], "ap_fixed<6,2,AP_RND_CONV,AP_SAT>"),
    (["ap_fixed<8,3>", "ap_fixed<8,3>"], "ap_fixed<6,3,AP_TRN,AP_WRAP>"),
])
def test_dot_product(types, out_t):
    rng = np.random.default_rng(4)
    g = single_op_graph("Dot", [(7,), (7,)], types, out_t)
    xs = [random_on_grid(rng, fixed(t), (40, 7)) for t in types]
    res = run(g, *xs)
    fa, fb = fr_array(xs[0]), fr_array(xs[1])
    expected = np.empty((40, 1), dtype=object)
    over = 0
    for i in range(40):
        expected[i, 0], o = ref_cast(sum(fa[i, k] * fb[i, k] for k in range(7)), fixed(out_t))
        over += o
    assert_bits(res.outputs["op"], expected)
    assert res.overflows["op"]["result"] == over
    if "SAT" in out_t or "WRAP" in out_t:
        assert over > 0


def test_dot_needs_two_vectors_of_one_length():
    from nnfab.errors import GraphError

    with pytest.raises(GraphError, match=r"'op' \(Dot\)"):
        single_op_graph("Dot", [(3,), (4,)], TYPES[:2], "ap_fixed<8,3>")
