"""MultiThreshold: ``result(out_bias + out_scale * #{k : x >= thresholds[c, k]})``.

The rule is in ``nnfab.ir.threshold``. The input values are exact binary numbers (the
emulator holds them as float64 values of the input type) and so are the thresholds, so
each comparison is exact; the chosen level is formed exactly (integer mantissas) and cast
once to the result type.
"""

from __future__ import annotations

import numpy as np

from nnfab.emulate.base import Kernel, OverflowCounter, register
from nnfab.emulate.kernels.common import Exact, cast_counted
from nnfab.errors import EmulationError
from nnfab.ir import Graph, Node
from nnfab.ir.threshold import multithreshold_levels, threshold_rows


@register("MultiThreshold")
class MultiThresholdKernel(Kernel):
    def __init__(self, node: Node, graph: Graph) -> None:
        super().__init__(node, graph)
        t = np.asarray(node.weights["thresholds"], dtype=np.float64)
        shape = self.in_shapes[0]
        if t.ndim != 2 or t.shape[0] not in threshold_rows(shape):
            raise EmulationError(
                f"layer {node.name!r} (MultiThreshold): thresholds of shape {t.shape} do not "
                f"fit an input of shape {shape}: rows {threshold_rows(shape)}"
            )
        channels = shape[-1] if shape else 1
        self.per_element = t.shape[0] not in (1, channels)
        self.thresholds = t  # broadcast against (..., C, 1) or (N, E, 1)
        levels = multithreshold_levels(node)
        frac = max(max(int(lv.denominator).bit_length() - 1 for lv in levels), 0)
        mantissas = [int(lv * 2**frac) for lv in levels]
        dtype = object if max(abs(m) for m in mantissas) >= 1 << 62 else np.int64
        self.level_m = np.array(mantissas, dtype=dtype)
        self.frac = frac

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        (x,) = inputs
        v = x.reshape(len(x), -1) if self.per_element else x
        count = np.count_nonzero(v[..., None] >= self.thresholds, axis=-1).reshape(x.shape)
        return cast_counted(counter, "result", Exact(self.level_m[count], self.frac),
                            self.out_type)
