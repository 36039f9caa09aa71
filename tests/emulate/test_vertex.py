"""VertexMask and VertexMean against Python-int / Fraction arithmetic written from the
rule in docs/semantics.md: count ``c = clip(floor(n), 0, V)``; the mask keeps vertices
``v < c``; the mean is ``result(sum_{v<c} x[v] * scale_q(1/c))`` (0 for ``c = 0``)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from nnfab.errors import GraphError
from nnfab.ir import fixed
from tests.emulate.helpers import (
    assert_bits,
    fr_array,
    random_on_grid,
    ref_cast,
    ref_value,
    run,
    single_op_graph,
)

V, C = 7, 3
COUNTS = np.array([-3.0, -0.5, 0.0, 0.75, 1.0, 2.5, 3.0, 6.0, 7.0, 7.5, 8.0, 40.0])
"""Negative, fractional, 0, every regime up to V and beyond it (clipped to V)."""


def ref_count(n: float) -> int:
    return min(max(math.floor(Fraction(n)), 0), V)


def data(x_t: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = random_on_grid(rng, fixed(x_t), (COUNTS.size, V, C))
    return x, COUNTS.reshape(-1, 1)


@pytest.mark.parametrize(("x_t", "out_t"), [
    ("ap_fixed<9,4>", "ap_fixed<9,4>"),
    ("ap_fixed<10,5,AP_RND,AP_SAT>", "ap_fixed<6,2,AP_RND_CONV,AP_SAT>"),  # a narrower result
])
def test_vertex_mask(x_t: str, out_t: str) -> None:
    x, n = data(x_t)
    g = single_op_graph("VertexMask", [(V, C), (1,)], [x_t, "ap_fixed<10,7>"], out_t)
    res = run(g, x, n)
    expected = np.empty(x.shape, dtype=object)
    over = 0
    for s in range(x.shape[0]):
        c = ref_count(n[s, 0])
        for v in range(V):
            for i in range(C):
                value = Fraction(float(x[s, v, i])) if v < c else Fraction(0)
                expected[s, v, i], o = ref_cast(value, fixed(out_t))
                over += o
    assert_bits(res.outputs["op"], expected)
    assert res.overflows["op"]["result"] == over


@pytest.mark.parametrize(("x_t", "scale_t", "out_t"), [
    ("ap_fixed<12,5>", "ap_ufixed<18,1,AP_RND_CONV,AP_SAT>", "ap_fixed<24,8>"),
    # a coarse scale (1/3, 1/5, 1/6, 1/7 round), a result that rounds and saturates
    ("ap_fixed<8,6,AP_RND,AP_SAT>", "ap_ufixed<5,1,AP_RND,AP_SAT>",
     "ap_fixed<7,4,AP_RND_INF,AP_SAT_SYM>"),
    # 40 + 3 + 24 bits: past float64's 53, the exact integer path
    ("ap_fixed<40,12>", "ap_ufixed<24,1,AP_RND_CONV,AP_SAT>", "ap_fixed<48,14,AP_RND>"),
])
def test_vertex_mean(x_t: str, scale_t: str, out_t: str) -> None:
    x, n = data(x_t, seed=1)
    g = single_op_graph("VertexMean", [(V, C), (1,)], [x_t, "ap_fixed<10,7>"], out_t,
                        precision={"scale": scale_t})
    res = run(g, x, n)
    kernel_exact = fixed(x_t).width + V.bit_length() + fixed(scale_t).width <= 52
    assert kernel_exact == (fixed(x_t).width < 40)  # both emulator paths are covered
    expected = np.empty((x.shape[0], C), dtype=object)
    xs = fr_array(x)
    for s in range(x.shape[0]):
        c = ref_count(n[s, 0])
        r = ref_value(Fraction(1, c), fixed(scale_t)) if c else Fraction(0)
        for i in range(C):
            total = sum((xs[s, v, i] for v in range(c)), Fraction(0))
            expected[s, i] = ref_value(total * r, fixed(out_t))
    assert_bits(res.outputs["op"], expected)


def test_vertex_ops_check_shapes() -> None:
    with pytest.raises(GraphError, match=r"count input has shape \(2,\)"):
        single_op_graph("VertexMask", [(V, C), (2,)], ["ap_fixed<8,3>", "ap_int<4>"],
                        "ap_fixed<8,3>")
    with pytest.raises(GraphError, match="needs \\(vertices, features"):
        single_op_graph("VertexMean", [(V,), (1,)], ["ap_fixed<8,3>", "ap_int<4>"],
                        "ap_fixed<8,3>")
