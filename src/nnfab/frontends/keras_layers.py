"""The Keras layer table: one converter per supported Keras 3 layer class.

A converter reads one call of a Keras layer and returns the IR nodes that replace
it, in order: the first node reads the layer's inputs, each later node reads the
one before it, and the last node's output is the layer's output. Output shapes
are left to ``nnfab.ir.ops.infer_shapes``; tensor types and ``node.precision``
are left to the passes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnfab.errors import FrontendError, UnsupportedLayerError
from nnfab.ir.graph import Node

log = logging.getLogger(__name__)

Shape = tuple[int, ...]


@dataclass
class LayerCall:
    """One call of a Keras layer inside the model being converted."""

    keras: Any
    layer: Any
    inputs: list[str]
    in_shapes: list[Shape]
    out_shape: Shape
    unique_name: Callable[[str], str]

    @property
    def name(self) -> str:
        return str(self.layer.name)

    @property
    def cls(self) -> str:
        return type(self.layer).__name__

    def node(self, op: str, attrs: dict[str, Any] | None = None, **weights: np.ndarray) -> Node:
        """A node named as the layer, reading the layer's inputs."""
        return Node(
            name=self.name,
            op=op,
            inputs=list(self.inputs),
            attrs=attrs or {},
            weights=dict(weights),
            source_class=self.cls,
        )

    def unsupported(self, attr: str, value: Any, allowed: str) -> UnsupportedLayerError:
        return UnsupportedLayerError(
            f"layer {self.name!r} ({self.cls}): {attr}={value!r} is not supported; allowed: "
            f"{allowed}"
        )


Converter = Callable[[LayerCall], list[Node]]


# ------------------------------------------------------------------ helpers
def to_float64(keras: Any, value: Any) -> np.ndarray:
    """A Keras variable (or tensor) as a float64 NumPy array."""
    # Variable.numpy() avoids the NumPy 2 copy-keyword warning of convert_to_numpy on TF.
    array = value.numpy() if hasattr(value, "numpy") else keras.ops.convert_to_numpy(value)
    return np.array(array, dtype=np.float64)


def _ints(value: Any, rank: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * rank
    return tuple(int(v) for v in value)


def same_pads(n: int, k: int, s: int) -> tuple[int, int]:
    """Keras/TensorFlow 'same' padding of one axis: the odd pixel goes after."""
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    before = total // 2
    return before, total - before


def _pads(call: LayerCall, ksize: tuple[int, ...], strides: tuple[int, ...]) -> tuple[int, ...]:
    padding = str(call.layer.padding).lower()
    spatial = call.in_shapes[0][:-1]
    rank = len(ksize)
    if padding == "valid":
        return (0,) * (2 * rank)
    if padding == "same":
        return tuple(
            p for ax in range(rank) for p in same_pads(spatial[ax], ksize[ax], strides[ax])
        )
    if padding == "causal" and rank == 1:
        return (ksize[0] - 1, 0)
    allowed = "'valid', 'same'" + (", 'causal'" if rank == 1 else "")
    raise call.unsupported("padding", call.layer.padding, allowed)


def _check_channels_last(call: LayerCall) -> None:
    fmt = getattr(call.layer, "data_format", "channels_last")
    if fmt not in (None, "channels_last"):
        raise call.unsupported("data_format", fmt, "'channels_last'")


def _check_rank(call: LayerCall, rank: int) -> None:
    shape = call.in_shapes[0]
    if len(shape) != rank + 1:
        raise FrontendError(
            f"layer {call.name!r} ({call.cls}): input shape {shape!r} (without batch) should "
            f"have {rank + 1} axes"
        )


def _bias(call: LayerCall, n_out: int) -> np.ndarray:
    bias = getattr(call.layer, "bias", None)
    if bias is None:
        return np.zeros(n_out, dtype=np.float64)
    return to_float64(call.keras, bias)


def _check_not_quantized(call: LayerCall) -> None:
    mode = getattr(call.layer, "quantization_mode", None)
    if mode is not None:
        raise call.unsupported("quantization_mode", mode, "None (a float layer)")


# --------------------------------------------------------------- activations
ACTIVATION_FUNCTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "linear": ("Activation", {"function": "linear"}),
    "relu": ("Activation", {"function": "relu"}),
    "relu6": ("Activation", {"function": "relu", "max_value": 6.0}),
    "leaky_relu": ("Activation", {"function": "leaky_relu", "alpha": 0.2}),
    "sigmoid": ("Activation", {"function": "sigmoid"}),
    "tanh": ("Activation", {"function": "tanh"}),
    # Keras 3: hard_sigmoid(x) = relu6(x + 3) / 6 = clip(x / 6 + 1/2, 0, 1).
    "hard_sigmoid": ("Activation", {"function": "hard_sigmoid", "slope": 1 / 6, "offset": 0.5}),
    "softmax": ("Softmax", {"axis": -1}),
}
"""Keras activation name -> (IR op, attrs), for Keras' own functions with default arguments."""


def activation_name(call: LayerCall, fn: Any) -> str:
    """The Keras name of a built-in activation function; unsupported error otherwise."""
    name = getattr(fn, "__name__", None)
    known = None
    if isinstance(name, str):
        try:
            known = call.keras.activations.get(name)
        except (ValueError, TypeError):
            known = None
    if known is not fn or name not in ACTIVATION_FUNCTIONS:
        shown = name if isinstance(name, str) else repr(fn)
        raise call.unsupported("activation", shown, ", ".join(sorted(ACTIVATION_FUNCTIONS)))
    return str(name)


def activation_node(name: str, source: str, fn_name: str, source_class: str) -> Node:
    op, attrs = ACTIVATION_FUNCTIONS[fn_name]
    return Node(name=name, op=op, inputs=[source], attrs=dict(attrs), source_class=source_class)


def with_activation(call: LayerCall, node: Node) -> list[Node]:
    """``node`` followed by an Activation node for the layer's non-linear activation."""
    fn_name = activation_name(call, getattr(call.layer, "activation", None))
    if fn_name == "linear":
        return [node]
    act = activation_node(
        call.unique_name(f"{call.name}_{fn_name}"), node.name, fn_name, "Activation"
    )
    return [node, act]


# ---------------------------------------------------------------- converters
def convert_dense(call: LayerCall) -> list[Node]:
    _check_not_quantized(call)
    kernel = to_float64(call.keras, call.layer.kernel)
    node = call.node("Dense", kernel=kernel, bias=_bias(call, kernel.shape[1]))
    return with_activation(call, node)


def _conv_common(call: LayerCall, rank: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Checks shared by (depthwise) convolutions; returns (strides, pads)."""
    _check_channels_last(call)
    _check_not_quantized(call)
    _check_rank(call, rank)
    dilation = _ints(call.layer.dilation_rate, rank)
    if any(d != 1 for d in dilation):
        raise call.unsupported("dilation_rate", call.layer.dilation_rate, "1 on every axis")
    groups = getattr(call.layer, "groups", 1)
    if groups != 1:
        raise call.unsupported("groups", groups, "1")
    strides = _ints(call.layer.strides, rank)
    ksize = _ints(call.layer.kernel_size, rank)
    return strides, _pads(call, ksize, strides)


def _conv(rank: int, depthwise: bool) -> Converter:
    op = f"{'Depthwise' if depthwise else ''}Conv{rank}D"

    def convert(call: LayerCall) -> list[Node]:
        strides, pads = _conv_common(call, rank)
        # Keras layouts: conv (k..., C_in, C_out); depthwise (k..., C, M), output c*M + m.
        kernel = to_float64(call.keras, call.layer.kernel)
        attrs: dict[str, Any] = {"strides": strides, "pads": pads}
        if depthwise:
            attrs["depth_multiplier"] = int(call.layer.depth_multiplier)
        n_out = kernel.shape[-1] * (kernel.shape[-2] if depthwise else 1)
        node = call.node(op, attrs, kernel=kernel, bias=_bias(call, n_out))
        return with_activation(call, node)

    return convert


def _pool(rank: int, mode: str) -> Converter:
    def convert(call: LayerCall) -> list[Node]:
        _check_channels_last(call)
        _check_rank(call, rank)
        size = _ints(call.layer.pool_size, rank)
        strides = _ints(call.layer.strides if call.layer.strides is not None else size, rank)
        attrs: dict[str, Any] = {
            "mode": mode,
            "pool_size": size,
            "strides": strides,
            "pads": _pads(call, size, strides),
        }
        return [call.node(f"Pooling{rank}D", attrs)]

    return convert


def _global_pool(rank: int, mode: str) -> Converter:
    def convert(call: LayerCall) -> list[Node]:
        _check_channels_last(call)
        _check_rank(call, rank)
        if getattr(call.layer, "keepdims", False):
            raise call.unsupported("keepdims", True, "False")
        return [call.node(f"GlobalPooling{rank}D", {"mode": mode})]

    return convert


def convert_batchnorm(call: LayerCall) -> list[Node]:
    layer = call.layer
    rank = len(call.in_shapes[0]) + 1  # with the batch axis
    axes = layer.axis if isinstance(layer.axis, list | tuple) else [layer.axis]
    if [int(a) % rank for a in axes] != [rank - 1]:
        raise call.unsupported("axis", layer.axis, f"-1 (the last axis, {rank - 1})")
    mean = to_float64(call.keras, layer.moving_mean)
    var = to_float64(call.keras, layer.moving_variance)
    gamma = to_float64(call.keras, layer.gamma) if layer.scale else np.ones_like(mean)
    beta = to_float64(call.keras, layer.beta) if layer.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + float(layer.epsilon))
    bias = beta - mean * scale
    return [call.node("BatchNormalization", scale=scale, bias=bias)]


def convert_activation(call: LayerCall) -> list[Node]:
    fn_name = activation_name(call, call.layer.activation)
    node = activation_node(call.name, call.inputs[0], fn_name, call.cls)
    return [node]


def convert_relu(call: LayerCall) -> list[Node]:
    layer = call.layer
    threshold = float(layer.threshold or 0.0)
    slope = float(layer.negative_slope or 0.0)
    max_value = layer.max_value
    if threshold != 0.0:
        raise call.unsupported("threshold", threshold, "0.0")
    if slope != 0.0 and max_value is not None:
        raise call.unsupported(
            "negative_slope", slope, "0.0 when max_value is set (a bounded leaky ReLU)"
        )
    if slope != 0.0:
        return [call.node("Activation", {"function": "leaky_relu", "alpha": slope})]
    attrs: dict[str, Any] = {"function": "relu"}
    if max_value is not None:
        attrs["max_value"] = float(max_value)
    return [call.node("Activation", attrs)]


def convert_leaky_relu(call: LayerCall) -> list[Node]:
    slope = getattr(call.layer, "negative_slope", None)
    if slope is None:
        slope = call.layer.alpha
    return [call.node("Activation", {"function": "leaky_relu", "alpha": float(slope)})]


def convert_softmax(call: LayerCall) -> list[Node]:
    rank = len(call.in_shapes[0]) + 1
    axes = call.layer.axis if isinstance(call.layer.axis, list | tuple) else [call.layer.axis]
    if [int(a) % rank for a in axes] != [rank - 1]:
        raise call.unsupported("axis", call.layer.axis, "-1 (the last axis)")
    return [call.node("Softmax", {"axis": -1})]


def _merge(mode: str) -> Converter:
    def convert(call: LayerCall) -> list[Node]:
        shapes = set(call.in_shapes)
        if len(shapes) != 1:
            raise call.unsupported("input shapes", call.in_shapes, "equal shapes (no broadcasting)")
        return [call.node("Merge", {"mode": mode})]

    return convert


def convert_concatenate(call: LayerCall) -> list[Node]:
    rank = len(call.in_shapes[0]) + 1
    axis = int(call.layer.axis)
    full = axis + rank if axis < 0 else axis
    if not 1 <= full < rank:
        raise call.unsupported("axis", axis, f"a non-batch axis, 1..{rank - 1} or -{rank - 1}..-1")
    return [call.node("Concatenate", {"axis": full - 1})]


def convert_flatten(call: LayerCall) -> list[Node]:
    fmt = getattr(call.layer, "data_format", "channels_last")
    if fmt == "channels_first" and len(call.in_shapes[0]) > 1:
        raise call.unsupported("data_format", fmt, "'channels_last'")
    return [call.node("Flatten")]


def convert_reshape(call: LayerCall) -> list[Node]:
    # Keras' resolved output shape, so a -1 in target_shape needs no second guess.
    return [call.node("Reshape", {"target_shape": tuple(call.out_shape)})]


def convert_identity(call: LayerCall) -> list[Node]:
    return [call.node("Dropout")]


CONVERTERS: dict[str, Converter] = {
    "Dense": convert_dense,
    "Conv1D": _conv(1, depthwise=False),
    "Conv2D": _conv(2, depthwise=False),
    "DepthwiseConv1D": _conv(1, depthwise=True),
    "DepthwiseConv2D": _conv(2, depthwise=True),
    "MaxPooling1D": _pool(1, "max"),
    "MaxPooling2D": _pool(2, "max"),
    "AveragePooling1D": _pool(1, "avg"),
    "AveragePooling2D": _pool(2, "avg"),
    "GlobalMaxPooling1D": _global_pool(1, "max"),
    "GlobalMaxPooling2D": _global_pool(2, "max"),
    "GlobalAveragePooling1D": _global_pool(1, "avg"),
    "GlobalAveragePooling2D": _global_pool(2, "avg"),
    "BatchNormalization": convert_batchnorm,
    "Activation": convert_activation,
    "ReLU": convert_relu,
    "LeakyReLU": convert_leaky_relu,
    "Softmax": convert_softmax,
    "Add": _merge("add"),
    "Subtract": _merge("subtract"),
    "Multiply": _merge("multiply"),
    "Average": _merge("average"),
    "Concatenate": convert_concatenate,
    "Flatten": convert_flatten,
    "Reshape": convert_reshape,
    # Inference-time no-ops.
    "Dropout": convert_identity,
    "SpatialDropout1D": convert_identity,
    "SpatialDropout2D": convert_identity,
    "GaussianNoise": convert_identity,
    "GaussianDropout": convert_identity,
    "AlphaDropout": convert_identity,
}
"""Keras layer class name -> converter (``InputLayer`` is handled by the model walk)."""

SUPPORTED_LAYERS: tuple[str, ...] = ("InputLayer", *CONVERTERS)
