"""ONNX ``RNN`` / ``LSTM`` / ``GRU`` -> the IR ops ``SimpleRNN`` / ``LSTM`` / ``GRU``.

Importing this module registers ``convert_recurrent`` in ``onnx_layers.CONVERTERS``;
``nnfab.frontends.onnx`` calls ``rewrite_recurrent`` on every model before walking it.

Weights: ``W (D, G*u, n_in)``, ``R (D, G*u, u)``, ``B (D, 2*G*u)`` (``Wb`` then ``Rb``)
become the IR's ``kernel = W[d]^T``, ``recurrent_kernel = R[d]^T`` with the gate blocks
reordered: LSTM ``i, o, f, c`` -> ``i, f, c, o``; GRU ``z, r, h`` is the IR order. The
bias is ``Wb + Rb`` (RNN, LSTM, GRU with ``linear_before_reset=0``, whose candidate
adds ``Rbh + Wbh`` after the recurrent product, the IR's ``reset_after=False``); a GRU
with ``linear_before_reset=1`` (PyTorch's form) is ``reset_after=True`` with the bias
rows ``(Wb, Rb)``.

Supported: ``direction`` forward, reverse (``go_backwards``; Y in input time order,
``reverse_sequence``) or bidirectional (a forward and a reverse node and a
``Concatenate``: Y ``(T, 2, u)`` is the IR's ``(T, 2u)``, Y_h ``(2, u)`` its ``(2u,)``),
default activations (RNN tanh; LSTM sigmoid/tanh/tanh; GRU
sigmoid/tanh), no ``clip``, ``input_forget=0``, no ``sequence_lens``, no peepholes
``P``, initial states absent or constant zeros. Y gives ``return_sequences=True``; Y_h
the last state (a second node; the walker prunes the one nothing reads); Y_c is not computed.

Layout: ``layout=1`` (opset 14, batch first) maps directly. ``layout=0`` has the
sequence axis first, which the IR cannot hold; ``rewrite_recurrent`` rewrites what
``torch.onnx.export`` writes for a ``batch_first`` module into ``layout=1``:
``Transpose(perm=[1, 0, 2])`` into X, ``Squeeze(Y, axes=[1])`` (then the
``Transpose([1, 0, 2])`` back, or the next layer), ``Gather(.., -1, axis=1)`` of the
sequence (the last step: read from Y_h instead), ``Squeeze`` / ``Gather(.., 0 or -1,
axis=0)`` of Y_h, ``Gather(.., k, axis=0)`` of a ``Concat`` of the layers' Y_h
(``h_n[k]``, unidirectional); for a bidirectional node ``Transpose(Y, perm=[0, 2, 1, 3])``
and ``Reshape`` to ``(T, N, 2u)`` (its last step is refused). Anything else reading a
sequence-first tensor keeps a Transpose that the converter refuses.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from nnfab.errors import UnsupportedLayerError
from nnfab.frontends.onnx_idioms import rebuilt_model
from nnfab.frontends.onnx_layers import CONVERTERS, Const, NodeCall, Output, Value

log = logging.getLogger(__name__)

RECURRENT_OPS = {"RNN": "SimpleRNN", "LSTM": "LSTM", "GRU": "GRU"}
"""ONNX op type -> IR op."""

_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}
_ORDER = {"RNN": (0,), "LSTM": (0, 2, 3, 1), "GRU": (0, 1, 2)}
"""ONNX gate block k of each IR block (IR order i, f, c, o; z, r, h)."""
_ACTIVATIONS = {"RNN": ["tanh"], "LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"]}
_STANDARD = ("", "ai.onnx")
ELEMENTWISE_UNARY = frozenset({
    "Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu",
    "Softplus", "Softsign", "Identity", "Dropout", "Clip", "Gelu", "Erf", "Abs", "Neg",
})
"""Ops applied element by element (extra inputs, e.g. Clip's bounds, constant)."""


def _reorder(m: np.ndarray, op: str, units: int) -> np.ndarray:
    cols = np.concatenate([np.arange(k * units, (k + 1) * units) for k in _ORDER[op]])
    return np.ascontiguousarray(m[..., cols])


def _check(call: NodeCall) -> None:
    op = call.op_type
    acts = call.attr("activations")
    dirs = 2 if call.attr("direction", "forward") == "bidirectional" else 1
    if acts is not None and [str(a).lower() for a in acts] != _ACTIVATIONS[op] * dirs:
        raise call.unsupported("activations", list(acts),
                               f"absent or {[a.capitalize() for a in _ACTIVATIONS[op]] * dirs}")
    for key in ("activation_alpha", "activation_beta", "clip"):
        if call.attr(key) is not None:
            raise call.unsupported(key, call.attr(key), "absent")
    if int(call.attr("input_forget", 0)):
        raise call.unsupported("input_forget", call.attr("input_forget"), "0")
    direction = call.attr("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise call.unsupported("direction", direction, "'forward', 'reverse', 'bidirectional'")
    if call.has(4):
        raise call.unsupported("sequence_lens", "(given)", "absent (every sequence full)")
    if op == "LSTM" and call.has(7):
        raise call.unsupported("P (peephole weights, input 7)", "(given)", "absent")
    for i, what in ((5, "initial_h"), (6, "initial_c")):
        if not call.has(i):
            continue
        item = call.ins[i]
        if not isinstance(item, Const) or np.any(np.asarray(item.value) != 0):
            raise call.unsupported(f"{what} (input {i})", "a data tensor" if isinstance(
                item, Value) else "a nonzero constant", "absent or constant zeros")


def _node(call: NodeCall, x: str, sequence: bool, suffix: str, d: int = 0,
          backward: bool = False) -> str:
    """The IR node of direction ``d`` (weights ``W[d]``, ``R[d]``, ``B[d]``)."""
    op = call.op_type
    w = np.asarray(call.const(1, "W"), dtype=np.float64)
    r = np.asarray(call.const(2, "R"), dtype=np.float64)
    units = int(call.attr("hidden_size", r.shape[-1]))
    gates = _GATES[op] * units
    dirs = 2 if call.attr("direction", "forward") == "bidirectional" else 1
    if w.shape[:2] != (dirs, gates) or r.shape != (dirs, gates, units):
        raise call.unsupported("W / R shapes", (w.shape, r.shape),
                               f"({dirs}, {gates}, n_in) and ({dirs}, {gates}, {units})")
    b = (np.asarray(call.const(3, "B"), dtype=np.float64).reshape(dirs, 2, gates)[d]
         if call.has(3) else np.zeros((2, gates)))
    w, r = w[d:d + 1], r[d:d + 1]
    attrs: dict[str, Any] = {"units": units, "return_sequences": sequence,
                             "activation": "tanh"}
    if backward:
        attrs["go_backwards"] = True
        if sequence:
            attrs["reverse_sequence"] = True  # ONNX's Y is in input time order
    if op != "RNN":
        attrs["recurrent_activation"] = "sigmoid"
    if op == "GRU" and int(call.attr("linear_before_reset", 0)):
        attrs["reset_after"] = True
        bias = _reorder(b, op, units)
    else:
        if op == "GRU":
            attrs["reset_after"] = False
        bias = _reorder(b[0] + b[1], op, units)
    node = call.emit(RECURRENT_OPS[op], [x], attrs, suffix=suffix,
                     kernel=_reorder(w[0].T, op, units),
                     recurrent_kernel=_reorder(r[0].T, op, units), bias=bias)
    return node.name


def convert_recurrent(call: NodeCall) -> list[Output]:
    """ONNX RNN / LSTM / GRU (``layout=1``; see ``rewrite_recurrent`` for ``layout=0``)."""
    _check(call)
    x = call.value(0, "X")
    if int(call.attr("layout", 0)) != 1:
        raise call.unsupported(
            "layout", int(call.attr("layout", 0)),
            "1 (batch first), or layout=0 fed by Transpose(perm=[1, 0, 2]) of a batch-first "
            "tensor (torch.onnx.export of a batch_first module), which nnfab rewrites")
    if x.rank != 2:
        raise call.unsupported("X", ("N", *x.shape), "(batch, steps, features)")
    steps = x.shape[0]
    src = call.builder.require(x, (0, 1), call.where)
    outs = list(call.proto.output)
    # every named output gets its node; the walker prunes the ones nothing reads
    want_seq = bool(outs and outs[0])
    want_last = len(outs) > 1 and bool(outs[1])
    if not want_seq and not want_last:
        want_seq = True
    result: list[Output] = [None] * len(outs)
    units = int(call.attr("hidden_size", 0)) or np.asarray(call.const(2, "R")).shape[-1]
    direction = call.attr("direction", "forward")
    dirs = 2 if direction == "bidirectional" else 1

    def directions(sequence: bool, suffix: str) -> str:
        if dirs == 1:
            return _node(call, src, sequence, suffix, backward=direction == "reverse")
        fwd = _node(call, src, sequence, f"{suffix}_fwd")
        bwd = _node(call, src, sequence, f"{suffix}_bwd", 1, backward=True)
        # sequences (T, u) side by side per step; final states (u,) one after the other
        return call.emit("Concatenate", [fwd, bwd], {"axis": 1 if sequence else 0},
                         suffix=suffix).name

    if want_seq:
        name = directions(True, "")
        result[0] = Value(name, np.arange(steps * dirs * units, dtype=np.int64)
                          .reshape(steps, dirs, units))
    if want_last:
        name = directions(False, "_last" if want_seq else "")
        result[1] = Value(name, np.arange(dirs * units, dtype=np.int64).reshape(dirs, units))
    return result


# =========================================================== the rewrite
def _perm(node: Any) -> list[int] | None:
    for a in node.attribute:
        if a.name == "perm":
            return [int(p) for p in a.ints]
    return None


def _attr(node: Any, name: str, default: Any) -> Any:
    for a in node.attribute:
        if a.name == name:
            import onnx

            return onnx.helper.get_attribute_value(a)
    return default


class _SeqFirst:
    """Rewrites sequence-first recurrent nodes (``layout=0``) into ``layout=1``."""

    def __init__(self, onnx: Any, model: Any) -> None:
        self.onnx = onnx
        self.model = model
        g = model.graph
        self.consts = {i.name: onnx.numpy_helper.to_array(i) for i in g.initializer}
        for n in g.node:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        self.consts[n.output[0]] = onnx.numpy_helper.to_array(a.t)
        self.names = {t for n in g.node for t in (*n.input, *n.output)} | set(self.consts)
        self.names |= {i.name for i in g.input}
        self.opset = next((int(o.version) for o in model.opset_import
                           if (o.domain or "") in _STANDARD), 1)
        self.seq: dict[str, str] = {}  # (T, N, F) tensor -> its (N, T, F) twin
        self.ys: dict[str, str] = {}  # layout-0 Y (T, 1, N, H) -> layout-1 Y (N, T, 1, H)
        self.hs: dict[str, str] = {}  # layout-0 Y_h (1, N, H) -> layout-1 Y_h (N, 1, H)
        self.seq4: dict[str, str] = {}  # Y transposed to (T, N, D, H) -> layout-1 Y
        self.last: dict[str, str] = {}  # tensor of a sequence -> layout-1 Y_h of its node
        self.bidir: set[str] = set()  # sequences of bidirectional nodes
        self.bidir_h: set[str] = set()  # Y_h / Y_c of bidirectional nodes
        self.stacked: dict[str, list[str]] = {}  # Concat of Y_h (PyTorch's h_n) -> the parts
        self.held: dict[str, Any] = {}  # dropped Transpose nodes by output
        self.made: set[str] = set()
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.rewrites = 0

    def fresh(self, base: str) -> str:
        name, k = f"{base}_batch_first", 1
        while name in self.names:
            name, k = f"{base}_batch_first_{k}", k + 1
        self.names.add(name)
        return name

    def squeeze(self, x: str, axis: int, out: str) -> None:
        h = self.onnx.helper
        if self.opset >= 13:
            axes = self.fresh(f"{out}_axes")
            self.inits.append(self.onnx.numpy_helper.from_array(np.array([axis], np.int64), axes))
            self.nodes.append(h.make_node("Squeeze", [x, axes], [out], name=f"{out}_squeeze"))
        else:
            self.nodes.append(h.make_node("Squeeze", [x], [out], axes=[axis],
                                          name=f"{out}_squeeze"))
        self.rewrites += 1

    def use(self, t: str) -> None:
        """``t`` is read as it is: compute it from its twin."""
        if t in self.made:
            return
        h = self.onnx.helper
        if t in self.stacked:
            for part in self.stacked[t]:
                self.use(part)
            self.nodes.append(h.make_node("Concat", self.stacked[t], [t], axis=0))
            self.made.add(t)
            return
        if t in self.held:
            self.nodes.append(self.held[t])
        elif t in self.seq:
            self.nodes.append(h.make_node("Transpose", [self.seq[t]], [t], perm=[1, 0, 2]))
        elif t in self.ys:
            self.nodes.append(h.make_node("Transpose", [self.ys[t]], [t], perm=[1, 2, 0, 3]))
        elif t in self.hs:
            self.nodes.append(h.make_node("Transpose", [self.hs[t]], [t], perm=[1, 0, 2]))
        elif t in self.seq4:
            self.nodes.append(h.make_node("Transpose", [self.seq4[t]], [t], perm=[1, 0, 2, 3]))
        else:
            return
        self.made.add(t)

    def axes(self, node: Any) -> list[int] | None:
        if len(node.input) > 1 and node.input[1]:
            c = self.consts.get(node.input[1])
            return None if c is None else [int(a) for a in np.asarray(c).ravel()]
        a = _attr(node, "axes", None)
        return None if a is None else [int(v) for v in a]

    def index(self, node: Any) -> int | None:
        c = self.consts.get(node.input[1]) if len(node.input) > 1 else None
        if c is None or np.asarray(c).size != 1 or np.asarray(c).ndim != 0:
            return None
        return int(np.asarray(c))

    def along_sequence(self, node: Any) -> bool:
        """A node that computes each (step, sample) on its own from a sequence-first
        tensor: it runs on the batch-first twin as it is (elementwise ops, a MatMul or
        an elementwise op with a constant that broadcasts over the last axis only)."""
        return self.sequence_operand(node) is not None

    def sequence_operand(self, node: Any) -> int | None:
        """Which input of ``node`` is the sequence, when ``along_sequence`` holds."""
        op, ins = node.op_type, list(node.input)
        if len(node.output) != 1 or not ins:
            return None
        if op in ELEMENTWISE_UNARY:
            ok = ins[0] in self.seq and all(t in self.consts for t in ins[1:] if t)
            return 0 if ok else None
        if op not in ("MatMul", "Add", "Sub", "Mul", "Div") or len(ins) != 2:
            return None
        for k in ((0, 1) if op in ("Add", "Mul") else (0,)):
            c = self.consts.get(ins[1 - k])
            if ins[k] in self.seq and c is not None and (
                    c.ndim == 2 if op == "MatMul" else c.ndim <= 1):
                return k
        return None

    def visit(self, node: Any) -> bool:
        if (node.domain or "") not in _STANDARD or not node.output:
            return False
        op, ins = node.op_type, list(node.input)
        if op == "Transpose" and _perm(node) == [1, 0, 2]:
            if ins[0] in self.seq:  # back to batch first: the twin
                self.nodes.append(self.onnx.helper.make_node(
                    "Identity", [self.seq[ins[0]]], [node.output[0]], name=node.name))
                if ins[0] in self.last:
                    self.last[node.output[0]] = self.last[ins[0]]
                if ins[0] in self.bidir:
                    self.bidir.add(node.output[0])
                self.rewrites += 1
                return True
            if ins[0] not in self.consts:
                self.seq[node.output[0]] = ins[0]
                self.held[node.output[0]] = node
                return True
            return False
        if op == "Transpose" and _perm(node) == [1, 0, 2] and ins[0] in self.hs \
                and ins[0] not in self.bidir_h:
            self.nodes.append(self.onnx.helper.make_node(  # Y_h (D, N, H) -> (N, D, H)
                "Identity", [self.hs[ins[0]]], [node.output[0]], name=node.name))
            self.rewrites += 1
            return True
        if op == "Shape" and ins and ins[0] in self.seq and not node.attribute:
            twin, order = self.fresh(node.output[0]), self.fresh(f"{node.output[0]}_order")
            self.nodes.append(self.onnx.helper.make_node("Shape", [self.seq[ins[0]]], [twin],
                                                         name=f"{twin}_shape"))
            self.inits.append(self.onnx.numpy_helper.from_array(
                np.array([1, 0, 2], np.int64), order))  # (N, T, F) -> (T, N, F)
            self.nodes.append(self.onnx.helper.make_node("Gather", [twin, order],
                                                         [node.output[0]], axis=0,
                                                         name=node.name or f"{twin}_gather"))
            self.rewrites += 1
            return True
        if self.along_sequence(node):
            twin = self.fresh(node.output[0])
            new = self.onnx.NodeProto()
            new.CopyFrom(node)
            k = self.sequence_operand(node)
            assert k is not None
            new.input[k], new.output[0] = self.seq[ins[k]], twin
            self.nodes.append(new)
            self.seq[node.output[0]] = twin
            if ins[k] in self.bidir:
                self.bidir.add(node.output[0])
            self.rewrites += 1
            return True
        if op in RECURRENT_OPS and ins and ins[0] in self.seq and not _attr(node, "layout", 0):
            new = self.onnx.NodeProto()
            new.CopyFrom(node)
            new.input[0] = self.seq[ins[0]]
            for a in list(new.attribute):
                if a.name == "layout":
                    new.attribute.remove(a)
            new.attribute.append(self.onnx.helper.make_attribute("layout", 1))
            for k, out in enumerate(node.output):
                if out:
                    twin = self.fresh(out)
                    new.output[k] = twin
                    (self.ys if k == 0 else self.hs)[out] = twin
            if _attr(node, "direction", b"forward") in (b"bidirectional", "bidirectional"):
                self.bidir.add(node.output[0])
                self.bidir_h.update(node.output[1:])
            elif node.output[0] and len(node.output) > 1 and node.output[1]:
                self.last[node.output[0]] = self.hs[node.output[1]]
            self.nodes.append(new)
            self.rewrites += 1
            return True
        if op == "Squeeze" and ins[0] in self.ys and self.axes(node) == [1]:
            twin = self.fresh(node.output[0])
            self.squeeze(self.ys[ins[0]], 2, twin)
            self.seq[node.output[0]] = twin
            if ins[0] in self.last:
                self.last[node.output[0]] = self.last[ins[0]]
            return True
        if op == "Transpose" and ins[0] in self.ys and _perm(node) == [0, 2, 1, 3]:
            self.seq4[node.output[0]] = self.ys[ins[0]]  # (T, N, D, H): PyTorch, bidirectional
            if ins[0] in self.bidir:
                self.bidir.add(node.output[0])
            return True
        if op == "Reshape" and ins[0] in self.seq4 and len(ins) == 2 and np.asarray(
                self.consts.get(ins[1], np.zeros(0))).size == 3:  # (T, N, D*H)
            twin, shape = self.fresh(node.output[0]), self.fresh(f"{node.output[0]}_shape")
            self.inits.append(self.onnx.numpy_helper.from_array(
                np.array([0, 0, -1], np.int64), shape))
            self.nodes.append(self.onnx.helper.make_node("Reshape", [self.seq4[ins[0]], shape],
                                                         [twin], name=f"{twin}_reshape"))
            self.seq[node.output[0]] = twin
            if ins[0] in self.bidir:
                self.bidir.add(node.output[0])
            self.rewrites += 1
            return True
        if op == "Squeeze" and ins[0] in self.hs and self.axes(node) == [0]:
            self.squeeze(self.hs[ins[0]], 1, node.output[0])
            return True
        if (op == "Concat" and int(_attr(node, "axis", 0)) == 0 and ins
                and all(t in self.hs for t in ins)):
            self.stacked[node.output[0]] = ins  # (layers * D, N, H); D = 1 is read below
            return True
        if op == "Gather" and len(ins) == 2 and ins[0] in self.stacked:
            parts, k = self.stacked[ins[0]], self.index(node)
            if (int(_attr(node, "axis", 0)) == 0 and k is not None
                    and -len(parts) <= k < len(parts)
                    and not any(t in self.bidir_h for t in parts)):
                self.squeeze(self.hs[parts[k]], 1, node.output[0])
                return True
            return False
        if op == "Gather" and len(ins) == 2:
            axis, k = int(_attr(node, "axis", 0)), self.index(node)
            if ins[0] in self.hs and ins[0] not in self.bidir_h and axis == 0 and k in (0, -1):
                self.squeeze(self.hs[ins[0]], 1, node.output[0])
                return True
            # the last step of a sequence, batch first (axis 1) or sequence first (axis 0)
            first = ins[0] in self.seq
            if ins[0] in self.bidir and k == -1 and axis == (0 if first else 1):
                raise UnsupportedLayerError(
                    f"node {node.name or node.output[0]!r} (Gather): the last step of a "
                    "bidirectional recurrent node's sequence is not supported; supported: "
                    "its whole sequence (Y), or a unidirectional node's last step")
            if ins[0] in self.last and k == -1 and axis == (0 if first else 1):
                self.squeeze(self.last[ins[0]], 1, node.output[0])
                return True
            if first and axis == 0 and k is not None:  # step k of a sequence-first tensor
                self.nodes.append(self.onnx.helper.make_node(
                    "Gather", [self.seq[ins[0]], ins[1]], [node.output[0]], axis=1,
                    name=node.name or f"{node.output[0]}_gather"))
                self.rewrites += 1
                return True
        return False

    def run(self) -> Any:
        g = self.model.graph
        for node in g.node:  # the walker sorts; torch writes producers first
            if not self.visit(node):
                for t in node.input:
                    if t:
                        self.use(t)
                self.nodes.append(node)
        for out in g.output:
            self.use(out.name)
        if not self.rewrites:
            return self.model
        model = rebuilt_model(self.onnx, self.model, self.nodes, self.inits,
                              set(self.seq) | set(self.ys) | set(self.hs))
        log.info("rewrote %d node(s) around sequence-first recurrent nodes into layout=1",
                 self.rewrites)
        return model


def _batch_axis(info: Any) -> int | None:
    """The axis of a graph input / output declared ``(T, N, ...)`` with a symbolic
    ``N`` (the batch) behind a fixed sequence length, else None."""
    dims = list(info.type.tensor_type.shape.dim)
    if len(dims) < 3 or not dims[0].HasField("dim_value"):
        return None
    free = [k for k, d in enumerate(dims) if not d.HasField("dim_value")]
    return 1 if free == [1] else None


def batch_first_io(onnx: Any, model: Any) -> Any:
    """``model``, or a copy whose sequence-first graph inputs and outputs ``(T, N, ...)``
    (a symbolic batch ``N`` on axis 1, as ``torch.onnx.export`` writes a module without
    ``batch_first``) are declared batch first, ``(N, T, ...)``, with a
    ``Transpose(perm=[1, 0, 2, ...])`` after each such input and before each such output.
    ``_SeqFirst`` then removes the transposes where the sequence reaches a recurrent node
    and its readers."""
    g = model.graph
    inits = {i.name for i in g.initializer}
    ins = [i for i in g.input if i.name not in inits and _batch_axis(i) is not None]
    outs = [o for o in g.output if _batch_axis(o) is not None]
    if not ins:
        return model
    h = onnx.helper
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    taken = {t for n in g.node for t in (*n.input, *n.output)} | {i.name for i in g.input}
    names = {i.name for i in ins}

    def fresh(base: str) -> str:
        name, k = f"{base}_seq_first", 1
        while name in taken:
            name, k = f"{base}_seq_first_{k}", k + 1
        taken.add(name)
        return name

    def swap(info: Any) -> None:
        dims = info.type.tensor_type.shape.dim
        first, second = onnx.TensorShapeProto.Dimension(), onnx.TensorShapeProto.Dimension()
        first.CopyFrom(dims[0])
        second.CopyFrom(dims[1])
        dims[0].CopyFrom(second)
        dims[1].CopyFrom(first)

    front: list[Any] = []
    for info in g.input:
        if info.name not in names:
            continue
        inner = fresh(info.name)
        rank = len(info.type.tensor_type.shape.dim)
        for n in g.node:
            for k, t in enumerate(n.input):
                if t == info.name:
                    n.input[k] = inner
        front.append(h.make_node("Transpose", [info.name], [inner], name=f"{inner}_transpose",
                                 perm=[1, 0, *range(2, rank)]))
        swap(info)
    back: list[Any] = []
    for info in g.output:
        if _batch_axis(info) is None or info.name not in {o.name for o in outs}:
            continue
        inner = fresh(info.name)
        rank = len(info.type.tensor_type.shape.dim)
        for n in g.node:
            for k, t in enumerate(n.output):
                if t == info.name:
                    n.output[k] = inner
            for k, t in enumerate(n.input):
                if t == info.name:
                    n.input[k] = inner
        back.append(h.make_node("Transpose", [inner], [info.name], name=f"{inner}_transpose",
                                perm=[1, 0, *range(2, rank)]))
        swap(info)
    nodes = [*front, *g.node, *back]
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]  # the shapes of renamed tensors are stale; nothing needs them
    log.warning("%s: sequence-first input(s) %s (T, N, ...) are read batch first, (N, T, ...);"
                " output(s) %s likewise", g.name or "the graph", sorted(names),
                sorted(o.name for o in outs))
    return out


def rewrite_recurrent(onnx: Any, model: Any) -> Any:
    """``model``, or a copy whose ``layout=0`` RNN / LSTM / GRU fed by a Transpose are
    ``layout=1`` (batch first), their readers rewritten to match; sequence-first graph
    inputs and outputs are declared batch first first (``batch_first_io``)."""
    if not any(n.op_type in RECURRENT_OPS for n in model.graph.node):
        return model
    return _SeqFirst(onnx, batch_first_io(onnx, model)).run()


def register() -> None:
    """Install the converters in ``onnx_layers.CONVERTERS`` (idempotent)."""
    for op in RECURRENT_OPS:
        CONVERTERS[op] = convert_recurrent


register()

__all__ = ["RECURRENT_OPS", "convert_recurrent", "register", "rewrite_recurrent"]
