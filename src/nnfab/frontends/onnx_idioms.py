"""Exporter idioms of published ONNX / QONNX files that the plain op table does not cover.

Importing this module registers its converters in ``onnx_layers.CONVERTERS`` and
``onnx_quant.QUANT_CONVERTERS``; ``nnfab.frontends.onnx`` imports it and calls
``rewrite_idioms`` on every model before walking it.

- **Batch-axis transposes** (keras2onnx, old tf2onnx): ``Transpose(perm=[1, 0])`` of a
  2-D ``(N, F)`` tensor puts the batch last; the graph then computes ``W @ x^T`` and
  transposes back. ``rewrite_idioms`` rewrites the model so the transpose disappears:
  for every transposed tensor ``t = u^T`` it computes ``u`` instead, through elementwise
  ops, ``Add``/``Sub``/``Mul``/``Div`` with a constant (transposed), ``MatMul(W, t)``
  (-> ``u @ W^T``), ``Gemm(A, t)`` with constant ``A`` and ``Gemm(t, B, transA=1)``
  (-> ``Gemm(u, B)``), ``Softmax`` over the feature axis, until a second
  ``Transpose([1, 0])`` gives ``u`` back. A transposed tensor that reaches anything else
  keeps its Transpose, which the converter refuses naming the node and these rules.
- **Old opsets** (opset < 7): ``Gemm`` with ``broadcast`` (0: ``C`` has the output's
  full shape, read as a bias when its rows agree) and ``Add``/``Sub``/``Mul``/``Div``
  with ``broadcast=1, axis=a`` (the constant aligned at axis ``a``, not at the end).
  onnxruntime (and so qonnx's executor) has no kernels for these versions.
- **QONNX channels-last domain** (``qonnx.custom_op.channels_last``, made by
  ``qonnx.transformation.channels_last.ConvertToChannelsLastAndClean``): ``Conv``
  (weights ``(M, k..., C/group)``), ``MaxPool`` and ``BatchNormalization`` on NHWC data
  map to nnfab's channels-last IR directly; the ``Transpose`` ops qonnx leaves around
  them only relabel axes, so no IR node is made for them.
- **FINN / QONNX thresholds**: ``MultiThreshold`` (``y = out_bias + out_scale * #{k :
  x >= thresholds[c, k]}``), ``BipolarQuant`` on data and 1-bit signed ``Quant`` on data
  (``+s`` where ``x >= 0``, else ``-s``) become the IR op ``MultiThreshold``
  (``nnfab.ir.threshold``; emulator only, the backends refuse it).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

import numpy as np

from nnfab.emulate.kernels import threshold as _kernel  # noqa: F401  (registers the kernel)
from nnfab.errors import UnsupportedLayerError
from nnfab.frontends.onnx_layers import (
    CONVERTERS,
    BatchAxisMovedError,
    Const,
    Converter,
    NodeCall,
    Output,
    Value,
    convert_batchnorm,
    convert_conv,
    convert_gemm,
    convert_transpose,
    layout_candidates,
    layout_index,
)
from nnfab.frontends.onnx_quant import QUANT_CONVERTERS, pow2_exponents, read_quant
from nnfab.frontends.qkeras import exact_type
from nnfab.ir.threshold import register_op

log = logging.getLogger(__name__)

CHANNELS_LAST_DOMAIN = "qonnx.custom_op.channels_last"
"""The QONNX domain of NHWC Conv / MaxPool / BatchNormalization."""

_STANDARD = ("", "ai.onnx")
_UNARY = frozenset(
    {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "Elu", "Celu", "Selu", "Softplus",
     "Softsign", "ThresholdedRelu", "Identity", "Dropout", "Cast", "Clip"}
)
"""Elementwise standard ops (extra inputs, if any, constant): they commute with a transpose."""
_ARITH = frozenset({"Add", "Sub", "Mul", "Div"})
BATCH_TRANSPOSE_RULES = (
    "nnfab absorbs Transpose(perm=[1, 0]) of a (batch, features) tensor only when the graph "
    "undoes it: a second Transpose([1, 0]), Gemm with transA=1, or MatMul / Gemm with a "
    "constant first operand, with elementwise ops, Add/Sub/Mul/Div by a constant and "
    "Softmax over the features between"
)


# ======================================================== model rewrite
def _perm(node: Any) -> list[int] | None:
    for a in node.attribute:
        if a.name == "perm":
            return [int(p) for p in a.ints]
    return None


def _int_attr(node: Any, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default


def _constants(onnx: Any, graph: Any) -> dict[str, np.ndarray]:
    """Initializers and ``Constant`` node outputs of ``graph`` by tensor name."""
    consts = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and (n.domain or "") in _STANDARD:
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = onnx.numpy_helper.to_array(a.t)
    return consts


def _topological(nodes: Iterable[Any], known: set[str]) -> list[Any]:
    pending, order = list(nodes), []
    while pending:
        ready = [n for n in pending if all(t in known or not t for t in n.input)]
        if not ready:  # broken graph: leave the order alone, the walker reports it
            return order + pending
        ids = {id(n) for n in ready}
        for n in ready:
            known.update(n.output)
        order += ready
        pending = [n for n in pending if id(n) not in ids]
    return order


class _BatchTransposes:
    """Removes ``Transpose([1, 0])`` pairs by computing the untransposed twins."""

    def __init__(self, onnx: Any, model: Any) -> None:
        self.onnx = onnx
        self.model = model
        g = model.graph
        self.consts = _constants(onnx, g)
        self.static = set(self.consts)  # tensors computed from constants only (folded later)
        self.names = {t for n in g.node for t in (*n.input, *n.output)} | set(self.consts)
        self.names |= {i.name for i in g.input}
        self.opset = next((int(o.version) for o in model.opset_import
                           if (o.domain or "") in _STANDARD), 1)
        self.twin: dict[str, str] = {}  # tensor t -> tensor u with t = u^T
        self.made: set[str] = set()  # twinned tensors that had to be computed after all
        self.dropped: dict[str, Any] = {}  # tensor -> the Transpose node that made it
        self.origin: dict[str, str] = {}  # twinned tensor -> name of the Transpose it stems from
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.rewrites = 0

    def fresh(self, base: str) -> str:
        name, k = f"{base}_untransposed", 1
        while name in self.names:
            name, k = f"{base}_untransposed_{k}", k + 1
        self.names.add(name)
        return name

    def constant(self, base: str, value: np.ndarray) -> str:
        name = self.fresh(base)
        self.inits.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(value), name))
        self.consts[name] = value
        return name

    def use(self, tensor: str) -> None:
        """``tensor`` is read as it is: compute it from its twin if it was dropped."""
        if tensor in self.twin and tensor not in self.made:
            self.made.add(tensor)
            original = self.dropped.get(tensor)  # keep its name for the error message
            self.nodes.append(original if original is not None else self.onnx.helper.make_node(
                "Transpose", [self.twin[tensor]], [tensor], perm=[1, 0],
                name=self.origin.get(tensor) or f"{tensor}_batch_transpose"))

    def copy(self, node: Any, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        new = self.onnx.NodeProto()
        new.CopyFrom(node)
        del new.input[:]
        del new.output[:]
        new.input.extend(inputs)
        new.output.extend(outputs)
        for key, value in attrs.items():
            for a in list(new.attribute):
                if a.name == key:
                    new.attribute.remove(a)
            if value is not None:
                new.attribute.append(self.onnx.helper.make_attribute(key, value))
        self.nodes.append(new)

    def derive(self, node: Any, inputs: list[str], **attrs: Any) -> None:
        """``node`` applied to twins: its output's twin is the new output."""
        out = node.output[0]
        self.origin[out] = next((self.origin[t] for t in node.input if t in self.origin), "")
        self.twin[out] = self.fresh(out)
        self.copy(node, inputs, [self.twin[out]], **attrs)
        self.rewrites += 1

    def visit(self, node: Any) -> bool:
        """Rewrite ``node`` if it is part of the idiom; False: keep it unchanged."""
        if (node.domain or "") not in _STANDARD or not node.output:
            return False
        op, ins, tw = node.op_type, list(node.input), self.twin
        if op == "Transpose" and _perm(node) == [1, 0]:
            if ins[0] in tw:  # the transpose back: the twin itself
                self.copy(node, [tw[ins[0]]], [node.output[0]], perm=None)
                self.nodes[-1].op_type = "Identity"
                self.rewrites += 1
                return True
            if ins[0] not in self.static:
                tw[node.output[0]] = ins[0]
                self.dropped[node.output[0]] = node
                self.origin[node.output[0]] = node.name
                return True
            return False
        if op in _UNARY and ins and ins[0] in tw and not any(t in tw for t in ins[1:]):
            self.derive(node, [tw[ins[0]], *ins[1:]])
            return True
        if op in _ARITH and len(ins) == 2 and len(node.output) == 1:
            return self._arith(node, ins)
        if op == "MatMul" and len(ins) == 2 and ins[1] in tw and ins[0] in self.consts:
            w = np.asarray(self.consts[ins[0]])
            if w.ndim != 2:
                return False
            self.derive(node, [tw[ins[1]], self.constant(ins[0], w.T)])
            return True
        if op == "Gemm":
            return self._gemm(node, ins)
        if op == "Softmax" and ins[0] in tw and self.opset >= 13:
            axis = _int_attr(node, "axis", -1)
            if axis in (0, -2):  # the features of the transposed (F, N) tensor
                self.derive(node, [tw[ins[0]]], axis=-1)
                return True
        return False

    def _arith(self, node: Any, ins: list[str]) -> bool:
        tw = self.twin
        for k in (0, 1):
            data, other = ins[k], ins[1 - k]
            if data not in tw or other not in self.consts:
                continue
            if self.opset < 7 and _int_attr(node, "broadcast", 0):
                return False  # old-style axis alignment: leave it to the converter
            c = np.asarray(self.consts[other])
            if c.size == 1:
                c_name = other
            elif c.ndim == 2:
                c_name = self.constant(other, c.T)
            else:  # a vector broadcasts along the batch axis of the transposed tensor
                return False
            pair = [tw[data], c_name] if k == 0 else [c_name, tw[data]]
            self.derive(node, pair)
            return True
        return False

    def _gemm(self, node: Any, ins: list[str]) -> bool:
        tw = self.twin
        trans_a, trans_b = _int_attr(node, "transA", 0), _int_attr(node, "transB", 0)
        c = ins[2] if len(ins) > 2 and ins[2] else None
        if ins[0] in tw and trans_a and ins[1] not in tw and c not in tw:
            self.copy(node, [tw[ins[0]], *ins[1:]], list(node.output), transA=0)
            self.rewrites += 1
            return True
        if ins[1] in tw and ins[0] in self.consts and c not in tw:
            if trans_b:
                return False  # (t^T)^T is the twin's transpose: not this idiom
            a = np.asarray(self.consts[ins[0]])
            if a.ndim != 2:
                return False
            op_a = a.T if trans_a else a  # (M, F); out = alpha op_a @ t + beta C, (M, N)
            new_ins = [tw[ins[1]], self.constant(ins[0], op_a.T)]
            if c is not None:
                if c not in self.consts:
                    return False
                cv = np.asarray(self.consts[c])
                if cv.size == 1:
                    new_ins.append(c)
                elif cv.ndim == 2:
                    new_ins.append(self.constant(c, cv.T))
                else:  # a vector runs along the batch axis here
                    return False
            self.derive(node, new_ins, transA=0, transB=0)
            return True
        return False

    def run(self) -> Any:
        g = self.model.graph
        known = {i.name for i in g.input} | set(self.consts)
        for node in _topological(g.node, known):
            if all(t in self.static for t in node.input if t):
                self.static.update(t for t in node.output if t)
            if not self.visit(node):
                for t in node.input:
                    if t:
                        self.use(t)
                self.nodes.append(node)
        for out in g.output:
            self.use(out.name)
        if not self.rewrites:
            return self.model
        model = rebuilt_model(self.onnx, self.model, self.nodes, self.inits, set(self.twin))
        log.info("absorbed %d node(s) around Transpose(perm=[1, 0]) of (batch, features) "
                 "tensors: the graph is computed batch-first", self.rewrites)
        return model


def rebuilt_model(onnx: Any, model: Any, nodes: list[Any], inits: list[Any],
                  stale: set[str]) -> Any:
    """A copy of ``model`` with ``nodes`` as its graph, ``inits`` added to its
    initializers and the shape records of the rewritten tensors ``stale`` dropped (the
    caller's model is never changed)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    out.graph.initializer.extend(inits)
    for v in [v for v in out.graph.value_info if v.name in stale]:
        out.graph.value_info.remove(v)
    return out


def rewrite_idioms(onnx: Any, model: Any) -> Any:
    """``model``, or a rewritten copy without the batch-axis transposes it undoes."""
    if not any(n.op_type == "Transpose" and _perm(n) == [1, 0] for n in model.graph.node):
        return model
    return _BatchTransposes(onnx, model).run()


# ====================================================== standard ops
def convert_transpose_checked(call: NodeCall) -> list[Output]:
    """Transpose; one that moves the batch axis gets an error naming the idiom rules."""
    perm = call.attr("perm")
    x = call.value(0)
    full = list(range(x.rank, -1, -1)) if perm is None else [int(p) for p in perm]
    if sorted(full) == list(range(x.rank + 1)) and full[0] != 0:
        raise BatchAxisMovedError(
            f"{call.where}: perm={full} moves the batch axis and the graph does not undo it; "
            f"{BATCH_TRANSPOSE_RULES}; otherwise supported: permutations that keep the "
            "batch axis 0 first"
        )
    return convert_transpose(call)


def convert_gemm_any_opset(call: NodeCall) -> list[Output]:
    """Gemm of every opset: before 7, ``broadcast=0`` means C has the output's shape."""
    if call.opset < 7 and call.has(2) and not int(call.attr("broadcast", 0)):
        c = np.asarray(call.const(2, "bias C"), dtype=np.float64)
        b = np.asarray(call.const(1, "B (the weights)"))
        n_out = b.shape[0] if int(call.attr("transB", 0)) else b.shape[-1]
        batch = call.builder.batch
        if c.ndim != 2 or c.shape[1] != n_out or (batch is not None and c.shape[0] != batch):
            raise call.unsupported(
                "broadcast", 0,
                f"1 (C broadcast), or 0 with C of the output's shape (M, {n_out}) (Gemm "
                f"opset {call.opset}; C has shape {c.shape})",
            )
        if not np.all(c == c[:1]):
            raise UnsupportedLayerError(
                f"{call.where}: broadcast=0 with a C whose rows differ adds a different bias "
                "to each sample of the batch; nnfab supports one bias for every sample"
            )
        ins = list(call.ins)
        ins[2] = Const(c[:1], call.const_type(2))
        call = dataclasses.replace(call, ins=ins)
    return convert_gemm(call)


def _legacy_broadcast(base: Converter) -> Converter:
    """Add/Sub/Mul/Div before opset 7: ``broadcast=1, axis=a`` aligns B at axis ``a``."""

    def convert(call: NodeCall) -> list[Output]:
        if call.opset >= 7 or not int(call.attr("broadcast", 0)) or call.attr("axis") is None:
            return base(call)
        x, c = call.ins[0], call.ins[1]
        if not isinstance(x, Value) or not isinstance(c, Const):
            raise UnsupportedLayerError(
                f"{call.where}: broadcast=1 (opset {call.opset}) needs data as A and a "
                "constant as B"
            )
        rank = x.rank + 1
        axis = int(call.attr("axis"))
        axis = axis + rank if axis < 0 else axis
        v = np.asarray(c.value)
        if axis < 0 or axis + v.ndim > rank:
            raise call.unsupported(
                "axis", call.attr("axis"), f"0..{rank - v.ndim} for a B of rank {v.ndim} "
                f"and data of rank {rank}"
            )
        aligned = v.reshape(v.shape + (1,) * (rank - axis - v.ndim))
        ins = [x, Const(aligned, c.type), *call.ins[2:]]
        return base(dataclasses.replace(call, ins=ins))

    return convert


# ================================================== channels-last domain
def _to_first(v: Value) -> Value:
    """The NCHW view of an NHWC value (only its index changes)."""
    return Value(v.ir, np.moveaxis(v.index, -1, 0), v.view)


def _to_last(v: Value) -> Value:
    return Value(v.ir, np.moveaxis(v.index, 0, -1), v.view)


def _channels_last(base: Converter, transpose_weights: bool) -> Converter:
    """A channels-last-domain op: the standard converter between index relabellings."""

    def convert(call: NodeCall) -> list[Output]:
        x = call.value(0, "X")
        if x.rank not in (2, 3):
            raise UnsupportedLayerError(
                f"{call.where}: input has shape {('N', *x.shape)}; the QONNX channels-last "
                "ops take (N, L, C) or (N, H, W, C) data"
            )
        ins: list[Value | Const | None] = [_to_first(x), *call.ins[1:]]
        if transpose_weights:
            w = call.const(1, "W (the weights, (M, k..., C/group))")
            ins[1] = Const(np.moveaxis(np.asarray(w), -1, 1), call.const_type(1))
        outs = base(dataclasses.replace(call, ins=ins))
        return [_to_last(o) if isinstance(o, Value) else o for o in outs]

    return convert


CHANNELS_LAST_CONVERTERS: dict[str, Converter] = {
    "Conv": _channels_last(convert_conv, transpose_weights=True),
    "MaxPool": _channels_last(CONVERTERS["MaxPool"], transpose_weights=False),
    "BatchNormalization": _channels_last(convert_batchnorm, transpose_weights=False),
}
"""Op type -> converter in the ``qonnx.custom_op.channels_last`` domain."""

DOMAIN_CONVERTERS: dict[str, dict[str, Converter]] = {
    CHANNELS_LAST_DOMAIN: CHANNELS_LAST_CONVERTERS
}
"""Extra ONNX domains nnfab reads, and their op tables."""


_ELEMENTWISE = _UNARY | _ARITH | {"Quant", "IntQuant", "Trunc", "BipolarQuant"}
"""Ops the channels-last search looks through (qonnx moves its Transposes above them)."""


def feeds_channels_last(consumers: dict[str, list[Any]], tensor: str) -> bool:
    """True when a node of the channels-last domain reads ``tensor``, directly or through
    elementwise ops (the input-layout vote of ``nnfab.frontends.onnx``)."""
    seen, stack = {tensor}, [tensor]
    while stack:
        t = stack.pop()
        for n in consumers.get(t, []):
            if (n.domain or "") == CHANNELS_LAST_DOMAIN and n.input[0] == t:
                return True
            if n.op_type in _ELEMENTWISE and n.input[0] == t:
                for out in n.output[:1]:
                    if out and out not in seen:
                        seen.add(out)
                        stack.append(out)
    return False


# ========================================================== thresholds
_DEFAULT_LAYOUTS = {2: "NC", 3: "NWC", 4: "NCHW"}
"""qonnx's layout guess for a MultiThreshold without ``data_layout``, by rank."""


def multithreshold(
    call: NodeCall, x: Value, thresholds: np.ndarray, axis: int | None, scale: float,
    bias: float,
) -> Value:
    """The IR MultiThreshold of ``x`` with per-channel thresholds along ONNX axis ``axis``
    (non-batch, 0-based; ``None`` or shared thresholds: any layout)."""
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim != 2 or t.shape[1] < 1 or np.any(np.isnan(t)):
        raise call.unsupported("thresholds shape", t.shape, "(C, K) or (1, K), no NaN")
    if not (np.isfinite(scale) and np.isfinite(bias)):
        raise call.unsupported("(out_scale, out_bias)", (scale, bias), "finite values")
    levels = [Fraction(bias) + k * Fraction(scale) for k in range(t.shape[1] + 1)]
    values = np.array([float(v) for v in levels])
    if any(Fraction(float(v)) != lv for v, lv in zip(values, levels, strict=True)):
        raise call.unsupported("(out_scale, out_bias)", (scale, bias),
                               "values whose levels out_bias + k * out_scale are exact in "
                               "float64")
    if t.shape[0] == 1:
        ir, index, rows = x.ir, x.index, t
    else:
        assert axis is not None
        channels = x.shape[axis]
        if t.shape[0] != channels:
            raise call.unsupported(
                "thresholds shape", t.shape,
                f"(1, K) or ({channels}, K): one row per channel of axis {axis + 1}",
            )
        perms = [p for p in layout_candidates(x.rank) if p[-1] == axis]
        perm = next((p for p in perms if call.builder.matches(x, p)), None)
        if x.rank > 1 and perm is not None:  # the channel axis is the IR's last: per channel
            ir = call.builder.require(x, perm, call.where)
            index = layout_index(x.shape, perm)
            rows = t
        else:  # one row per element, in the IR's element order (no transpose needed)
            ir = call.builder.flat(x) if x.rank == 1 else x.ir
            index = x.index
            shape = [1] * x.rank
            shape[axis] = channels
            per_element = np.broadcast_to(np.arange(channels).reshape(shape), x.shape)
            rows = np.empty((x.index.size, t.shape[1]))
            rows[x.index.ravel()] = t[per_element.ravel()]
    node = call.emit("MultiThreshold", [ir], {"out_scale": float(scale), "out_bias": float(bias)},
                     type_=exact_type(values), thresholds=rows)
    return Value(node.name, index, x.view)


def convert_multithreshold(call: NodeCall) -> list[Output]:
    x = call.value(0, "X")
    t = np.asarray(call.const(1, "thresholds"), dtype=np.float64)
    rank = x.rank + 1
    layout = call.attr("data_layout") or _DEFAULT_LAYOUTS.get(rank)
    if layout is None or len(layout) != rank:
        raise call.unsupported(
            "data_layout", call.attr("data_layout"),
            f"a layout string of {rank} letters with one C (e.g. NCHW, NHWC); it may be "
            "left out for rank 2, 3 or 4",
        )
    cdim = layout.index("C") if "C" in layout else 1
    if cdim == 0:
        raise call.unsupported("data_layout", layout, "a layout whose C is not the batch axis")
    scale = float(call.attr("out_scale", 1.0))
    bias = float(call.attr("out_bias", 0.0))
    return [multithreshold(call, x, t, cdim - 1, scale, bias)]


def _bipolar(call: NodeCall, x: Value, scale: np.ndarray) -> Value:
    s = np.asarray(scale, dtype=np.float64)
    if s.size != 1:
        raise UnsupportedLayerError(
            f"{call.where}: scale of shape {s.shape} on data; nnfab supports one scale per "
            "tensor for a bipolar (sign) activation"
        )
    value = float(s.reshape(()))
    if not np.isfinite(value) or value <= 0:
        raise call.unsupported("scale", value, "a positive power of two")
    pow2_exponents(call.where, "scale", s)
    # sign(x) * s with sign(0) = +1: one threshold at 0, levels -s and +s
    return multithreshold(call, x, np.zeros((1, 1)), None, 2 * value, -value)


def convert_bipolar_data(call: NodeCall) -> list[Output]:
    """``BipolarQuant`` on data: ``+s`` where ``x >= 0``, else ``-s``."""
    x = call.value(0, "X")
    return [_bipolar(call, x, call.const(1, "scale"))]


_QUANT = QUANT_CONVERTERS["Quant"]


def convert_quant_bipolar(call: NodeCall) -> list[Output]:
    """``Quant``: a 1-bit signed one on data is bipolar (as qonnx executes it)."""
    if len(call.ins) == 4 and all(isinstance(i, Const) for i in call.ins[1:]):
        bits = np.asarray(call.const(3, "bit width"))
        if bits.size == 1 and float(bits.reshape(())) == 1 and int(call.attr("signed", 1)):
            p = read_quant(call.where, call.attrs, call.const(1, "scale"),
                           call.const(2, "zero point"), bits)
            if np.any(p.zeropt != 0):
                raise call.unsupported("zero point", p.zeropt.tolist(), "0")
            return [_bipolar(call, call.value(0, "X"), p.scale)]
    return _QUANT(call)


# ============================================================ register
def register() -> None:
    """Install the idiom converters in the ONNX op tables (idempotent)."""
    register_op()  # the MultiThreshold IR op they emit
    CONVERTERS["Transpose"] = convert_transpose_checked
    CONVERTERS["Gemm"] = convert_gemm_any_opset
    for op in ("Add", "Sub", "Mul", "Div"):
        if not getattr(CONVERTERS[op], "_legacy", False):
            wrapped = _legacy_broadcast(CONVERTERS[op])
            wrapped._legacy = True  # type: ignore[attr-defined]
            CONVERTERS[op] = wrapped
    QUANT_CONVERTERS["MultiThreshold"] = convert_multithreshold
    QUANT_CONVERTERS["BipolarQuant"] = convert_bipolar_data
    QUANT_CONVERTERS["Quant"] = convert_quant_bipolar
    QUANT_CONVERTERS["IntQuant"] = convert_quant_bipolar


register()

__all__ = [
    "CHANNELS_LAST_CONVERTERS",
    "CHANNELS_LAST_DOMAIN",
    "DOMAIN_CONVERTERS",
    "convert_multithreshold",
    "feeds_channels_last",
    "multithreshold",
    "register",
    "rewrite_idioms",
]
