"""Merge (add, subtract, multiply, average, maximum, minimum) and Concatenate.

Merge computes the exact sum, difference, product, maximum or minimum of its inputs and
casts it once to the result type; ``average`` is ``result(exact_sum * scale_q(1/n))``.
Dot is ``result(sum_i x_i * z_i)`` of two vectors, exact until the cast; MatMul the
matrix product of two activations, likewise.
Concatenate casts each input to the result type and joins them.
"""

from __future__ import annotations

from functools import reduce

import numpy as np

from nnfab.emulate.base import Kernel, OverflowCounter, register
from nnfab.emulate.kernels.common import (
    Exact,
    add,
    align,
    cast_counted,
    from_values,
    mul,
    require_attr,
    sub,
    total,
)
from nnfab.errors import EmulationError
from nnfab.ir import Graph, Node
from nnfab.ir.ops import MERGE_MODES
from nnfab.ir.tables import reciprocal


@register("Merge")
class MergeKernel(Kernel):
    def __init__(self, node: Node, graph: Graph) -> None:
        super().__init__(node, graph)
        self.mode = require_attr(self, "mode")
        if self.mode not in MERGE_MODES:
            raise EmulationError(
                f"layer {node.name!r} (Merge): mode {self.mode!r} is not one of {MERGE_MODES}"
            )
        n = len(node.inputs)
        if self.mode == "subtract" and n != 2:
            raise EmulationError(
                f"layer {node.name!r} (Merge): mode 'subtract' takes exactly 2 inputs, got {n}"
            )
        self.scale_overflow = 0
        if self.mode == "average":
            scale_type = self.precision("scale")
            value, overflowed = reciprocal(n, scale_type)
            self.scale = from_values(value, scale_type)
            self.scale_overflow = int(overflowed)

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        values = [from_values(x, t) for x, t in zip(inputs, self.in_types, strict=True)]
        if self.mode in ("maximum", "minimum"):  # exact compare on the common grid
            (*ms,), frac = align(*values)
            if any(m.dtype == object for m in ms):
                ms = [m.astype(object) for m in ms]
            pick = np.maximum if self.mode == "maximum" else np.minimum
            exact = Exact(reduce(pick, ms), frac)
        elif self.mode == "subtract":
            exact = sub(values[0], values[1])
        elif self.mode == "multiply":
            exact = reduce(mul, values)
        else:
            exact = reduce(add, values)
            if self.mode == "average":
                exact = mul(exact, self.scale)
        return cast_counted(counter, "result", exact, self.out_type)


@register("Dot")
class DotKernel(Kernel):
    """``result(sum_i x_i * z_i)`` of two vectors: exact products, exact sum, one cast."""

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        a, b = (from_values(x, t) for x, t in zip(inputs, self.in_types, strict=True))
        return cast_counted(counter, "result", total(mul(a, b), axis=-1, keepdims=True),
                            self.out_type)


@register("MatMul")
class MatMulKernel(Kernel):
    """``result(sum_k a[..., i, k] * b[..., k, j])``: the matrix product of two
    activations (batched over the leading axes), exact products and sums, one cast."""

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        ta, tb = self.in_types
        k = inputs[0].shape[-1]
        if ta.width + tb.width + max(1, k).bit_length() <= 52:
            # every partial sum is an integer multiple of the product grid below 2**53:
            # float64 adds them exactly in any order (BLAS)
            return counter.cast("result", self.out_type, inputs[0] @ inputs[1])
        a, b = (from_values(x, t) for x, t in zip(inputs, self.in_types, strict=True))
        products = mul(Exact(a.m[..., :, :, None], a.frac), Exact(b.m[..., None, :, :], b.frac))
        return cast_counted(counter, "result", total(products, axis=-2), self.out_type)


@register("Concatenate")
class ConcatenateKernel(Kernel):
    def __init__(self, node: Node, graph: Graph) -> None:
        super().__init__(node, graph)
        axis = require_attr(self, "axis")
        rank = len(self.out_shape)
        if isinstance(axis, bool) or not isinstance(axis, int | np.integer) or not (
            0 <= axis < rank
        ):
            raise EmulationError(
                f"layer {node.name!r} (Concatenate): axis {axis!r} must be an integer in "
                f"0..{rank - 1} (an axis of the shape without the batch)"
            )
        self.axis = int(axis) + 1  # the batch axis comes first at run time

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        parts = [
            counter.cast("result", self.out_type, x, source=t)
            for x, t in zip(inputs, self.in_types, strict=True)
        ]
        return np.concatenate(parts, axis=self.axis)
