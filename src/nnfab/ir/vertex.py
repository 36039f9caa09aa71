"""``VertexMask`` and ``VertexMean``: per-sample vertex counts, as graph networks over a
padded vertex axis (GarNet) use them.

Both read a data tensor ``x`` of shape ``(V, ...)`` (V vertices on the first axis) and a
count tensor ``n`` of shape ``(1,)``; the count of a sample is ``c = clip(floor(n), 0,
V)``: vertices ``v < c`` are real, the rest padding.

- ``VertexMask``: ``x[v]`` for ``v < c``, 0 for the padding vertices; shape of ``x``.
- ``VertexMean``: ``result(S * r)`` with ``S`` the exact sum of ``x[v]`` over the real
  vertices and ``r = scale_q(1/c)`` (the ``scale`` type; ``r = 0`` when ``c = 0``);
  shape ``x.shape[1:]``.

The rules are in ``docs/semantics.md`` ("VertexMask / VertexMean").
"""

from __future__ import annotations

import numpy as np

from nnfab.errors import GraphError
from nnfab.ir.graph import Node
from nnfab.ir.tables import reciprocal
from nnfab.ir.types import FixedType, Overflow, Rounding

Shape = tuple[int, ...]

VERTEX_OPS = ("VertexMask", "VertexMean")
COUNT_INPUT = 1
"""Index of the count input of the vertex ops."""


def _check(node: Node, shapes: list[Shape]) -> tuple[Shape, Shape]:
    data, count = shapes
    if len(data) < 2:
        raise GraphError(f"layer {node.name!r} ({node.op}): the data input has shape {data}; "
                         "it needs (vertices, features...)")
    if tuple(count) != (1,):
        raise GraphError(f"layer {node.name!r} ({node.op}): the count input has shape "
                         f"{count}; it must hold one number per sample, shape (1,)")
    return data, count


def shape_vertex_mask(node: Node, shapes: list[Shape]) -> Shape:
    data, _ = _check(node, shapes)
    return data


def shape_vertex_mean(node: Node, shapes: list[Shape]) -> Shape:
    data, _ = _check(node, shapes)
    return data[1:]


def counts(n: np.ndarray, vertices: int) -> np.ndarray:
    """``clip(floor(n), 0, V)`` per sample, as int64, from the count tensor ``(batch, 1)``."""
    return np.clip(np.floor(np.asarray(n, dtype=np.float64).reshape(-1)), 0,
                   vertices).astype(np.int64)


def reciprocals(vertices: int, scale_type: FixedType) -> tuple[np.ndarray, int]:
    """``r[c]`` for ``c = 0..V`` (``r[0] = 0``, else ``scale_q(1/c)``) and how many overflowed."""
    values = np.zeros(vertices + 1, dtype=np.float64)
    overflowed = 0
    for c in range(1, vertices + 1):
        values[c], flag = reciprocal(c, scale_type)
        overflowed += int(flag)
    return values, overflowed


def count_type(vertices: int) -> FixedType:
    """The default type of a count input: ``ap_int<B + 2, B + 2, AP_TRN, AP_SAT>`` with
    ``B = bit_length(V)``, holding every count 0..V (larger ones saturate, then clip)."""
    bits = max(1, int(vertices).bit_length()) + 2
    return FixedType(bits, bits, True, Rounding.TRN, Overflow.SAT)
