"""Activation (``nnfab.ir.ops.ACTIVATIONS``) and Softmax.

Piecewise-linear functions (relu, leaky_relu, prelu, thresholded_relu, hard_tanh,
hard_sigmoid) are computed exactly and cast once to the result type; sigmoid, tanh,
softplus, softsign, softmax and the negative halves of elu, celu and selu use the lookup
tables of ``nnfab.ir.tables``.
"""

from __future__ import annotations

import numpy as np

from nnfab.emulate.base import Kernel, OverflowCounter, register
from nnfab.emulate.kernels.common import (
    add,
    cast_counted,
    clip,
    from_values,
    mul,
    require_attr,
    total,
    where,
)
from nnfab.errors import ConfigError, EmulationError
from nnfab.ir import FixedType, Graph, Node
from nnfab.ir import activation_rules as rules
from nnfab.ir.ops import ACTIVATIONS
from nnfab.ir.tables import (
    TABLE_FUNCTIONS,
    activation_table,
    softmax_exp_table,
    softmax_inv_table,
)


def _number(kernel: Kernel, key: str) -> float:
    value = require_attr(kernel, key)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not np.isfinite(number):
        raise EmulationError(
            f"layer {kernel.node.name!r} ({kernel.node.op}): attribute {key!r} must be a "
            f"finite number, got {value!r}"
        )
    return number


@register("Activation")
class ActivationKernel(Kernel):
    def __init__(self, node: Node, graph: Graph) -> None:
        super().__init__(node, graph)
        self.function = require_attr(self, "function")
        if self.function not in ACTIVATIONS:
            raise EmulationError(
                f"layer {node.name!r} (Activation): function {self.function!r} is not one of "
                f"{ACTIVATIONS}"
            )
        self.scale_overflow = 0  # constants (alpha, slope, offset) that overflowed 'param'
        self.table_overflow = 0
        self.max_value: float | None = None
        if self.function == "relu" and node.attrs.get("max_value") is not None:
            self.max_value = _number(self, "max_value")
        elif self.function == "leaky_relu":
            self.alpha = self._param("alpha")
        elif self.function == "hard_sigmoid":
            self.slope = self._param("slope")
            self.offset = self._param("offset")
        elif self.function == "prelu":
            alpha = node.weights.get("alpha")
            if alpha is None:
                raise EmulationError(f"layer {node.name!r} (Activation prelu) lacks the weight "
                                     "'alpha' (the per-channel slopes)")
            try:
                per_element = rules.broadcast_alpha(alpha, self.in_shapes[0], node.name)
            except ConfigError as e:
                raise EmulationError(str(e)) from None
            q, flags = self.precision("param").quantize_and_flag(per_element)
            self.scale_overflow += int(np.count_nonzero(flags))
            self.alpha_q = q.reshape(self.in_shapes[0])
        elif self.function == "thresholded_relu":
            self.theta = _number(self, "theta")
        elif self.function == "hard_tanh":
            self.bounds = rules.clip_bounds(node.attrs, node.name)
        if self.function == "selu":
            self.scale = self._param_value(rules.SELU_SCALE)
        if self.function in TABLE_FUNCTIONS:
            for key in ("table_size", "table_range"):
                require_attr(self, key)
            self.table = activation_table(
                self.function, node.attrs, self.precision("table"), layer=node.name
            )
            self.table_overflow = int(np.count_nonzero(self.table.overflow))

    def _param(self, key: str) -> float:
        return self._param_value(_number(self, key))

    def _param_value(self, number: float) -> float:
        param = self.precision("param")
        value, flags = param.quantize_and_flag(np.array([number]))
        self.scale_overflow += int(np.count_nonzero(flags))
        return float(value[0])

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        (x,) = inputs
        fn = self.function
        if fn == "linear":
            return counter.cast("result", self.out_type, x, source=self.in_types[0])
        if fn == "relu":
            y = np.maximum(x, 0.0)
            if self.max_value is not None:
                return counter.cast("result", self.out_type, np.minimum(y, self.max_value))
            return counter.cast("result", self.out_type, y, source=self.in_types[0])
        if fn in TABLE_FUNCTIONS:
            t = self.in_types[0]
            y = self.table.values[self.table.index_mantissas(t.to_mantissa(x), t.frac)]
            if fn in rules.NEGATIVE_TABLE_FUNCTIONS:  # x >= 0: the exact linear part
                e = from_values(x, t)
                if fn == "selu":
                    e = mul(from_values(self.scale, self.precision("param")), e)
                exact = where(x >= 0, e, from_values(y, self.table.type))
                return cast_counted(counter, "result", exact, self.out_type)
            return counter.cast("result", self.out_type, y, source=self.table.type)
        if fn == "thresholded_relu":
            e = from_values(x, self.in_types[0])
            exact = where(x > self.theta, e, from_values(np.zeros_like(x), self.in_types[0]))
            return cast_counted(counter, "result", exact, self.out_type)
        if fn == "hard_tanh":
            e = from_values(x, self.in_types[0])
            return cast_counted(counter, "result", clip(e, *self.bounds), self.out_type)
        param = self.precision("param")
        e = from_values(x, self.in_types[0])
        if fn == "prelu":
            alpha = np.broadcast_to(self.alpha_q, x.shape)
            product = mul(from_values(alpha, param), e)
            return cast_counted(counter, "result", where(x >= 0, e, product), self.out_type)
        if fn == "leaky_relu":
            product = mul(from_values(self.alpha, param), e)
            return cast_counted(counter, "result", where(x >= 0, e, product), self.out_type)
        # hard_sigmoid
        line = add(mul(from_values(self.slope, param), e), from_values(self.offset, param))
        return cast_counted(counter, "result", clip(line, 0.0, 1.0), self.out_type)


@register("Softmax")
class SoftmaxKernel(Kernel):
    """Softmax over the last axis with an exp table, an exact sum and a reciprocal table."""

    def __init__(self, node: Node, graph: Graph) -> None:
        super().__init__(node, graph)
        for key in ("table_size", "exp_range", "inv_table_size", "inv_range"):
            require_attr(self, key)
        axis = node.attrs.get("axis", -1)
        if axis not in (-1, len(self.in_shapes[0]) - 1):
            raise EmulationError(
                f"layer {node.name!r} (Softmax): axis {axis!r} is not supported; softmax runs "
                "over the last axis (-1)"
            )
        self.exp_type: FixedType = self.precision("exp_table")
        self.inv_type: FixedType = self.precision("inv_table")
        self.sum_type: FixedType = self.precision("exp_sum")
        self.exp = softmax_exp_table(node.attrs, self.exp_type, layer=node.name)
        self.inv = softmax_inv_table(node.attrs, self.inv_type, layer=node.name)
        # With exp(0) in the table every sum is >= 1: bins below 1 are never read, and
        # their huge reciprocals saturating is expected rather than reported.
        reachable = int(self.inv.index(1.0))
        self.table_overflow = int(np.count_nonzero(self.exp.overflow)) + int(
            np.count_nonzero(self.inv.overflow[reachable:])
        )

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        (x,) = inputs
        t = self.in_types[0]
        m = t.to_mantissa(x)
        below_max = m.max(axis=-1, keepdims=True) - m  # -(x - max(x)) as exact mantissas
        entries = self.exp.values[self.exp.index_mantissas(below_max, t.frac)]
        e = from_values(entries, self.exp_type)
        s = cast_counted(counter, "exp_sum", total(e, axis=-1, keepdims=True), self.sum_type)
        j = self.inv.index_mantissas(self.sum_type.to_mantissa(s), self.sum_type.frac)
        inv = from_values(self.inv.values[j], self.inv_type)
        return cast_counted(counter, "result", mul(e, inv), self.out_type)
