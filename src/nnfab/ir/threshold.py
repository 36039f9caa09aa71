"""The ``MultiThreshold`` IR op: a staircase activation given by its thresholds.

``y = out_bias + out_scale * #{k : x >= thresholds[c, k]}`` for every element ``x`` of
channel ``c`` (the IR's last axis). ``thresholds`` is the weight, of shape ``(C, K)``,
``(1, K)`` for thresholds shared by every channel, or ``(E, K)`` with ``E`` the number
of elements of a sample (``E != C``): one row per element in flat (row-major) order.
``out_scale`` and ``out_bias`` are float attributes. The comparisons are exact (the
input and the thresholds are exact binary numbers) and the output is one of the
``K + 1`` levels ``out_bias + k * out_scale``, cast to the result type (the ONNX
frontend gives it the narrowest type holding every level, so the cast changes nothing).

It is what FINN / QONNX ``MultiThreshold`` nodes compute, and QONNX ``BipolarQuant`` on
data (one threshold at 0, ``out_scale = 2 s``, ``out_bias = -s``). The emulator
(``nnfab.emulate.kernels.threshold``), the HLS backend (``backends.hls.threshold``) and
the Verilog backend (``backends.rtl.threshold``) implement it.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from nnfab.errors import GraphError
from nnfab.ir.graph import Node
from nnfab.ir.ops import OPS, OpSpec

Shape = tuple[int, ...]


def multithreshold_levels(node: Node) -> list[Fraction]:
    """The ``K + 1`` exact output levels ``out_bias + k * out_scale`` of ``node``."""
    k = int(np.asarray(node.weights["thresholds"]).shape[-1])
    scale = Fraction(float(node.attrs.get("out_scale", 1.0)))
    bias = Fraction(float(node.attrs.get("out_bias", 0.0)))
    return [bias + i * scale for i in range(k + 1)]


def threshold_rows(shape: Shape) -> tuple[int, ...]:
    """The allowed numbers of threshold rows for a sample of ``shape``: 1, C, elements."""
    return (1, shape[-1] if shape else 1, math.prod(shape))


def _shape_multithreshold(node: Node, shapes: list[Shape]) -> Shape:
    (shape,) = shapes
    t = np.asarray(node.weights["thresholds"])
    channels = shape[-1] if shape else 1
    if t.ndim != 2 or t.shape[0] not in threshold_rows(shape) or t.shape[1] < 1:
        raise GraphError(
            f"layer {node.name!r} (MultiThreshold): thresholds of shape {t.shape} must be "
            f"(1, K), ({channels}, K) or ({math.prod(shape)}, K) with K >= 1 for an input "
            f"of shape {shape}"
        )
    if np.any(np.isnan(t)):
        raise GraphError(f"layer {node.name!r} (MultiThreshold): a threshold is NaN")
    for key in ("out_scale", "out_bias"):
        value = float(node.attrs.get(key, 0.0))
        if not np.isfinite(value):
            raise GraphError(f"layer {node.name!r} (MultiThreshold): {key}={value} must be finite")
    return tuple(shape)


MULTITHRESHOLD = OpSpec(
    "MultiThreshold",
    _shape_multithreshold,
    weight_names=("thresholds",),
    doc="y = out_bias + out_scale * (number of thresholds[c, :] <= x)",
)


def register_op() -> None:
    """Add ``MultiThreshold`` to ``nnfab.ir.ops.OPS`` (idempotent)."""
    OPS.setdefault(MULTITHRESHOLD.name, MULTITHRESHOLD)


register_op()
