"""Input, Dropout, Flatten, Reshape and the rearrangements (ZeroPadding, Cropping, UpSampling,
Permute: ``nnfab.ir.rearrange``): move values, then cast to the result type."""

from __future__ import annotations

import numpy as np

from nnfab.emulate.base import Kernel, OverflowCounter, register
from nnfab.errors import EmulationError
from nnfab.ir import Graph, Node
from nnfab.ir.rearrange import axis_maps


@register("Input")
class InputKernel(Kernel):
    """Float input -> input type, with the input type's rounding and overflow modes."""

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        (x,) = inputs
        return counter.cast("result", self.out_type, x)


@register("Dropout")
class DropoutKernel(Kernel):
    """Inference-time dropout is the identity."""

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        return counter.cast("result", self.out_type, inputs[0], source=self.in_types[0])


@register("Flatten")
@register("Reshape")
class ReshapeKernel(Kernel):
    """Row-major (channels-last) reshape of each sample."""

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        (x,) = inputs
        y = x.reshape(x.shape[0], *self.out_shape)
        return counter.cast("result", self.out_type, y, source=self.in_types[0])


class _RearrangeKernel(Kernel):
    """Values moved without arithmetic (``nnfab.ir.rearrange``), then ``result(x)``."""

    def __init__(self, node: Node, graph: Graph) -> None:
        super().__init__(node, graph)
        maps = axis_maps(node, self.in_shapes[0])
        if tuple(m.size for m in maps) != tuple(self.out_shape):
            raise EmulationError(
                f"layer {node.name!r} ({node.op}): output shape {self.out_shape} does not "
                f"follow from the input shape {self.in_shapes[0]}; run infer_shapes"
            )
        self.maps = maps

    def move(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        (x,) = inputs
        y = self.move(x)
        return counter.cast("result", self.out_type, y, source=self.in_types[0])


@register("ZeroPadding1D")
@register("ZeroPadding2D")
class ZeroPaddingKernel(_RearrangeKernel):
    """Zeros around the spatial axes (0 is a value of every fixed-point type)."""

    def move(self, x: np.ndarray) -> np.ndarray:
        widths = [(0, 0)] + [(m.offset, m.size - m.offset - m.length) for m in self.maps]
        return np.pad(x, widths, mode="constant", constant_values=0.0)


@register("Cropping1D")
@register("Cropping2D")
@register("Slice")
class CroppingKernel(_RearrangeKernel):
    """Elements removed at both ends of the spatial axes (Slice: of any axis, strided)."""

    def move(self, x: np.ndarray) -> np.ndarray:
        index = (slice(None), *(slice(-m.offset, -m.offset + (m.size - 1) * m.step + 1, m.step)
                                for m in self.maps))
        return x[index]


@register("UpSampling1D")
@register("UpSampling2D")
class UpSamplingKernel(_RearrangeKernel):
    """Nearest neighbour: every element repeated ``size`` times along each spatial axis."""

    def move(self, x: np.ndarray) -> np.ndarray:
        for axis, m in enumerate(self.maps):
            if m.repeat > 1:
                x = np.repeat(x, m.repeat, axis=axis + 1)
        return x


@register("Permute")
class PermuteKernel(_RearrangeKernel):
    """Axes of each sample reordered: output axis k is input axis ``perm[k]``."""

    def move(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(x, (0, *(m.source + 1 for m in self.maps))))
