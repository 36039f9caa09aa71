"""Pooling and GlobalPooling: emulator vs loops over windows that exclude padding."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from nnfab.errors import EmulationError
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

IN_T = "ap_fixed<8,3>"
SCALE_T = "ap_ufixed<8,1,AP_RND,AP_SAT>"


def ref_pool2d(x, mode, size, strides, pads, scale_t, out_t):
    batch, height, width, channels = x.shape
    top, bottom, left, right = pads
    oh = (height + top + bottom - size[0]) // strides[0] + 1
    ow = (width + left + right - size[1]) // strides[1] + 1
    out = np.empty((batch, oh, ow, channels), dtype=object)
    over = 0
    for b in range(batch):
        for i in range(oh):
            for j in range(ow):
                for c in range(channels):
                    elems = [
                        fr(x[b, r, s, c])
                        for r in range(i * strides[0] - top, i * strides[0] - top + size[0])
                        for s in range(j * strides[1] - left, j * strides[1] - left + size[1])
                        if 0 <= r < height and 0 <= s < width
                    ]
                    if mode == "max":
                        value = max(elems)
                    else:
                        value = sum(elems) * ref_value(Fraction(1, len(elems)), scale_t)
                    out[b, i, j, c], o = ref_cast(value, out_t)
                    over += o
    return out, over


def pool_case(op, in_shape, mode, size, strides, pads, out_t, scale_t=SCALE_T, seed=0):
    rng = np.random.default_rng(seed)
    attrs = {"mode": mode, "pool_size": size, "strides": strides, "pads": pads}
    g = single_op_graph(op, [in_shape], [IN_T], out_t, attrs=attrs,
                        precision={"scale": scale_t})
    x = random_on_grid(rng, fixed(IN_T), (3, *in_shape))
    res = run(g, x)
    if op == "Pooling1D":
        expected, over = ref_pool2d(x[:, None], mode, (1, *size), (1, *strides), (0, 0, *pads),
                                    fixed(scale_t), fixed(out_t))
        expected = expected[:, 0]
    else:
        expected, over = ref_pool2d(x, mode, size, strides, pads, fixed(scale_t), fixed(out_t))
    assert_bits(res.outputs["op"], expected)
    assert res.overflows["op"]["result"] == over
    return res


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize(("size", "strides", "pads"), [
    ((2,), (2,), (0, 0)),
    ((3,), (2,), (1, 1)),  # border windows hold 2 inputs, inner ones 3 (1/3 is inexact)
    ((3,), (1,), (0, 2)),
])
def test_pooling1d(mode, size, strides, pads):
    pool_case("Pooling1D", (7, 2), mode, size, strides, pads, "ap_fixed<10,4,AP_RND_CONV>")


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize(("size", "strides", "pads"), [
    ((2, 2), (2, 2), (0, 0, 0, 0)),
    ((2, 2), (2, 2), (0, 1, 0, 1)),  # Keras 'same' on odd sizes
    ((2, 3), (2, 3), (0, 0, 0, 0)),  # non-square tiles, cropped edges
    ((3, 2), (1, 2), (1, 1, 1, 0)),
])
def test_pooling2d(mode, size, strides, pads):
    pool_case("Pooling2D", (5, 5, 2), mode, size, strides, pads, "ap_fixed<10,4,AP_RND>")


def test_avg_pool_result_rounding_and_saturation():
    # a coarse saturating result type: rounding ties and saturation both happen
    res = pool_case("Pooling2D", (4, 4, 3), "avg", (2, 2), (2, 2), (0, 0, 0, 0),
                    "ap_fixed<4,2,AP_RND_CONV,AP_SAT>", seed=3)
    assert res.overflows["op"]["result"] > 0


def test_max_pool_saturates_into_result():
    res = pool_case("Pooling1D", (6, 2), "max", (2,), (2,), (0, 0), "ap_fixed<4,1,AP_TRN,AP_SAT>")
    assert res.overflows["op"]["result"] > 0


def test_coarse_scale_type():
    # scale with 3 fractional bits: 1/3 -> 3/8 (AP_RND), 1/2 -> 1/2
    pool_case("Pooling1D", (7, 1), "avg", (3,), (2,), (1, 1), "ap_fixed<12,5>",
              scale_t="ap_ufixed<4,1,AP_RND>", seed=5)


def test_scale_overflow_is_reported():
    # 1/1 does not fit ap_ufixed<8,0> (max 255/256): saturates, reported under 'scale'
    g = single_op_graph("Pooling1D", [(4, 1)], [IN_T], "ap_fixed<16,5>",
                        attrs={"mode": "avg", "pool_size": (1,)},
                        precision={"scale": "ap_ufixed<8,0,AP_TRN,AP_SAT>"})
    res = run(g, np.array([[[1.0], [2.0], [-1.0], [0.5]]]))
    assert res.overflows["op"]["scale"] == 1
    assert res.outputs["op"][0, :, 0].tolist() == [
        0.99609375, 1.9921875, -0.99609375, 0.498046875
    ]


@pytest.mark.parametrize("mode", ["max", "avg", "sum"])
@pytest.mark.parametrize(("op", "shape"), [("GlobalPooling1D", (5, 3)),
                                           ("GlobalPooling2D", (3, 4, 2))])
def test_global_pooling(op, shape, mode):
    rng = np.random.default_rng(11)
    out_t = "ap_fixed<12,4,AP_RND_INF>"
    g = single_op_graph(op, [shape], [IN_T], out_t, attrs={"mode": mode},
                        precision={"scale": SCALE_T})
    x = random_on_grid(rng, fixed(IN_T), (4, *shape))
    res = run(g, x)
    count = int(np.prod(shape[:-1]))
    flat = x.reshape(4, count, shape[-1])
    expected = np.empty((4, shape[-1]), dtype=object)
    scale = ref_value(Fraction(1, count), fixed(SCALE_T))
    for b in range(4):
        for c in range(shape[-1]):
            elems = [fr(v) for v in flat[b, :, c]]
            value = max(elems) if mode == "max" else sum(elems) * scale if mode == "avg" \
                else sum(elems)
            expected[b, c] = ref_value(value, fixed(out_t))
    assert_bits(res.outputs["op"], expected)


def test_global_sum_default_type_holds_the_exact_sum():
    """No result type configured: the input type with ceil(log2 count) more integer bits,
    so the sum of 5 x 4 extreme inputs is exact (and a plain Pooling has no sum mode)."""
    import nnfab
    from nnfab.ir import Graph, Node

    g = Graph("gsum")
    g.add_node(Node("x", "Input", [], attrs={"shape": (5, 4, 2)}), (5, 4, 2))
    g.add_node(Node("s", "GlobalPooling2D", ["x"], attrs={"mode": "sum"}), (2,))
    g.outputs = ["s"]
    model = nnfab.convert_graph(g, {"LayerName": {"x": {"Precision": {"result": IN_T}}}})
    assert str(model.graph.tensors["s"].type) == "ap_fixed<13,8>"
    t = fixed(IN_T)
    x = np.stack([np.full((5, 4, 2), float(t.max)), np.full((5, 4, 2), float(t.min))])
    np.testing.assert_array_equal(model.predict(x), [[20 * float(t.max)] * 2,
                                                     [20 * float(t.min)] * 2])
    assert model.overflow_report().get("s", {}).get("result", 0) == 0
    bad = single_op_graph("Pooling1D", [(4, 1)], [IN_T], IN_T,
                          attrs={"mode": "sum", "pool_size": (2,), "strides": (2,)})
    with pytest.raises(EmulationError, match="'sum' is not one of"):
        run(bad, np.zeros((1, 4, 1)))


def test_empty_window_is_rejected():
    g = single_op_graph("Pooling1D", [(4, 1)], [IN_T], IN_T,
                        attrs={"mode": "max", "pool_size": (2,), "strides": (2,),
                               "pads": (2, 0)})
    with pytest.raises(EmulationError, match="no input"):
        run(g, np.zeros((1, 4, 1)))


def test_bad_mode_and_missing_scale():
    g = single_op_graph("Pooling1D", [(4, 1)], [IN_T], IN_T,
                        attrs={"mode": "median", "pool_size": (2,)})
    with pytest.raises(EmulationError, match="'median'"):
        run(g, np.zeros((1, 4, 1)))
    g = single_op_graph("GlobalPooling1D", [(4, 1)], [IN_T], IN_T, attrs={"mode": "avg"})
    with pytest.raises(EmulationError, match=r"'op'.*'scale'"):
        run(g, np.zeros((1, 4, 1)))
