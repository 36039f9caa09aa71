"""Conv1D/2D and DepthwiseConv1D/2D: zero padding, im2col, then the shared weighted sum.

Each output is ``result(accum(sum of accum(x * w) over the window) + accum(bias))``
exactly as for Dense (``weighted_sum``). When every sum of products is exact in float64
(``exact.mantissa_bound`` below 2**53, the usual case), the sum runs row by row of the
kernel: one matrix product over (taps of the last spatial axis x channels) per position
of the other axes, added up in float64 (exact in any order, and faster than gathering
whole windows or one product per tap). Otherwise the window's rows are
gathered (im2col) and go through ``weighted_sum``'s integer path.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nnfab.emulate.base import Kernel, OverflowCounter, register
from nnfab.emulate.exact import FLOAT_EXACT_BOUND, finish_float_sum, mantissa_bound
from nnfab.emulate.kernels.common import spatial_attr
from nnfab.emulate.kernels.dense import apply_fused_activation, check_accumulator, weighted_sum
from nnfab.errors import EmulationError
from nnfab.ir import Graph, Node, Overflow

IM2COL_CHUNK_ELEMENTS = 1 << 20
"""Largest im2col matrix (elements) built at once; the batch is processed in chunks."""


def im2col(
    x: np.ndarray,
    ksize: tuple[int, ...],
    strides: tuple[int, ...],
    pads: tuple[int, ...],
) -> np.ndarray:
    """Windows of zero-padded channels-last ``x``: shape ``(batch, *out, *ksize, channels)``.

    The result is a strided view of the padded copy of ``x`` (reshaping it copies).
    """
    rank = len(ksize)
    widths = [(0, 0), *((pads[2 * a], pads[2 * a + 1]) for a in range(rank)), (0, 0)]
    padded = np.pad(x, widths) if any(pads) else x
    windows = sliding_window_view(padded, ksize, axis=tuple(range(1, rank + 1)))
    windows = windows[(slice(None), *(slice(None, None, s) for s in strides))]
    return np.moveaxis(windows, rank + 1, -1)  # (batch, *out, C, *k) -> (batch, *out, *k, C)


class _ConvKernel(Kernel):
    rank = 0
    depthwise = False

    def __init__(self, node: Node, graph: Graph) -> None:
        super().__init__(node, graph)
        in_shape = self.in_shapes[0]
        if len(in_shape) != self.rank + 1:
            raise EmulationError(
                f"layer {node.name!r} ({node.op}): input shape {in_shape} must have "
                f"{self.rank} spatial axis(es) plus channels"
            )
        self.w_type = self.precision("weight")
        self.b_type = self.precision("bias")
        self.accum = self.precision("accum")
        check_accumulator(node, self.accum)
        kernel = np.asarray(node.weights["kernel"], dtype=np.float64)
        if kernel.ndim != self.rank + 2:
            raise EmulationError(
                f"layer {node.name!r} ({node.op}): kernel shape {kernel.shape} must have "
                f"{self.rank + 2} axes (*kernel_size, channels, filters)"
            )
        self.ksize = tuple(int(k) for k in kernel.shape[: self.rank])
        self.channels = int(kernel.shape[self.rank])
        self.strides = spatial_attr(self, "strides", (1,) * self.rank, self.rank)
        self.pads = spatial_attr(self, "pads", (0,) * (2 * self.rank), 2 * self.rank)
        self.kernel, self.kernel_overflow = self.w_type.quantize_and_count(kernel)
        n_out = self.out_shape[-1]
        bias = np.asarray(node.weights["bias"], dtype=np.float64).reshape(-1)
        if bias.size != n_out:
            raise EmulationError(
                f"layer {node.name!r} ({node.op}): bias has {bias.size} values, the layer "
                f"has {n_out} output channels"
            )
        bias, self.bias_overflow = self.b_type.quantize_and_count(bias)
        self.bias = self.accum.quantize(bias)
        self.tap_bound = self._float_tap_bound()

    def _float_tap_bound(self) -> float | None:
        """The accumulator bound when the tap-by-tap float64 sum is exact, else None."""
        x_type = self.in_types[0]
        if (self.depthwise or self.accum.overflow is not Overflow.WRAP
                or self.accum.frac < x_type.frac + self.w_type.frac):
            return None
        weights = self.kernel.reshape(-1, self.kernel.shape[-1])
        bound = mantissa_bound(x_type, weights, self.accum, self.bias)
        return bound if bound < FLOAT_EXACT_BOUND else None

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        (x,) = inputs
        batch = x.shape[0]
        out_spatial = self.out_shape[:-1]
        per_sample = max(1, math.prod(out_spatial) * math.prod(self.ksize) * self.channels)
        step = max(1, IM2COL_CHUNK_ELEMENTS // per_sample)
        acc = np.empty((batch, *self.out_shape), dtype=np.float64)
        overflowed = 0
        if self.tap_bound is not None:
            step = max(1, IM2COL_CHUNK_ELEMENTS // max(1, math.prod(self.out_shape)))
            for start in range(0, batch, step):
                values, n = self._accumulate_taps(x[start : start + step])
                overflowed += n
                acc[start : start + step] = values
            counter.record("accum", overflowed, acc.size)
            acc = apply_fused_activation(self.node, acc)
            return counter.cast("result", self.out_type, acc)
        for start in range(0, batch, step):
            cols = im2col(x[start : start + step], self.ksize, self.strides, self.pads)
            rows = cols.shape[0] * math.prod(out_spatial)
            cols = cols.reshape(rows, math.prod(self.ksize), self.channels)
            values, n = self._accumulate(cols)
            overflowed += n
            acc[start : start + step] = values.reshape(-1, *self.out_shape)
        counter.record("accum", overflowed, acc.size)
        acc = apply_fused_activation(self.node, acc)
        return counter.cast("result", self.out_type, acc)

    def _accumulate_taps(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """Accumulator values (batch, *out) summed one kernel row at a time.

        Only used when ``tap_bound`` is set: every partial sum is then a multiple of the
        product grid below 2**53, so float64 adds them exactly in any order.
        """
        assert self.tap_bound is not None
        rank = self.rank
        widths = [(0, 0), *((self.pads[2 * a], self.pads[2 * a + 1]) for a in range(rank)),
                  (0, 0)]
        padded = np.pad(x, widths) if any(self.pads) else x
        out_spatial = self.out_shape[:-1]
        # the taps of the last spatial axis side by side (one copy), so that each position
        # of the other axes is one matrix product over (taps x channels): 3x fewer, larger
        # products than tap by tap
        k_last, s_last = self.ksize[-1], self.strides[-1]
        rows = sliding_window_view(padded, k_last, axis=rank)
        rows = rows[(slice(None),) * rank + (slice(None, None, s_last),)]
        rows = rows[(slice(None),) * rank + (slice(0, out_spatial[-1]),)]
        rows = np.ascontiguousarray(np.moveaxis(rows, -1, -2))  # (..., ow, k_last, C)
        rows = rows.reshape(*rows.shape[:-2], k_last * self.channels)
        batch = x.shape[0]
        out = np.zeros((batch, *self.out_shape), dtype=np.float64)
        flat = out.reshape(batch, -1, out.shape[-1])  # a view: one product per sample
        for tap in np.ndindex(*self.ksize[:-1]):
            window = tuple(slice(t, t + (o - 1) * s + 1, s)
                           for t, o, s in zip(tap, out_spatial[:-1], self.strides[:-1],
                                              strict=True))
            weights = self.kernel[tap].reshape(k_last * self.channels, -1)
            flat += rows[(slice(None), *window)].reshape(batch, -1, rows.shape[-1]) @ weights
        out += self.bias
        values, flags = finish_float_sum(out, self.accum, self.tap_bound)
        return values, int(np.count_nonzero(flags))

    def _accumulate(self, cols: np.ndarray) -> tuple[np.ndarray, int]:
        """Accumulator values (rows, out_channels) of im2col rows (rows, taps, channels)."""
        rows = cols.shape[0]
        weights = self.kernel.reshape(-1, self.kernel.shape[-1])
        return weighted_sum(
            cols.reshape(rows, -1), self.in_types[0], weights, self.w_type, self.accum, self.bias
        )


class _DepthwiseKernel(_ConvKernel):
    """Output channel ``c * M + m`` sums input channel ``c`` times ``kernel[..., c, m]``."""

    depthwise = True

    def _accumulate(self, cols: np.ndarray) -> tuple[np.ndarray, int]:
        rows, taps, channels = cols.shape
        mult = self.kernel.shape[-1]
        kernel = self.kernel.reshape(taps, channels, mult)
        out = np.empty((rows, channels * mult), dtype=np.float64)
        overflowed = 0
        for c in range(channels):
            part = slice(c * mult, (c + 1) * mult)
            values, n = weighted_sum(
                np.ascontiguousarray(cols[:, :, c]), self.in_types[0], kernel[:, c, :],
                self.w_type, self.accum, self.bias[part],
            )
            out[:, part] = values
            overflowed += n
        return out, overflowed


@register("Conv1D")
class Conv1DKernel(_ConvKernel):
    rank = 1


@register("Conv2D")
class Conv2DKernel(_ConvKernel):
    rank = 2


@register("DepthwiseConv1D")
class DepthwiseConv1DKernel(_DepthwiseKernel):
    rank = 1


@register("DepthwiseConv2D")
class DepthwiseConv2DKernel(_DepthwiseKernel):
    rank = 2
