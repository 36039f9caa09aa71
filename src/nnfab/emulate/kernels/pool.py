"""Pooling1D/2D and GlobalPooling1D/2D, modes ``max`` and ``avg`` (global pooling also
``sum``).

Padding is excluded from every window: ``max`` is the largest real input of the
window; ``avg`` is ``result(exact_sum * scale_q(1/count))`` with ``count`` the number
of real (non-padding) inputs of that window and ``scale_q`` the ``scale`` type.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nnfab.emulate.base import Kernel, OverflowCounter, register
from nnfab.emulate.kernels.common import (
    Exact,
    cast_counted,
    from_values,
    max_abs,
    mul,
    require_attr,
    spatial_attr,
    widen,
)
from nnfab.errors import EmulationError
from nnfab.ir import Graph, Node
from nnfab.ir.ops import GLOBAL_POOL_MODES, POOL_MODES
from nnfab.ir.tables import pool_counts, pool_scale, pool_scale_type


class _PoolBase(Kernel):
    rank = 0

    def __init__(self, node: Node, graph: Graph) -> None:
        super().__init__(node, graph)
        self.mode = require_attr(self, "mode")
        modes = GLOBAL_POOL_MODES if node.op.startswith("Global") else POOL_MODES
        if self.mode not in modes:
            raise EmulationError(
                f"layer {node.name!r} ({node.op}): mode {self.mode!r} is not one of {modes}"
            )
        in_shape = self.in_shapes[0]
        if len(in_shape) != self.rank + 1:
            raise EmulationError(
                f"layer {node.name!r} ({node.op}): input shape {in_shape} must have "
                f"{self.rank} spatial axis(es) plus channels"
            )
        self.scale_overflow = 0

    def _scales(self, counts: np.ndarray) -> Exact:
        """``scale_q(1/count)`` (``sum``: 1) for every window, as exact values shaped like
        ``counts``."""
        scale_type = pool_scale_type(self.mode, self.precision("scale"))
        table: dict[int, float] = {}
        for count in np.unique(counts):
            value, overflowed = pool_scale(self.mode, int(count), scale_type)
            table[int(count)] = value
            self.scale_overflow += int(overflowed)
        values = np.vectorize(table.__getitem__, otypes=[np.float64])(counts)
        return from_values(values, scale_type)


class _PoolingKernel(_PoolBase):
    def __init__(self, node: Node, graph: Graph) -> None:
        super().__init__(node, graph)
        rank = self.rank
        self.pool_size = spatial_attr(self, "pool_size", (1,) * rank, rank)
        self.strides = spatial_attr(self, "strides", self.pool_size, rank)
        self.pads = spatial_attr(self, "pads", (0,) * (2 * rank), 2 * rank)
        counts = pool_counts(self.in_shapes[0][:-1], self.pool_size, self.strides, self.pads)
        if counts.size and counts.min() < 1:
            raise EmulationError(
                f"layer {node.name!r} ({node.op}): padding {self.pads} leaves a pooling window "
                f"of size {self.pool_size} with no input; each window needs at least one input"
            )
        self.counts = counts
        if self.mode == "avg":
            self.scales = self._scales(counts)

    def _tiled_max(self, x: np.ndarray) -> np.ndarray:
        """Max over non-overlapping, unpadded windows (stride == pool size).

        One strided view per window offset, folded with ``np.maximum`` in place: no
        window copies, one pass over the input.
        """
        out = self.out_shape[:-1]
        y: np.ndarray | None = None
        for offsets in itertools.product(*(range(p) for p in self.pool_size)):
            view = x[(slice(None), *(slice(k, k + o * p, p) for k, o, p in
                                     zip(offsets, out, self.pool_size, strict=True)))]
            if y is None:
                y = np.array(view)
            else:
                np.maximum(y, view, out=y)
        assert y is not None
        return y

    def _windows(self, x: np.ndarray, fill: float | int) -> np.ndarray:
        """(batch, *out, channels, *pool_size) windows of ``x`` padded with ``fill``."""
        rank = self.rank
        widths = [(0, 0), *((self.pads[2 * a], self.pads[2 * a + 1]) for a in range(rank)), (0, 0)]
        if any(self.pads):
            x = np.pad(x, widths, constant_values=fill)
        windows = sliding_window_view(x, self.pool_size, axis=tuple(range(1, rank + 1)))
        return windows[(slice(None), *(slice(None, None, s) for s in self.strides))]

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        (x,) = inputs
        window_axes = tuple(range(-self.rank, 0))
        if self.mode == "max":
            if self.strides == self.pool_size and not any(self.pads):
                y = self._tiled_max(x)  # non-overlapping windows: a reshape, no window copies
            else:
                y = self._windows(x, -np.inf).max(axis=window_axes)
            return counter.cast("result", self.out_type, y, source=self.in_types[0])
        e = from_values(x, self.in_types[0])
        m = widen(e.m, max_abs(e.m) * math.prod(self.pool_size))
        sums = Exact(self._windows(m, 0).sum(axis=window_axes), e.frac)
        scales = Exact(self.scales.m[..., None], self.scales.frac)  # broadcast over channels
        return cast_counted(counter, "result", mul(sums, scales), self.out_type)


class _GlobalPoolingKernel(_PoolBase):
    def __init__(self, node: Node, graph: Graph) -> None:
        super().__init__(node, graph)
        self.count = math.prod(self.in_shapes[0][:-1])
        if self.mode != "max":
            self.scales = self._scales(np.array([self.count]))

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        (x,) = inputs
        spatial = tuple(range(1, self.rank + 1))
        if self.mode == "max":
            y = x.max(axis=spatial)
            return counter.cast("result", self.out_type, y, source=self.in_types[0])
        e = from_values(x, self.in_types[0])
        m = widen(e.m, max_abs(e.m) * self.count)
        sums = Exact(m.sum(axis=spatial), e.frac)
        return cast_counted(counter, "result", mul(sums, self.scales), self.out_type)


@register("Pooling1D")
class Pooling1DKernel(_PoolingKernel):
    rank = 1


@register("Pooling2D")
class Pooling2DKernel(_PoolingKernel):
    rank = 2


@register("GlobalPooling1D")
class GlobalPooling1DKernel(_GlobalPoolingKernel):
    rank = 1


@register("GlobalPooling2D")
class GlobalPooling2DKernel(_GlobalPoolingKernel):
    rank = 2
