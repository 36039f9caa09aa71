"""The ONNX op table: one converter per supported ONNX operator, and the layout machinery.

Layout. ONNX tensors are channels-first (``N, C, H, W``); IR tensors are channels-last
and have no batch axis. Every ONNX tensor that the IR computes is a ``Value``: the IR
tensor holding its elements, and ``index``, an integer array of the ONNX shape (batch
removed) giving each element's flat (row-major) position in that IR tensor.

- Transpose, Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout and Cast only
  rewrite ``index``: no IR node is made, so the Transposes a TensorFlow exporter puts
  around every convolution disappear.
- A consumer asks for the layout it needs (``Builder.require``): convolutions, pooling
  and batch normalization need channels-last; Dense takes its features in any order
  (the kernel rows are permuted to match, so Flatten of channels-first data costs
  nothing). A Reshape/Flatten IR node is emitted only when the IR tensor's shape
  differs from the one needed while its element order already matches.
- A layout that would need a real transpose raises ``UnsupportedLayerError``.

A converter reads one ONNX node (``NodeCall``) and returns one entry per node output:
a ``Value``, a ``Const`` (constant folding), or ``None`` for an unused optional output.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnfab.errors import FrontendError, GraphError, UnsupportedLayerError
from nnfab.frontends.gated import HARD_SWISH_GATE, gelu_gate
from nnfab.frontends.qkeras import exact_type
from nnfab.ir.activation_rules import SELU_ALPHA, SELU_SCALE, compact_alpha
from nnfab.ir.graph import Graph, Node
from nnfab.ir.names import Namespace
from nnfab.ir.ops import OPS
from nnfab.ir.types import FixedType

log = logging.getLogger(__name__)

Shape = tuple[int, ...]


class BatchAxisMovedError(UnsupportedLayerError):
    """A Transpose or Reshape moves the batch axis away from axis 0 (the frontend may
    retry with ``onnx_batch.rewrite_batch_axis`` when the batch size is 1)."""


# ================================================================= values
@dataclass(frozen=True)
class Const:
    """A constant tensor (initializer or folded), with the type of its Quant if it had one."""

    value: np.ndarray
    type: FixedType | None = None
    scale: np.ndarray | None = None  # real value = value * scale (see onnx_scales)


@dataclass(frozen=True)
class Value:
    """An ONNX data tensor: the IR tensor holding it and where each element sits there."""

    ir: str
    index: np.ndarray  # ONNX shape without batch -> flat position in the IR tensor
    view: str | None = None  # source name for a Reshape/Flatten node, if one is needed

    @property
    def shape(self) -> Shape:
        return tuple(int(s) for s in self.index.shape)

    @property
    def rank(self) -> int:
        return self.index.ndim


Output = Value | Const | None


def identity(rank: int) -> tuple[int, ...]:
    return tuple(range(rank))


def channels_last(rank: int) -> tuple[int, ...]:
    """IR axes as ONNX axes: spatial axes first, then the channel axis 0."""
    return (*range(1, rank), 0)


def layout_index(shape: Sequence[int], perm: Sequence[int]) -> np.ndarray:
    """``index`` of ONNX shape ``shape`` when IR axis ``i`` is ONNX axis ``perm[i]``."""
    ir_shape = [int(shape[p]) for p in perm]
    flat = np.arange(math.prod(ir_shape), dtype=np.int64).reshape(ir_shape)
    return flat.transpose(np.argsort(perm))


def layout_candidates(rank: int) -> list[tuple[int, ...]]:
    cands = [identity(rank)]
    if rank > 1:
        cands.append(channels_last(rank))
    return cands


# ================================================================ builder
class Builder:
    """Adds IR nodes to the graph and converts between ONNX and IR layouts."""

    def __init__(self, graph: Graph, names: Namespace, batch: int | None) -> None:
        self.graph = graph
        self.names = names
        self.batch = batch  # the static batch size of the model's inputs, if declared
        self.ir_root: dict[str, str] = {}  # IR tensor -> the ONNX tensor (root) it holds
        self.root_readers: dict[str, int] = {}  # ONNX root tensor -> number of readers
        self._reshaped: dict[tuple[str, Shape], str] = {}

    def add(self, node: Node, type_: FixedType | None = None, where: str = "") -> Node:
        """Append ``node``, its output shape inferred by the op catalogue."""
        try:
            shapes = [self.graph.tensors[t].shape for t in node.inputs]
            shape = OPS[node.op].infer_shape(node, shapes)
            self.graph.add_node(node, shape, type_)
        except (GraphError, KeyError, IndexError, ValueError) as e:
            raise FrontendError(f"{where or node.name}: cannot build IR {node.op}: {e}") from e
        return node

    def fresh(self, base: str) -> str:
        """A sanitized node name derived from ``base`` that no IR tensor uses yet."""
        name, k = self.names(base), 1
        while name in self.graph.tensors:
            name, k = self.names(f"{base}_{k}"), k + 1
        return name

    def sole_reader(self, value: Value) -> bool:
        """True when exactly one ONNX node (or graph output) reads the tensor behind ``value``."""
        root = self.ir_root.get(value.ir)
        return root is not None and self.root_readers.get(root, 0) == 1

    @staticmethod
    def matches(value: Value, perm: Sequence[int]) -> bool:
        return bool(np.array_equal(value.index, layout_index(value.shape, perm)))

    def require(self, value: Value, perm: Sequence[int], where: str) -> str:
        """The IR tensor holding ``value`` with IR axes = ONNX axes ``perm``."""
        if not self.matches(value, perm) and value.rank <= 6:
            # A real data permutation: a Permute node (nnfab.ir.rearrange), when the IR
            # tensor holds ``value`` with its axes in some other order.
            for held in itertools.permutations(range(value.rank)):
                if self.matches(value, held):
                    src = self.reshaped(value, tuple(value.shape[p] for p in held))
                    axes = tuple(held.index(p) for p in perm)
                    name = self.fresh(f"{value.view or value.ir}_permute")
                    self.add(Node(name, "Permute", [src], {"perm": axes},
                                  source_class="Transpose"), where=where)
                    return name
        if not self.matches(value, perm) and tuple(perm) == identity(value.rank):
            # e.g. attention heads transposed back and merged by a Reshape: one Permute of
            # the IR tensor's axes gives the ONNX order
            found = self.unpermuted(value, where)
            if found is not None:
                return found
        if not self.matches(value, perm):
            raise UnsupportedLayerError(
                f"{where}: its input (ONNX shape {value.shape}) is laid out in the IR in an "
                f"order that would need a transpose to become {_describe(perm)}; nnfab absorbs "
                "the NCHW<->NHWC change and Transposes that undo each other, but has no "
                "transpose op for other permutations"
            )
        return self.reshaped(value, tuple(value.shape[p] for p in perm))

    def unpermuted(self, value: Value, where: str) -> str | None:
        """An IR tensor holding ``value`` in ONNX (row-major) order, made by one Permute of
        the IR tensor's axes (and a Reshape to the ONNX shape), or None when no axis order
        gives it (e.g. attention heads transposed back and merged by a Reshape)."""
        shape = self.graph.tensors[value.ir].shape
        if len(shape) > 6:
            return None
        wanted = value.index.ravel()
        if wanted.size != math.prod(shape):
            return None
        for perm in itertools.permutations(range(len(shape))):
            old_of_new = np.arange(wanted.size).reshape(shape).transpose(perm).ravel()
            if not np.array_equal(old_of_new, wanted):
                continue
            name = value.ir
            if perm != identity(len(shape)):
                name = self.fresh(f"{value.ir}_permute")
                self.add(Node(name, "Permute", [value.ir], {"perm": perm},
                              source_class="Transpose"), where=where)
            done = Value(name, np.arange(wanted.size).reshape(value.shape))
            return self.reshaped(done, value.shape)
        return None

    def flat(self, value: Value) -> str:
        """The IR tensor holding ``value`` as a 1-D vector (same element order as now)."""
        return self.reshaped(value, (math.prod(self.graph.tensors[value.ir].shape),))

    def reshaped(self, value: Value, shape: Shape) -> str:
        """``value.ir``, or a Reshape/Flatten of it to ``shape`` (memoized)."""
        if self.graph.tensors[value.ir].shape == shape:
            return value.ir
        key = (value.ir, shape)
        if key not in self._reshaped:
            op = "Flatten" if len(shape) == 1 else "Reshape"
            name = self.fresh(value.view or f"{value.ir}_{op.lower()}")
            attrs = {} if op == "Flatten" else {"target_shape": shape}
            node = Node(name, op, [value.ir], attrs, source_class=op)
            self.add(node, where=f"layer {name!r}")
            self._reshaped[key] = name
        return self._reshaped[key]

    def scatter(self, value: Value, full: np.ndarray) -> np.ndarray:
        """A constant of ``value``'s ONNX shape, rearranged into the IR tensor's layout."""
        out = np.empty(value.index.size, dtype=np.float64)
        out[value.index.ravel()] = np.asarray(full, dtype=np.float64).ravel()
        return out.reshape(self.graph.tensors[value.ir].shape)


def _describe(perm: Sequence[int]) -> str:
    if tuple(perm) == identity(len(perm)):
        return "the ONNX order"
    if tuple(perm) == channels_last(len(perm)):
        return "channels-last"
    return f"ONNX axes in order {tuple(perm)}"


# ============================================================== node call
@dataclass
class NodeCall:
    """One ONNX node being converted: its inputs resolved to values and constants."""

    builder: Builder
    proto: Any  # onnx.NodeProto
    ins: list[Value | Const | None]
    opset: int
    source: str  # the name the IR node is derived from
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def op_type(self) -> str:
        return str(self.proto.op_type)

    @property
    def onnx_name(self) -> str:
        return str(self.proto.name or self.proto.output[0])

    @property
    def where(self) -> str:
        return f"node {self.onnx_name!r} ({self.op_type})"

    @property
    def graph(self) -> Graph:
        return self.builder.graph

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def has(self, i: int) -> bool:
        return i < len(self.ins) and self.ins[i] is not None

    def value(self, i: int, what: str = "input") -> Value:
        item = self.ins[i] if i < len(self.ins) else None
        if isinstance(item, Value):
            return item
        got = "a constant" if isinstance(item, Const) else "missing"
        raise UnsupportedLayerError(
            f"{self.where}: {what} (input {i}) is {got}; nnfab needs a data tensor there"
        )

    def const(self, i: int, what: str) -> np.ndarray:
        item = self.ins[i] if i < len(self.ins) else None
        if isinstance(item, Const):
            return item.value
        got = "a data tensor" if isinstance(item, Value) else "missing"
        raise UnsupportedLayerError(
            f"{self.where}: {what} (input {i}) is {got}; nnfab needs a constant (an "
            "initializer, or computed from initializers only)"
        )

    def const_type(self, i: int) -> FixedType | None:
        item = self.ins[i] if i < len(self.ins) else None
        return item.type if isinstance(item, Const) else None

    def unsupported(self, attr: str, value: Any, allowed: str) -> UnsupportedLayerError:
        return UnsupportedLayerError(
            f"{self.where}: {attr}={value!r} is not supported; allowed: {allowed}"
        )

    def emit(
        self,
        op: str,
        inputs: list[str],
        attrs: dict[str, Any] | None = None,
        *,
        suffix: str = "",
        type_: FixedType | None = None,
        precision: dict[str, FixedType | None] | None = None,
        **weights: np.ndarray,
    ) -> Node:
        """Add an IR node named after this ONNX node (plus ``suffix``), reading ``inputs``."""
        name = self.builder.fresh(self.source + suffix)
        node = Node(
            name=name,
            op=op,
            inputs=list(inputs),
            attrs=dict(attrs or {}),
            weights={k: np.asarray(v, dtype=np.float64) for k, v in weights.items()},
            source_class=self.op_type,
        )
        node.precision.update({k: v for k, v in (precision or {}).items() if v is not None})
        return self.builder.add(node, type_, self.where)

    def same_layout(self, value: Value, node: Node) -> Value:
        """The output of an elementwise IR ``node`` that read ``value.ir``."""
        return Value(node.name, value.index, value.view)


Converter = Callable[[NodeCall], list[Output]]


# ================================================================ helpers
def _ints(call: NodeCall, key: str, default: Sequence[int], n: int) -> tuple[int, ...]:
    value = call.attr(key)
    values = tuple(int(v) for v in (default if value is None else value))
    if len(values) != n:
        raise call.unsupported(key, list(values), f"{n} values")
    return values


def _batch_axis(call: NodeCall, axis: int, rank: int, what: str = "axis") -> int:
    """``axis`` of a ``rank``-D ONNX tensor (batch included) as a non-batch axis (0-based)."""
    full = axis + rank if axis < 0 else axis
    if not 1 <= full < rank:
        raise call.unsupported(what, axis, f"a non-batch axis: 1..{rank - 1} or -{rank - 1}..-1")
    return full - 1


def same_pads(n: int, k: int, s: int) -> tuple[int, int]:
    """ONNX SAME_UPPER padding of one axis: the odd pixel goes at the end."""
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _window(
    call: NodeCall, x: Value, ksize: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(strides, IR pads) of a convolution or pooling window; checks dilations and auto_pad."""
    rank = len(ksize)
    dil = _ints(call, "dilations", (1,) * rank, rank)
    if any(d != 1 for d in dil):
        raise call.unsupported("dilations", list(dil), "1 on every axis")
    strides = _ints(call, "strides", (1,) * rank, rank)
    auto_pad = call.attr("auto_pad", "NOTSET") or "NOTSET"
    spatial = x.shape[1:]
    if auto_pad == "NOTSET":
        onnx_pads = _ints(call, "pads", (0,) * (2 * rank), 2 * rank)
        pads = tuple(p for ax in range(rank) for p in (onnx_pads[ax], onnx_pads[rank + ax]))
    elif auto_pad == "VALID":
        pads = (0,) * (2 * rank)
    elif auto_pad == "SAME_UPPER":
        pads = tuple(
            p for ax in range(rank) for p in same_pads(spatial[ax], ksize[ax], strides[ax])
        )
    else:
        raise call.unsupported("auto_pad", auto_pad, "NOTSET, SAME_UPPER, VALID")
    return strides, pads


def _spatial_rank(call: NodeCall, x: Value) -> int:
    rank = x.rank - 1
    if rank not in (1, 2):
        raise UnsupportedLayerError(
            f"{call.where}: input has ONNX shape {('N', *x.shape)}; nnfab supports 1-D "
            "(N, C, L) and 2-D (N, C, H, W) data here"
        )
    return rank


def _channels_last_output(node: Node, graph: Graph, perm: Sequence[int]) -> Value:
    """The Value of an IR node whose output has IR axes = ONNX axes ``perm``."""
    ir_shape = graph.tensors[node.name].shape
    onnx_shape = [0] * len(perm)
    for i, p in enumerate(perm):
        onnx_shape[p] = ir_shape[i]
    return Value(node.name, layout_index(onnx_shape, perm))


def broadcast_constant(call: NodeCall, c: np.ndarray, x: Value) -> np.ndarray:
    """A constant operand broadcast to ``x``'s ONNX shape (batch removed)."""
    c = np.asarray(c, dtype=np.float64)
    if c.ndim == x.rank + 1:
        if c.shape[0] != 1:
            raise UnsupportedLayerError(
                f"{call.where}: constant of shape {c.shape} differs across the batch axis"
            )
        c = c[0]
    try:
        if np.broadcast_shapes(c.shape, x.shape) != x.shape:
            raise ValueError("the constant is larger than the data")
        return np.broadcast_to(c, x.shape)
    except ValueError as e:
        raise UnsupportedLayerError(
            f"{call.where}: constant of shape {c.shape} does not broadcast to the data's "
            f"shape {('N', *x.shape)} ({e})"
        ) from None


def _values_type(values: np.ndarray, given: FixedType | None) -> FixedType | None:
    """The type of quantized constants after an exact transformation (None: float)."""
    if given is None:
        return None
    if np.array_equal(given.quantize(values), values):
        return given
    return exact_type(values)


# ============================================================ converters
def convert_view(call: NodeCall) -> list[Output]:
    """Identity, Dropout and float Cast: the same tensor."""
    if call.op_type == "Cast" and call.attr("to") not in FLOAT_DTYPES:
        raise call.unsupported("to", call.attr("to"), "a float type (1, 10, 11, 16)")
    x = call.value(0)
    return [x] + [None] * (len(call.proto.output) - 1)


FLOAT_DTYPES = (1, 10, 11, 16)  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


def convert_flatten(call: NodeCall) -> list[Output]:
    x = call.value(0)
    rank = x.rank + 1
    axis = int(call.attr("axis", 1))
    axis = axis + rank if axis < 0 else axis
    if axis == 0 and call.builder.batch == 1:
        log.info("%s: axis=0 flattens the batch axis too; with batch size 1 that is axis=1",
                 call.where)
        axis = 1
    if axis == 0 or math.prod(x.shape[: axis - 1]) != 1:
        raise call.unsupported(
            "axis", call.attr("axis", 1), "1 (keep the batch axis, flatten the rest)"
        )
    return [Value(x.ir, x.index.reshape(-1), call.source)]


def convert_reshape(call: NodeCall) -> list[Output]:
    x = call.value(0)
    target = [int(t) for t in np.asarray(call.const(1, "shape")).ravel()]
    allowzero = int(call.attr("allowzero", 0))
    if not target:
        raise call.unsupported("shape", target, "a shape that keeps the batch axis first")
    first, rest = target[0], target[1:]
    resolved = []
    for i, t in enumerate(rest):
        if t == 0 and not allowzero:
            if i >= x.rank:
                raise call.unsupported("shape", target, "0 only where the input has an axis")
            t = x.shape[i]
        resolved.append(t)
    if resolved.count(-1) > 1 or any(t == 0 or t < -1 for t in resolved):
        raise call.unsupported("shape", target, "positive sizes and at most one -1")
    if -1 in resolved:
        known = math.prod(t for t in resolved if t != -1)
        resolved[resolved.index(-1)] = math.prod(x.shape) // known if known else 0
    batch_ok = first in (0, -1) or first == call.builder.batch or (
        call.builder.batch is None and first == 1
    )
    if not batch_ok and math.prod(resolved) * max(first, 1) == math.prod(x.shape):
        raise BatchAxisMovedError(str(call.unsupported(
            "shape", target, f"a shape that keeps the batch axis first (input shape "
            f"{('N', *x.shape)})")))
    if not batch_ok or math.prod(resolved) != math.prod(x.shape):
        raise call.unsupported(
            "shape", target,
            f"a shape that keeps the batch axis and the {math.prod(x.shape)} values of each "
            f"sample (input shape {('N', *x.shape)})",
        )
    return [Value(x.ir, x.index.reshape(resolved), call.source)]


def convert_transpose(call: NodeCall) -> list[Output]:
    x = call.value(0)
    perm = call.attr("perm")
    perm = list(range(x.rank, -1, -1)) if perm is None else [int(p) for p in perm]
    if sorted(perm) != list(range(x.rank + 1)) or perm[0] != 0:
        raise call.unsupported("perm", perm, "a permutation that keeps the batch axis 0 first")
    return [Value(x.ir, x.index.transpose([p - 1 for p in perm[1:]]), call.source)]


def _axes(call: NodeCall) -> list[int] | None:
    if call.opset >= 13 and len(call.ins) > 1 and call.ins[1] is not None:
        return [int(a) for a in np.asarray(call.const(1, "axes")).ravel()]
    axes = call.attr("axes")
    return None if axes is None else [int(a) for a in axes]


def convert_squeeze(call: NodeCall) -> list[Output]:
    x = call.value(0)
    axes = _axes(call)
    if axes is None:
        raise call.unsupported("axes", None, "explicit non-batch axes")
    drop = {_batch_axis(call, a, x.rank + 1, "axes") for a in axes}
    if any(x.shape[a] != 1 for a in drop):
        raise call.unsupported("axes", axes, f"axes of size 1 (shape {('N', *x.shape)})")
    shape = [s for a, s in enumerate(x.shape) if a not in drop]
    return [Value(x.ir, x.index.reshape(shape), call.source)]


def convert_unsqueeze(call: NodeCall) -> list[Output]:
    x = call.value(0)
    axes = _axes(call)
    if axes is None:
        raise call.unsupported("axes", None, "explicit non-batch axes")
    out_rank = x.rank + 1 + len(axes)
    new = sorted(_batch_axis(call, a, out_rank, "axes") for a in axes)
    shape = list(x.shape)
    for a in new:
        shape.insert(a, 1)
    return [Value(x.ir, x.index.reshape(shape), call.source)]


def convert_shape(call: NodeCall) -> list[Output]:
    x = call.value(0)
    batch = call.builder.batch if call.builder.batch is not None else 1
    full = np.array([batch, *x.shape], dtype=np.int64)
    rank = full.size
    start = int(call.attr("start", 0))
    end = call.attr("end")
    end = rank if end is None else int(end)
    return [Const(full[slice(start, end)])]


# ------------------------------------------------------------- dense
def dense(
    call: NodeCall,
    x: Value,
    kernel: np.ndarray,
    bias: np.ndarray,
    wtype: FixedType | None,
    btype: FixedType | None,
) -> list[Output]:
    """A Dense layer over the last ONNX axis of ``x`` (kernel ``(n_in, n_out)``)."""
    if kernel.ndim != 2 or kernel.shape[0] != x.shape[-1]:
        raise UnsupportedLayerError(
            f"{call.where}: weights of shape {kernel.shape} do not fit input features "
            f"{x.shape[-1]} (input shape {('N', *x.shape)})"
        )
    if x.rank == 1:
        ir = call.builder.flat(x)
        rows = np.empty_like(kernel)
        rows[x.index] = kernel  # IR feature x.index[f] is ONNX feature f
    else:
        ir = call.builder.require(x, identity(x.rank), call.where)
        rows = kernel
    node = call.emit(
        "Dense", [ir], kernel=rows, bias=bias, precision={"weight": wtype, "bias": btype}
    )
    out_shape = (*x.shape[:-1], kernel.shape[1])
    return [Value(node.name, layout_index(out_shape, identity(len(out_shape))))]


def _bias_vector(call: NodeCall, i: int, n: int, factor: float) -> tuple[np.ndarray, Any]:
    if not call.has(i):
        return np.zeros(n), None
    c = np.asarray(call.const(i, "bias C"), dtype=np.float64)
    if c.ndim == 2 and c.shape[0] == 1:
        c = c[0]
    if c.size not in (1, n) or c.ndim > 1:
        raise call.unsupported("C shape", c.shape, f"(), ({n},) or (1, {n}): one bias per output")
    values = np.broadcast_to(c * factor, (n,)).copy()
    return values, _values_type(values, call.const_type(i))


def convert_gemm(call: NodeCall) -> list[Output]:
    x = call.value(0, "A")
    if int(call.attr("transA", 0)):
        raise call.unsupported("transA", 1, "0 (A is the data, batch first)")
    if x.rank != 1:
        raise UnsupportedLayerError(
            f"{call.where}: A has shape {('N', *x.shape)}; Gemm takes (N, features)"
        )
    b = np.asarray(call.const(1, "B (the weights)"), dtype=np.float64)
    if b.ndim != 2:
        raise call.unsupported("B shape", b.shape, "a matrix")
    w = b.T if int(call.attr("transB", 0)) else b
    alpha = float(call.attr("alpha", 1.0))
    beta = float(call.attr("beta", 1.0))
    kernel = np.ascontiguousarray(alpha * w)  # row-major, as the passes expect
    bias, btype = _bias_vector(call, 2, w.shape[1], beta)
    return dense(call, x, kernel, bias, _values_type(kernel, call.const_type(1)), btype)


def convert_matmul(call: NodeCall) -> list[Output]:
    if isinstance(call.ins[0], Const):
        raise UnsupportedLayerError(
            f"{call.where}: the constant is the first operand; nnfab supports data @ weights"
        )
    if isinstance(call.ins[1], Value):
        return _activation_matmul(call)
    x = call.value(0, "A")
    w = np.asarray(call.const(1, "B (the weights)"), dtype=np.float64)
    if w.ndim != 2:
        raise call.unsupported("B shape", w.shape, "a matrix (features_in, features_out)")
    return dense(call, x, w, np.zeros(w.shape[1]), call.const_type(1), None)


def _activation_matmul(call: NodeCall) -> list[Output]:
    """``A @ B`` of two data tensors (attention's scores and context): the IR ``MatMul``,
    batched over the leading axes, which must be equal (no broadcasting)."""
    a, b = call.value(0, "A"), call.value(1, "B")
    if a.rank < 2 or a.rank != b.rank or a.shape[:-2] != b.shape[:-2] or (
            a.shape[-1] != b.shape[-2]):
        raise call.unsupported("input shapes", (("N", *a.shape), ("N", *b.shape)),
                               "(N, ..., m, k) and (N, ..., k, n) with equal leading axes")
    ia = call.builder.require(a, identity(a.rank), call.where)
    ib = call.builder.require(b, identity(b.rank), call.where)
    node = call.emit("MatMul", [ia, ib])
    out_shape = (*a.shape[:-1], b.shape[-1])
    return [Value(node.name, layout_index(out_shape, identity(len(out_shape))))]


# -------------------------------------------------------------- conv
def convert_conv(call: NodeCall) -> list[Output]:
    x = call.value(0, "X")
    w = np.asarray(call.const(1, "W (the weights)"), dtype=np.float64)
    rank = _spatial_rank(call, x)
    if w.ndim != rank + 2:
        raise call.unsupported("W shape", w.shape, f"(M, C/group, {', '.join('k' * rank)})")
    channels = x.shape[0]
    n_out = w.shape[0]
    ksize = tuple(int(k) for k in w.shape[2:])
    declared = call.attr("kernel_shape")
    if declared is not None and tuple(int(k) for k in declared) != ksize:
        raise call.unsupported("kernel_shape", list(declared), f"the weights' {list(ksize)}")
    group = int(call.attr("group", 1))
    strides, pads = _window(call, x, ksize)
    ir = call.builder.require(x, channels_last(x.rank), call.where)
    bias = np.zeros(n_out)
    btype = None
    if call.has(2):
        bias = np.asarray(call.const(2, "B (the bias)"), dtype=np.float64).reshape(n_out)
        btype = call.const_type(2)
    wtype = call.const_type(1)
    attrs: dict[str, Any] = {"strides": strides, "pads": pads}
    spatial_axes = tuple(range(2, rank + 2))
    if group == 1:
        if w.shape[1] != channels:
            raise UnsupportedLayerError(
                f"{call.where}: weights expect {w.shape[1]} input channels, the data has "
                f"{channels}"
            )
        kernel = w.transpose(*spatial_axes, 1, 0)  # (k..., C, M)
        op = f"Conv{rank}D"
    elif group == channels and w.shape[1] == 1 and n_out % channels == 0:
        mult = n_out // channels
        # ONNX output channel o reads input channel o // mult: o = c * mult + m.
        kernel = w.reshape(channels, mult, *ksize).transpose(*spatial_axes, 0, 1)
        attrs["depth_multiplier"] = mult
        op = f"DepthwiseConv{rank}D"
    else:
        raise call.unsupported(
            "group", group, f"1, or {channels} (the input channels: a depthwise convolution)"
        )
    node = call.emit(op, [ir], attrs, kernel=kernel, bias=bias,
                     precision={"weight": wtype, "bias": btype})
    return [_channels_last_output(node, call.graph, channels_last(x.rank))]


# ----------------------------------------------------------- pooling
def _pool(mode: str) -> Converter:
    def convert(call: NodeCall) -> list[Output]:
        x = call.value(0, "X")
        rank = _spatial_rank(call, x)
        if len(call.proto.output) > 1 and call.proto.output[1]:
            raise UnsupportedLayerError(f"{call.where}: the Indices output is not supported")
        ksize = _ints(call, "kernel_shape", (), rank)
        strides, pads = _window(call, x, ksize)
        if mode == "avg" and int(call.attr("count_include_pad", 0)) and any(pads):
            raise call.unsupported(
                "count_include_pad", 1,
                "0 when the window is padded (nnfab's average pooling divides by the number "
                "of non-padding inputs)",
            )
        if int(call.attr("ceil_mode", 0)):
            spatial = x.shape[1:]
            for ax in range(rank):
                span = spatial[ax] + pads[2 * ax] + pads[2 * ax + 1] - ksize[ax]
                if span % strides[ax]:
                    raise call.unsupported(
                        "ceil_mode", 1, "0, or 1 where it gives the same output size as 0"
                    )
        ir = call.builder.require(x, channels_last(x.rank), call.where)
        attrs = {"mode": mode, "pool_size": ksize, "strides": strides, "pads": pads}
        node = call.emit(f"Pooling{rank}D", [ir], attrs)
        return [_channels_last_output(node, call.graph, channels_last(x.rank))]

    return convert


def _global_pool(mode: str) -> Converter:
    def convert(call: NodeCall) -> list[Output]:
        x = call.value(0, "X")
        rank = _spatial_rank(call, x)
        ir = call.builder.require(x, channels_last(x.rank), call.where)
        node = call.emit(f"GlobalPooling{rank}D", [ir], {"mode": mode})
        channels = x.shape[0]
        index = np.arange(channels, dtype=np.int64).reshape((channels,) + (1,) * rank)
        return [Value(node.name, index)]

    return convert


def _reduce(mode: str) -> Converter:
    """``ReduceMean`` / ``ReduceMax`` / ``ReduceSum`` over exactly the spatial axes of
    (N, C, L) / (N, C, H, W) data (``x.mean(dim=(2, 3))`` exported), or over axis 1 of
    (N, items, features) data held as it is (a deep-sets sum over the items):
    ``GlobalPooling1D/2D``; the axes are an attribute before opset 18 (ReduceSum: 13) and
    an input from it, ``keepdims`` either way."""
    def convert(call: NodeCall) -> list[Output]:
        x = call.value(0, "data")
        full = x.rank + 1
        if call.has(1):
            axes = [int(a) for a in np.asarray(call.const(1, "axes")).ravel()]
        else:
            given = call.attr("axes")
            axes = [int(a) for a in given] if given is not None else None
        keep_dims = bool(int(call.attr("keepdims", 1)))
        if x.rank == 2 and axes is not None and [a % full for a in axes] == [1] \
                and call.builder.matches(x, (0, 1)):
            # (N, items, features) held as it is (a Gemm / MatMul over the items): the
            # items are the steps of a 1-D global pooling
            ir = call.builder.require(x, (0, 1), call.where)
            node = call.emit("GlobalPooling1D", [ir], {"mode": mode})
            features = x.shape[1]
            index = np.arange(features, dtype=np.int64)
            return [Value(node.name, index.reshape((1, features)) if keep_dims else index)]
        rank = _spatial_rank(call, x)
        spatial = list(range(2, full))
        if axes is None or sorted(a + full if a < 0 else a for a in axes) != spatial:
            raise call.unsupported("axes", axes, f"exactly the spatial axes {spatial} of "
                                   f"(N, C, {'L' if rank == 1 else 'H, W'}) data (global "
                                   "pooling)")
        ir = call.builder.require(x, channels_last(x.rank), call.where)
        node = call.emit(f"GlobalPooling{rank}D", [ir], {"mode": mode})
        channels = x.shape[0]
        keep = (1,) * rank if keep_dims else ()
        return [Value(node.name, np.arange(channels, dtype=np.int64).reshape((channels,
                                                                              *keep)))]

    return convert


# ------------------------------------------------------ scale / bias
def affine(
    call: NodeCall,
    x: Value,
    scale: np.ndarray | None,
    bias: np.ndarray | None,
    *,
    scale_type: FixedType | None = None,
    bias_type: FixedType | None = None,
    fold: bool = True,
) -> Value:
    """``x * scale + bias`` with constants of ``x``'s ONNX shape, varying per channel only.

    Folds into the layer before when that is exact (a bias Add after Dense/Conv); else a
    BatchNormalization node (the FoldBatchNorm pass may fold it later).
    """
    # The IR tensor as it is, else reshaped (same element order): flat, or channels-last.
    shapes = [call.graph.tensors[x.ir].shape]
    if x.rank == 1:
        shapes.append((x.index.size,))
    else:
        shapes += [tuple(x.shape[p] for p in perm) for perm in layout_candidates(x.rank)
                   if call.builder.matches(x, perm)]
    vectors = None
    for shape in shapes:
        vectors = _per_channel(call, x, [scale, bias], shape)
        if vectors is not None:
            x = Value(call.builder.reshaped(x, shape), x.index, x.view)
            break
    if vectors is None:
        raise UnsupportedLayerError(
            f"{call.where}: the constant operand varies along axes other than the channel "
            f"axis of the data (ONNX shape {('N', *x.shape)}); nnfab supports a per-channel "
            "or scalar scale/bias here"
        )
    s, b = vectors
    if fold:
        folded = _fold_into_producer(call, x, s, b, bias_type)
        if folded is not None:
            return folded
    n = call.graph.tensors[x.ir].shape[-1]
    node = call.emit(
        "BatchNormalization",
        [x.ir],
        scale=np.ones(n) if s is None else s,
        bias=np.zeros(n) if b is None else b,
        precision={"weight": scale_type, "bias": bias_type},
    )
    return call.same_layout(x, node)


def _per_channel(
    call: NodeCall, x: Value, consts: list[np.ndarray | None], shape: Shape
) -> list[np.ndarray | None] | None:
    """Each constant as one value per channel (last axis) of the IR ``shape``, or None."""
    out: list[np.ndarray | None] = []
    for c in consts:
        if c is None:
            out.append(None)
            continue
        ir_values = call.builder.scatter(x, c).reshape(shape)
        rows = ir_values.reshape(-1, ir_values.shape[-1])
        if not np.all(rows == rows[0]):
            return None
        out.append(rows[0].copy())
    return out


def _fold_into_producer(
    call: NodeCall, x: Value, s: np.ndarray | None, b: np.ndarray | None,
    bias_type: FixedType | None,
) -> Value | None:
    graph = call.graph
    if (s is None or np.all(s == 1)) and (b is None or np.all(b == 0)):
        return x  # multiply by one / add zero
    producer = graph.node(x.ir)
    if not call.builder.sole_reader(x) or graph.tensors[x.ir].type is not None:
        return None
    weighted = producer.op in ("Dense", "Conv1D", "Conv2D", "DepthwiseConv1D",
                               "DepthwiseConv2D", "BatchNormalization")
    if not weighted or "activation" in producer.attrs:
        return None
    if s is None and b is not None:  # add a bias
        if "bias" in producer.precision:
            return None
        if bias_type is not None:
            if np.any(producer.weights["bias"]):
                return None
            producer.precision["bias"] = bias_type
        producer.weights["bias"] = producer.weights["bias"] + b
        log.debug("%s: bias folded into %r", call.where, producer.name)
        return Value(producer.name, x.index, x.view)
    if b is None and s is not None and producer.op == "BatchNormalization":
        if producer.precision:
            return None
        producer.weights["scale"] = producer.weights["scale"] * s
        producer.weights["bias"] = producer.weights["bias"] * s
        log.debug("%s: scale folded into %r", call.where, producer.name)
        return Value(producer.name, x.index, x.view)
    return None


def convert_batchnorm(call: NodeCall) -> list[Output]:
    x = call.value(0, "X")
    if int(call.attr("training_mode", 0)):
        raise call.unsupported("training_mode", 1, "0 (inference)")
    if call.opset < 9 and int(call.attr("spatial", 1)) != 1:
        raise call.unsupported("spatial", call.attr("spatial"), "1")
    if any(o for o in call.proto.output[1:]):
        raise UnsupportedLayerError(f"{call.where}: training outputs (mean, var) are not supported")
    gamma, beta, mean, var = (
        np.asarray(call.const(i, what), dtype=np.float64).ravel()
        for i, what in ((1, "scale"), (2, "B"), (3, "mean"), (4, "var"))
    )
    eps = float(call.attr("epsilon", 1e-5))
    scale = gamma / np.sqrt(var + eps)
    shift = beta - mean * scale
    shape = (x.shape[0],) + (1,) * (x.rank - 1)
    if x.rank > 1:  # the channel axis must be the IR's last axis
        x = Value(call.builder.require(x, channels_last(x.rank), call.where), x.index, x.view)
    full_s = np.broadcast_to(scale.reshape(shape), x.shape)
    full_b = np.broadcast_to(shift.reshape(shape), x.shape)
    return [affine(call, x, full_s, full_b, fold=False)] + [None] * (len(call.proto.output) - 1)


def _binary(call: NodeCall) -> tuple[Value, Const | None, bool]:
    """(data, constant or None, whether the data is the first operand)."""
    a, b = call.ins[0], call.ins[1]
    if isinstance(a, Value) and isinstance(b, Const):
        return a, b, True
    if isinstance(a, Const) and isinstance(b, Value):
        return b, a, False
    if isinstance(a, Value) and isinstance(b, Value):
        return a, None, True
    raise UnsupportedLayerError(f"{call.where}: needs two inputs")


def _arith(mode: str) -> Converter:
    def convert(call: NodeCall) -> list[Output]:
        if mode == "add" and call.op_type == "Sum" and len(call.ins) != 2:
            values = [call.value(i) for i in range(len(call.ins))]
            return [merge(call, values, "add")]
        x, c, first = _binary(call)
        if c is None:
            if mode == "divide":
                raise UnsupportedLayerError(
                    f"{call.where}: division by a data tensor is not supported"
                )
            return [merge(call, [call.value(0), call.value(1)], mode)]
        full = broadcast_constant(call, c.value, x)
        ctype = c.type
        if mode == "add":
            return [affine(call, x, None, full, bias_type=ctype)]
        if mode == "subtract" and first:
            return [affine(call, x, None, -full, bias_type=_values_type(-full, ctype))]
        if mode == "subtract":
            return [affine(call, x, -np.ones(x.shape), full, bias_type=ctype)]
        if mode == "multiply":
            return [affine(call, x, full, None, scale_type=ctype)]
        if not first:
            raise UnsupportedLayerError(f"{call.where}: constant / data is not supported")
        if np.any(full == 0):
            raise UnsupportedLayerError(f"{call.where}: division by zero")
        return [affine(call, x, 1.0 / full, None)]

    return convert


def _common_layout(call: NodeCall, values: list[Value]) -> tuple[list[str], np.ndarray]:
    """IR tensors of ``values`` in one shared layout, and that layout's index."""
    first = values[0]
    if any(v.shape != first.shape for v in values):
        raise UnsupportedLayerError(
            f"{call.where}: inputs have shapes {[('N', *v.shape) for v in values]}; nnfab "
            "needs equal shapes (no broadcasting between data tensors)"
        )
    if all(np.array_equal(v.index, first.index) for v in values):
        target = call.graph.tensors[first.ir].shape
        return [call.builder.reshaped(v, target) for v in values], first.index
    for perm in layout_candidates(first.rank):
        if all(call.builder.matches(v, perm) for v in values):
            irs = [call.builder.require(v, perm, call.where) for v in values]
            return irs, layout_index(first.shape, perm)
    if all(v.rank <= 6 for v in values):  # Permute nodes bring them to one layout
        perm = next((p for p in layout_candidates(first.rank) if call.builder.matches(first, p)),
                    layout_candidates(first.rank)[-1])
        irs = [call.builder.require(v, perm, call.where) for v in values]
        return irs, layout_index(first.shape, perm)
    raise UnsupportedLayerError(
        f"{call.where}: its inputs are laid out differently in the IR (one would need a "
        "transpose, which nnfab does not have)"
    )


def merge(call: NodeCall, values: list[Value], mode: str) -> Value:
    irs, index = _common_layout(call, values)
    node = call.emit("Merge", irs, {"mode": mode})
    return Value(node.name, index)


def convert_concat(call: NodeCall) -> list[Output]:
    values = [call.value(i, f"input {i}") for i in range(len(call.ins))]
    rank = values[0].rank + 1
    axis = _batch_axis(call, int(call.attr("axis")), rank)
    if values[0].rank == 1:
        irs = [call.builder.flat(v) for v in values]
        offsets = np.cumsum([0] + [v.index.size for v in values[:-1]])
        index = np.concatenate([v.index + o for v, o in zip(values, offsets, strict=True)])
        node = call.emit("Concatenate", irs, {"axis": 0})
        return [Value(node.name, index)]
    for perm in layout_candidates(values[0].rank):
        if all(call.builder.matches(v, perm) for v in values):
            irs = [call.builder.require(v, perm, call.where) for v in values]
            node = call.emit("Concatenate", irs, {"axis": perm.index(axis)})
            return [_channels_last_output(node, call.graph, perm)]
    raise UnsupportedLayerError(
        f"{call.where}: its inputs are laid out differently in the IR (one would need a "
        "transpose, which nnfab does not have)"
    )


# -------------------------------------------------------- activations
def activation(call: NodeCall, x: Value, attrs: dict[str, Any],
               type_: FixedType | None = None) -> Value:
    node = call.emit("Activation", [x.ir], attrs, type_=type_)
    return call.same_layout(x, node)


def convert_relu(call: NodeCall) -> list[Output]:
    x = call.value(0)
    # relu(x) of a quantized tensor lies on the same grid: keep its type (no extra cast).
    return [activation(call, x, {"function": "relu"}, call.graph.tensors[x.ir].type)]


def convert_leaky_relu(call: NodeCall) -> list[Output]:
    alpha = float(call.attr("alpha", 0.01))
    return [activation(call, call.value(0), {"function": "leaky_relu", "alpha": alpha})]


def _simple(function: str) -> Converter:
    def convert(call: NodeCall) -> list[Output]:
        return [activation(call, call.value(0), {"function": function})]

    return convert


def convert_hard_sigmoid(call: NodeCall) -> list[Output]:
    attrs = {
        "function": "hard_sigmoid",
        "slope": float(call.attr("alpha", 0.2)),
        "offset": float(call.attr("beta", 0.5)),
    }
    return [activation(call, call.value(0), attrs)]


def convert_hard_swish(call: NodeCall) -> list[Output]:
    """``HardSwish(x) = x * hard_sigmoid(x)`` (slope 1/6, offset 1/2): the gate as its
    own ``Activation`` node (``<node>_gate``, its own result type), then a multiply."""
    x = call.value(0)
    node = call.emit("Activation", [x.ir], dict(HARD_SWISH_GATE), suffix="_gate")
    return [merge(call, [x, call.same_layout(x, node)], "multiply")]


def convert_gelu(call: NodeCall) -> list[Output]:
    """``Gelu(x) = x * normal_cdf(x)`` (opset 20; ``approximate="tanh"``: the tanh form of
    the gate): the gate as its own ``Activation`` node, then a multiply."""
    approximate = call.attr("approximate", "none")
    if isinstance(approximate, bytes):
        approximate = approximate.decode()
    if approximate not in ("none", "tanh"):
        raise call.unsupported("approximate", approximate, "'none' or 'tanh'")
    x = call.value(0)
    node = call.emit("Activation", [x.ir], gelu_gate(approximate == "tanh"), suffix="_gate")
    return [merge(call, [x, call.same_layout(x, node)], "multiply")]


def convert_pow(call: NodeCall) -> list[Output]:
    """``Pow(x, 2)`` (a constant exponent 2): ``x * x``, a ``Merge`` multiply; exponent 1:
    ``x`` itself."""
    x = call.value(0, "X")
    exponent = np.asarray(call.const(1, "Y"), dtype=np.float64).ravel()
    if exponent.size != 1 or float(exponent[0]) not in (1.0, 2.0):
        raise call.unsupported("Y", exponent.tolist(), "the constant 2 (a square) or 1")
    if float(exponent[0]) == 1.0:
        return [x]
    return [merge(call, [x, x], "multiply")]


def _with_alpha(function: str, default: float) -> Converter:
    """Elu / Celu / ThresholdedRelu: one attribute ``alpha`` (ThresholdedRelu: the theta)."""
    key = "theta" if function == "thresholded_relu" else "alpha"

    def convert(call: NodeCall) -> list[Output]:
        attrs = {"function": function, key: float(call.attr("alpha", default))}
        return [activation(call, call.value(0), attrs)]

    return convert


def convert_selu(call: NodeCall) -> list[Output]:
    alpha, gamma = float(call.attr("alpha", SELU_ALPHA)), float(call.attr("gamma", SELU_SCALE))
    # ONNX stores the attributes as float32: accept the float32 roundings of the constants
    if not (math.isclose(alpha, SELU_ALPHA, rel_tol=1e-6)
            and math.isclose(gamma, SELU_SCALE, rel_tol=1e-6)):
        raise call.unsupported("(alpha, gamma)", (alpha, gamma),
                               f"the SELU constants ({SELU_ALPHA}, {SELU_SCALE})")
    return [activation(call, call.value(0), {"function": "selu"})]


def convert_prelu(call: NodeCall) -> list[Output]:
    x = call.value(0)
    full = broadcast_constant(call, call.const(1, "slope"), x)
    alpha = compact_alpha(call.builder.scatter(x, full))
    node = call.emit("Activation", [x.ir], {"function": "prelu"}, alpha=alpha)
    return [call.same_layout(x, node)]


def _extremum(mode: str) -> Converter:
    def convert(call: NodeCall) -> list[Output]:
        values = [call.value(i, f"input {i} (data tensors only: a constant operand of "
                              f"{call.op_type} is not supported)") for i in range(len(call.ins))]
        if len(values) == 1:
            return [values[0]]
        return [merge(call, values, mode)]

    return convert


def convert_clip(call: NodeCall) -> list[Output]:
    x = call.value(0)
    if call.opset < 11:
        lo, hi = call.attr("min"), call.attr("max")
    else:
        lo = float(np.asarray(call.const(1, "min")).reshape(())) if call.has(1) else None
        hi = float(np.asarray(call.const(2, "max")).reshape(())) if call.has(2) else None
    finite = lo is not None and hi is not None and math.isfinite(float(lo)) and math.isfinite(
        float(hi))
    if finite and float(lo) != 0.0 and float(lo) <= float(hi):
        attrs_ht = {"function": "hard_tanh", "min_val": float(lo), "max_val": float(hi)}
        return [activation(call, x, attrs_ht)]
    if lo is None or float(lo) != 0.0 or (hi is not None and not float(hi) > 0):
        raise call.unsupported(
            "(min, max)", (lo, hi), "(0, none) or (0, a positive max): relu, relu6; two "
            "finite bounds min <= max: hard_tanh"
        )
    attrs: dict[str, Any] = {"function": "relu"}
    if hi is not None and math.isfinite(float(hi)):
        attrs["max_value"] = float(hi)
    return [activation(call, x, attrs)]


def convert_softmax(call: NodeCall) -> list[Output]:
    x = call.value(0)
    rank = x.rank + 1
    axis = _batch_axis(call, int(call.attr("axis", -1 if call.opset >= 13 else 1)), rank)
    if call.opset < 13 and math.prod(x.shape[axis + 1:]) != 1:
        raise call.unsupported(
            "axis", call.attr("axis", 1),
            f"the last axis ({rank - 1}): before opset 13 Softmax flattens the axes from "
            "'axis' on",
        )
    attrs = {"axis": -1}
    if math.prod(x.shape) == x.shape[axis]:  # a vector, possibly with size-1 axes
        node = call.emit("Softmax", [call.builder.flat(x)], attrs)
        return [Value(node.name, x.index, x.view)]
    for perm in layout_candidates(x.rank):
        if perm[-1] == axis and call.builder.matches(x, perm):
            node = call.emit("Softmax", [call.builder.require(x, perm, call.where)], attrs)
            return [Value(node.name, layout_index(x.shape, perm))]
    raise call.unsupported(
        "axis", call.attr("axis"), "the axis that is the last (channel) axis in the IR"
    )


CONVERTERS: dict[str, Converter] = {
    "Gemm": convert_gemm,
    "MatMul": convert_matmul,
    "Conv": convert_conv,
    "BatchNormalization": convert_batchnorm,
    "Relu": convert_relu,
    "LeakyRelu": convert_leaky_relu,
    "Sigmoid": _simple("sigmoid"),
    "Tanh": _simple("tanh"),
    "HardSigmoid": convert_hard_sigmoid,
    "HardSwish": convert_hard_swish,
    "Gelu": convert_gelu,
    "Pow": convert_pow,
    "Elu": _with_alpha("elu", 1.0),
    "Celu": _with_alpha("celu", 1.0),
    "Selu": convert_selu,
    "PRelu": convert_prelu,
    "Softplus": _simple("softplus"),
    "Softsign": _simple("softsign"),
    "ThresholdedRelu": _with_alpha("thresholded_relu", 1.0),
    "Max": _extremum("maximum"),
    "Min": _extremum("minimum"),
    "Mean": _extremum("average"),
    "Clip": convert_clip,
    "Softmax": convert_softmax,
    "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"),
    "GlobalAveragePool": _global_pool("avg"),
    "GlobalMaxPool": _global_pool("max"),
    "ReduceMean": _reduce("avg"),
    "ReduceMax": _reduce("max"),
    "ReduceSum": _reduce("sum"),
    "Add": _arith("add"),
    "Sum": _arith("add"),
    "Sub": _arith("subtract"),
    "Mul": _arith("multiply"),
    "Div": _arith("divide"),
    "Concat": convert_concat,
    "Flatten": convert_flatten,
    "Reshape": convert_reshape,
    "Transpose": convert_transpose,
    "Squeeze": convert_squeeze,
    "Unsqueeze": convert_unsqueeze,
    "Identity": convert_view,
    "Dropout": convert_view,
    "Cast": convert_view,
    "Shape": convert_shape,
}
"""Standard-domain ONNX op type -> converter (for data inputs; constants are folded)."""

# Pad, Slice, Resize and Upsample live in onnx_shape (it imports this module).
from nnfab.frontends.onnx_shape import SHAPE_CONVERTERS  # noqa: E402

CONVERTERS.update(SHAPE_CONVERTERS)

# Gather (embedding), ConvTranspose and LayerNormalization live in onnx_zoo.
from nnfab.frontends.onnx_zoo import ZOO_CONVERTERS  # noqa: E402

CONVERTERS.update(ZOO_CONVERTERS)

VIEW_OPS = frozenset(
    {"Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Cast"}
)
"""Ops whose output is their input rearranged: they make no IR node."""
