"""Keras shape layers and separable convolutions (registered into ``keras_mapping.CONVERTERS``).

- ``ZeroPadding1D/2D``, ``Cropping1D/2D``, ``UpSampling1D/2D`` (nearest) and ``Permute``
  become the IR ops of ``nnfab.ir.rearrange`` (values moved, none computed);
  ``RepeatVector(n)`` a ``Reshape`` to one position and an ``UpSampling1D`` of size n.
- ``SeparableConv1D/2D`` is split into two IR nodes: ``<layer>_depthwise`` (a
  ``DepthwiseConv1D/2D`` with the layer's strides, padding and ``depth_multiplier``, no
  bias) and ``<layer>_pointwise`` (a 1x1 ``Conv1D/2D`` with the bias), then the
  activation. Precision is configured under those two node names (``LayerName``), or
  for both at once under ``LayerType: SeparableConv2D`` (the nodes' source class); the
  depthwise output is rounded to its result type before the pointwise convolution.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnfab.errors import FrontendError
from nnfab.frontends.keras_mapping import (
    Converter,
    LayerCall,
    _bias,
    _check_channels_last,
    _check_rank,
    _ints,
    _pads,
    with_activation,
)
from nnfab.ir.graph import Node


def _edges(call: LayerCall, key: str, rank: int, default: Any) -> tuple[int, ...]:
    """Keras ``padding`` / ``cropping``: an int, ``rank`` ints (symmetric), or ``rank``
    pairs ``(before, after)`` (1-D: one pair) -> the IR's flat ``(before, after)`` per axis."""
    value = call.get(key, default)
    allowed = (
        "an int or a pair (before, after)" if rank == 1
        else "an int, 2 ints (symmetric) or 2 pairs ((top, bottom), (left, right))"
    )

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    if is_int(value):
        return (int(value),) * (2 * rank)
    if isinstance(value, list | tuple):
        items = list(value)
        if rank == 1 and len(items) == 2 and all(is_int(v) for v in items):
            return (int(items[0]), int(items[1]))
        if rank == 2 and len(items) == 2:
            if all(is_int(v) for v in items):
                return (int(items[0]),) * 2 + (int(items[1]),) * 2
            if all(isinstance(v, list | tuple) and len(v) == 2 and all(is_int(u) for u in v)
                   for v in items):
                return tuple(int(u) for v in items for u in v)
    raise call.unsupported(key, value, allowed)


def _spatial(op: str, rank: int, key: str, attr: str, default: Any) -> Converter:
    def convert(call: LayerCall) -> list[Node]:
        _check_channels_last(call)
        _check_rank(call, rank)
        return [call.node(f"{op}{rank}D", {attr: _edges(call, key, rank, default)})]

    return convert


def _upsampling(rank: int) -> Converter:
    def convert(call: LayerCall) -> list[Node]:
        _check_channels_last(call)
        _check_rank(call, rank)
        interpolation = call.get("interpolation", "nearest")
        if interpolation != "nearest":
            raise call.unsupported("interpolation", interpolation, "'nearest'")
        size = _ints(call.get("size", 2), rank, call, "size")
        if any(s < 1 for s in size):
            raise call.unsupported("size", call.get("size"), "integers >= 1")
        return [call.node(f"UpSampling{rank}D", {"size": size, "interpolation": "nearest"})]

    return convert


def convert_repeat_vector(call: LayerCall) -> list[Node]:
    """``RepeatVector(n)``: ``(F,)`` -> ``(n, F)``, a ``Reshape`` to ``(1, F)`` then an
    ``UpSampling1D`` of size ``n`` (the one position repeated)."""
    if len(call.in_shapes[0]) != 1:
        raise call.unsupported("input shape", call.in_shapes[0], "a vector (batch, F)")
    n = call.get("n")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise call.unsupported("n", n, "an integer >= 1")
    row = Node(call.unique_name(f"{call.name}_row"), "Reshape", list(call.inputs),
               attrs={"target_shape": (1, call.in_shapes[0][0])}, source_class=call.cls)
    repeat = Node(call.name, "UpSampling1D", [row.name],
                  attrs={"size": (n,), "interpolation": "nearest"}, source_class=call.cls)
    return [row, repeat]


def convert_permute(call: LayerCall) -> list[Node]:
    dims = call.get("dims")
    rank = len(call.in_shapes[0])
    if not isinstance(dims, list | tuple) or sorted(dims) != list(range(1, rank + 1)):
        raise call.unsupported("dims", dims, f"a permutation of 1..{rank} (the non-batch axes)")
    return [call.node("Permute", {"perm": tuple(int(d) - 1 for d in dims)})]


def _separable(rank: int) -> Converter:
    def convert(call: LayerCall) -> list[Node]:
        _check_channels_last(call)
        _check_rank(call, rank)
        dilation = _ints(call.get("dilation_rate", 1), rank, call, "dilation_rate")
        if any(d != 1 for d in dilation):
            raise call.unsupported("dilation_rate", call.get("dilation_rate"), "1 on every axis")
        strides = _ints(call.get("strides", 1), rank, call, "strides")
        ksize = _ints(call.get("kernel_size"), rank, call, "kernel_size")
        depthwise = call.weight("depthwise_kernel")
        pointwise = call.weight("pointwise_kernel")
        assert depthwise is not None and pointwise is not None
        channels = call.in_shapes[0][-1]
        if depthwise.shape[:rank] != ksize or depthwise.shape[rank] != channels:
            raise FrontendError(
                f"{call.where()}: depthwise_kernel shape {depthwise.shape} does not match "
                f"kernel_size {ksize} and {channels} input channels"
            )
        multiplier = int(depthwise.shape[-1])
        if multiplier != int(call.get("depth_multiplier", multiplier)):
            raise FrontendError(
                f"{call.where()}: depthwise_kernel shape {depthwise.shape} does not match "
                f"depth_multiplier={call.get('depth_multiplier')!r}"
            )
        if pointwise.shape[:rank] != (1,) * rank or pointwise.shape[rank] != channels * multiplier:
            raise FrontendError(
                f"{call.where()}: pointwise_kernel shape {pointwise.shape} should be "
                f"{(1,) * rank + (channels * multiplier, 'filters')}"
            )
        n_out = int(pointwise.shape[-1])
        dw_name = call.unique_name(f"{call.name}_depthwise")
        pw_name = call.unique_name(f"{call.name}_pointwise")
        dw = Node(
            name=dw_name, op=f"DepthwiseConv{rank}D", inputs=list(call.inputs),
            attrs={"strides": strides, "pads": _pads(call, ksize, strides),
                   "depth_multiplier": multiplier, "separable_of": call.name},
            weights={"kernel": depthwise,
                     "bias": np.zeros(channels * multiplier, dtype=np.float64)},
            source_class=call.cls,
        )
        pw = Node(
            name=pw_name, op=f"Conv{rank}D", inputs=[dw_name],
            attrs={"strides": (1,) * rank, "pads": (0,) * (2 * rank), "separable_of": call.name},
            weights={"kernel": pointwise, "bias": _bias(call, n_out)},
            source_class=call.cls,
        )
        return [dw, *with_activation(call, pw)]

    return convert


SHAPE_CONVERTERS: dict[str, Converter] = {
    "ZeroPadding1D": _spatial("ZeroPadding", 1, "padding", "pads", 1),
    "ZeroPadding2D": _spatial("ZeroPadding", 2, "padding", "pads", 1),
    "Cropping1D": _spatial("Cropping", 1, "cropping", "crops", 1),
    "Cropping2D": _spatial("Cropping", 2, "cropping", "crops", 0),
    "UpSampling1D": _upsampling(1),
    "UpSampling2D": _upsampling(2),
    "Permute": convert_permute,
    "RepeatVector": convert_repeat_vector,
    "SeparableConv1D": _separable(1),
    "SeparableConv2D": _separable(2),
}
"""Keras class name -> converter, merged into ``keras_mapping.CONVERTERS``."""
