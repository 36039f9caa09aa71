"""The IR operations: attributes, weights, precision keys and shape inference.

One ``OpSpec`` per operation. ``docs/semantics.md`` defines each op's arithmetic;
``nnfab.emulate.kernels`` implements it. Shapes exclude the batch dimension and
are channels-last.

Attribute conventions (tuples, never lists):
- ``strides``: one int per spatial axis; ``pads``: ``(before, after)`` per spatial
  axis, flattened: 1-D ``(left, right)``, 2-D ``(top, bottom, left, right)``.
- ``pool_size`` / kernel sizes come from the weight shapes for convolutions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nnfab.errors import GraphError
from nnfab.ir.graph import Graph, Node
from nnfab.ir.rearrange import rearranged_shape
from nnfab.ir.recurrent import (
    RECURRENT_PRECISION_KEYS,
    RECURRENT_WEIGHTS,
    SIMPLE_RNN_PRECISION_KEYS,
    shape_recurrent,
)
from nnfab.ir.vertex import shape_vertex_mask, shape_vertex_mean
from nnfab.ir.zoo import EMBEDDING_PRECISION_KEYS, LAYERNORM_PRECISION_KEYS
from nnfab.ir.zoo import SHAPES as ZOO_SHAPES

Shape = tuple[int, ...]

ACTIVATIONS = (
    "linear",
    "relu",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "hard_sigmoid",
    # nnfab.ir.activation_rules: tables (elu, celu, selu for x < 0) and piecewise-linear
    "elu",
    "celu",
    "selu",
    "softplus",
    "softsign",
    "prelu",
    "thresholded_relu",
    "hard_tanh",
    "gaussian",  # exp(-x**2), the edge weight of distance-weighted graph layers (GarNet)
    "normal_cdf",  # (1 + erf(x / sqrt 2)) / 2: gelu(x) = x * normal_cdf(x)
    "normal_cdf_tanh",  # the tanh approximation of normal_cdf (gelu's approximate form)
)
"""Values of ``Activation.attrs['function']`` (relu with ``max_value`` is relu6 / bounded relu;
prelu carries the weight ``alpha``)."""

MERGE_MODES = ("add", "subtract", "multiply", "average", "maximum", "minimum")
POOL_MODES = ("max", "avg")
GLOBAL_POOL_MODES = (*POOL_MODES, "sum")
"""Global pooling also sums (the exact sum, cast to the result: avg with the scale 1)."""


@dataclass(frozen=True)
class OpSpec:
    """What an op carries and how its output shape follows from its inputs."""

    name: str
    infer_shape: Callable[[Node, list[Shape]], Shape]
    precision_keys: tuple[str, ...] = ()
    weight_names: tuple[str, ...] = ()
    n_inputs: tuple[int, int] = (1, 1)  # min, max
    doc: str = ""
    required_attrs: tuple[str, ...] = field(default_factory=tuple)


def _conv_out(length: int, k: int, stride: int, before: int, after: int) -> int:
    return (length + before + after - k) // stride + 1


def _shape_input(node: Node, shapes: list[Shape]) -> Shape:
    return tuple(node.attrs["shape"])


def _shape_dense(node: Node, shapes: list[Shape]) -> Shape:
    (shape,) = shapes
    kernel = node.weights["kernel"]
    if shape[-1] != kernel.shape[0]:
        raise GraphError(
            f"layer {node.name!r}: input has {shape[-1]} features, kernel expects {kernel.shape[0]}"
        )
    return (*shape[:-1], kernel.shape[1])


def _check_spatial(node: Node, name: str, values: tuple[int, ...], rank: int, count: int) -> None:
    """``values`` must be ``count`` positive integers (pads: non-negative)."""
    minimum = 0 if name == "pads" else 1
    if len(values) != count or any(
        not isinstance(v, int | np.integer) or v < minimum for v in values
    ):
        raise GraphError(
            f"layer {node.name!r} ({node.op}): {name} {tuple(values)!r} must be {count} "
            f"integers >= {minimum} for {rank}-D data"
        )


def _spatial_rank(node: Node) -> int:
    return 2 if node.op.endswith("2D") else 1


def _shape_conv(node: Node, shapes: list[Shape]) -> Shape:
    (shape,) = shapes
    kernel = node.weights["kernel"]
    rank = _spatial_rank(node)
    if len(shape) != rank + 1 or kernel.ndim != rank + 2:
        raise GraphError(
            f"layer {node.name!r} ({node.op}): needs a {rank + 1}-D input (spatial..., channels) "
            f"and a {rank + 2}-D kernel; got input {shape} and kernel {kernel.shape}"
        )
    spatial = shape[:rank]
    channels = shape[-1]
    ksize = kernel.shape[:rank]
    depthwise = node.op.startswith("Depthwise")
    if kernel.shape[rank] != channels:
        raise GraphError(
            f"layer {node.name!r}: input has {channels} channels, "
            f"kernel expects {kernel.shape[rank]}"
        )
    strides = tuple(node.attrs.get("strides", (1,) * rank))
    pads = tuple(node.attrs.get("pads", (0,) * (2 * rank)))
    _check_spatial(node, "strides", strides, rank, rank)
    _check_spatial(node, "pads", pads, rank, 2 * rank)
    out = []
    for ax in range(rank):
        n = _conv_out(spatial[ax], ksize[ax], strides[ax], pads[2 * ax], pads[2 * ax + 1])
        if n < 1:
            raise GraphError(f"layer {node.name!r}: kernel larger than padded input on axis {ax}")
        out.append(n)
    out_ch = channels * kernel.shape[-1] if depthwise else kernel.shape[-1]
    return (*out, out_ch)


def _shape_pool(node: Node, shapes: list[Shape]) -> Shape:
    (shape,) = shapes
    rank = _spatial_rank(node)
    if len(shape) != rank + 1:
        raise GraphError(
            f"layer {node.name!r} ({node.op}): needs a {rank + 1}-D input, got shape {shape}"
        )
    size = tuple(node.attrs["pool_size"])
    strides = tuple(node.attrs.get("strides", size))
    pads = tuple(node.attrs.get("pads", (0,) * (2 * rank)))
    _check_spatial(node, "pool_size", size, rank, rank)
    _check_spatial(node, "strides", strides, rank, rank)
    _check_spatial(node, "pads", pads, rank, 2 * rank)
    out = [
        _conv_out(shape[ax], size[ax], strides[ax], pads[2 * ax], pads[2 * ax + 1])
        for ax in range(rank)
    ]
    if min(out) < 1:
        raise GraphError(f"layer {node.name!r}: pool window larger than its input")
    return (*out, shape[-1])


def _shape_global_pool(node: Node, shapes: list[Shape]) -> Shape:
    (shape,) = shapes
    return (shape[-1],)


def _shape_same(node: Node, shapes: list[Shape]) -> Shape:
    return shapes[0]


def _shape_merge(node: Node, shapes: list[Shape]) -> Shape:
    first = shapes[0]
    for s in shapes[1:]:
        if s != first:
            raise GraphError(f"layer {node.name!r}: merge inputs have different shapes {shapes}")
    return first


def _shape_dot(node: Node, shapes: list[Shape]) -> Shape:
    """Dot product of two vectors of one length: one value."""
    if len(shapes) != 2 or len(shapes[0]) != 1 or shapes[0] != shapes[1]:
        raise GraphError(f"layer {node.name!r} (Dot): needs two vectors of the same length, "
                         f"got shapes {shapes}")
    return (1,)


def _shape_matmul(node: Node, shapes: list[Shape]) -> Shape:
    """Matrix product of two activations, batched over their leading axes:
    ``(*B, m, k) x (*B, k, n) -> (*B, m, n)``."""
    if len(shapes) != 2 or len(shapes[0]) < 2 or len(shapes[0]) != len(shapes[1]) or (
            shapes[0][:-2] != shapes[1][:-2] or shapes[0][-1] != shapes[1][-2]):
        raise GraphError(f"layer {node.name!r} (MatMul): needs shapes (..., m, k) and "
                         f"(..., k, n) with the same leading axes, got {shapes}")
    return (*shapes[0][:-1], shapes[1][-1])


def _shape_element_cast(node: Node, shapes: list[Shape]) -> Shape:
    """Per-element types broadcast against the sample: same shape."""
    from nnfab.ir.element_cast import element_fields, modes

    (shape,) = shapes
    element_fields(node, shape)
    modes(node)
    return shape


def _shape_concat(node: Node, shapes: list[Shape]) -> Shape:
    axis = node.attrs["axis"]
    rank = len(shapes[0])
    if not 0 <= axis < rank:
        raise GraphError(f"layer {node.name!r}: concat axis {axis} outside 0..{rank - 1}")
    out = list(shapes[0])
    for s in shapes[1:]:
        if len(s) != rank or any(s[i] != out[i] for i in range(rank) if i != axis):
            raise GraphError(f"layer {node.name!r}: cannot concatenate shapes {shapes} on {axis}")
        out[axis] += s[axis]
    return tuple(out)


def _shape_flatten(node: Node, shapes: list[Shape]) -> Shape:
    return (math.prod(shapes[0]),)


def _shape_reshape(node: Node, shapes: list[Shape]) -> Shape:
    target = list(node.attrs["target_shape"])
    total = math.prod(shapes[0])
    if target.count(-1) > 1 or any(t == 0 or t < -1 for t in target):
        raise GraphError(
            f"layer {node.name!r}: target_shape {tuple(target)!r} may hold one -1 and "
            "otherwise positive sizes"
        )
    if target.count(-1) == 1:
        known = math.prod(t for t in target if t != -1)
        target[target.index(-1)] = total // known if known else 0
    if math.prod(target) != total:
        raise GraphError(f"layer {node.name!r}: cannot reshape {shapes[0]} to {tuple(target)}")
    return tuple(target)


def _shape_rearrange(node: Node, shapes: list[Shape]) -> Shape:
    """ZeroPadding / Cropping / UpSampling / Permute (see ``nnfab.ir.rearrange``)."""
    return rearranged_shape(node, shapes[0])


_WEIGHTED = ("weight", "bias", "accum")

OPS: dict[str, OpSpec] = {
    s.name: s
    for s in [
        OpSpec("Input", _shape_input, n_inputs=(0, 0), required_attrs=("shape",)),
        OpSpec("Dense", _shape_dense, _WEIGHTED, ("kernel", "bias")),
        OpSpec("Conv1D", _shape_conv, _WEIGHTED, ("kernel", "bias")),
        OpSpec("Conv2D", _shape_conv, _WEIGHTED, ("kernel", "bias")),
        OpSpec("DepthwiseConv1D", _shape_conv, _WEIGHTED, ("kernel", "bias")),
        OpSpec("DepthwiseConv2D", _shape_conv, _WEIGHTED, ("kernel", "bias")),
        OpSpec("Pooling1D", _shape_pool, ("scale",), required_attrs=("mode", "pool_size")),
        OpSpec("Pooling2D", _shape_pool, ("scale",), required_attrs=("mode", "pool_size")),
        OpSpec("GlobalPooling1D", _shape_global_pool, ("scale",), required_attrs=("mode",)),
        OpSpec("GlobalPooling2D", _shape_global_pool, ("scale",), required_attrs=("mode",)),
        OpSpec("BatchNormalization", _shape_same, _WEIGHTED, ("scale", "bias")),
        OpSpec("Activation", _shape_same, ("table", "param"), required_attrs=("function",)),
        OpSpec("Softmax", _shape_same, ("exp_table", "inv_table", "exp_sum")),
        OpSpec("Merge", _shape_merge, ("scale",), n_inputs=(2, 64), required_attrs=("mode",)),
        OpSpec("Concatenate", _shape_concat, n_inputs=(2, 64), required_attrs=("axis",)),
        OpSpec("Dot", _shape_dot, n_inputs=(2, 2)),
        OpSpec("MatMul", _shape_matmul, n_inputs=(2, 2)),
        OpSpec("ElementCast", _shape_element_cast,
               weight_names=("keep_negative", "bits", "integers"),
               required_attrs=("rounding", "overflow")),
        OpSpec("Flatten", _shape_flatten),
        OpSpec("Reshape", _shape_reshape, required_attrs=("target_shape",)),
        OpSpec("Dropout", _shape_same),
        # values moved without arithmetic (nnfab.ir.rearrange)
        OpSpec("ZeroPadding1D", _shape_rearrange, required_attrs=("pads",)),
        OpSpec("ZeroPadding2D", _shape_rearrange, required_attrs=("pads",)),
        OpSpec("Cropping1D", _shape_rearrange, required_attrs=("crops",)),
        OpSpec("Cropping2D", _shape_rearrange, required_attrs=("crops",)),
        OpSpec("UpSampling1D", _shape_rearrange, required_attrs=("size",)),
        OpSpec("UpSampling2D", _shape_rearrange, required_attrs=("size",)),
        OpSpec("Permute", _shape_rearrange, required_attrs=("perm",)),
        OpSpec("Slice", _shape_rearrange, required_attrs=("begin", "size")),
        # recurrent layers (nnfab.ir.recurrent)
        OpSpec("SimpleRNN", shape_recurrent, SIMPLE_RNN_PRECISION_KEYS, RECURRENT_WEIGHTS),
        OpSpec("LSTM", shape_recurrent, RECURRENT_PRECISION_KEYS, RECURRENT_WEIGHTS),
        OpSpec("GRU", shape_recurrent, RECURRENT_PRECISION_KEYS, RECURRENT_WEIGHTS),
        # Embedding, transposed convolutions, layer normalization (nnfab.ir.zoo)
        OpSpec("Embedding", ZOO_SHAPES["Embedding"], EMBEDDING_PRECISION_KEYS, ("embeddings",)),
        OpSpec("Conv1DTranspose", ZOO_SHAPES["Conv1DTranspose"], _WEIGHTED, ("kernel", "bias")),
        OpSpec("Conv2DTranspose", ZOO_SHAPES["Conv2DTranspose"], _WEIGHTED, ("kernel", "bias")),
        OpSpec("LayerNormalization", ZOO_SHAPES["LayerNormalization"], LAYERNORM_PRECISION_KEYS,
               ("gamma", "beta")),
        # vertex counts of graph layers (nnfab.ir.vertex)
        OpSpec("VertexMask", shape_vertex_mask, n_inputs=(2, 2)),
        OpSpec("VertexMean", shape_vertex_mean, ("scale",), n_inputs=(2, 2)),
    ]
}


def op_spec(node: Node) -> OpSpec:
    try:
        return OPS[node.op]
    except KeyError:
        raise GraphError(
            f"layer {node.name!r} has unknown op {node.op!r}; known ops: {sorted(OPS)}"
        ) from None


def infer_shapes(graph: Graph) -> None:
    """Recompute every tensor shape from the inputs, checking arity and attributes.

    Nodes are put in topological order first, so every shape is computed from fresh inputs.
    """
    graph.toposort()
    for node in graph.nodes:
        spec = op_spec(node)
        lo, hi = spec.n_inputs
        if not lo <= len(node.inputs) <= hi:
            raise GraphError(
                f"layer {node.name!r} ({node.op}) takes {lo}..{hi} inputs, got {len(node.inputs)}"
            )
        for attr in spec.required_attrs:
            if attr not in node.attrs:
                raise GraphError(f"layer {node.name!r} ({node.op}) lacks attribute {attr!r}")
        for w in spec.weight_names:
            if w not in node.weights:
                raise GraphError(f"layer {node.name!r} ({node.op}) lacks weight {w!r}")
        missing = [t for t in node.inputs if t not in graph.tensors]
        if missing:
            raise GraphError(f"layer {node.name!r} reads unknown tensor(s) {missing}")
        shapes = [graph.tensors[t].shape for t in node.inputs]
        graph.tensors[node.name].shape = tuple(int(s) for s in spec.infer_shape(node, shapes))
