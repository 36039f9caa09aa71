"""A relu fused into a convolution acts on the accumulator (docs/semantics.md, fused relu)."""

from __future__ import annotations

import numpy as np
import pytest

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


@pytest.mark.parametrize("op", ["Conv2D", "DepthwiseConv2D"])
def test_fused_relu_clamps_the_accumulator(op: str) -> None:
    w_t, b_t, acc_t, out_t = (fixed(t) for t in (
        "ap_fixed<6,2>", "ap_fixed<8,3>", "ap_fixed<22,10>", "ap_fixed<10,4,AP_RND,AP_SAT>"))
    in_t = "ap_fixed<8,3,AP_RND,AP_SAT>"
    rng = np.random.default_rng(5)
    kernel = rng.normal(0, 0.8, size=(2, 2, 3, 2))
    n_out = 6 if op.startswith("Depthwise") else 2
    bias = rng.normal(0, 1.0, size=n_out)
    g = single_op_graph(
        op, [(4, 4, 3)], [in_t], str(out_t), attrs={"activation": "relu"},
        weights={"kernel": kernel, "bias": bias},
        precision={"weight": str(w_t), "bias": str(b_t), "accum": str(acc_t)},
    )
    x = random_on_grid(rng, fixed(in_t), (3, 4, 4, 3))
    out = run(g, x).outputs["op"]
    expected = np.empty(out.shape, dtype=object)
    negative = 0
    for b, i, j, f in np.ndindex(*out.shape):
        if op.startswith("Depthwise"):
            c, m = divmod(f, 2)
            pairs = [(fr(x[b, i + u, j + v, c]), ref_value(fr(kernel[u, v, c, m]), w_t))
                     for u in range(2) for v in range(2)]
        else:
            pairs = [(fr(x[b, i + u, j + v, c]), ref_value(fr(kernel[u, v, c, f]), w_t))
                     for u in range(2) for v in range(2) for c in range(3)]
        acc, _ = ref_accumulate(pairs, ref_value(fr(bias[f]), b_t), acc_t)
        negative += acc < 0
        expected[b, i, j, f], _ = ref_cast(max(acc, fr(0.0)), out_t)
    assert negative > 0  # the relu really clamps something
    assert_bits(out, expected)
