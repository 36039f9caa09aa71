"""Keras layers that scale and shift each channel: ``Rescaling`` and ``Normalization``
become a ``BatchNormalization`` node (``y = x * scale + bias`` on the last axis, the
scale and bias cast to their configured types); ``Identity`` a pass-through.

- ``Rescaling(scale, offset)``: ``y = x * scale + offset``; scalars or one value per
  channel (the last axis).
- ``Normalization`` (``axis=-1``, not ``invert``): ``y = (x - mean) / max(sqrt(var),
  1e-7)`` as Keras 3 computes it, with the adapted ``mean``/``variance`` weights or the
  constructor's ``mean``/``variance``; scalars or one value per channel.

Registered in ``keras_mapping.CONVERTERS`` (live models and the JSON/h5 reader).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from nnfab.frontends.keras_mapping import Converter, LayerCall
    from nnfab.ir.graph import Node

NORMALIZATION_EPSILON = 1e-7
"""Keras' ``backend.epsilon()``: the floor of ``sqrt(variance)`` in ``Normalization``."""


def _per_channel(call: LayerCall, key: str, value: Any) -> np.ndarray:
    """A scalar or one value per channel -> (C,) float64."""
    channels = call.in_shapes[0][-1]
    v = np.asarray(value, dtype=np.float64)
    if v.size == 1:
        return np.full(channels, float(v.reshape(-1)[0]))
    if v.size != channels or (v.ndim > 1 and sorted(v.shape)[:-1] != [1] * (v.ndim - 1)):
        raise call.unsupported(key, value, f"a number or {channels} values, one per channel "
                               "(the last axis)")
    return v.reshape(-1)


def convert_rescaling(call: LayerCall) -> list[Node]:
    scale = _per_channel(call, "scale", call.get("scale", 1.0))
    offset = _per_channel(call, "offset", call.get("offset", 0.0))
    return [call.node("BatchNormalization", scale=scale, bias=offset)]


def convert_normalization(call: LayerCall) -> list[Node]:
    axis = call.get("axis", -1)
    axes = list(axis) if isinstance(axis, list | tuple) else [axis]
    rank = len(call.in_shapes[0]) + 1
    if len(axes) != 1 or not isinstance(axes[0], int) or axes[0] % rank != rank - 1:
        raise call.unsupported("axis", axis, "-1 (one mean and variance per channel)")
    if call.get("invert", False):
        raise call.unsupported("invert", True, "False")
    mean = call.weight("mean", required=False)
    var = call.weight("variance", required=False)
    if mean is None or var is None:
        mean, var = call.get("mean"), call.get("variance")
    if mean is None or var is None:
        raise call.unsupported("mean/variance", None, "an adapted layer or the constructor's "
                               "mean and variance")
    mean = _per_channel(call, "mean", mean)
    std = np.maximum(np.sqrt(_per_channel(call, "variance", var)), NORMALIZATION_EPSILON)
    return [call.node("BatchNormalization", scale=1.0 / std, bias=-mean / std)]


def convert_pass_through(call: LayerCall) -> list[Node]:
    return [call.node("Dropout")]


SCALE_CONVERTERS: dict[str, Converter] = {
    "Rescaling": convert_rescaling,
    "Normalization": convert_normalization,
    "Identity": convert_pass_through,
}
"""Keras class name -> converter, merged into ``keras_mapping.CONVERTERS``."""
