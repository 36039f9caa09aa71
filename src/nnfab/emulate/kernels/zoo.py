"""Embedding, Conv1D/2DTranspose and LayerNormalization: the rules of docs/semantics.md.

- Embedding: a row lookup; an index outside ``0..V-1`` gives a row of zeros (counted
  under ``index``).
- Conv transposes: the transposed convolution is the convolution (stride 1, flipped
  kernel) of the input dilated by the stride and padded to the full output; the same
  set of exact products (the inserted zeros add zero products) goes through
  ``weighted_sum`` (each product cast to ``accum``, the sum wrapped once).
- LayerNormalization: exact integer sums, one cast each for the mean, the variance, the
  normalized value and the result; ``1/sqrt`` from ``nnfab.ir.zoo.rsqrt_table``.
"""

from __future__ import annotations

import math

import numpy as np

from nnfab.emulate.base import Kernel, OverflowCounter, register
from nnfab.emulate.kernels.common import (
    add,
    cast_counted,
    from_values,
    mul,
    sub,
    total,
)
from nnfab.emulate.kernels.conv import IM2COL_CHUNK_ELEMENTS, im2col
from nnfab.emulate.kernels.dense import apply_fused_activation, check_accumulator, weighted_sum
from nnfab.errors import EmulationError, GraphError
from nnfab.ir import Graph, Node
from nnfab.ir.tables import reciprocal
from nnfab.ir.zoo import rsqrt_table, transpose_attrs


@register("Embedding")
class EmbeddingKernel(Kernel):
    def __init__(self, node: Node, graph: Graph) -> None:
        super().__init__(node, graph)
        if not self.in_types[0].is_integer:
            raise EmulationError(
                f"layer {node.name!r} (Embedding): input type {self.in_types[0]} is not an "
                "integer type; indices need ap_int<W> / ap_uint<W>"
            )
        self.w_type = self.precision("weight")
        table = np.asarray(node.weights["embeddings"], dtype=np.float64)
        self.table, self.table_overflow = self.w_type.quantize_and_count(table)  # "table"
        self.vocab, self.dim = self.table.shape

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        (x,) = inputs
        valid = (x >= 0) & (x <= self.vocab - 1)
        idx = np.where(valid, x, 0).astype(np.int64)
        rows = np.where(valid[..., None], self.table[idx], 0.0)
        counter.record("index", int(np.count_nonzero(~valid)), int(valid.size))
        return counter.cast("result", self.out_type, rows, source=self.w_type)


class _TransposeKernel(Kernel):
    rank = 0

    def __init__(self, node: Node, graph: Graph) -> None:
        super().__init__(node, graph)
        self.w_type = self.precision("weight")
        self.b_type = self.precision("bias")
        self.accum = self.precision("accum")
        check_accumulator(node, self.accum)
        try:
            self.strides, self.pads, self.extra = transpose_attrs(node, self.rank)
        except GraphError as e:
            raise EmulationError(str(e)) from None
        kernel = np.asarray(node.weights["kernel"], dtype=np.float64)
        if kernel.ndim != self.rank + 2:
            raise EmulationError(
                f"layer {node.name!r} ({node.op}): kernel shape {kernel.shape} must have "
                f"{self.rank + 2} axes (*kernel_size, channels, filters)"
            )
        kernel, self.kernel_overflow = self.w_type.quantize_and_count(kernel)
        self.ksize = tuple(int(k) for k in kernel.shape[: self.rank])
        flipped = kernel[tuple(slice(None, None, -1) for _ in range(self.rank))]
        self.matrix = np.ascontiguousarray(flipped).reshape(-1, kernel.shape[-1])
        bias = np.asarray(node.weights["bias"], dtype=np.float64).reshape(-1)
        if bias.size != kernel.shape[-1]:
            raise EmulationError(
                f"layer {node.name!r} ({node.op}): bias has {bias.size} values, the layer has "
                f"{kernel.shape[-1]} filters"
            )
        bias, self.bias_overflow = self.b_type.quantize_and_count(bias)
        self.bias = self.accum.quantize(bias)

    def _full_input(self, x: np.ndarray) -> np.ndarray:
        """``x`` dilated by the strides and zero-padded by ``k - 1`` (+ output_padding)."""
        batch, channels = x.shape[0], x.shape[-1]
        spatial = x.shape[1:-1]
        dilated = np.zeros((batch, *((n - 1) * s + 1 for n, s in zip(spatial, self.strides,
                                                                      strict=True)), channels))
        dilated[(slice(None), *(slice(None, None, s) for s in self.strides))] = x
        widths = [(0, 0), *((k - 1, k - 1 + e) for k, e in zip(self.ksize, self.extra,
                                                                 strict=True)), (0, 0)]
        return np.pad(dilated, widths)

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        (x,) = inputs
        batch = x.shape[0]
        full = self._full_input(x)
        crop = (slice(None), *(slice(self.pads[2 * a], self.pads[2 * a] + self.out_shape[a])
                               for a in range(self.rank)))
        per_sample = max(1, math.prod(self.out_shape[:-1]) * self.matrix.shape[0])
        step = max(1, IM2COL_CHUNK_ELEMENTS // per_sample)
        out = np.empty((batch, *self.out_shape), dtype=np.float64)
        overflowed = 0
        for start in range(0, batch, step):
            cols = im2col(full[start : start + step], self.ksize, (1,) * self.rank,
                          (0,) * (2 * self.rank))[crop]  # only the windows of kept outputs
            rows = math.prod(cols.shape[: self.rank + 1])
            values, n = weighted_sum(cols.reshape(rows, -1), self.in_types[0], self.matrix,
                                     self.w_type, self.accum, self.bias)
            out[start : start + step] = values.reshape(-1, *self.out_shape)
            overflowed += n
        counter.record("accum", overflowed, out.size)
        out = apply_fused_activation(self.node, out)
        return counter.cast("result", self.out_type, out)


@register("Conv1DTranspose")
class Conv1DTransposeKernel(_TransposeKernel):
    rank = 1


@register("Conv2DTranspose")
class Conv2DTransposeKernel(_TransposeKernel):
    rank = 2


@register("LayerNormalization")
class LayerNormKernel(Kernel):
    def __init__(self, node: Node, graph: Graph) -> None:
        super().__init__(node, graph)
        keys = ("weight", "bias", "scale", "mean", "var", "table", "norm")
        self.types = {k: self.precision(k) for k in keys}
        n = int(self.in_shapes[0][-1])
        self.n = n
        inv, over = reciprocal(n, self.types["scale"])
        self.scale_overflow = int(over)
        self.inv = from_values(np.array(inv), self.types["scale"])
        gamma = np.asarray(node.weights["gamma"], dtype=np.float64).reshape(-1)
        beta = np.asarray(node.weights["beta"], dtype=np.float64).reshape(-1)
        if gamma.size != n or beta.size != n:
            raise EmulationError(
                f"layer {node.name!r} (LayerNormalization): gamma/beta have {gamma.size}/"
                f"{beta.size} values, the last axis {n}"
            )
        # static overflow reports: gamma under "kernel", beta "bias", 1/N "scale"
        g, self.kernel_overflow = self.types["weight"].quantize_and_count(gamma)
        b, self.bias_overflow = self.types["bias"].quantize_and_count(beta)
        self.gamma = from_values(g, self.types["weight"])
        self.beta = from_values(b, self.types["bias"])
        self.table = rsqrt_table(node.attrs, self.types["table"], self.types["var"],
                                 layer=node.name)
        self.table_overflow = int(np.count_nonzero(self.table.overflow))

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        (x,) = inputs
        t = self.types
        xe = from_values(x, self.in_types[0])
        s = total(xe, axis=-1, keepdims=True)
        mean = cast_counted(counter, "mean", mul(s, self.inv), t["mean"])
        d = sub(xe, from_values(mean, t["mean"]))
        q = total(mul(d, d), axis=-1, keepdims=True)
        var = cast_counted(counter, "var", mul(q, self.inv), t["var"])
        k = self.table.index_mantissas(from_values(var, t["var"]).m)
        r = from_values(self.table.values[k], t["table"])
        norm = cast_counted(counter, "norm", mul(d, r), t["norm"])
        y = add(mul(from_values(norm, t["norm"]), self.gamma), self.beta)
        return cast_counted(counter, "result", y, self.out_type)


__all__ = ["Conv1DTransposeKernel", "Conv2DTransposeKernel", "EmbeddingKernel",
           "LayerNormKernel"]
