"""The Keras layer table, shared by both Keras frontends: one converter per layer class.

A layer reaches a converter as a ``LayerCall``: its class name, its ``get_config()``
dict (as written in a model JSON), its weights by short name (``kernel``, ``bias``,
``gamma``, ... as float64 arrays) and its input tensors. ``keras_json`` builds these
from a JSON/HDF5 file, ``keras`` (through ``keras_layers``) from a live Keras 3
model, so every layer type is mapped here once.

A converter returns the IR nodes that replace the layer, in order: the first node
reads the layer's inputs, each later node reads the one before it, and the last
node's output is the layer's output. Shapes are left to ``nnfab.ir.ops``; float
layers leave types to the passes. QKeras layers carry their quantized weights and
the exact types of their quantizers (``nnfab.frontends.qkeras``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnfab.errors import FrontendError, UnsupportedLayerError
from nnfab.frontends import qkeras as qk
from nnfab.frontends.gated import GELU_GATE, HARD_SWISH_GATE, SILU_GATE, gated_nodes
from nnfab.ir.activation_rules import compact_alpha
from nnfab.ir.graph import Node
from nnfab.ir.types import FixedType

log = logging.getLogger(__name__)

Shape = tuple[int, ...]
JsonDict = dict[str, Any]

LEAKY_RELU_SLOPE_ATTR = "alpha"
"""Attribute of ``Activation(function="leaky_relu")`` holding the slope (the emulator's name)."""
KERAS2_HARD_SIGMOID_SLOPE = 0.2  # Keras 2: clip(0.2 x + 0.5, 0, 1)
KERAS3_HARD_SIGMOID_SLOPE = 1 / 6  # Keras 3: relu6(x + 3) / 6


@dataclass
class LayerCall:
    """One Keras layer being converted: its config, inputs and weights.

    ``config`` is the layer's ``get_config()`` dict, ``weights`` its arrays by short name
    (float64), ``keras_major`` the Keras major version that wrote it, ``origin`` where
    the weights come from (for messages).
    """

    name: str
    cls: str
    config: JsonDict
    inputs: list[str]
    in_shapes: list[Shape]
    weights: dict[str, np.ndarray]
    keras_major: int
    unique_name: Callable[[str], str]
    origin: str = ""

    def get(self, key: str, default: Any = None) -> Any:
        return self.config.get(key, default)

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

    def where(self, field_name: str = "") -> str:
        text = f"layer {self.name!r} ({self.cls})"
        return f"{text} {field_name}" if field_name else text

    def unsupported(self, attr: str, value: Any, allowed: str) -> UnsupportedLayerError:
        return UnsupportedLayerError(
            f"{self.where()}: {attr}={value!r} is not supported; allowed: {allowed}"
        )

    def weight(self, *names: str, required: bool = True) -> np.ndarray | None:
        """The first weight present among ``names`` (aliases across Keras versions)."""
        for n in names:
            if n in self.weights:
                return self.weights[n]
        if not required:
            return None
        have = ", ".join(sorted(self.weights)) or "none"
        raise FrontendError(
            f"{self.where()}: weight {names[0]!r} not found in {self.origin} (this layer has: "
            f"{have}); is the weights file the one saved with this architecture?"
        )


Converter = Callable[[LayerCall], list[Node]]


def _ints(value: Any, rank: int, call: LayerCall, key: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * rank
    if isinstance(value, list | tuple) and len(value) == rank and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return tuple(int(v) for v in value)
    raise call.unsupported(key, value, f"an integer or {rank} integers")


def same_pads(n: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow 'same' padding of one axis: total as needed, the odd pixel after."""
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _pads(call: LayerCall, ksize: Shape, strides: Shape) -> tuple[int, ...]:
    padding = str(call.get("padding", "valid")).lower()
    rank = len(ksize)
    spatial = call.in_shapes[0][:rank]
    if padding == "valid":
        return (0,) * (2 * rank)
    if padding == "same":
        return tuple(
            p for ax in range(rank) for p in same_pads(spatial[ax], ksize[ax], strides[ax])
        )
    if padding == "causal" and rank == 1:
        return (ksize[0] - 1, 0)
    allowed = "'valid', 'same'" + (", 'causal'" if rank == 1 else "")
    raise call.unsupported("padding", call.get("padding"), allowed)


def _check_channels_last(call: LayerCall) -> None:
    fmt = call.get("data_format", "channels_last")
    if fmt not in (None, "channels_last"):
        raise call.unsupported("data_format", fmt, "'channels_last'")


def _check_rank(call: LayerCall, rank: int) -> None:
    shape = call.in_shapes[0]
    if len(shape) != rank + 1:
        raise FrontendError(
            f"{call.where()}: input shape {shape!r} (without batch) should have {rank + 1} axes"
        )


def _bias(call: LayerCall, n_out: int) -> np.ndarray:
    if not call.get("use_bias", True):
        return np.zeros(n_out, dtype=np.float64)
    bias = call.weight("bias")
    assert bias is not None
    return bias.reshape(-1)


# ----------------------------------------------------------- activations
GATED = "Gated"
"""Plan op of ``x * gate(x)`` activations (silu / hard_silu): two IR nodes."""

ACTIVATION_FUNCTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "linear": ("Activation", {"function": "linear"}),
    "relu": ("Activation", {"function": "relu"}),
    "relu6": ("Activation", {"function": "relu", "max_value": 6.0}),
    "leaky_relu": ("Activation", {"function": "leaky_relu", LEAKY_RELU_SLOPE_ATTR: 0.2}),
    "sigmoid": ("Activation", {"function": "sigmoid"}),
    "tanh": ("Activation", {"function": "tanh"}),
    "hard_sigmoid": ("Activation", {"function": "hard_sigmoid", "offset": 0.5}),
    "softmax": ("Softmax", {"axis": -1}),
    "elu": ("Activation", {"function": "elu", "alpha": 1.0}),
    "celu": ("Activation", {"function": "celu", "alpha": 1.0}),
    "selu": ("Activation", {"function": "selu"}),
    "softplus": ("Activation", {"function": "softplus"}),
    "softsign": ("Activation", {"function": "softsign"}),
    "hard_tanh": ("Activation", {"function": "hard_tanh", "min_val": -1.0, "max_val": 1.0}),
    # x * gate(x): the gate an Activation node <name>_gate, then a multiply (GATED)
    "silu": (GATED, SILU_GATE),
    "swish": (GATED, SILU_GATE),
    "hard_silu": (GATED, HARD_SWISH_GATE),
    "hard_swish": (GATED, HARD_SWISH_GATE),
    "gelu": (GATED, GELU_GATE),  # keras.activations.gelu's default: approximate=False
}
"""Keras activation names -> (IR op, attrs); hard_sigmoid's slope depends on the Keras
version; Keras 3 writes swish as silu and hard_swish as hard_silu."""


@dataclass
class _ActivationPlan:
    """What a layer's ``activation`` becomes: nothing, or one IR node."""

    label: str  # the name suffix: "relu", "softmax", "quantized_relu", ...
    op: str = "Activation"  # or GATED: attrs are the gate's
    attrs: dict[str, Any] = field(default_factory=dict)
    result: FixedType | None = None  # the type of a quantized activation
    precision: dict[str, FixedType] = field(default_factory=dict)
    quantizer: str | None = None

    @property
    def identity(self) -> bool:
        return self.op == "Activation" and self.attrs.get("function") == "linear" and (
            self.result is None
        )


def _activation_name(call: LayerCall, spec: Any) -> str:
    """The function name of a serialized Keras activation (string or dict form)."""
    if spec is None:
        return "linear"
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict):
        inner = spec.get("config")
        if spec.get("class_name") == "function" and isinstance(inner, str):
            return inner
        if isinstance(spec.get("class_name"), str):
            return str(spec["class_name"])
    raise call.unsupported("activation", spec, ", ".join(ACTIVATION_FUNCTIONS))


def plan_activation(call: LayerCall, spec: Any, quantized_layer: bool) -> _ActivationPlan:
    """Map a layer's ``activation`` (Keras function or QKeras quantizer) to an IR node plan."""
    if quantized_layer and qk.is_quantizer(spec):
        q = qk.parse_quantizer(spec, call.where("activation"))
        assert q is not None
        m = qk.activation_mapping(q, call.where("activation"))
        return _ActivationPlan(q.name, m.op, dict(m.attrs), m.result, dict(m.precision), q.text)
    name = _activation_name(call, spec)
    if quantized_layer and name in qk.QKERAS_FUNCTIONS:
        op, attrs = qk.QKERAS_FUNCTIONS[name]
        return _ActivationPlan(name, op, dict(attrs))
    if quantized_layer and name in qk.UNSUPPORTED_QKERAS_FUNCTIONS:
        raise call.unsupported(
            "activation", name, "QKeras' hard_sigmoid, the Keras functions "
            f"{', '.join(ACTIVATION_FUNCTIONS)} and the quantizers "
            f"{', '.join(qk.ACTIVATION_QUANTIZERS)} ({name} has no nnfab op)",
        )
    if name in ACTIVATION_FUNCTIONS:
        op, attrs = ACTIVATION_FUNCTIONS[name]
        attrs = dict(attrs)
        if name == "hard_sigmoid":
            attrs["slope"] = (
                KERAS3_HARD_SIGMOID_SLOPE if call.keras_major >= 3 else KERAS2_HARD_SIGMOID_SLOPE
            )
        return _ActivationPlan(name, op, attrs)
    allowed = ", ".join(ACTIVATION_FUNCTIONS)
    if quantized_layer:
        allowed += "; QKeras quantizers " + ", ".join(qk.ACTIVATION_QUANTIZERS)
    raise call.unsupported("activation", spec if isinstance(spec, str) else name, allowed)


def _activation_nodes(plan: _ActivationPlan, name: str, source: str, cls: str) -> list[Node]:
    """The plan's node named ``name`` reading ``source``; a gated plan: the gate
    ``<name>_gate``, then ``name`` = ``source * gate``."""
    if plan.op == GATED:
        return gated_nodes(name, source, plan.attrs, cls)
    return [_activation_node(plan, name, source, cls)]


def _activation_node(plan: _ActivationPlan, name: str, source: str, cls: str) -> Node:
    attrs = dict(plan.attrs)
    if plan.quantizer is not None:
        attrs["quantizer"] = plan.quantizer
    node = Node(name=name, op=plan.op, inputs=[source], attrs=attrs, source_class=cls)
    node.precision.update(plan.precision)
    if plan.result is not None:
        node.attrs["_result_type"] = plan.result  # moved to the tensor when the node is added
    return node


def with_activation(call: LayerCall, node: Node, quantized_layer: bool = False) -> list[Node]:
    """``node`` followed by a node for the layer's activation, unless it is linear."""
    plan = plan_activation(call, call.get("activation"), quantized_layer)
    if plan.identity:
        return [node]
    name = call.unique_name(f"{call.name}_{plan.label}")
    cls = "QActivation" if plan.quantizer is not None else "Activation"
    return [node, *_activation_nodes(plan, name, node.name, cls)]


# ------------------------------------------------------------ converters
def convert_dense(call: LayerCall) -> list[Node]:
    kernel = call.weight("kernel")
    assert kernel is not None
    node = call.node("Dense", kernel=kernel, bias=_bias(call, kernel.shape[-1]))
    return with_activation(call, node)


def _conv_common(call: LayerCall, rank: int) -> tuple[Shape, tuple[int, ...]]:
    _check_channels_last(call)
    _check_rank(call, rank)
    dilation = _ints(call.get("dilation_rate", 1), rank, call, "dilation_rate")
    if any(d != 1 for d in dilation):
        raise call.unsupported("dilation_rate", call.get("dilation_rate"), "1 on every axis")
    groups = call.get("groups", 1)
    if groups != 1:
        raise call.unsupported("groups", groups, "1")
    strides = _ints(call.get("strides", 1), rank, call, "strides")
    ksize = _ints(call.get("kernel_size"), rank, call, "kernel_size")
    return strides, _pads(call, ksize, strides)


def _conv_node(call: LayerCall, rank: int, depthwise: bool, kernel: np.ndarray) -> Node:
    strides, pads = _conv_common(call, rank)
    attrs: dict[str, Any] = {"strides": strides, "pads": pads}
    if kernel.ndim != rank + 2:
        raise FrontendError(
            f"{call.where()}: kernel shape {kernel.shape} should have {rank + 2} axes"
        )
    if depthwise:
        attrs["depth_multiplier"] = int(kernel.shape[-1])
    n_out = kernel.shape[-1] * (kernel.shape[-2] if depthwise else 1)
    return call.node(
        f"{'Depthwise' if depthwise else ''}Conv{rank}D", attrs, kernel=kernel,
        bias=_bias(call, n_out),
    )


def _conv(rank: int, depthwise: bool) -> Converter:
    def convert(call: LayerCall) -> list[Node]:
        names = ("depthwise_kernel", "kernel") if depthwise else ("kernel",)
        kernel = call.weight(*names)
        assert kernel is not None
        return with_activation(call, _conv_node(call, rank, depthwise, kernel))

    return convert


def _pool(rank: int, mode: str) -> Converter:
    def convert(call: LayerCall) -> list[Node]:
        _check_channels_last(call)
        _check_rank(call, rank)
        size = _ints(call.get("pool_size", 2), rank, call, "pool_size")
        raw_strides = call.get("strides")
        strides = size if raw_strides is None else _ints(raw_strides, rank, call, "strides")
        attrs: dict[str, Any] = {
            "mode": mode,
            "pool_size": size,
            "strides": strides,
            "pads": _pads(call, size, strides),
        }
        if mode == "avg":
            attrs["count_include_pad"] = False  # TensorFlow averages real inputs only
        return [call.node(f"Pooling{rank}D", attrs)]

    return convert


def _global_pool(rank: int, mode: str) -> Converter:
    def convert(call: LayerCall) -> list[Node]:
        _check_channels_last(call)
        _check_rank(call, rank)
        pool = call.node(f"GlobalPooling{rank}D", {"mode": mode})
        if not call.get("keepdims", False):
            return [pool]
        pool.name = call.unique_name(f"{call.name}_pool")  # (C,), then Keras' (1, ..., C)
        shape = (1,) * rank + (call.in_shapes[0][-1],)
        return [pool, Node(call.name, "Reshape", [pool.name], attrs={"target_shape": shape},
                           source_class=call.cls)]

    return convert


def _check_last_axis(call: LayerCall, key: str, default: Any) -> None:
    rank = len(call.in_shapes[0]) + 1  # with the batch axis
    axis = call.get(key, default)
    axes = axis if isinstance(axis, list | tuple) else [axis]
    if not all(isinstance(a, int) for a in axes) or [a % rank for a in axes] != [rank - 1]:
        raise call.unsupported(key, axis, f"-1 (the last axis, {rank - 1})")


def _fold_batchnorm(
    call: LayerCall, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, var: np.ndarray
) -> Node:
    eps = float(call.get("epsilon", 1e-3))
    scale = gamma / np.sqrt(var + eps)
    return call.node("BatchNormalization", scale=scale, bias=beta - mean * scale)


def _batchnorm_weights(call: LayerCall) -> tuple[np.ndarray, ...]:
    _check_last_axis(call, "axis", -1)
    mean = call.weight("moving_mean")
    var = call.weight("moving_variance")
    assert mean is not None and var is not None
    gamma = call.weight("gamma") if call.get("scale", True) else np.ones_like(mean)
    beta = call.weight("beta") if call.get("center", True) else np.zeros_like(mean)
    assert gamma is not None and beta is not None
    return gamma, beta, mean, var


def convert_batchnorm(call: LayerCall) -> list[Node]:
    return [_fold_batchnorm(call, *_batchnorm_weights(call))]


def convert_activation(call: LayerCall) -> list[Node]:
    plan = plan_activation(call, call.get("activation"), quantized_layer=False)
    return _activation_nodes(plan, call.name, call.inputs[0], call.cls)


def convert_relu(call: LayerCall) -> list[Node]:
    threshold = float(call.get("threshold") or 0.0)
    slope = float(call.get("negative_slope") or 0.0)
    max_value = call.get("max_value")
    if threshold != 0.0:
        raise call.unsupported("threshold", threshold, "0.0")
    if slope != 0.0 and max_value is not None:
        raise call.unsupported(
            "negative_slope", slope, "0.0 when max_value is set (a bounded leaky ReLU)"
        )
    if slope != 0.0:
        return [call.node("Activation", {"function": "leaky_relu", LEAKY_RELU_SLOPE_ATTR: slope})]
    attrs: dict[str, Any] = {"function": "relu"}
    if max_value is not None:
        attrs["max_value"] = float(max_value)
    return [call.node("Activation", attrs)]


def convert_leaky_relu(call: LayerCall) -> list[Node]:
    slope = call.get("negative_slope", call.get("alpha", 0.3))  # Keras 3 / Keras 2 names
    attrs = {"function": "leaky_relu", LEAKY_RELU_SLOPE_ATTR: float(slope)}
    return [call.node("Activation", attrs)]


def convert_elu(call: LayerCall) -> list[Node]:
    return [call.node("Activation", {"function": "elu", "alpha": float(call.get("alpha", 1.0))})]


def convert_thresholded_relu(call: LayerCall) -> list[Node]:
    theta = float(call.get("theta", 1.0))
    return [call.node("Activation", {"function": "thresholded_relu", "theta": theta})]


def convert_prelu(call: LayerCall) -> list[Node]:
    alpha = call.weight("alpha")
    assert alpha is not None
    node = call.node("Activation", {"function": "prelu"})
    node.weights["alpha"] = compact_alpha(alpha)  # channels-last, broadcastable to the input
    return [node]


def convert_softmax(call: LayerCall) -> list[Node]:
    _check_last_axis(call, "axis", -1)
    return [call.node("Softmax", {"axis": -1})]


def _merge(mode: str) -> Converter:
    def convert(call: LayerCall) -> list[Node]:
        if len(set(call.in_shapes)) != 1:
            raise call.unsupported("input shapes", call.in_shapes, "equal shapes (no broadcasting)")
        return [call.node("Merge", {"mode": mode})]

    return convert


def convert_dot(call: LayerCall) -> list[Node]:
    """``Dot`` of two vectors (axes 1 or -1, no normalization): one value per sample."""
    axes = call.get("axes", -1)
    pair = tuple(axes) if isinstance(axes, list | tuple) else (axes, axes)
    if len(call.in_shapes) != 2 or any(len(s) != 1 for s in call.in_shapes) or (
            call.in_shapes[0] != call.in_shapes[1]):
        raise call.unsupported("input shapes", call.in_shapes, "two vectors of one length")
    if any(a not in (1, -1) for a in pair):
        raise call.unsupported("axes", axes, "1 or -1 (the feature axis of two vectors)")
    if call.get("normalize", False):
        raise call.unsupported("normalize", True, "False")
    return [call.node("Dot")]


def convert_concatenate(call: LayerCall) -> list[Node]:
    rank = len(call.in_shapes[0]) + 1
    axis = call.get("axis", -1)
    if not isinstance(axis, int) or not -rank <= axis < rank or axis % rank == 0:
        raise call.unsupported("axis", axis, f"a non-batch axis, 1..{rank - 1} or -{rank - 1}..-1")
    return [call.node("Concatenate", {"axis": axis % rank - 1})]


def convert_flatten(call: LayerCall) -> list[Node]:
    if call.get("data_format") == "channels_first" and len(call.in_shapes[0]) > 1:
        raise call.unsupported("data_format", "channels_first", "'channels_last'")
    return [call.node("Flatten")]


def convert_reshape(call: LayerCall) -> list[Node]:
    target = call.get("target_shape")
    if not isinstance(target, list | tuple) or not all(isinstance(t, int) for t in target):
        raise call.unsupported("target_shape", target, "a list of integers (one may be -1)")
    total = math.prod(call.in_shapes[0])
    resolved = list(target)
    if resolved.count(-1) == 1:
        known = math.prod(t for t in resolved if t != -1)
        resolved[resolved.index(-1)] = total // known if known and total % known == 0 else -1
    if any(t < 1 for t in resolved) or math.prod(resolved) != total:
        raise FrontendError(
            f"{call.where()}: cannot reshape {call.in_shapes[0]!r} to target_shape {target!r}"
        )
    return [call.node("Reshape", {"target_shape": tuple(resolved)})]


def convert_identity(call: LayerCall) -> list[Node]:
    return [call.node("Dropout")]


# ------------------------------------------------------ QKeras converters
def _quantized_weight(
    call: LayerCall, node: Node, wname: str, key: str, qfield: str, role: str
) -> None:
    """Quantize ``node.weights[wname]`` with the layer's ``qfield`` quantizer, set its type."""
    if wname == "bias" and not call.get("use_bias", True):
        return  # zeros: exact in any bias type
    where = call.where(qfield)
    q = qk.parse_quantizer(call.get(qfield), where)
    if q is None:
        log.info("%s: no %s; the %s stays float and gets the configured type",
                 call.where(), qfield, wname)
        return
    values = qk.quantize_weights(q, node.weights[wname], where, role)
    node.weights[wname] = values
    node.precision[key] = qk.weight_type(q, values, where, role)
    node.attrs[qfield] = q.text


def _quantized_layer(converter: Converter, kernel_field: str = "kernel_quantizer") -> Converter:
    def convert(call: LayerCall) -> list[Node]:
        nodes = converter(call)
        node = nodes[0]
        _quantized_weight(call, node, "kernel", "weight", kernel_field, "kernel")
        _quantized_weight(call, node, "bias", "bias", "bias_quantizer", "bias")
        return nodes

    return convert


def _q_dense(call: LayerCall) -> list[Node]:
    kernel = call.weight("kernel")
    assert kernel is not None
    node = call.node("Dense", kernel=kernel, bias=_bias(call, kernel.shape[-1]))
    return with_activation(call, node, quantized_layer=True)


def _q_conv(rank: int, depthwise: bool) -> Converter:
    def convert(call: LayerCall) -> list[Node]:
        names = ("depthwise_kernel", "kernel") if depthwise else ("kernel",)
        kernel = call.weight(*names)
        assert kernel is not None
        node = _conv_node(call, rank, depthwise, kernel)
        return with_activation(call, node, quantized_layer=True)

    return convert


def convert_q_activation(call: LayerCall) -> list[Node]:
    plan = plan_activation(call, call.get("activation"), quantized_layer=True)
    return _activation_nodes(plan, call.name, call.inputs[0], call.cls)


QBATCHNORM_DEFAULT_QUANTIZERS = {
    "gamma_quantizer": "quantized_relu_po2(6, 2048)",
    "beta_quantizer": "quantized_po2(5)",
    "mean_quantizer": "quantized_po2(5)",
    "variance_quantizer": "quantized_relu_po2(6, quadratic_approximation=True)",
}
"""QBatchNormalization's defaults when the file does not list a quantizer."""


def convert_q_batchnorm(call: LayerCall) -> list[Node]:
    gamma, beta, mean, var = _batchnorm_weights(call)
    params = {"gamma_quantizer": gamma, "beta_quantizer": beta, "mean_quantizer": mean,
              "variance_quantizer": var}
    texts: dict[str, str] = {}
    for qfield, values in params.items():
        if qfield == "gamma_quantizer" and not call.get("scale", True):
            continue
        if qfield == "beta_quantizer" and not call.get("center", True):
            continue
        q = qk.parse_quantizer(call.get(qfield, QBATCHNORM_DEFAULT_QUANTIZERS[qfield]),
                               call.where(qfield))
        if q is not None:
            params[qfield] = qk.quantize_weights(q, values, call.where(qfield), "bias")
            texts[qfield] = q.text
    node = _fold_batchnorm(call, params["gamma_quantizer"], params["beta_quantizer"],
                           params["mean_quantizer"], params["variance_quantizer"])
    node.attrs.update(texts)
    log.info(
        "%s: QKeras computes batch normalization in float with quantized parameters; nnfab "
        "uses the configured weight/bias/result types for it (not bit-exact)", call.where()
    )
    nodes = [node]
    plan = plan_activation(call, call.get("activation"), quantized_layer=True)
    if not plan.identity:
        name = call.unique_name(f"{call.name}_{plan.label}")
        nodes.extend(_activation_nodes(plan, name, node.name, "QActivation"))
    return nodes


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
    "ELU": convert_elu,
    "PReLU": convert_prelu,
    "ThresholdedReLU": convert_thresholded_relu,
    "Softmax": convert_softmax,
    "Add": _merge("add"),
    "Subtract": _merge("subtract"),
    "Multiply": _merge("multiply"),
    "Average": _merge("average"),
    "Maximum": _merge("maximum"),
    "Minimum": _merge("minimum"),
    "Dot": convert_dot,
    "Concatenate": convert_concatenate,
    "Flatten": convert_flatten,
    "Reshape": convert_reshape,
    "Dropout": convert_identity,
    "SpatialDropout1D": convert_identity,
    "SpatialDropout2D": convert_identity,
    "GaussianNoise": convert_identity,
    "GaussianDropout": convert_identity,
    "AlphaDropout": convert_identity,
    "ActivityRegularization": convert_identity,
    # QKeras
    "QDense": _quantized_layer(_q_dense),
    "QConv1D": _quantized_layer(_q_conv(1, depthwise=False)),
    "QConv2D": _quantized_layer(_q_conv(2, depthwise=False)),
    "QDepthwiseConv2D": _quantized_layer(_q_conv(2, depthwise=True), "depthwise_quantizer"),
    "QActivation": convert_q_activation,
    "QBatchNormalization": convert_q_batchnorm,
}
"""Keras / QKeras class name (as in a model JSON, or ``type(layer).__name__``) -> converter."""

# Rescaling, Normalization and Identity live in keras_scale.
from nnfab.frontends.keras_scale import SCALE_CONVERTERS  # noqa: E402

CONVERTERS.update(SCALE_CONVERTERS)

# Shape layers and separable convolutions live in keras_shape (it imports this module).
from nnfab.frontends.keras_shape import SHAPE_CONVERTERS  # noqa: E402

CONVERTERS.update(SHAPE_CONVERTERS)

# Recurrent layers (SimpleRNN, LSTM, GRU) live in keras_recurrent.
from nnfab.frontends.keras_recurrent import RECURRENT_CONVERTERS  # noqa: E402

CONVERTERS.update(RECURRENT_CONVERTERS)

# Embedding, Conv1D/2DTranspose and LayerNormalization live in keras_zoo.
from nnfab.frontends.keras_zoo import ZOO_CONVERTERS  # noqa: E402

CONVERTERS.update(ZOO_CONVERTERS)

# EinsumDense (as Dense, with Reshape around it) lives in keras_einsum.
from nnfab.frontends.keras_einsum import EINSUM_CONVERTERS  # noqa: E402

CONVERTERS.update(EINSUM_CONVERTERS)

# MultiHeadAttention (Dense, Permute, MatMul, Softmax) lives in keras_attention.
from nnfab.frontends.keras_attention import ATTENTION_CONVERTERS  # noqa: E402

CONVERTERS.update(ATTENTION_CONVERTERS)

# HGQ (Keras 2) proxy models' FixedPointQuantizer lives in keras_hgq_proxy.
from nnfab.frontends.keras_hgq_proxy import HGQ_PROXY_CONVERTERS  # noqa: E402

CONVERTERS.update(HGQ_PROXY_CONVERTERS)

# GarNet / GarNetStack (graph layers over a padded vertex axis) live in keras_garnet.
from nnfab.frontends.keras_garnet import GARNET_CONVERTERS  # noqa: E402

CONVERTERS.update(GARNET_CONVERTERS)

SUPPORTED_LAYERS: tuple[str, ...] = ("InputLayer", *CONVERTERS)

QKERAS_LAYERS: tuple[str, ...] = tuple(name for name in CONVERTERS if name.startswith("Q"))
"""The QKeras classes among ``SUPPORTED_LAYERS`` (the others are plain Keras layers)."""

KERAS_LAYERS: tuple[str, ...] = tuple(name for name in CONVERTERS if name not in QKERAS_LAYERS)
"""The plain Keras classes among ``CONVERTERS`` (those of ``keras.layers``)."""
