"""Input, Dropout, Flatten, Reshape: move values, then cast to the result type."""

from __future__ import annotations

import numpy as np

from nnfab.emulate.base import Kernel, OverflowCounter, register


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
