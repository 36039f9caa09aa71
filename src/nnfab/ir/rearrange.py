"""Ops that move values without arithmetic: zero padding, cropping, nearest upsampling,
permute, slice.

Every output element of these ops is either one input element or the constant 0 (padding).
One description serves shape inference (``nnfab.ir.ops``) and the backends: for each
output axis an ``AxisMap`` says which input axis it runs along and how an output
coordinate ``o`` maps to the input coordinate ``i = (o * step - offset) // repeat``,
which is inside the input when ``0 <= o * step - offset < repeat * length``; otherwise
the element is a padding zero. ``gather_index`` turns this into one flat input index
per output element.

Attributes (shapes without batch, channels-last; ``rank`` spatial axes, 1 or 2):

- ``ZeroPadding1D/2D``: ``pads`` = ``(before, after)`` per spatial axis, flattened as for
  convolutions (2-D: ``(top, bottom, left, right)``), integers >= 0.
- ``Cropping1D/2D``: ``crops``, the same layout: elements removed at each end, >= 0.
- ``UpSampling1D/2D``: ``size``, one repeat factor >= 1 per spatial axis (nearest:
  output ``o`` reads input ``o // size``); ``interpolation`` ``"nearest"`` only.
- ``Permute``: ``perm``, a permutation of the sample's axes (0-based, batch excluded):
  output axis ``k`` is input axis ``perm[k]``.
- ``Slice``: ``begin`` and ``size``, one integer per sample axis (any rank), and the
  optional ``step`` (default 1 on every axis): output ``o`` along axis ``a`` reads input
  ``begin[a] + o * step[a]``, ``0 <= o < size[a]``; ``begin >= 0``, ``size >= 1``,
  ``step >= 1``, ``begin + (size - 1) * step < `` the axis' length. (Selecting along an
  axis: the ONNX frontend's Gather at constant indices, Slice and Split; strided
  slices such as ``x[:, ::2]``.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nnfab.errors import GraphError
from nnfab.ir.graph import Node

Shape = tuple[int, ...]

SPATIAL_OPS: dict[str, tuple[str, int]] = {
    "ZeroPadding1D": ("pads", 1),
    "ZeroPadding2D": ("pads", 2),
    "Cropping1D": ("crops", 1),
    "Cropping2D": ("crops", 2),
    "UpSampling1D": ("size", 1),
    "UpSampling2D": ("size", 2),
}
"""Spatial rearrangements: op -> (attribute, number of spatial axes)."""

REARRANGE_OPS: tuple[str, ...] = (*SPATIAL_OPS, "Permute", "Slice")
"""Every op described here (output type = input type unless configured; values exact)."""

INTERPOLATIONS = ("nearest",)


@dataclass(frozen=True)
class AxisMap:
    """Output axis of ``size`` elements along input axis ``source`` (``length`` elements):
    output ``o`` reads input ``(o * step - offset) // repeat`` when ``0 <= o * step -
    offset < repeat * length``, else it is a padding zero."""

    size: int
    source: int
    length: int
    offset: int = 0
    repeat: int = 1
    step: int = 1


def _where(node: Node) -> str:
    return f"layer {node.name!r} ({node.op})"


def _ints(node: Node, key: str, count: int, minimum: int) -> tuple[int, ...]:
    raw = node.attrs.get(key)
    try:
        values = tuple(raw)  # type: ignore[arg-type]
    except TypeError:
        values = ()
    if len(values) != count or any(
        isinstance(v, bool) or not isinstance(v, int | np.integer) or v < minimum for v in values
    ):
        raise GraphError(
            f"{_where(node)}: {key} {raw!r} must be {count} integers >= {minimum}"
        )
    return tuple(int(v) for v in values)


def axis_maps(node: Node, in_shape: Shape) -> list[AxisMap]:
    """How each output axis of ``node`` reads its ``in_shape`` input (checks attributes)."""
    in_shape = tuple(int(s) for s in in_shape)
    if node.op == "Permute":
        perm = _ints(node, "perm", len(in_shape), 0)
        if sorted(perm) != list(range(len(in_shape))):
            raise GraphError(
                f"{_where(node)}: perm {perm!r} must be a permutation of the axes "
                f"0..{len(in_shape) - 1} of the input shape {in_shape} (batch excluded)"
            )
        return [AxisMap(in_shape[p], p, in_shape[p]) for p in perm]
    if node.op == "Slice":
        begin = _ints(node, "begin", len(in_shape), 0)
        size = _ints(node, "size", len(in_shape), 1)
        step = _ints(node, "step", len(in_shape), 1) if node.attrs.get("step") is not None \
            else (1,) * len(in_shape)
        for a, (b, n, s) in enumerate(zip(begin, size, step, strict=True)):
            if b + (n - 1) * s >= in_shape[a]:
                raise GraphError(
                    f"{_where(node)}: begin {begin!r}, size {size!r} and step {step!r} reach "
                    f"past axis {a} of the input shape {in_shape} (batch excluded)")
        return [AxisMap(n, a, in_shape[a], -b, 1, s)
                for a, (b, n, s) in enumerate(zip(begin, size, step, strict=True))]
    if node.op not in SPATIAL_OPS:
        raise GraphError(f"{_where(node)}: not a rearrangement op ({', '.join(REARRANGE_OPS)})")
    key, rank = SPATIAL_OPS[node.op]
    if len(in_shape) != rank + 1:
        raise GraphError(
            f"{_where(node)}: needs a {rank + 1}-D input (spatial..., channels), got shape "
            f"{in_shape}"
        )
    maps = []
    if key == "size":
        interpolation = node.attrs.get("interpolation", "nearest")
        if interpolation not in INTERPOLATIONS:
            raise GraphError(
                f"{_where(node)}: interpolation {interpolation!r} is not supported; allowed: "
                f"{', '.join(INTERPOLATIONS)}"
            )
        size = _ints(node, key, rank, 1)
        maps = [AxisMap(in_shape[a] * size[a], a, in_shape[a], 0, size[a]) for a in range(rank)]
    else:
        edges = _ints(node, key, 2 * rank, 0)
        sign = 1 if key == "pads" else -1
        for a in range(rank):
            before, after = edges[2 * a], edges[2 * a + 1]
            n = in_shape[a] + sign * (before + after)
            if n < 1:
                raise GraphError(
                    f"{_where(node)}: crops {edges!r} remove all {in_shape[a]} elements of "
                    f"spatial axis {a} (input shape {in_shape})"
                )
            maps.append(AxisMap(n, a, in_shape[a], sign * before))
    maps.append(AxisMap(in_shape[-1], rank, in_shape[-1]))
    return maps


def rearranged_shape(node: Node, in_shape: Shape) -> Shape:
    """The output shape of ``node`` for the input shape ``in_shape``."""
    return tuple(m.size for m in axis_maps(node, in_shape))


def gather_index(node: Node, in_shape: Shape) -> np.ndarray:
    """Output-shaped int64 array: the flat (row-major) input index each output element
    copies, or -1 where it is a padding zero."""
    in_shape = tuple(int(s) for s in in_shape)
    maps = axis_maps(node, in_shape)
    strides = [math.prod(in_shape[a + 1:]) for a in range(len(in_shape))]
    index = np.zeros(tuple(m.size for m in maps), dtype=np.int64)
    valid = np.ones(index.shape, dtype=bool)
    for k, m in enumerate(maps):
        o = np.arange(m.size) * m.step - m.offset
        inside = (o >= 0) & (o < m.repeat * m.length)
        coord = np.where(inside, o // m.repeat, 0)
        view = [1] * len(maps)
        view[k] = m.size
        index = index + (coord * strides[m.source]).reshape(view)
        valid = valid & inside.reshape(view)
    return np.where(valid, index, -1)
