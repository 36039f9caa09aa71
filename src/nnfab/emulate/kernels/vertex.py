"""VertexMask and VertexMean: the padding vertices of a sample (``v >= count``) are left
out (``nnfab.ir.vertex``)."""

from __future__ import annotations

import numpy as np

from nnfab.emulate.base import Kernel, OverflowCounter, register
from nnfab.emulate.kernels.common import Exact, cast_counted, from_values, total
from nnfab.ir import Graph, Node
from nnfab.ir.vertex import counts, reciprocals


def _real(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Boolean ``(batch, V)``: vertex ``v`` of each sample is real (``v < count``)."""
    vertices = x.shape[1]
    return np.arange(vertices)[None, :] < counts(n, vertices)[:, None]


@register("VertexMask")
class VertexMaskKernel(Kernel):
    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        x, n = inputs
        real = _real(x, n).reshape(x.shape[:2] + (1,) * (x.ndim - 2))
        return counter.cast("result", self.out_type, np.where(real, x, 0.0),
                            source=self.in_types[0])


@register("VertexMean")
class VertexMeanKernel(Kernel):
    def __init__(self, node: Node, graph: Graph) -> None:
        super().__init__(node, graph)
        self.scale_type = self.precision("scale")
        vertices = int(self.in_shapes[0][0])
        self.scales, self.scale_overflow = reciprocals(vertices, self.scale_type)
        x_t = self.in_types[0]
        self.float_exact = x_t.width + vertices.bit_length() + self.scale_type.width <= 52

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        x, n = inputs
        vertices = x.shape[1]
        c = counts(n, vertices)
        real = (np.arange(vertices)[None, :] < c[:, None]).reshape(
            x.shape[:2] + (1,) * (x.ndim - 2))
        if self.float_exact:  # every sum and product below 2**53: float64 is exact
            sums = np.where(real, x, 0.0).sum(axis=1)
            r = self.scales[c].reshape((-1,) + (1,) * (sums.ndim - 1))
            return counter.cast("result", self.out_type, sums * r)
        e = from_values(np.where(real, x, 0.0), self.in_types[0])
        sums = total(e, axis=1)
        r = from_values(self.scales[c], self.scale_type)
        bound = int(np.max(np.abs(sums.m), initial=0)) * int(np.max(np.abs(r.m), initial=0))
        r_m = r.m.reshape((-1,) + (1,) * (sums.m.ndim - 1))
        wide = bound >= 2**62
        prod = sums.m.astype(object) * r_m.astype(object) if wide else sums.m * r_m
        return cast_counted(counter, "result", Exact(prod, sums.frac + r.frac), self.out_type)
