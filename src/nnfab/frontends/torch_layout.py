"""PyTorch's channels-first tensors in nnfab's channels-last IR (NumPy only, no torch).

PyTorch lays out one sample of a convolution's data as ``(C, L)`` or ``(C, H, W)``;
the IR holds it as ``(L, C)`` / ``(H, W, C)``. The frontend never inserts a
transpose: it tracks, for every traced tensor, which PyTorch element sits at each
position of the IR tensor (an *index map*), and folds any reordering into the
weights of the layer that consumes it (a ``Linear`` after a flatten gets its input
rows permuted) or into the layer's axis attribute (``torch.cat`` / softmax dims).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Shape = tuple[int, ...]

UNCHANGED = "unchanged"
CHANNELS_LAST = "channels_last"
PERMUTED = "permuted"


@dataclass
class Value:
    """A traced tensor as the IR holds it.

    ``index`` has the IR tensor's shape; ``index[p]`` is the row-major (flat) position,
    within one PyTorch sample of shape ``torch_shape``, of the element stored at IR
    position ``p``.
    """

    tensor: str
    torch_shape: Shape
    index: np.ndarray

    @property
    def shape(self) -> Shape:
        """The IR shape (without batch)."""
        return tuple(int(s) for s in self.index.shape)

    def axes(self) -> Shape | None:
        """``P`` with IR axis ``i`` = PyTorch axis ``P[i]``, if the IR is a transposition."""
        return axes_of(self.index, self.torch_shape)

    def layout(self) -> str:
        """``unchanged`` (PyTorch's own order), ``channels_last`` or ``permuted``."""
        flat = self.index.reshape(-1)
        if np.array_equal(flat, np.arange(flat.size)):
            return UNCHANGED
        if len(self.torch_shape) >= 2 and np.array_equal(
            self.index, channels_last_index(self.torch_shape)
        ):
            return CHANNELS_LAST
        return PERMUTED


def canonical_index(shape: Shape) -> np.ndarray:
    """The index map of a tensor stored in PyTorch's own order."""
    return np.arange(math.prod(shape), dtype=np.int64).reshape(shape)


def channels_last_perm(rank: int) -> Shape:
    """Axis order taking ``(C, *spatial)`` to ``(*spatial, C)``."""
    return (*range(1, rank), 0) if rank >= 2 else tuple(range(rank))


def channels_last_shape(shape: Shape) -> Shape:
    return tuple(shape[p] for p in channels_last_perm(len(shape)))


def channels_last_index(shape: Shape) -> np.ndarray:
    """The index map of a ``(C, *spatial)`` tensor stored as ``(*spatial, C)``."""
    return canonical_index(shape).transpose(channels_last_perm(len(shape)))


def axes_of(index: np.ndarray, torch_shape: Shape) -> Shape | None:
    """The axis permutation the index map is, among PyTorch order and channels-last."""
    rank = len(torch_shape)
    if index.ndim != rank:
        return None
    for perm in {tuple(range(rank)), channels_last_perm(rank)}:
        if index.shape == tuple(torch_shape[p] for p in perm) and np.array_equal(
            index, canonical_index(torch_shape).transpose(perm)
        ):
            return perm
    return None


def fibers(value: Value, axis: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Whether the IR's last axis runs along PyTorch axis ``axis``, and how.

    True when every IR fiber along the last axis holds one whole PyTorch fiber along
    ``axis`` (its elements in any order). Then returns ``(fiber, position)``: the
    PyTorch fiber number (the flat index over the other axes) of each IR fiber,
    shaped as the IR shape without its last axis, and the position along ``axis`` of
    every IR element. Otherwise ``None``.
    """
    index, shape = value.index, value.torch_shape
    if index.ndim == 0 or index.shape[-1] != shape[axis]:
        return None
    multi = np.unravel_index(index, shape)
    others = [m for i, m in enumerate(multi) if i != axis]
    other_shape = tuple(n for i, n in enumerate(shape) if i != axis)
    fiber = np.ravel_multi_index(others, other_shape) if others else np.zeros_like(index)
    if not np.all(fiber == fiber[..., :1]):
        return None
    return fiber[..., 0], multi[axis]


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    """Batch of PyTorch channels-first samples -> the channels-last layout nnfab uses.

    ``(N, C, H, W) -> (N, H, W, C)``; also ``(N, C, L) -> (N, L, C)``. Pass conv-model
    inputs through it before ``predict``; see ``graph.metadata['input_layouts']``.
    """
    x = np.asarray(x)
    if x.ndim < 3:
        return x
    return np.moveaxis(x, 1, -1)


def nhwc_to_nchw(y: np.ndarray) -> np.ndarray:
    """The inverse of ``nchw_to_nhwc``: nnfab's channels-last outputs -> PyTorch layout."""
    y = np.asarray(y)
    if y.ndim < 3:
        return y
    return np.moveaxis(y, -1, 1)
