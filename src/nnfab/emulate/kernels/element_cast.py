"""ElementCast: each element cast to its own fixed-point type (``nnfab.ir.element_cast``),
then held in the result type."""

from __future__ import annotations

import numpy as np

from nnfab.emulate.base import Kernel, OverflowCounter, register
from nnfab.ir import Graph, Node
from nnfab.ir.element_cast import element_type, element_types, modes, union_type


@register("ElementCast")
class ElementCastKernel(Kernel):
    def __init__(self, node: Node, graph: Graph) -> None:
        super().__init__(node, graph)
        shape = tuple(self.out_shape)
        rounding, overflow = modes(node)
        self.groups = [(element_type(*key, rounding, overflow), mask)
                       for key, mask in sorted(element_types(node, shape).items())]
        self.union = union_type(node, shape)

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        (x,) = inputs
        out = np.zeros(x.shape, dtype=np.float64)
        overflowed = 0
        for t, mask in self.groups:
            if t is None:  # zero bits: the element is 0
                continue
            values, n = t.quantize_and_count(x[:, mask])
            out[:, mask] = values
            overflowed += n
        counter.record("element", overflowed, int(x.size))
        return counter.cast("result", self.out_type, out, source=self.union)
