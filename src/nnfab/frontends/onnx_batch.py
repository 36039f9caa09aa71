"""Graphs that move a batch axis of size 1: a new leading batch axis (``rewrite_batch_axis``).

PyTorch's export of ``nn.MultiheadAttention`` (and other sequence-first code) transposes
the batch axis behind the sequence and merges it with the heads in Reshapes. nnfab's
ONNX frontend keeps axis 0 as the batch axis, so it cannot follow such a graph. When
every graph input has a static batch size of 1, the batch axis is just an axis of size
1, and the graph can be rewritten so that a *new* leading axis is the batch:

1. ``Shape`` nodes become constants (from ``onnx.shape_inference``), and every node
   computed from constants only is folded (``onnx.reference``), so shape arithmetic is
   plain constants.
2. On the data path (tensors computed from a graph input) every tensor gets one more
   leading axis: an ``Unsqueeze(axes=[1])`` after each input (the input keeps its shape,
   its batch axis becomes a sample axis of size 1) and a ``Squeeze(axes=[1])`` before
   each output; axis attributes and inputs move by one (``Transpose`` perms, ``Reshape``
   targets, ``Softmax`` / ``Concat`` / ``Gather`` / ``Squeeze`` / ``Unsqueeze`` /
   ``Slice`` / ``Split`` / reductions / ``LayerNormalization`` / ``Flatten``), a
   ``Gemm`` on data becomes ``MatMul`` (+ ``Add``), and ``MatMul`` / elementwise ops
   broadcast as before.

The rewrite runs only when the frontend would otherwise refuse a Transpose that moves
the batch axis; ops that need the batch axis first (convolutions, pooling, ...) on the
data path make it give up, and the original error stands.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

AXIS_ATTR_OPS = frozenset({"Softmax", "LogSoftmax", "Concat", "Gather", "Split", "Flatten",
                           "LayerNormalization", "ArgMax", "ArgMin", "Hardmax", "CumSum"})
"""Ops whose ``axis`` attribute names an axis of their (data) input."""
REDUCE_OPS = frozenset({"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd",
                        "ReduceL2", "ReduceL1", "ReduceSumSquare", "ReduceLogSumExp"})
AXES_INPUT_SINCE = {"Squeeze": 13, "Unsqueeze": 13, "ReduceSum": 13, "ReduceMean": 18,
                    "ReduceMax": 18, "ReduceMin": 18, "ReduceProd": 18, "ReduceL2": 18,
                    "ReduceL1": 18, "ReduceSumSquare": 18, "ReduceLogSumExp": 18}
"""Opset from which ``axes`` is an input rather than an attribute."""
SAME_RANK_OPS = frozenset({
    "Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu",
    "Celu", "Softplus", "Softsign", "Erf", "Gelu", "Exp", "Log", "Sqrt", "Neg", "Abs",
    "Reciprocal", "Clip", "Identity", "Dropout", "Cast", "Add", "Sub", "Mul", "Div", "Pow",
    "Max", "Min", "Sum", "Mean", "Where", "Equal", "Less", "Greater", "Not", "MatMul",
    "Quant", "IntQuant", "Trunc", "BipolarQuant", "PRelu", "ThresholdedRelu", "Sign",
    "Floor", "Ceil", "Round",
})
"""Ops that need no change for a new leading axis (elementwise, broadcasting, MatMul)."""


class RewriteError(Exception):
    """The graph cannot be rewritten (the caller keeps its original error)."""


def _shift(axis: int) -> int:
    return axis + 1 if axis >= 0 else axis


def moves_batch_axis(model: Any) -> bool:
    """Whether a Transpose of ``model`` moves axis 0 (cheap pre-check)."""
    from onnx import helper

    for node in model.graph.node:
        if node.op_type == "Transpose":
            perm = next((helper.get_attribute_value(a) for a in node.attribute
                         if a.name == "perm"), None)
            if perm is None or int(perm[0]) != 0:
                return True
    return False


def static_batch_one(model: Any) -> bool:
    """Every graph input has a static batch axis of size 1."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    for info in inputs:
        dims = list(info.type.tensor_type.shape.dim)
        if not dims or not dims[0].HasField("dim_value") or dims[0].dim_value != 1:
            return False
    return bool(inputs)


def rewrite_batch_axis(onnx: Any, model: Any) -> Any:
    """A copy of ``model`` with a new leading batch axis (module docstring), or raise
    ``RewriteError``."""
    return _Rewriter(onnx, model).run()


class _Rewriter:
    def __init__(self, onnx: Any, model: Any) -> None:
        self.onnx = onnx
        self.model = onnx.shape_inference.infer_shapes(model)
        g = self.model.graph
        self.opset = next((o.version for o in self.model.opset_import
                           if o.domain in ("", "ai.onnx")), 13)
        self.consts: dict[str, np.ndarray] = {
            i.name: onnx.numpy_helper.to_array(i) for i in g.initializer}
        self.shapes: dict[str, list[int]] = {}
        for info in [*g.input, *g.value_info, *g.output]:
            dims = info.type.tensor_type.shape.dim
            if dims and all(d.HasField("dim_value") for d in dims):
                self.shapes[info.name] = [int(d.dim_value) for d in dims]
        inits = set(self.consts)
        self.inputs = [i.name for i in g.input if i.name not in inits]
        self.data: set[str] = set(self.inputs)
        self.nodes: list[Any] = []
        self.counter = 0

    # ------------------------------------------------------------ helpers
    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{base}__b{self.counter}"

    def const(self, base: str, value: np.ndarray) -> str:
        name = self.fresh(base)
        self.consts[name] = np.asarray(value)
        return name

    def attrs(self, node: Any) -> dict[str, Any]:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def make(self, op: str, ins: list[str], outs: list[str], name: str, **attrs: Any) -> None:
        self.nodes.append(self.onnx.helper.make_node(op, ins, outs, name=name, **attrs))

    def fold(self, node: Any) -> bool:
        """Evaluate a node whose inputs are all constants; True when it was folded."""
        if node.op_type == "Shape":
            shape = self.shapes.get(node.input[0])
            if shape is None:
                raise RewriteError(f"Shape of {node.input[0]!r} is not static")
            a = self.attrs(node)
            start, end = int(a.get("start", 0)), a.get("end")
            self.consts[node.output[0]] = np.array(
                shape[start:None if end is None else int(end)], dtype=np.int64)
            return True
        ins = [t for t in node.input if t]
        if node.domain not in ("", "ai.onnx") or not all(t in self.consts for t in ins):
            return False
        if node.op_type == "Constant":
            return False  # kept as a node; read below
        from onnx.reference import ReferenceEvaluator

        feeds = {t: self.consts[t] for t in ins}
        outs = ReferenceEvaluator(node).run(None, feeds)
        for name, value in zip(node.output, outs, strict=False):
            self.consts[name] = np.asarray(value)
        return True

    def axes_of(self, node: Any) -> tuple[list[int] | None, bool]:
        """The ``axes`` of a Squeeze / Unsqueeze / reduction and whether it is an input."""
        since = AXES_INPUT_SINCE.get(node.op_type)
        if since is not None and self.opset >= since:
            if len(node.input) > 1 and node.input[1]:
                if node.input[1] not in self.consts:
                    raise RewriteError(f"{node.name}: axes are not constant")
                return [int(v) for v in np.asarray(self.consts[node.input[1]]).ravel()], True
            return None, True
        axes = self.attrs(node).get("axes")
        return (None if axes is None else [int(v) for v in axes]), False

    # ------------------------------------------------------------ rewrite
    def axes_const(self, axes: list[int]) -> list[str]:
        """The ``axes`` operand (an input from opset 13, else nothing)."""
        return [self.const("axes", np.array(axes, np.int64))] if self.opset >= 13 else []

    def axes_attr(self, axes: list[int]) -> dict[str, Any]:
        return {} if self.opset >= 13 else {"axes": axes}

    def run(self) -> Any:
        h = self.onnx.helper
        g = self.model.graph
        self.rename: dict[str, str] = {}
        for name in self.inputs:  # the input's own batch axis becomes a sample axis
            inner = self.fresh(name)
            self.make("Unsqueeze", [name, *self.axes_const([1])], [inner], f"{inner}_unsqueeze",
                      **self.axes_attr([1]))
            self.rename[name] = inner
        for node in g.node:
            if node.op_type == "Constant":
                value = self.attrs(node).get("value")
                if value is None:
                    raise RewriteError(f"{node.name}: a Constant without a tensor value")
                self.consts[node.output[0]] = self.onnx.numpy_helper.to_array(value)
                continue
            ins = [self.rename.get(t, t) for t in node.input]
            if node.op_type == "Shape":  # the original (static) shape, a constant
                self.fold(node)
                continue
            if not any(t in self.data for t in node.input if t):
                if not self.fold(node):
                    self.nodes.append(node)
                continue
            self.rewrite(node, ins)
            self.data.update(t for t in node.output if t)
        for out in g.output:  # the graph output: Squeeze the new axis back out
            if out.name not in self.data:
                raise RewriteError(f"output {out.name!r} is not computed from the inputs")
            inner = self.fresh(out.name)
            for n in self.nodes:
                for k, t in enumerate(n.output):
                    if t == out.name:
                        n.output[k] = inner
                for k, t in enumerate(n.input):
                    if t == out.name:
                        n.input[k] = inner
            self.make("Squeeze", [inner, *self.axes_const([1])], [out.name],
                      f"{inner}_squeeze", **self.axes_attr([1]))
        used = {t for n in self.nodes for t in n.input}
        inits = [self.onnx.numpy_helper.from_array(np.asarray(v), k)
                 for k, v in self.consts.items() if k in used]
        graph = h.make_graph(self.nodes, g.name, [i for i in g.input if i.name in self.inputs],
                             list(g.output), inits)
        out = h.make_model(graph, opset_imports=list(self.model.opset_import))
        out.ir_version = self.model.ir_version
        log.info("rewrote %s with a new leading batch axis (a Transpose moves its batch axis "
                 "of size 1)", g.name or "the graph")
        return out

    def rewrite(self, node: Any, ins: list[str]) -> None:
        op = node.op_type
        a = self.attrs(node)
        outs = list(node.output)
        if op in SAME_RANK_OPS:
            self.nodes.append(self._copy(node, ins, a))
        elif op == "Transpose":
            rank = len(self.shapes.get(node.input[0], [])) or None
            perm = a.get("perm")
            if perm is None:
                if rank is None:
                    raise RewriteError(f"{node.name}: Transpose without perm of unknown rank")
                perm = list(range(rank - 1, -1, -1))
            self.make("Transpose", ins, outs, node.name, perm=[0, *(int(p) + 1 for p in perm)])
        elif op == "Reshape":
            if node.input[1] not in self.consts:
                raise RewriteError(f"{node.name}: Reshape to a shape that is not constant")
            target = [int(v) for v in np.asarray(self.consts[node.input[1]]).ravel()]
            kw = {k: v for k, v in a.items() if k == "allowzero"}
            self.make("Reshape", [ins[0], self.const("shape", np.array([1, *target], np.int64))],
                      outs, node.name, **kw)
        elif op in ("Squeeze", "Unsqueeze") or op in REDUCE_OPS:
            axes, as_input = self.axes_of(node)
            if axes is None:
                if op in ("Squeeze", "Unsqueeze"):
                    raise RewriteError(f"{node.name}: {op} without axes")
                rank = len(self.shapes.get(node.input[0], []))
                axes = list(range(rank))
            new = [_shift(v) for v in axes]
            if op == "Unsqueeze":  # negative axes count from the output's end: unchanged
                new = [v + 1 if v >= 0 else v for v in axes]
            rest = {k: v for k, v in a.items() if k != "axes"}
            if as_input:
                self.make(op, [ins[0], self.const("axes", np.array(new, np.int64))], outs,
                          node.name, **rest)
            else:
                self.make(op, [ins[0]], outs, node.name, axes=new, **rest)
        elif op == "Concat" and not all(t in self.data for t in node.input if t):
            raise RewriteError(f"{node.name}: Concat of data and constants")
        elif op in AXIS_ATTR_OPS:
            default = 1 if op == "Flatten" else (-1 if op in ("Softmax", "LogSoftmax",
                                                             "Hardmax") and self.opset >= 13
                                                  else 0)
            axis = int(a.get("axis", default))
            if op in ("Softmax", "LogSoftmax", "Hardmax") and self.opset < 13:
                raise RewriteError(f"{node.name}: {op} before opset 13 flattens from its axis")
            if op == "Flatten":
                raise RewriteError(f"{node.name}: Flatten with a new leading axis")
            rest = {k: v for k, v in a.items() if k != "axis"}
            # a constant table indexed by data keeps its axes
            table = op == "Gather" and node.input[0] not in self.data
            axis_new = axis if table else _shift(axis)
            self.make(op, ins, outs, node.name, axis=axis_new, **rest)
        elif op == "Slice":
            if self.opset < 10:
                raise RewriteError(f"{node.name}: Slice before opset 10")
            starts = ins[1]
            n = int(np.asarray(self.consts[node.input[1]]).size) if starts in self.consts \
                else None
            if len(node.input) > 3 and node.input[3]:
                axes = [int(v) for v in np.asarray(self.consts[node.input[3]]).ravel()]
            elif n is not None:
                axes = list(range(n))
            else:
                raise RewriteError(f"{node.name}: Slice with data-dependent starts")
            new_ins = [*ins[:3], self.const("axes", np.array([_shift(v) for v in axes],
                                                             np.int64))]
            if len(ins) > 4 and ins[4]:
                new_ins.append(ins[4])
            self.make("Slice", new_ins, outs, node.name)
        elif op == "Gemm":
            self._gemm(node, ins, a)
        else:
            raise RewriteError(f"{node.name}: {op} on the data path")

    def _copy(self, node: Any, ins: list[str], attrs: dict[str, Any]) -> Any:
        return self.onnx.helper.make_node(node.op_type, ins, list(node.output), name=node.name,
                                          domain=node.domain, **attrs)

    def _gemm(self, node: Any, ins: list[str], a: dict[str, Any]) -> None:
        """``Gemm`` on data (2-D only) as ``MatMul`` (+ ``Add``) on the 3-D tensor."""
        if node.input[1] not in self.consts or int(a.get("transA", 0)):
            raise RewriteError(f"{node.name}: Gemm with data weights or transA=1")
        b = np.asarray(self.consts[node.input[1]], dtype=np.float64)
        if int(a.get("transB", 0)):
            b = b.T
        b = b * float(a.get("alpha", 1.0))
        out = node.output[0]
        has_c = len(node.input) > 2 and node.input[2]
        mm = self.fresh(out) if has_c else out
        self.make("MatMul", [ins[0], self.const("B", b.astype(np.float32))], [mm],
                  f"{node.name}_matmul")
        if has_c:
            if node.input[2] not in self.consts:
                raise RewriteError(f"{node.name}: Gemm with a data bias C")
            c = np.asarray(self.consts[node.input[2]], dtype=np.float64) * float(
                a.get("beta", 1.0))
            self.make("Add", [mm, self.const("C", c.astype(np.float32))], [out],
                      f"{node.name}_add")
