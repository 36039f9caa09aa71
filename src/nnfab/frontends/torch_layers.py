"""The PyTorch op table: one converter per supported module class, function and method.

A converter reads one traced call (``OpCall``) and returns the IR node that replaces
it (or ``None`` when the call moves no data, e.g. ``x.contiguous()``) together with
the ``Value`` describing its output: the IR tensor and where each PyTorch element
sits in it (see ``torch_layout``). Output shapes are checked later by
``nnfab.ir.ops.infer_shapes``; types are left to the passes.

Module forms read their arguments from the module's attributes, functional and
method forms from the call; both use the same argument names (PyTorch's own).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnfab.errors import FrontendError, UnsupportedLayerError
from nnfab.frontends.gated import HARD_SWISH_GATE, SILU_GATE, gated_nodes, gelu_gate
from nnfab.frontends.torch_layout import (
    Shape,
    Value,
    canonical_index,
    channels_last_index,
    channels_last_shape,
    fibers,
)
from nnfab.ir.activation_rules import compact_alpha
from nnfab.ir.graph import Node

log = logging.getLogger(__name__)

SPATIAL = "spatial"
"""Role of ops that need channels-first PyTorch data held channels-last in the IR."""
TRANSPARENT = "transparent"
"""Role of ops that work on any layout (elementwise, concatenation, softmax)."""
OTHER = "other"


@dataclass
class OpCall:
    """One traced call of a module, function or tensor method."""

    name: str
    source_class: str
    module: Any | None
    params: dict[str, Any]
    out_shape: Shape
    rank: int = 0

    def value(self, key: str = "input") -> Value:
        """The tensor argument ``key``; an error if it is a constant."""
        v = self.params.get(key)
        if not isinstance(v, Value):
            raise self.unsupported(
                key,
                _describe(v),
                "a tensor computed by the model from its inputs (constants, parameters, "
                "buffers and Python numbers are not supported as operands)",
            )
        return v

    def node(
        self, op: str, inputs: list[str], attrs: dict[str, Any] | None = None, **weights: Any
    ) -> Node:
        return Node(
            name=self.name,
            op=op,
            inputs=list(inputs),
            attrs=attrs or {},
            weights={k: np.ascontiguousarray(w, dtype=np.float64) for k, w in weights.items()},
            source_class=self.source_class,
        )

    def unsupported(self, attr: str, value: Any, allowed: str) -> UnsupportedLayerError:
        return UnsupportedLayerError(
            f"node {self.name!r} ({self.source_class}): {attr}={value!r} is not supported; "
            f"allowed: {allowed}"
        )

    def error(self, message: str) -> FrontendError:
        return FrontendError(f"node {self.name!r} ({self.source_class}): {message}")


Converted = tuple[Node | list[Node] | None, Value]
"""The IR node(s) of a call (a list: added in order, the last one makes the value) and
the value it computes."""
Converter = Callable[[OpCall], Converted]


@dataclass(frozen=True)
class Kind:
    """How to convert one family of calls, and the names of their arguments."""

    convert: Converter
    params: tuple[str, ...] = ("input",)
    defaults: dict[str, Any] = field(default_factory=dict)
    role: str = OTHER
    rank: int = 0
    varargs: bool = False  # extra arguments (a view's sizes) are not bound


def _describe(v: Any) -> Any:
    shape = getattr(v, "shape", None)
    if shape is not None and not isinstance(v, Value):
        return f"a constant tensor of shape {tuple(shape)}"
    return v


# ------------------------------------------------------------------ helpers
def to_float64(tensor: Any) -> np.ndarray:
    """A torch tensor (parameter or buffer) as a float64 NumPy array of its own."""
    return np.array(tensor.detach().cpu().double().numpy(), dtype=np.float64)


def _ints(call: OpCall, key: str, value: Any, rank: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * rank
    try:
        values = tuple(int(v) for v in value)
    except TypeError:
        raise call.unsupported(key, value, f"an int or {rank} ints") from None
    if len(values) == 1 and rank > 1:
        values = values * rank
    if len(values) != rank:
        raise call.unsupported(key, value, f"an int or {rank} ints")
    return values


def _torch_dim(call: OpCall, key: str, dim: Any, rank: int) -> int:
    """A PyTorch dim (batch included, maybe negative) -> axis of one sample (0..rank-1)."""
    full = rank + 1
    if not isinstance(dim, int) or not -full <= dim < full:
        raise call.unsupported(key, dim, f"an int in {-full}..{full - 1}")
    d = dim % full
    if d == 0:
        raise call.unsupported(key, dim, "a non-batch dim (the batch is dim 0)")
    return d - 1


def _require_channels_last(call: OpCall, v: Value) -> None:
    """Conv / pool / batch-norm input: (C, *spatial) in PyTorch, channels-last in the IR."""
    rank = call.rank
    if len(v.torch_shape) != rank + 1:
        raise call.error(
            f"expects a {rank + 2}-D input (batch, channels, {'length' if rank == 1 else 'H, W'}),"
            f" got one sample of shape {v.torch_shape!r}"
        )
    if not np.array_equal(v.index, channels_last_index(v.torch_shape)):
        raise call.error(
            f"its input {v.tensor!r} is held in PyTorch's channels-first order inside nnfab "
            "(it comes from a reshape/view of a flat tensor), and channels-last data would "
            "need a transpose, which nnfab does not emit; reshape a convolution's output "
            "instead, or feed the convolution from the model input"
        )


def _bias(module: Any, n_out: int) -> np.ndarray:
    bias = getattr(module, "bias", None)
    if bias is None:
        return np.zeros(n_out, dtype=np.float64)
    return to_float64(bias)


# ---------------------------------------------------------------- converters
def convert_linear(call: OpCall) -> Converted:
    v = call.value()
    weight = to_float64(call.module.weight)  # (out, in)
    n_out = weight.shape[0]
    bias = _bias(call.module, n_out)
    found = fibers(v, len(v.torch_shape) - 1)
    if found is not None:
        rows, position = found
        position = position.reshape(-1, position.shape[-1])
        if not np.all(position == position[:1]):
            found = None
    if found is None:
        # e.g. attention heads transposed back and merged: PyTorch's order first
        try:
            nodes, tensor = _in_torch_order(call, v, "in")
        except FrontendError:
            raise call.error(
                f"its input {v.tensor!r} (PyTorch shape {v.torch_shape!r}) does not hold the "
                "last PyTorch axis as its last axis inside nnfab (a feature map is held "
                "channels-last); a Linear must follow a flatten of channels-first data "
                "(torch.flatten(x, 1))"
            ) from None
        node = call.node("Dense", [tensor], kernel=weight.T, bias=bias)
        return [*nodes, node], Value(call.name, call.out_shape, canonical_index(call.out_shape))
    # IR input feature i is PyTorch feature position[i]: permute the kernel rows to match.
    kernel = weight.T[position[0]]
    index = rows[..., None] * n_out + np.arange(n_out)
    node = call.node("Dense", [v.tensor], kernel=kernel, bias=bias)
    return node, Value(call.name, call.out_shape, index)


def _conv_pads(call: OpCall, padding: Any, ksize: tuple[int, ...]) -> tuple[int, ...]:
    rank = call.rank
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * (2 * rank)
        if padding == "same":
            # PyTorch (stride 1): total k - 1, the odd cell after.
            return tuple(p for k in ksize for p in ((k - 1) // 2, k - 1 - (k - 1) // 2))
        raise call.unsupported("padding", padding, "'valid', 'same', an int or a tuple of ints")
    pads = _ints(call, "padding", padding, rank)
    return tuple(p for p in pads for _ in range(2))


def convert_conv(call: OpCall) -> Converted:
    m, rank = call.module, call.rank
    v = call.value()
    _require_channels_last(call, v)
    if m.padding_mode != "zeros":
        raise call.unsupported("padding_mode", m.padding_mode, "'zeros'")
    dilation = _ints(call, "dilation", m.dilation, rank)
    if any(d != 1 for d in dilation):
        raise call.unsupported("dilation", m.dilation, "1 on every axis")
    strides = _ints(call, "stride", m.stride, rank)
    ksize = _ints(call, "kernel_size", m.kernel_size, rank)
    pads = _conv_pads(call, m.padding, ksize)
    weight = to_float64(m.weight)  # (F, C / groups, *k)
    n_in, n_out, groups = int(m.in_channels), int(m.out_channels), int(m.groups)
    spatial = tuple(range(2, 2 + rank))
    attrs: dict[str, Any] = {"strides": strides, "pads": pads}
    if groups == 1:
        op = f"Conv{rank}D"
        kernel = weight.transpose(*spatial, 1, 0)  # (*k, C, F)
    elif groups == n_in and n_out % n_in == 0:
        # Output channel c*M + m reads input channel c only: IR kernel (*k, C, M).
        op = f"DepthwiseConv{rank}D"
        multiplier = n_out // n_in
        kernel = weight.reshape(n_in, multiplier, *ksize).transpose(*spatial, 0, 1)
        attrs["depth_multiplier"] = multiplier
    else:
        raise call.unsupported(
            "groups",
            groups,
            f"1, or in_channels ({n_in}) with out_channels a multiple of it (depthwise)",
        )
    node = call.node(op, [v.tensor], attrs, kernel=kernel, bias=_bias(m, n_out))
    return node, Value(call.name, call.out_shape, channels_last_index(call.out_shape))


def convert_batchnorm(call: OpCall) -> Converted:
    m = call.module
    v = call.value()
    allowed_ranks = (1, 2) if call.rank == 1 else (3,)
    if len(v.torch_shape) not in allowed_ranks:
        raise call.error(
            f"expects one sample of rank {' or '.join(map(str, allowed_ranks))}, got shape "
            f"{v.torch_shape!r}"
        )
    if m.running_mean is None or m.running_var is None:
        raise call.unsupported(
            "track_running_stats", False, "True (inference needs the running statistics)"
        )
    mean = to_float64(m.running_mean)
    var = to_float64(m.running_var)
    gamma = to_float64(m.weight) if m.weight is not None else np.ones_like(mean)
    beta = to_float64(m.bias) if m.bias is not None else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + float(m.eps))
    bias = beta - mean * scale
    found = fibers(v, 0)
    if found is not None:
        position = found[1].reshape(-1, found[1].shape[-1])
        if not np.all(position == position[:1]):
            found = None
    if found is None:
        raise call.error(
            f"its input {v.tensor!r} does not hold the channel axis last inside nnfab "
            "(it comes from a reshape/view)"
        )
    # IR channel j is PyTorch channel position[0][j] (a permutation after a flatten).
    scale, bias = scale[position[0]], bias[position[0]]
    node = call.node("BatchNormalization", [v.tensor], scale=scale, bias=bias)
    return node, Value(call.name, call.out_shape, v.index)


def _pool(mode: str) -> Converter:
    def convert(call: OpCall) -> Converted:
        p, rank = call.params, call.rank
        v = call.value()
        _require_channels_last(call, v)
        size = _ints(call, "kernel_size", p["kernel_size"], rank)
        stride = p.get("stride")
        strides = (
            size
            if stride is None or stride == [] or stride == ()
            else _ints(call, "stride", stride, rank)
        )
        padding = _ints(call, "padding", p.get("padding", 0), rank)
        if p.get("ceil_mode"):
            raise call.unsupported("ceil_mode", True, "False")
        if p.get("return_indices"):
            raise call.unsupported("return_indices", True, "False")
        dilation = _ints(call, "dilation", p.get("dilation", 1), rank)
        if any(d != 1 for d in dilation):
            raise call.unsupported("dilation", p.get("dilation"), "1 on every axis")
        if p.get("divisor_override") is not None:
            raise call.unsupported("divisor_override", p["divisor_override"], "None")
        if mode == "avg" and p.get("count_include_pad", True) and any(padding):
            raise call.unsupported(
                "count_include_pad",
                True,
                "False when padding is nonzero (nnfab averages over the real inputs of each "
                "window only, as TensorFlow does): set count_include_pad=False or padding=0",
            )
        attrs = {
            "mode": mode,
            "pool_size": size,
            "strides": strides,
            "pads": tuple(q for q in padding for _ in range(2)),
        }
        node = call.node(f"Pooling{rank}D", [v.tensor], attrs)
        return node, Value(call.name, call.out_shape, channels_last_index(call.out_shape))

    return convert


def _global(call: OpCall, v: Value, mode: str) -> Converted:
    node = call.node(f"GlobalPooling{call.rank}D", [v.tensor], {"mode": mode})
    # PyTorch keeps (C, 1, ...) or drops the unit axes; the IR holds (C,) either way.
    return node, Value(call.name, call.out_shape, canonical_index(call.out_shape).reshape(-1))


def _adaptive(mode: str) -> Converter:
    def convert(call: OpCall) -> Converted:
        v = call.value()
        _require_channels_last(call, v)
        if call.params.get("return_indices"):
            raise call.unsupported("return_indices", True, "False")
        size = call.params["output_size"]
        sizes = (size,) * call.rank if isinstance(size, int) or size is None else tuple(size)
        spatial = v.torch_shape[1:]
        if len(sizes) != call.rank or any(
            not (s == 1 or (s is None and n == 1)) for s, n in zip(sizes, spatial, strict=False)
        ):
            raise call.unsupported("output_size", size, "1 on every axis (global pooling)")
        return _global(call, v, mode)

    return convert


def convert_mean(call: OpCall) -> Converted:
    return _spatial_reduce(call, "avg")


def convert_amax(call: OpCall) -> Converted:
    return _spatial_reduce(call, "max")


def convert_sum(call: OpCall) -> Converted:
    return _spatial_reduce(call, "sum")


def _spatial_reduce(call: OpCall, mode: str) -> Converted:
    """``x.mean(dim)`` / ``x.amax(dim)`` / ``x.sum(dim)`` over exactly the spatial dims
    (of a convolution's feature map, or the items of a ``(batch, items, features)`` set
    held as it is, as ``nn.Linear`` over the items gives it): global pooling."""
    v = call.value()
    dim = call.params.get("dim")
    rank = len(v.torch_shape) - 1
    dims = (dim,) if isinstance(dim, int) else tuple(dim) if dim is not None else None
    if (dims is not None and len(v.torch_shape) == 2 and len(dims) == 1
            and _torch_dim(call, "dim", dims[0], 2) == 0
            and np.array_equal(v.index, canonical_index(v.torch_shape))):
        call.rank = 1  # (items, features) in the IR: the items are the steps
        return _global(call, v, mode)
    if len(v.torch_shape) == 2 and np.array_equal(v.index, canonical_index(v.torch_shape)) \
            and not np.array_equal(v.index, channels_last_index(v.torch_shape)):
        raise call.unsupported("dim", dim, "1 for (batch, items, features) data held as it is "
                               "(the items pooled), or the spatial dims of a convolution's "
                               "(batch, C, L) / (batch, C, H, W) feature map")
    if dims is None or rank not in (1, 2):
        raise call.unsupported(
            "dim", dim, "the spatial dims of a (batch, C, L) or (batch, C, H, W) tensor"
        )
    axes = sorted(_torch_dim(call, "dim", d, rank + 1) for d in dims)
    if axes != list(range(1, rank + 1)):
        raise call.unsupported(
            "dim", dim, f"exactly the spatial dims {tuple(range(2, rank + 2))} (global pooling)"
        )
    call.rank = rank
    _require_channels_last(call, v)
    return _global(call, v, mode)


def _gated(gate: dict[str, Any]) -> Converter:
    """``x * gate(x)`` (``nnfab.frontends.gated``): hardswish, silu."""
    def convert(call: OpCall) -> Converted:
        v = call.value()
        return gated_nodes(call.name, v.tensor, gate, call.source_class), Value(
            call.name, call.out_shape, v.index)

    return convert


def convert_gelu(call: OpCall) -> Converted:
    """``gelu(x) = x * normal_cdf(x)``, ``approximate='tanh'``: the tanh form of the gate."""
    approximate = call.params["approximate"]
    if approximate not in ("none", "tanh"):
        raise call.unsupported("approximate", approximate, "'none' or 'tanh'")
    return _gated(gelu_gate(approximate == "tanh"))(call)


def _activation(function: str, **fixed: Any) -> Converter:
    def convert(call: OpCall) -> Converted:
        v = call.value()
        attrs: dict[str, Any] = {"function": function, **fixed}
        if function == "leaky_relu":
            attrs["alpha"] = float(call.params["negative_slope"])
        return call.node("Activation", [v.tensor], attrs), Value(call.name, call.out_shape, v.index)

    return convert


def _activation_with(function: str, **names: str) -> Converter:
    """An activation whose attributes (IR name -> PyTorch argument) are numbers."""
    def convert(call: OpCall) -> Converted:
        v = call.value()
        attrs: dict[str, Any] = {"function": function}
        attrs.update({attr: float(call.params[param]) for attr, param in names.items()})
        return call.node("Activation", [v.tensor], attrs), Value(call.name, call.out_shape, v.index)

    return convert


def convert_softplus(call: OpCall) -> Converted:
    if float(call.params["beta"]) != 1.0:
        raise call.unsupported("beta", call.params["beta"], "1")
    # beyond `threshold` PyTorch returns x; softplus(x) - x < exp(-threshold) there, far
    # below the table's resolution: the table rule (docs/semantics.md) is kept as is.
    return _activation("softplus")(call)


def convert_threshold(call: OpCall) -> Converted:
    if float(call.params["value"]) != 0.0:
        raise call.unsupported("value", call.params["value"], "0 (thresholded relu)")
    return _activation_with("thresholded_relu", theta="threshold")(call)


def convert_prelu(call: OpCall) -> Converted:
    v = call.value()
    alpha = to_float64(call.module.weight).reshape(-1)
    shape = v.torch_shape
    if alpha.size not in (1, shape[0] if shape else 1):
        raise call.error(f"has {alpha.size} slopes for an input of shape {shape}")
    if alpha.size > 1:  # one per channel: PyTorch's dim 1 (dim 0 of a sample)
        alpha = alpha.reshape((alpha.size,) + (1,) * (len(shape) - 1))
    full = np.broadcast_to(alpha, shape).reshape(-1)[v.index]  # in the IR's element order
    node = call.node("Activation", [v.tensor], {"function": "prelu"},
                     alpha=compact_alpha(full))
    return node, Value(call.name, call.out_shape, v.index)


def convert_softmax(call: OpCall) -> Converted:
    v = call.value()
    dim = call.params.get("dim")
    if dim is None:
        # PyTorch's deprecated implicit dim (torch.nn.functional._get_softmax_dim): 0 for a
        # 0-, 1- or 3-D tensor, else 1. Batch included, so 0 is the batch axis here.
        ndim = len(v.torch_shape) + 1
        if ndim in (1, 3):
            raise call.unsupported(
                "dim", None, f"an explicit dim: PyTorch's implicit dim for a {ndim}-D input is "
                "0, the batch axis, which nnfab cannot normalize over"
            )
        dim = 1
        log.warning("node %r (%s): softmax without dim: PyTorch's implicit rule for a %d-D "
                    "input takes dim=1 (%s); nnfab does the same", call.name,
                    call.source_class, ndim, "the features" if ndim == 2 else "the channels")
    axis = _torch_dim(call, "dim", dim, len(v.torch_shape))
    # The IR's softmax runs over its last axis: each of its fibers must be one whole
    # PyTorch fiber along ``dim`` (the order inside a fiber does not matter).
    if fibers(v, axis) is None:
        last = [d + 1 for d in range(len(v.torch_shape)) if fibers(v, d) is not None]
        raise call.unsupported(
            "dim", dim, f"the dim nnfab holds last for this tensor ({last or 'none'})"
        )
    return call.node("Softmax", [v.tensor], {"axis": -1}), Value(call.name, call.out_shape, v.index)


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _scalar_operand(call: OpCall, mode: str) -> Converted | None:
    """``x * c``, ``c * x``, ``x / c``, ``x + c``, ``x - c``, ``c - x`` with a Python
    number ``c``: an element-wise scale and bias (``BatchNormalization``), else None."""
    a, b = call.params.get("input"), call.params.get("other")
    if isinstance(a, Value) and _number(b) is not None:
        v, c, number_first = a, _number(b), False
    elif isinstance(b, Value) and _number(a) is not None:
        v, c, number_first = b, _number(a), True
    else:
        return None
    assert c is not None
    if mode == "multiply":
        scale, bias = c, 0.0
    elif mode == "divide":
        if number_first or c == 0:
            raise call.unsupported("operands", "a number divided by a tensor, or by 0",
                                   "a tensor divided by a nonzero number")
        scale, bias = 1.0 / c, 0.0
    else:  # add / subtract: input +/- alpha * other
        alpha = float(call.params.get("alpha", 1)) * (1.0 if mode == "add" else -1.0)
        scale, bias = (alpha, c) if number_first else (1.0, alpha * c)
    n = v.shape[-1] if v.shape else 1
    node = call.node("BatchNormalization", [v.tensor], scale=np.full(n, scale),
                     bias=np.full(n, bias))
    return node, Value(call.name, call.out_shape, v.index)


def _merge(mode: str) -> Converter:
    def convert(call: OpCall) -> Converted:
        scalar = _scalar_operand(call, mode)
        if scalar is not None:
            return scalar
        a, b = call.value("input"), call.value("other")
        if call.params.get("alpha", 1) != 1:
            raise call.unsupported("alpha", call.params["alpha"], "1")
        if a.torch_shape != b.torch_shape:
            raise call.unsupported(
                "input shapes", (a.torch_shape, b.torch_shape), "equal shapes (no broadcasting)"
            )
        if not np.array_equal(a.index, b.index):
            raise call.error(
                f"its inputs {a.tensor!r} and {b.tensor!r} are held in different orders inside "
                f"nnfab (layouts {a.layout()!r} and {b.layout()!r}); combining them would need "
                "a transpose"
            )
        node = call.node("Merge", [a.tensor, b.tensor], {"mode": mode})
        return node, Value(call.name, call.out_shape, a.index)

    return convert


def _cat_axis(call: OpCall, values: list[Value], axis: int) -> int:
    """The IR axis to join on: where PyTorch's ``axis`` sits, else any axis that fits.

    Any choice is correct (the index map records where each element lands); consumers
    then check that the layout suits them.
    """
    shapes = [v.shape for v in values]
    ndim = len(shapes[0])
    perms = {v.axes() for v in values}
    preferred = [p.index(axis) for p in perms if p is not None] if len(perms) == 1 else []
    for ir_axis in [*preferred, *range(ndim)]:
        if all(
            len(s) == ndim and all(s[i] == shapes[0][i] for i in range(ndim) if i != ir_axis)
            for s in shapes
        ):
            return ir_axis
    raise call.error(
        f"its inputs, held inside nnfab with shapes {shapes} (layouts "
        f"{[v.layout() for v in values]}), cannot be joined without a transpose"
    )


def convert_cat(call: OpCall) -> Converted:
    tensors = call.params["tensors"]
    if not isinstance(tensors, list | tuple) or not tensors:
        raise call.unsupported("tensors", tensors, "a non-empty list of tensors")
    values = []
    for i, t in enumerate(tensors):
        if not isinstance(t, Value):
            raise call.unsupported(f"tensors[{i}]", _describe(t), "tensors computed by the model")
        values.append(t)
    rank = len(values[0].torch_shape)
    axis = _torch_dim(call, "dim", call.params.get("dim", 0), rank)
    if len(values) == 1:
        return None, values[0]
    ir_axis = _cat_axis(call, values, axis)
    # Each input element's position in the output, in PyTorch's flat numbering.
    out = canonical_index(call.out_shape)
    splits = np.cumsum([v.torch_shape[axis] for v in values])[:-1]
    pieces = np.split(out, splits, axis=axis)
    index = np.concatenate(
        [piece.reshape(-1)[v.index] for piece, v in zip(pieces, values, strict=True)],
        axis=ir_axis,
    )
    node = call.node("Concatenate", [v.tensor for v in values], {"axis": ir_axis})
    return node, Value(call.name, call.out_shape, index)


def convert_reshape(call: OpCall) -> Converted:
    """flatten / view / reshape / squeeze / unsqueeze: the shape comes from the forward pass."""
    v = call.value()
    target = call.out_shape
    if target == v.torch_shape:
        return None, v
    flat = v.index.reshape(-1)
    if len(target) == 1:
        if v.index.ndim == 1:
            return None, Value(v.tensor, target, v.index)
        return call.node("Flatten", [v.tensor]), Value(call.name, target, flat)
    if np.array_equal(flat, np.arange(flat.size)):
        ir_shape = target
    elif np.array_equal(flat.reshape(channels_last_shape(target)), channels_last_index(target)):
        ir_shape = channels_last_shape(target)
    else:
        ir_shape = target
    index = flat.reshape(ir_shape)
    if ir_shape == v.shape:
        return None, Value(v.tensor, target, index)
    node = call.node("Reshape", [v.tensor], {"target_shape": tuple(int(s) for s in ir_shape)})
    return node, Value(call.name, target, index)


def convert_identity(call: OpCall) -> Converted:
    v = call.value()
    if call.params.get("training"):
        raise call.unsupported(
            "training",
            True,
            "False (F.dropout defaults to training=True: pass training=self.training)",
        )
    return call.node("Dropout", [v.tensor]), Value(call.name, call.out_shape, v.index)


def convert_alias(call: OpCall) -> Converted:
    return None, call.value()


# -------------------------------------------------------------------- tables
_MAX_POOL = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_MAX_POOL_DEFAULTS = {
    "stride": None,
    "padding": 0,
    "dilation": 1,
    "ceil_mode": False,
    "return_indices": False,
}
_AVG_POOL = (
    "input",
    "kernel_size",
    "stride",
    "padding",
    "ceil_mode",
    "count_include_pad",
    "divisor_override",
)
_AVG_POOL_DEFAULTS = {
    "stride": None,
    "padding": 0,
    "ceil_mode": False,
    "count_include_pad": True,
    "divisor_override": None,
}


def _max_pool(rank: int) -> Kind:
    return Kind(_pool("max"), _MAX_POOL, _MAX_POOL_DEFAULTS, SPATIAL, rank)


def _avg_pool(rank: int) -> Kind:
    return Kind(_pool("avg"), _AVG_POOL, _AVG_POOL_DEFAULTS, SPATIAL, rank)


def _adaptive_kind(mode: str, rank: int) -> Kind:
    params = ("input", "output_size") + (("return_indices",) if mode == "max" else ())
    return Kind(_adaptive(mode), params, {"return_indices": False}, SPATIAL, rank)


RELU = Kind(_activation("relu"), ("input", "inplace"), {"inplace": False}, TRANSPARENT)
RELU6 = Kind(
    _activation("relu", max_value=6.0), ("input", "inplace"), {"inplace": False}, TRANSPARENT
)
LEAKY_RELU = Kind(
    _activation("leaky_relu"),
    ("input", "negative_slope", "inplace"),
    {"negative_slope": 0.01, "inplace": False},
    TRANSPARENT,
)
SIGMOID = Kind(_activation("sigmoid"), role=TRANSPARENT)
TANH = Kind(_activation("tanh"), role=TRANSPARENT)
# PyTorch: hardsigmoid(x) = relu6(x + 3) / 6 = clip(x / 6 + 1/2, 0, 1).
HARDSIGMOID = Kind(
    _activation("hard_sigmoid", slope=1 / 6, offset=0.5),
    ("input", "inplace"),
    {"inplace": False},
    TRANSPARENT,
)
def convert_pow(call: OpCall) -> Converted:
    """``x ** 2``, ``torch.pow(x, 2)``, ``torch.square(x)``: ``x * x`` (a multiply)."""
    v = call.value()
    exponent = call.params.get("exponent", 2)
    if _number(exponent) != 2.0:
        raise call.unsupported("exponent", exponent, "2 (a square)")
    return call.node("Merge", [v.tensor, v.tensor], {"mode": "multiply"}), Value(
        call.name, call.out_shape, v.index)


POW = Kind(convert_pow, ("input", "exponent"), role=TRANSPARENT)
SQUARE = Kind(convert_pow, ("input",), {"exponent": 2}, TRANSPARENT)
HARDSWISH = Kind(_gated(HARD_SWISH_GATE), ("input", "inplace"), {"inplace": False},
                 TRANSPARENT)
SILU = Kind(_gated(SILU_GATE), ("input", "inplace"), {"inplace": False}, TRANSPARENT)
GELU = Kind(convert_gelu, ("input", "approximate"), {"approximate": "none"}, TRANSPARENT)
SOFTMAX = Kind(
    convert_softmax, ("input", "dim", "dtype"), {"dim": None, "dtype": None}, TRANSPARENT
)
_INPLACE = {"inplace": False}
ELU = Kind(_activation_with("elu", alpha="alpha"), ("input", "alpha", "inplace"),
           {"alpha": 1.0, **_INPLACE}, TRANSPARENT)
CELU = Kind(_activation_with("celu", alpha="alpha"), ("input", "alpha", "inplace"),
            {"alpha": 1.0, **_INPLACE}, TRANSPARENT)
SELU = Kind(_activation("selu"), ("input", "inplace"), _INPLACE, TRANSPARENT)
SOFTPLUS = Kind(convert_softplus, ("input", "beta", "threshold"),
                {"beta": 1.0, "threshold": 20.0}, TRANSPARENT)
SOFTSIGN = Kind(_activation("softsign"), role=TRANSPARENT)
HARDTANH = Kind(_activation_with("hard_tanh", min_val="min_val", max_val="max_val"),
                ("input", "min_val", "max_val", "inplace"),
                {"min_val": -1.0, "max_val": 1.0, **_INPLACE}, TRANSPARENT)
THRESHOLD = Kind(convert_threshold, ("input", "threshold", "value", "inplace"), _INPLACE,
                 TRANSPARENT)
MAXIMUM = Kind(_merge("maximum"), ("input", "other"), {"other": None}, TRANSPARENT)
MINIMUM = Kind(_merge("minimum"), ("input", "other"), {"other": None}, TRANSPARENT)
F_SOFTMAX = Kind(
    convert_softmax,
    ("input", "dim", "_stacklevel", "dtype"),
    {"dim": None, "_stacklevel": 3, "dtype": None},
    TRANSPARENT,
)
def _in_torch_order(call: OpCall, v: Value, tag: str) -> tuple[list[Node], str]:
    """Nodes giving an IR tensor of ``v`` in PyTorch's own order and shape: none, a
    Reshape, or a Permute (and a Reshape) of the IR tensor's axes."""
    flat = np.arange(v.index.size)
    for axes in itertools.permutations(range(v.index.ndim)):
        held = v.index.transpose(axes)
        if not np.array_equal(held.reshape(-1), flat):
            continue
        nodes: list[Node] = []
        tensor = v.tensor
        if axes != tuple(range(v.index.ndim)):
            nodes.append(Node(f"{call.name}_{tag}_permute", "Permute", [tensor],
                              {"perm": tuple(int(a) for a in axes)},
                              source_class=call.source_class))
            tensor = nodes[-1].name
        if held.shape != tuple(v.torch_shape):
            nodes.append(Node(f"{call.name}_{tag}_reshape", "Reshape", [tensor],
                              {"target_shape": tuple(int(d) for d in v.torch_shape)},
                              source_class=call.source_class))
            tensor = nodes[-1].name
        return nodes, tensor
    raise call.error(f"its input {v.tensor!r} is held inside nnfab in an order (after a "
                     "reshape/view) that no axis permutation makes PyTorch's own; permute "
                     "before reshaping")


def convert_matmul(call: OpCall) -> Converted:
    """``a @ b`` of two tensors computed by the model (attention's scores and context):
    the IR ``MatMul``, batched over equal leading axes (no broadcasting)."""
    a, b = call.value("input"), call.value("other")
    sa, sb = tuple(a.torch_shape), tuple(b.torch_shape)
    if len(sa) < 2 or len(sa) != len(sb) or sa[:-2] != sb[:-2] or sa[-1] != sb[-2]:
        raise call.unsupported("shapes", (("N", *sa), ("N", *sb)),
                               "(N, ..., m, k) and (N, ..., k, n) with equal leading axes")
    nodes_a, ta = _in_torch_order(call, a, "lhs")
    nodes_b, tb = _in_torch_order(call, b, "rhs")
    node = call.node("MatMul", [ta, tb])
    return [*nodes_a, *nodes_b, node], Value(call.name, call.out_shape,
                                            canonical_index(call.out_shape))


ADD = Kind(_merge("add"), ("input", "other", "alpha"), {"alpha": 1}, TRANSPARENT)
MATMUL = Kind(convert_matmul, ("input", "other"))
DIV = Kind(_merge("divide"), ("input", "other"), role=TRANSPARENT)
SUB = Kind(_merge("subtract"), ("input", "other", "alpha"), {"alpha": 1}, TRANSPARENT)
MUL = Kind(_merge("multiply"), ("input", "other"), role=TRANSPARENT)
CAT = Kind(convert_cat, ("tensors", "dim"), {"dim": 0}, TRANSPARENT)
RESHAPE = Kind(convert_reshape, varargs=True)
DROPOUT = Kind(
    convert_identity,
    ("input", "p", "training", "inplace"),
    {"p": 0.5, "training": True, "inplace": False},
    TRANSPARENT,
)
ALPHA_DROPOUT = Kind(
    convert_identity,
    ("input", "p", "training", "inplace"),
    {"p": 0.5, "training": False, "inplace": False},
    TRANSPARENT,
)
IDENTITY = Kind(convert_identity, varargs=True, role=TRANSPARENT)
ALIAS = Kind(convert_alias, varargs=True, role=TRANSPARENT)
MEAN = Kind(
    convert_mean,
    ("input", "dim", "keepdim", "dtype"),
    {"dim": None, "keepdim": False, "dtype": None},
    SPATIAL,
)
AMAX = Kind(convert_amax, ("input", "dim", "keepdim"), {"dim": None, "keepdim": False},
            SPATIAL)
SUM = Kind(convert_sum, ("input", "dim", "keepdim", "dtype"),
           {"dim": None, "keepdim": False, "dtype": None}, SPATIAL)

MODULES: dict[str, Kind] = {
    "Linear": Kind(convert_linear),
    "Conv1d": Kind(convert_conv, role=SPATIAL, rank=1),
    "Conv2d": Kind(convert_conv, role=SPATIAL, rank=2),
    "BatchNorm1d": Kind(convert_batchnorm, role=SPATIAL, rank=1),
    "BatchNorm2d": Kind(convert_batchnorm, role=SPATIAL, rank=2),
    "MaxPool1d": _max_pool(1),
    "MaxPool2d": _max_pool(2),
    "AvgPool1d": _avg_pool(1),
    "AvgPool2d": _avg_pool(2),
    "AdaptiveAvgPool1d": _adaptive_kind("avg", 1),
    "AdaptiveAvgPool2d": _adaptive_kind("avg", 2),
    "AdaptiveMaxPool1d": _adaptive_kind("max", 1),
    "AdaptiveMaxPool2d": _adaptive_kind("max", 2),
    "ReLU": RELU,
    "ReLU6": RELU6,
    "LeakyReLU": LEAKY_RELU,
    "Sigmoid": SIGMOID,
    "Tanh": TANH,
    "Hardsigmoid": HARDSIGMOID,
    "Hardswish": HARDSWISH,
    "SiLU": SILU,
    "GELU": GELU,
    "ELU": ELU,
    "CELU": CELU,
    "SELU": SELU,
    "Softplus": SOFTPLUS,
    "Softsign": SOFTSIGN,
    "Hardtanh": HARDTANH,
    "Threshold": THRESHOLD,
    "PReLU": Kind(convert_prelu, role=TRANSPARENT),
    "Softmax": SOFTMAX,
    "Flatten": RESHAPE,
    "Unflatten": RESHAPE,
    "Dropout": Kind(convert_identity, role=TRANSPARENT),
    "Dropout1d": Kind(convert_identity, role=TRANSPARENT),
    "Dropout2d": Kind(convert_identity, role=TRANSPARENT),
    "AlphaDropout": Kind(convert_identity, role=TRANSPARENT),
    "Identity": IDENTITY,
}
"""``torch.nn`` class name -> kind (the class must be exactly ``torch.nn.<name>``)."""

FUNCTIONS: dict[str, Kind] = {
    "torch.nn.functional.relu": RELU,
    "torch.relu": RELU,
    "torch.nn.functional.relu6": RELU6,
    "torch.nn.functional.leaky_relu": LEAKY_RELU,
    "torch.sigmoid": SIGMOID,
    "torch.tanh": TANH,
    "torch.nn.functional.hardsigmoid": HARDSIGMOID,
    "torch.nn.functional.hardswish": HARDSWISH,
    "torch.nn.functional.silu": SILU,
    "torch.nn.functional.gelu": GELU,
    "torch.nn.functional.elu": ELU,
    "torch.nn.functional.celu": CELU,
    "torch.celu": CELU,
    "torch.nn.functional.selu": SELU,
    "torch.selu": SELU,
    "torch.nn.functional.softplus": SOFTPLUS,
    "torch.nn.functional.softsign": SOFTSIGN,
    "torch.nn.functional.hardtanh": HARDTANH,
    "torch.nn.functional.threshold": THRESHOLD,
    "torch.maximum": MAXIMUM,
    "torch.minimum": MINIMUM,
    "torch.max": MAXIMUM,
    "torch.min": MINIMUM,
    "torch.nn.functional.softmax": F_SOFTMAX,
    "torch.softmax": SOFTMAX,
    "torch.cat": CAT,
    "torch.matmul": MATMUL,
    "torch.bmm": MATMUL,
    "operator.matmul": MATMUL,
    "operator.truediv": DIV,
    "torch.div": DIV,
    "torch.true_divide": DIV,
    "torch.concat": CAT,
    "torch.concatenate": CAT,
    "operator.add": ADD,
    "torch.add": ADD,
    "operator.sub": SUB,
    "torch.sub": SUB,
    "torch.subtract": SUB,
    "operator.mul": MUL,
    "operator.pow": POW,
    "torch.pow": POW,
    "torch.square": SQUARE,
    "torch.mul": MUL,
    "torch.multiply": MUL,
    "torch.flatten": RESHAPE,
    "torch.reshape": RESHAPE,
    "torch.squeeze": RESHAPE,
    "torch.unsqueeze": RESHAPE,
    "torch.mean": MEAN,
    "torch.amax": AMAX,
    "torch.sum": SUM,
    "torch.nn.functional.dropout": DROPOUT,
    "torch.nn.functional.dropout1d": DROPOUT,
    "torch.nn.functional.dropout2d": DROPOUT,
    "torch.nn.functional.alpha_dropout": ALPHA_DROPOUT,
    "torch.nn.functional.max_pool1d": _max_pool(1),
    "torch.nn.functional.max_pool2d": _max_pool(2),
    "torch.nn.functional.avg_pool1d": Kind(
        _pool("avg"), _AVG_POOL[:-1], _AVG_POOL_DEFAULTS, SPATIAL, 1
    ),
    "torch.nn.functional.avg_pool2d": _avg_pool(2),
    "torch.nn.functional.adaptive_avg_pool1d": _adaptive_kind("avg", 1),
    "torch.nn.functional.adaptive_avg_pool2d": _adaptive_kind("avg", 2),
    "torch.nn.functional.adaptive_max_pool1d": _adaptive_kind("max", 1),
    "torch.nn.functional.adaptive_max_pool2d": _adaptive_kind("max", 2),
}
"""Dotted name of a function (as fx records it) -> kind."""

METHODS: dict[str, Kind] = {
    "matmul": MATMUL,
    "bmm": MATMUL,
    "div": DIV,
    "relu": RELU,
    "relu_": RELU,
    "sigmoid": SIGMOID,
    "sigmoid_": SIGMOID,
    "tanh": TANH,
    "tanh_": TANH,
    "softmax": SOFTMAX,
    "add": ADD,
    "add_": ADD,
    "sub": SUB,
    "sub_": SUB,
    "mul": MUL,
    "pow": POW,
    "square": SQUARE,
    "mul_": MUL,
    "maximum": MAXIMUM,
    "minimum": MINIMUM,
    "flatten": RESHAPE,
    "view": RESHAPE,
    "reshape": RESHAPE,
    "squeeze": RESHAPE,
    "unsqueeze": RESHAPE,
    "mean": MEAN,
    "amax": AMAX,
    "sum": SUM,
    "contiguous": ALIAS,
}
"""``Tensor`` method name -> kind (``x.relu()``, ``x.view(n, -1)``, ...)."""


# Padding, upsampling and permutations live in torch_shape (it imports this module).
from nnfab.frontends.torch_shape import (  # noqa: E402
    SHAPE_FUNCTIONS,
    SHAPE_METHODS,
    SHAPE_MODULES,
    SPLIT_CALLS,
)

MODULES.update(SHAPE_MODULES)
FUNCTIONS.update(SHAPE_FUNCTIONS)
METHODS.update(SHAPE_METHODS)

# Embedding, ConvTranspose1d/2d and LayerNorm live in torch_zoo (it imports this module).
from nnfab.frontends.torch_zoo import ZOO_MODULES  # noqa: E402

MODULES.update(ZOO_MODULES)


def supported_list() -> str:
    """The supported modules, functions and methods, for error messages."""
    functions = sorted({name.rsplit(".", 1)[-1] for name in FUNCTIONS} - {"add", "sub", "mul"})
    return (
        f"modules torch.nn.{{{', '.join(MODULES)}}}; functions {', '.join(functions)}, "
        "+, -, *; tensor methods "
        f"{', '.join(sorted(METHODS))}; parts of {', '.join(SPLIT_CALLS)} (functions or "
        "methods) read by index"
    )


def bind(kind: Kind, args: tuple[Any, ...], kwargs: dict[str, Any], where: str) -> dict[str, Any]:
    """Name a call's arguments as ``kind.params`` (PyTorch's names), filling defaults."""
    params = dict(kind.defaults)
    if kind.varargs:
        params["input"] = args[0] if args else kwargs.get("input")
        return params
    if len(args) > len(kind.params):
        raise FrontendError(
            f"{where}: {len(args)} positional arguments, expected at most {len(kind.params)} "
            f"({', '.join(kind.params)})"
        )
    params.update(zip(kind.params, args, strict=False))
    for key, value in kwargs.items():
        if key not in kind.params:
            raise UnsupportedLayerError(
                f"{where}: argument {key}={value!r} is not supported; known arguments: "
                f"{', '.join(kind.params)}"
            )
        params[key] = value
    missing = [p for p in kind.params if p not in params]
    if missing:
        raise FrontendError(f"{where}: missing argument(s) {', '.join(missing)}")
    return params


def module_params(kind: Kind, module: Any, value: Any) -> dict[str, Any]:
    """A module call's arguments: the input, then attributes named as the functional form's."""
    params = dict(kind.defaults)
    params["input"] = value
    for key in kind.params[1:]:
        if hasattr(module, key):
            params[key] = getattr(module, key)
    params["training"] = False  # the model is traced in eval mode
    return params
