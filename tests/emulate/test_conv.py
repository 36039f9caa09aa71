"""Conv1D/2D and DepthwiseConv1D/2D: emulator vs a naive direct-convolution loop."""

from __future__ import annotations

import numpy as np
import pytest

from nnfab.emulate.kernels import conv
from nnfab.errors import PrecisionError
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


def ref_conv2d(x, kernel, bias, strides, pads, types, depthwise):
    """Direct loop over (batch, out_h, out_w, out_channel); padding reads zeros.

    ``x`` (B, H, W, C); ``kernel`` (kh, kw, C, F) or (kh, kw, C, M) for depthwise.
    """
    w_t, b_t, acc_t, out_t = types
    batch, height, width, channels = x.shape
    kh, kw = kernel.shape[:2]
    top, bottom, left, right = pads
    sh, sw = strides
    oh = (height + top + bottom - kh) // sh + 1
    ow = (width + left + right - kw) // sw + 1
    wq = np.empty(kernel.shape, dtype=object)
    for idx, v in np.ndenumerate(kernel):
        wq[idx] = ref_value(fr(v), w_t)
    bq = [ref_value(fr(v), b_t) for v in bias]
    n_out = channels * kernel.shape[3] if depthwise else kernel.shape[3]

    def xin(b, i, j, c):
        if 0 <= i < height and 0 <= j < width:
            return fr(x[b, i, j, c])
        return fr(0.0)

    out = np.empty((batch, oh, ow, n_out), dtype=object)
    acc_over = res_over = 0
    for b in range(batch):
        for i in range(oh):
            for j in range(ow):
                for f in range(n_out):
                    if depthwise:
                        c, m = divmod(f, kernel.shape[3])
                        pairs = [(xin(b, i * sh + u - top, j * sw + v - left, c), wq[u, v, c, m])
                                 for u in range(kh) for v in range(kw)]
                    else:
                        pairs = [(xin(b, i * sh + u - top, j * sw + v - left, c), wq[u, v, c, f])
                                 for u in range(kh) for v in range(kw) for c in range(channels)]
                    acc, wrapped = ref_accumulate(pairs, bq[f], acc_t)
                    out[b, i, j, f], over = ref_cast(acc, out_t)
                    acc_over += wrapped
                    res_over += over
    return out, acc_over, res_over


TYPES = ("ap_fixed<6,2>", "ap_fixed<8,3>", "ap_fixed<22,10>", "ap_fixed<10,4,AP_RND,AP_SAT>")


def conv_case(op, in_shape, kshape, strides, pads, types=TYPES, seed=0, batch=3):
    w_t, b_t, acc_t, out_t = types
    in_t = "ap_fixed<8,3,AP_RND,AP_SAT>"
    rng = np.random.default_rng(seed)
    depthwise = op.startswith("Depthwise")
    kernel = rng.normal(0, 0.8, size=kshape)
    n_out = kshape[-2] * kshape[-1] if depthwise else kshape[-1]
    bias = rng.normal(0, 1.0, size=n_out)
    g = single_op_graph(
        op, [in_shape], [in_t], out_t, attrs={"strides": strides, "pads": pads},
        weights={"kernel": kernel, "bias": bias},
        precision={"weight": w_t, "bias": b_t, "accum": acc_t},
    )
    x = random_on_grid(rng, fixed(in_t), (batch, *in_shape))
    res = run(g, x)
    ftypes = tuple(fixed(t) for t in types)
    if op.endswith("1D"):  # a 1-D convolution is a 2-D one of height 1
        expected, acc_over, res_over = ref_conv2d(
            x[:, None], kernel[None], bias, (1, strides[0]), (0, 0, *pads), ftypes, depthwise
        )
        expected = expected[:, 0]
    else:
        expected, acc_over, res_over = ref_conv2d(
            x, kernel, bias, strides, pads, ftypes, depthwise
        )
    assert_bits(res.outputs["op"], expected)
    assert res.overflows["op"]["accum"] == acc_over
    assert res.overflows["op"]["result"] == res_over
    return acc_over, res_over


@pytest.mark.parametrize(("strides", "pads"), [((1,), (0, 0)), ((2,), (1, 2)), ((3,), (2, 0))])
def test_conv1d(strides, pads):
    conv_case("Conv1D", (9, 3), (3, 3, 4), strides, pads)


@pytest.mark.parametrize(("strides", "pads"), [
    ((1, 1), (0, 0, 0, 0)),
    ((2, 1), (1, 1, 0, 1)),
    ((1, 2), (2, 0, 1, 1)),
])
def test_conv2d(strides, pads):
    conv_case("Conv2D", (5, 6, 2), (3, 2, 2, 3), strides, pads)


@pytest.mark.parametrize(("strides", "pads"), [((1,), (1, 1)), ((2,), (0, 2))])
def test_depthwise_conv1d(strides, pads):
    conv_case("DepthwiseConv1D", (8, 3), (3, 3, 2), strides, pads)


@pytest.mark.parametrize(("strides", "pads"), [((1, 1), (1, 1, 1, 1)), ((2, 2), (0, 1, 1, 0))])
def test_depthwise_conv2d(strides, pads):
    conv_case("DepthwiseConv2D", (5, 5, 3), (3, 3, 3, 2), strides, pads)


def test_conv2d_rounded_products_and_wrapping_accumulator():
    # products have 4 + 5 = 9 fractional bits; this accumulator has 3 and only 6 bits
    types = ("ap_fixed<6,2>", "ap_fixed<8,3>", "ap_fixed<6,3,AP_RND_CONV>", "ap_fixed<12,6>")
    acc_over, _ = conv_case("Conv2D", (4, 5, 2), (2, 2, 2, 3), (1, 1), (1, 0, 0, 1), types)
    assert acc_over > 0


def test_depthwise_wrapping_accumulator():
    types = ("ap_fixed<6,2>", "ap_fixed<8,3>", "ap_fixed<12,3>", "ap_fixed<12,6>")
    acc_over, _ = conv_case("DepthwiseConv1D", (7, 2), (3, 2, 2), (1,), (1, 1), types)
    assert acc_over > 0


def test_tap_by_tap_sum_with_a_wrapping_accumulator(monkeypatch):
    # products have 5 + 4 = 9 fractional bits, as many as the accumulator: the float64
    # tap-by-tap path runs (im2col would raise here), and the 12-bit accumulator wraps
    def no_im2col(self, cols):
        raise AssertionError("the im2col path ran")

    monkeypatch.setattr(conv._ConvKernel, "_accumulate", no_im2col)
    types = ("ap_fixed<6,2>", "ap_fixed<8,3>", "ap_fixed<12,3>", "ap_fixed<12,6>")
    acc_over, _ = conv_case("Conv2D", (5, 5, 2), (3, 2, 2, 3), (2, 1), (1, 0, 1, 1), types)
    assert acc_over > 0
    acc_over, _ = conv_case("Conv1D", (9, 2), (3, 2, 3), (1,), (2, 1), types)
    assert acc_over > 0


def test_rounded_products_take_the_integer_path(monkeypatch):
    def no_taps(self, x):
        raise AssertionError("the float tap path ran")

    monkeypatch.setattr(conv._ConvKernel, "_accumulate_taps", no_taps)
    types = ("ap_fixed<6,2>", "ap_fixed<8,3>", "ap_fixed<6,3,AP_RND_CONV>", "ap_fixed<12,6>")
    conv_case("Conv2D", (4, 5, 2), (2, 2, 2, 3), (1, 1), (1, 0, 0, 1), types)


def test_kernel_fully_in_padding_gives_the_bias():
    # pads larger than the kernel: border outputs see only padding -> result(accum(bias))
    g = single_op_graph(
        "Conv1D", [(2, 1)], ["ap_fixed<8,3>"], "ap_fixed<8,3>", attrs={"pads": (3, 0)},
        weights={"kernel": np.ones((2, 1, 1)), "bias": np.array([0.75])},
        precision={"weight": "ap_fixed<8,3>", "bias": "ap_fixed<8,3>", "accum": "ap_fixed<16,8>"},
    )
    y = run(g, np.array([[[1.0], [2.0]]])).outputs["op"]
    assert y[0, :, 0].tolist() == [0.75, 0.75, 1.75, 3.75]


def test_batch_chunking(monkeypatch):
    # a tiny im2col budget forces one sample per chunk
    monkeypatch.setattr(conv, "IM2COL_CHUNK_ELEMENTS", 1)
    conv_case("Conv2D", (4, 4, 2), (2, 2, 2, 2), (1, 1), (0, 1, 0, 1), batch=4, seed=7)
    conv_case("DepthwiseConv1D", (6, 2), (2, 2, 3), (2,), (0, 0), batch=4, seed=8)


def test_saturating_accumulator_is_rejected():
    g = single_op_graph(
        "Conv1D", [(4, 1)], ["ap_fixed<8,3>"], "ap_fixed<8,3>",
        weights={"kernel": np.ones((2, 1, 1)), "bias": np.zeros(1)},
        precision={"weight": "ap_fixed<8,3>", "bias": "ap_fixed<8,3>",
                   "accum": "ap_fixed<16,8,AP_RND,AP_SAT>"},
    )
    with pytest.raises(PrecisionError, match="'op'"):
        run(g, np.zeros((1, 4, 1)))
