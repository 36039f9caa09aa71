"""ONNX Gather (an embedding), ConvTranspose and LayerNormalization (merged into ``onnx_layers``).

- ``Gather`` with a constant 2-D ``data`` table (V, D), ``axis=0`` and data-tensor
  ``indices``: ``Embedding``. Indices arrive through the data path (a float input, then
  a ``Cast`` to an integer type: a linear ``Activation`` whose result is that integer
  type, truncating toward zero and saturating); their IR type must be an integer type.
- ``ConvTranspose`` (``group=1``, dilations 1, ``auto_pad`` NOTSET or VALID, no
  ``output_shape``): ``Conv1DTranspose`` / ``Conv2DTranspose``; W ``(C, M, *k)`` becomes
  the IR kernel ``(*k, C, M)``; ``pads`` crop the full output, ``output_padding`` is kept.
- ``LayerNormalization`` (opset 17) over the last axis only (``axis=-1``): ``Scale``
  and ``B`` constants; the optional Mean / InvStdDev outputs must be unused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnfab.errors import UnsupportedLayerError
from nnfab.frontends.onnx_layers import (
    Converter,
    NodeCall,
    Output,
    Value,
    _batch_axis,
    _channels_last_output,
    _ints,
    _spatial_rank,
    channels_last,
    convert_view,
    identity,
    layout_index,
)
from nnfab.ir.types import FixedType, Overflow, Rounding


def convert_gather(call: NodeCall) -> list[Output]:
    if call.has(0) and isinstance(call.ins[0], Value):
        return _select(call)
    if not call.has(0):
        raise UnsupportedLayerError(f"{call.where}: Gather needs its data input")
    table = np.asarray(call.const(0, "data (the embedding table)"), dtype=np.float64)
    if table.ndim != 2:
        raise call.unsupported("data shape", table.shape, "a 2-D table (vocabulary, dim)")
    axis = int(call.attr("axis", 0))
    if axis != 0:
        raise call.unsupported("axis", axis, "0 (rows of the table)")
    idx = call.value(1, "indices")
    ir = call.builder.require(idx, identity(idx.rank), call.where)
    node = call.emit("Embedding", [ir], embeddings=table,
                     precision={"weight": call.const_type(0)})
    out_shape = (*idx.shape, table.shape[1])
    return [Value(node.name, layout_index(out_shape, identity(len(out_shape))))]


def _select(call: NodeCall) -> list[Output]:
    """Gather of a data tensor at constant indices along one axis: an IR ``Slice`` (the
    indices must be one index or an ascending run), e.g. the query / key / value split of
    a packed projection; a scalar index drops the axis."""
    x = call.value(0, "data")
    if isinstance(call.ins[1], Value):
        raise UnsupportedLayerError(
            f"{call.where}: data and indices are both data tensors; nnfab converts Gather as "
            "an embedding (a constant table indexed by data) or as a selection (data at "
            "constant indices)")
    axis = _batch_axis(call, int(call.attr("axis", 0)), x.rank + 1)
    idx = np.asarray(call.const(1, "indices")).astype(np.int64)
    n = x.shape[axis]
    flat = np.where(idx < 0, idx + n, idx).ravel()
    if idx.ndim > 1 or flat.size == 0 or flat.min() < 0 or flat.max() >= n or (
            flat.size > 1 and not np.array_equal(flat, np.arange(flat[0], flat[0] + flat.size))):
        raise call.unsupported("indices", idx.tolist(),
                               f"one index or an ascending run of indices in [-{n}, {n - 1}]")
    src = call.builder.require(x, identity(x.rank), call.where)
    begin, size = [0] * x.rank, list(x.shape)
    begin[axis], size[axis] = int(flat[0]), int(flat.size)
    node = call.emit("Slice", [src], {"begin": tuple(begin), "size": tuple(size)})
    index = layout_index(size, identity(x.rank))
    if idx.ndim == 0:
        index = index.reshape([d for k, d in enumerate(size) if k != axis])
    return [Value(node.name, index)]


def convert_conv_transpose(call: NodeCall) -> list[Output]:
    x = call.value(0, "X")
    w = np.asarray(call.const(1, "W (the weights)"), dtype=np.float64)
    rank = _spatial_rank(call, x)
    if w.ndim != rank + 2:
        raise call.unsupported("W shape", w.shape, f"(C, M, {', '.join('k' * rank)})")
    if int(call.attr("group", 1)) != 1:
        raise call.unsupported("group", call.attr("group"), "1")
    if w.shape[0] != x.shape[0]:
        raise UnsupportedLayerError(
            f"{call.where}: weights expect {w.shape[0]} input channels, the data has "
            f"{x.shape[0]}"
        )
    ksize = tuple(int(k) for k in w.shape[2:])
    if any(d != 1 for d in _ints(call, "dilations", (1,) * rank, rank)):
        raise call.unsupported("dilations", call.attr("dilations"), "1 on every axis")
    if call.attr("output_shape") is not None:
        raise call.unsupported("output_shape", list(call.attr("output_shape")),
                               "not set (give pads and output_padding)")
    auto_pad = call.attr("auto_pad", "NOTSET") or "NOTSET"
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad not in ("NOTSET", "VALID"):
        raise call.unsupported("auto_pad", auto_pad, "NOTSET, VALID")
    strides = _ints(call, "strides", (1,) * rank, rank)
    onnx_pads = _ints(call, "pads", (0,) * (2 * rank), 2 * rank)
    if auto_pad == "VALID":
        onnx_pads = (0,) * (2 * rank)
    pads = tuple(p for ax in range(rank) for p in (onnx_pads[ax], onnx_pads[rank + ax]))
    extra = _ints(call, "output_padding", (0,) * rank, rank)
    kernel_shape = call.attr("kernel_shape")
    if kernel_shape is not None and tuple(int(k) for k in kernel_shape) != ksize:
        raise call.unsupported("kernel_shape", list(kernel_shape), f"the weights' {list(ksize)}")
    ir = call.builder.require(x, channels_last(x.rank), call.where)
    n_out = w.shape[1]
    bias = np.zeros(n_out)
    btype = None
    if call.has(2):
        bias = np.asarray(call.const(2, "B (the bias)"), dtype=np.float64).reshape(n_out)
        btype = call.const_type(2)
    kernel = w.transpose(*range(2, rank + 2), 0, 1)  # (*k, C, M)
    attrs: dict[str, Any] = {"strides": strides, "pads": pads, "output_padding": extra}
    node = call.emit(f"Conv{rank}DTranspose", [ir], attrs, kernel=kernel, bias=bias,
                     precision={"weight": call.const_type(1), "bias": btype})
    return [_channels_last_output(node, call.graph, channels_last(x.rank))]


def convert_layernorm(call: NodeCall) -> list[Output]:
    x = call.value(0, "X")
    axis = int(call.attr("axis", -1))
    if axis not in (-1, x.rank):
        raise call.unsupported("axis", axis, f"-1 or {x.rank} (the last axis only)")
    n = x.shape[-1]
    scale = np.asarray(call.const(1, "Scale"), dtype=np.float64)
    bias = (np.asarray(call.const(2, "B"), dtype=np.float64) if call.has(2)
            else np.zeros(n))
    params = {}
    for key, c in (("Scale", scale), ("B", bias)):
        if c.size not in (1, n):
            raise call.unsupported(f"{key} shape", c.shape, f"({n},) over the last axis")
        params[key] = np.broadcast_to(c.ravel(), (n,)).copy()
    ir = call.builder.require(x, identity(x.rank), call.where)
    eps = float(call.attr("epsilon", 1e-5))
    node = call.emit("LayerNormalization", [ir], {"epsilon": eps}, gamma=params["Scale"],
                     beta=params["B"], precision={"weight": call.const_type(1),
                                                  "bias": call.const_type(2)})
    out: list[Output] = [Value(node.name, layout_index(x.shape, identity(x.rank)))]
    return out + [None] * (len(call.proto.output) - 1)  # Mean, InvStdDev: must be unused


INTEGER_DTYPES: dict[int, tuple[int, bool]] = {
    2: (8, False), 3: (8, True), 4: (16, False), 5: (16, True), 6: (32, True), 7: (64, True),
    12: (32, False), 13: (64, False),
}
"""ONNX integer element types -> (bits, signed)."""


def convert_cast(call: NodeCall) -> list[Output]:
    """Float Casts are views; a Cast to an integer type is a linear Activation whose result
    type is that integer type with ``AP_TRN_ZERO`` (ONNX truncates) and ``AP_SAT``."""
    to = call.attr("to")
    if to not in INTEGER_DTYPES:
        return convert_view(call)
    bits, signed = INTEGER_DTYPES[int(to)]
    x = call.value(0)
    node = call.emit("Activation", [x.ir], {"function": "linear"},
                     type_=FixedType(bits, bits, signed, Rounding.TRN_ZERO, Overflow.SAT))
    return [call.same_layout(x, node)] + [None] * (len(call.proto.output) - 1)


ZOO_CONVERTERS: dict[str, Converter] = {
    "Cast": convert_cast,
    "Gather": convert_gather,
    "ConvTranspose": convert_conv_transpose,
    "LayerNormalization": convert_layernorm,
}
"""ONNX op type -> converter, merged into ``onnx_layers.CONVERTERS``."""
