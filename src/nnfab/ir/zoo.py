"""Embedding, Conv1D/2DTranspose and LayerNormalization: attributes, shapes and the table.

The arithmetic is defined in ``docs/semantics.md`` ("Embedding", "Conv1DTranspose /
Conv2DTranspose", "LayerNormalization").

- ``Embedding``: weight ``embeddings`` (V, D); the input holds integer indices (any
  shape); the output appends the axis D.
- ``Conv1DTranspose`` / ``Conv2DTranspose``: kernel ``(k, C, F)`` / ``(kh, kw, C, F)`` as
  for Conv (C input channels, F filters), bias ``(F,)``; attrs ``strides``, ``pads``
  (``(before, after)`` per axis, cropped from the full output) and ``output_padding``
  (one per axis, positions added after the end, each ``< stride``).
- ``LayerNormalization``: weights ``gamma`` and ``beta`` (N,) over the last axis of N
  values; attrs ``epsilon`` and ``table_bits`` of the 1/sqrt table (``RsqrtTable``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnfab.errors import ConfigError, GraphError
from nnfab.ir.graph import Node
from nnfab.ir.types import FixedType

Shape = tuple[int, ...]

TRANSPOSE_OPS = ("Conv1DTranspose", "Conv2DTranspose")
ZOO_OPS = ("Embedding", *TRANSPOSE_OPS, "LayerNormalization")

EMBEDDING_PRECISION_KEYS = ("weight",)
LAYERNORM_PRECISION_KEYS = ("weight", "bias", "scale", "mean", "var", "table", "norm")

LAYERNORM_TABLE_BITS = 6
"""Default ``table_bits`` B of the 1/sqrt table: 2**B entries per octave of the variance."""
LAYERNORM_EPSILON = 1e-3
"""Default ``epsilon`` (Keras' default; PyTorch and ONNX use 1e-5, set by their frontends)."""


# ---------------------------------------------------------------- Embedding
def _shape_embedding(node: Node, shapes: list[Shape]) -> Shape:
    (shape,) = shapes
    table = np.asarray(node.weights["embeddings"])
    if table.ndim != 2 or table.shape[0] < 1 or table.shape[1] < 1:
        raise GraphError(
            f"layer {node.name!r} (Embedding): weight 'embeddings' must be (vocabulary, dim) "
            f"with both >= 1, got shape {table.shape}"
        )
    return (*shape, int(table.shape[1]))


# ----------------------------------------------------------- ConvTranspose
def transpose_rank(node: Node) -> int:
    return 2 if node.op == "Conv2DTranspose" else 1


def transpose_attrs(node: Node, rank: int | None = None) -> tuple[Shape, Shape, Shape]:
    """``(strides, pads, output_padding)`` with defaults, checked (``GraphError``)."""
    rank = transpose_rank(node) if rank is None else rank
    where = f"layer {node.name!r} ({node.op})"

    def ints(key: str, default: Shape, count: int, lowest: int) -> Shape:
        value = node.attrs.get(key, default)
        try:
            out = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            out = ()
        if len(out) != count or any(v < lowest for v in out):
            raise GraphError(f"{where}: {key} {value!r} must be {count} integers >= {lowest}")
        return out

    strides = ints("strides", (1,) * rank, rank, 1)
    pads = ints("pads", (0,) * (2 * rank), 2 * rank, 0)
    extra = ints("output_padding", (0,) * rank, rank, 0)
    for ax in range(rank):
        if extra[ax] >= strides[ax]:
            raise GraphError(
                f"{where}: output_padding {extra} must be smaller than the stride on each axis "
                f"(strides {strides})"
            )
    return strides, pads, extra


def transpose_length(n: int, k: int, stride: int, before: int, after: int, extra: int) -> int:
    """Output length of one axis: ``(n - 1) * stride + k - before - after + extra``."""
    return (n - 1) * stride + k - before - after + extra


def _shape_transpose(node: Node, shapes: list[Shape]) -> Shape:
    (shape,) = shapes
    rank = transpose_rank(node)
    kernel = np.asarray(node.weights["kernel"])
    if len(shape) != rank + 1 or kernel.ndim != rank + 2:
        raise GraphError(
            f"layer {node.name!r} ({node.op}): needs a {rank + 1}-D input (spatial..., channels) "
            f"and a {rank + 2}-D kernel; got input {shape} and kernel {kernel.shape}"
        )
    if kernel.shape[rank] != shape[-1]:
        raise GraphError(
            f"layer {node.name!r}: input has {shape[-1]} channels, kernel expects "
            f"{kernel.shape[rank]} (kernel layout (*kernel_size, in_channels, filters))"
        )
    strides, pads, extra = transpose_attrs(node, rank)
    out = []
    for ax in range(rank):
        n = transpose_length(shape[ax], int(kernel.shape[ax]), strides[ax], pads[2 * ax],
                             pads[2 * ax + 1], extra[ax])
        if n < 1:
            raise GraphError(f"layer {node.name!r}: pads {pads} crop the whole axis {ax}")
        out.append(n)
    return (*out, int(kernel.shape[-1]))


# ------------------------------------------------------- LayerNormalization
def _shape_layernorm(node: Node, shapes: list[Shape]) -> Shape:
    (shape,) = shapes
    n = shape[-1] if shape else 0
    for key in ("gamma", "beta"):
        w = np.asarray(node.weights[key])
        if w.size != n:
            raise GraphError(
                f"layer {node.name!r} (LayerNormalization): weight {key!r} has {w.size} values, "
                f"the last axis has {n} (normalization over the last axis only)"
            )
    eps = float(node.attrs.get("epsilon", LAYERNORM_EPSILON))
    if not math.isfinite(eps) or eps < 0:
        raise GraphError(f"layer {node.name!r}: epsilon {eps!r} must be a finite number >= 0")
    return shape


@dataclass(frozen=True, eq=False)
class RsqrtTable:
    """``1/sqrt(v + epsilon)`` by octave: ``bits`` B entries per power of two of ``v``.

    For the variance ``v = m * 2**-F`` (``m >= 0`` the mantissa of the ``var`` type of
    width W): ``p = max(bit_length(m) - 1, 0)`` (the leading one), ``sub = clip(((m << B)
    >> p) - 2**B, 0, 2**B - 1)`` (the B bits below it) and ``index = p * 2**B + sub``; entry
    ``index`` is ``table(1/sqrt((2**B + sub + 1/2) * 2**(p - B - F) + epsilon))``.
    """

    type: FixedType
    bits: int
    var_type: FixedType
    values: np.ndarray
    overflow: np.ndarray

    @property
    def size(self) -> int:
        return int(self.values.size)

    def index_mantissas(self, m: np.ndarray) -> np.ndarray:
        """Entry index of variances given as integer mantissas of ``var_type``."""
        flat = [int(v) for v in np.ravel(m)]
        out = np.empty(len(flat), dtype=np.int64)
        top = 1 << self.bits
        for i, v in enumerate(flat):
            p = max(v.bit_length() - 1, 0)
            sub = min(max(((v << self.bits) >> p) - top, 0), top - 1)
            out[i] = p * top + sub
        return out.reshape(np.shape(m))

    def mantissas(self) -> np.ndarray:
        return self.type.to_mantissa(self.values)


def rsqrt_table(attrs: Mapping[str, Any], table_type: FixedType, var_type: FixedType,
                layer: str = "") -> RsqrtTable:
    """The 1/sqrt table of a LayerNormalization (``RsqrtTable``): ``var_type.width`` octaves of
    ``2**table_bits`` entries; attrs ``table_bits`` (1..12) and ``epsilon``."""
    bits = attrs.get("table_bits", LAYERNORM_TABLE_BITS)
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or not 1 <= bits <= 12:
        raise ConfigError(f"layer {layer!r}: table_bits must be an integer 1..12, got {bits!r}")
    if var_type.signed:
        raise ConfigError(f"layer {layer!r}: the var type {var_type} must be unsigned")
    eps = float(attrs.get("epsilon", LAYERNORM_EPSILON))
    if not math.isfinite(eps) or eps < 0:
        raise ConfigError(f"layer {layer!r}: epsilon {eps!r} must be a finite number >= 0")
    top = 1 << int(bits)
    p = np.repeat(np.arange(var_type.width), top)
    sub = np.tile(np.arange(top), var_type.width)
    centres = np.ldexp(top + sub + 0.5, p - int(bits) - var_type.frac)
    values, flags = table_type.quantize_and_flag(1.0 / np.sqrt(centres + eps))
    return RsqrtTable(table_type, int(bits), var_type, values, flags)


def rsqrt_table_type(attrs: Mapping[str, Any], var_type: FixedType) -> FixedType:
    """Default ``table`` type: ``ap_ufixed<24, I, AP_RND_CONV, AP_SAT>`` holding entry 0."""
    bits = int(attrs.get("table_bits", LAYERNORM_TABLE_BITS))
    eps = float(attrs.get("epsilon", LAYERNORM_EPSILON))
    top = 1.0 / math.sqrt(math.ldexp((1 << bits) + 0.5, -bits - var_type.frac) + eps)
    integer = max(1, math.floor(math.log2(top)) + 1)
    return FixedType.parse(f"ap_ufixed<24,{integer},AP_RND_CONV,AP_SAT>")


SHAPES = {
    "Embedding": _shape_embedding,
    "Conv1DTranspose": _shape_transpose,
    "Conv2DTranspose": _shape_transpose,
    "LayerNormalization": _shape_layernorm,
}


def _holding(lo_m: int, hi_m: int, frac: int) -> FixedType:
    """The narrowest wrapping type with ``frac`` fractional bits holding mantissas lo..hi."""
    if lo_m < 0:
        width = max(hi_m.bit_length(), (-lo_m - 1).bit_length()) + 1
        return FixedType(max(width, 2), max(width, 2) - frac, True)
    width = max(1, hi_m.bit_length())
    return FixedType(width, width - frac, False)


def layernorm_exact_types(x_type: FixedType, mean_type: FixedType,
                          n: int) -> dict[str, FixedType]:
    """Types holding exactly: ``sum`` of N inputs, ``diff`` x - mean, ``sq`` sum of N d**2."""
    sum_t = _holding(n * x_type.min_mantissa, n * x_type.max_mantissa, x_type.frac)
    frac = max(x_type.frac, mean_type.frac)
    sx, sm = frac - x_type.frac, frac - mean_type.frac
    lo = (x_type.min_mantissa << sx) - (mean_type.max_mantissa << sm)
    hi = (x_type.max_mantissa << sx) - (mean_type.min_mantissa << sm)
    diff_t = _holding(min(lo, 0), max(hi, 0), frac)
    top = max(abs(diff_t.min_mantissa), diff_t.max_mantissa)
    sq_t = _holding(0, n * top * top, 2 * frac)
    return {"sum": sum_t, "diff": diff_t, "sq": sq_t}
