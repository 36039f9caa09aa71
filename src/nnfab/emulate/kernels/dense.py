"""Dense: ``result(accum(sum_i accum(x_i * w_ij)) + accum(bias_j))`` on the last axis."""

from __future__ import annotations

import numpy as np

from nnfab.emulate.base import Kernel, OverflowCounter, register
from nnfab.emulate.exact import exact_matmul, wrap_mantissas
from nnfab.emulate.kernels.common import (
    Exact,
    from_values,
    max_abs,
    mul,
    round_to,
    total,
    widen,
)
from nnfab.errors import EmulationError, PrecisionError
from nnfab.ir import FixedType, Graph, Node, Overflow

PRODUCT_CHUNK_ELEMENTS = 1 << 24
"""Largest batch x n_in x n_out block materialized when products must be rounded."""


def check_accumulator(node: Node, accum: FixedType) -> None:
    if accum.overflow is not Overflow.WRAP:
        raise PrecisionError(
            f"layer {node.name!r}: accumulator type {accum} saturates; nnfab accumulators must "
            "wrap (AP_WRAP) so the sum does not depend on the order of additions. Widen it "
            "(or leave it 'auto') and saturate the result type instead."
        )


def apply_fused_activation(node: Node, acc: np.ndarray) -> np.ndarray:
    """A relu fused into a weighted layer acts on the accumulator, before the result cast."""
    activation = node.attrs.get("activation", "linear")
    if activation == "relu":
        return np.maximum(acc, 0.0)
    if activation != "linear":
        raise EmulationError(f"layer {node.name!r}: unknown fused activation {activation!r}")
    return acc


def weighted_sum(
    x: np.ndarray,
    x_type: FixedType,
    w: np.ndarray,
    w_type: FixedType,
    accum: FixedType,
    bias: np.ndarray | None,
) -> tuple[np.ndarray, int]:
    """Sum of products into ``accum`` for 2-D ``x`` (rows) and ``w`` (n_in, n_out).

    Returns the accumulator values and the number of outputs whose exact sum (of the
    accum-cast products and bias) lies outside ``accum``: with a wrap-around
    accumulator exactly those outputs differ from the exact sum. Shared by Dense and
    the convolutions (via im2col).
    """
    if accum.frac >= x_type.frac + w_type.frac:
        values, flags = exact_matmul(x, x_type, w, w_type, accum, bias)
        return values, int(np.count_nonzero(flags))
    # Products finer than the accumulator: each exact product is rounded on its own
    # (integer arithmetic, so any widths stay exact), then the sum wraps once.
    n_rows, n_in = x.shape
    n_out = w.shape[1]
    out = np.empty((n_rows, n_out), dtype=np.float64)
    overflowed = 0
    xe, we = from_values(x, x_type), from_values(w, w_type)
    b = from_values(bias, accum).m if bias is not None else None
    step = max(1, PRODUCT_CHUNK_ELEMENTS // max(1, n_in * n_out))
    for start in range(0, n_rows, step):
        products = mul(Exact(xe.m[start : start + step, :, None], xe.frac),
                       Exact(we.m[None, :, :], we.frac))
        mantissas = total(round_to(products, accum.frac, accum.rounding), axis=1).m
        if b is not None:
            bound = max_abs(mantissas) + max_abs(b)
            mantissas = widen(mantissas, bound) + widen(b, bound)
        values, flags = wrap_mantissas(mantissas, accum)
        overflowed += int(np.count_nonzero(flags))
        out[start : start + step] = values
    return out, overflowed


@register("Dense")
class DenseKernel(Kernel):
    def __init__(self, node: Node, graph: Graph) -> None:
        super().__init__(node, graph)
        self.w_type = self.precision("weight")
        self.b_type = self.precision("bias")
        self.accum = self.precision("accum")
        check_accumulator(node, self.accum)
        self.kernel, self.kernel_overflow = self.w_type.quantize_and_count(node.weights["kernel"])
        bias, self.bias_overflow = self.b_type.quantize_and_count(node.weights["bias"])
        self.bias = self.accum.quantize(bias)

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        (x,) = inputs
        lead = x.shape[:-1]
        acc, overflowed = weighted_sum(
            x.reshape(-1, x.shape[-1]), self.in_types[0], self.kernel, self.w_type, self.accum,
            self.bias,
        )
        counter.record("accum", overflowed, acc.size)
        acc = apply_fused_activation(self.node, acc)
        return counter.cast("result", self.out_type, acc.reshape(*lead, acc.shape[-1]))
