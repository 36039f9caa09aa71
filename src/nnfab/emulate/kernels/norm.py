"""BatchNormalization (inference): ``result(accum(x * scale_q) + accum(bias_q))`` per channel.

``scale`` and ``bias`` are per channel of the last axis; ``scale`` uses the
``weight`` type. The product is exact before its cast to the accumulator; the sum
wraps in the accumulator like every nnfab accumulator.
"""

from __future__ import annotations

import numpy as np

from nnfab.emulate.base import Kernel, OverflowCounter, register
from nnfab.emulate.kernels.common import add, cast_counted, from_values, mul, round_to
from nnfab.emulate.kernels.dense import check_accumulator
from nnfab.errors import EmulationError
from nnfab.ir import Graph, Node


@register("BatchNormalization")
class BatchNormKernel(Kernel):
    def __init__(self, node: Node, graph: Graph) -> None:
        super().__init__(node, graph)
        self.w_type = self.precision("weight")
        self.b_type = self.precision("bias")
        self.accum = self.precision("accum")
        check_accumulator(node, self.accum)
        channels = self.in_shapes[0][-1]
        arrays = {}
        for key in ("scale", "bias"):
            values = np.asarray(node.weights[key], dtype=np.float64).reshape(-1)
            if values.size != channels:
                raise EmulationError(
                    f"layer {node.name!r} ({node.op}): weight {key!r} has {values.size} values, "
                    f"the input has {channels} channels"
                )
            arrays[key] = values
        scale, self.scale_overflow = self.w_type.quantize_and_count(arrays["scale"])
        bias, self.bias_overflow = self.b_type.quantize_and_count(arrays["bias"])
        self.scale = from_values(scale, self.w_type)
        self.bias = from_values(self.accum.quantize(bias), self.accum)

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        (x,) = inputs
        product = mul(from_values(x, self.in_types[0]), self.scale)
        rounded = round_to(product, self.accum.frac, self.accum.rounding)
        # Wrapping is modular: wrapping the product first would not change the sum.
        acc = cast_counted(counter, "accum", add(rounded, self.bias), self.accum)
        return counter.cast("result", self.out_type, acc)

