"""ONNX / QONNX frontend: an ``onnx.ModelProto`` or ``.onnx`` file -> ``nnfab.ir.Graph``.

Needs only the ``onnx`` package (imported lazily); QONNX ``Quant``, ``BipolarQuant`` and
``Trunc`` nodes are read as plain nodes of the ``qonnx.custom_op.general`` domain, so
Brevitas' QONNX export converts without qonnx or brevitas installed.

- Constants: initializers, ``Constant`` nodes and every node computed from constants only
  are folded (standard ops with ``onnx.reference``, QONNX ops with
  ``nnfab.frontends.onnx_quant``): Reshape shape inputs, transposed or quantized weights.
- Layout: ONNX data is channels-first, the IR channels-last. A graph input of rank >= 3
  (batch included) that reaches a Conv, pooling or BatchNormalization becomes a
  channels-last IR input (``(N, C, H, W)`` -> IR ``(H, W, C)``: feed the converted model
  NHWC arrays); an input that a Transpose turns from NHWC into NCHW (TensorFlow
  exporters) is already channels-last and keeps its shape. See ``onnx_layers`` for how
  Transpose / Flatten / Reshape are absorbed.
- Quantization: a QONNX Quant on a constant quantizes it exactly and sets the consuming
  layer's ``weight`` / ``bias`` precision; on data it becomes the result type of the
  layer before it (or of a linear Activation). See ``onnx_quant``; scales that are not
  powers of two: ``onnx_scales``.
- Shapes: nnfab's own shapes are checked against ``onnx.shape_inference`` where it knows
  them, to catch mapping bugs.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from nnfab.errors import FrontendError, GraphError, UnsupportedLayerError
from nnfab.frontends.onnx_batch import RewriteError, rewrite_batch_axis, static_batch_one
from nnfab.frontends.onnx_gelu import fuse_erf_gelu
from nnfab.frontends.onnx_idioms import DOMAIN_CONVERTERS, feeds_channels_last, rewrite_idioms
from nnfab.frontends.onnx_layers import (
    CONVERTERS,
    VIEW_OPS,
    BatchAxisMovedError,
    Builder,
    Const,
    NodeCall,
    Output,
    Value,
    channels_last,
    identity,
    layout_candidates,
    layout_index,
)
from nnfab.frontends.onnx_quant import QONNX_DOMAINS, QUANT_CONVERTERS, fold_constant
from nnfab.frontends.onnx_recurrent import rewrite_recurrent
from nnfab.frontends.onnx_scales import ScaleOptions, ScaleTracker
from nnfab.ir.graph import Graph, Node
from nnfab.ir.names import Namespace, sanitize
from nnfab.ir.ops import infer_shapes

log = logging.getLogger(__name__)

STANDARD_DOMAINS = ("", "ai.onnx")
SUPPORTED_OPS: tuple[str, ...] = (*sorted(CONVERTERS), *sorted(QUANT_CONVERTERS))
"""Every ONNX op type nnfab converts (QONNX ops: in the domains of ``QONNX_DOMAINS``)."""

_TYPE_KEEPING = frozenset({"Identity", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze"})
"""Constant-folded ops after which a quantized constant keeps its type."""
_LAYOUT_FREE = frozenset(
    {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "Clip", "Identity", "Dropout",
     "Cast", "Add", "Sub", "Mul", "Div", "Sum", "Quant", "IntQuant", "Trunc"}
)
"""Ops that do not care about layout: the input-layout search looks through them."""
_SPATIAL = frozenset(
    {"Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization",
     "Pad", "Slice", "Resize", "Upsample", "ConvTranspose"}
)
_FLOAT_TYPES = (1, 10, 11, 16)


def import_onnx() -> Any:
    """Import the ``onnx`` package, or say how to install it."""
    try:
        import onnx
    except ImportError as e:
        raise FrontendError(
            f"the ONNX frontend needs the onnx package ({e}); install it with "
            "pip install 'nnfab[onnx]'"
        ) from e
    return onnx


def load_onnx_model(path: str | os.PathLike[str]) -> Any:
    """Load an ``.onnx`` file (external data beside it is loaded too)."""
    p = Path(path)
    if not p.exists():
        raise FrontendError(f"ONNX model file {str(p)!r} does not exist")
    if p.is_dir():
        raise FrontendError(f"{str(p)!r} is a directory, not an .onnx file")
    onnx = import_onnx()
    try:
        model = onnx.load(str(p))
    except Exception as e:  # protobuf raises several kinds; the message says which
        raise FrontendError(f"could not read {str(p)!r} as ONNX: {type(e).__name__}: {e}") from e
    log.info("loaded ONNX model %s (producer %r, ir_version %d)", p, model.producer_name,
             model.ir_version)
    return model


def _as_model(onnx: Any, model_or_path: Any) -> tuple[Any, str]:
    if isinstance(model_or_path, str | os.PathLike):
        return load_onnx_model(model_or_path), str(model_or_path)
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path, "<ModelProto>"
    inner = getattr(model_or_path, "model", None)  # a qonnx ModelWrapper
    if isinstance(inner, onnx.ModelProto):
        return inner, "<ModelWrapper>"
    if isinstance(model_or_path, bytes):
        try:
            return onnx.load_from_string(model_or_path), "<bytes>"
        except Exception as e:
            raise FrontendError(f"the bytes given are not an ONNX model: {e}") from e
    raise FrontendError(
        f"expected an onnx.ModelProto, a qonnx ModelWrapper or the path of an .onnx file, "
        f"got {type(model_or_path).__name__}"
    )


def onnx_to_graph(model_or_path: Any, scale_options: ScaleOptions | None = None) -> Graph:
    """Translate an ONNX / QONNX model (ModelProto, ModelWrapper or ``.onnx`` path) to the IR.

    ``scale_options``: how real (non-power-of-two) Quant scales are applied (``onnx_scales``).
    """
    onnx = import_onnx()
    model, origin = _as_model(onnx, model_or_path)
    try:
        graph = _Walker(onnx, model, origin, scale_options).run()
    except BatchAxisMovedError as first:  # batch size 1: try a new leading batch axis
        if not static_batch_one(model):
            raise
        try:
            rewritten = rewrite_batch_axis(onnx, model)
        except RewriteError as why:
            log.info("%s: no leading batch axis could be added (%s)", origin, why)
            raise first from None
        graph = _Walker(onnx, rewritten, origin, scale_options).run()
    log.info("converted ONNX model %s: %d IR nodes, inputs %s, outputs %s", origin,
             len(graph), graph.inputs, graph.outputs)
    return graph


def _attribute(onnx: Any, attr: Any) -> Any:
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [v.decode() if isinstance(v, bytes) else v for v in value]
    if isinstance(value, onnx.TensorProto):
        return onnx.numpy_helper.to_array(value)
    return value


class _Walker:
    """Converts the nodes of one ONNX graph in order."""

    def __init__(self, onnx: Any, model: Any, origin: str,
                 scale_options: ScaleOptions | None = None) -> None:
        self.onnx = onnx
        # exporter idioms (onnx_idioms), sequence-first RNN / LSTM / GRU (onnx_recurrent)
        self.model = rewrite_recurrent(onnx, fuse_erf_gelu(onnx, rewrite_idioms(onnx, model)))
        model = self.model
        self.origin = origin
        self.opsets = {(imp.domain or ""): int(imp.version) for imp in model.opset_import}
        self.opset = self.opsets.get("", self.opsets.get("ai.onnx", 1))
        self.names = Namespace()
        name = sanitize(model.graph.name or "onnx_model")
        self.graph = Graph(name=name)
        self.env: dict[str, Value | Const] = {}
        self.dropped: dict[str, str] = {}  # ONNX outputs nnfab does not produce -> who
        self.root: dict[str, str] = {}
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        self.inferred: dict[str, tuple[int | None, ...]] = {}
        self.builder = Builder(self.graph, self.names, None)
        self.scales = ScaleTracker(self.builder, scale_options)

    # ----------------------------------------------------------- the walk
    def run(self) -> Graph:
        g = self.model.graph
        if len(g.sparse_initializer):
            raise UnsupportedLayerError(f"{self.origin}: sparse initializers are not supported")
        for init in g.initializer:
            self.env[init.name] = Const(self.onnx.numpy_helper.to_array(init))
        nodes = self._sorted_nodes()
        self._infer_onnx_shapes()
        self._count_readers(nodes)
        data_inputs = [i for i in g.input if i.name not in self.env]
        if not data_inputs:
            raise FrontendError(f"{self.origin}: the model has no data input")
        shapes = {i.name: self._input_shape(i) for i in data_inputs}
        batches = {b for b, _ in shapes.values()}
        self.builder.batch = batches.pop() if len(batches) == 1 else None
        for i in data_inputs:
            self._add_input(i.name, shapes[i.name][1])
        for node in nodes:
            self._convert(node)
        self._set_outputs([o.name for o in g.output])
        self._prune()
        self.graph.metadata.update(
            {
                "source": "onnx",
                "source_model": self.origin,
                "producer": f"{self.model.producer_name} {self.model.producer_version}".strip(),
                "opsets": dict(self.opsets),
                "onnx_tensors": {
                    k: v.ir for k, v in self.env.items()
                    if isinstance(v, Value) and v.ir in self.graph.tensors
                },
            }
        )
        try:
            infer_shapes(self.graph)
            self.graph.validate()
        except GraphError as e:
            raise FrontendError(f"{self.origin}: invalid converted graph: {e}") from e
        return self.graph

    def _sorted_nodes(self) -> list[Any]:
        """The graph's nodes, producers first (ONNX requires it; some files break the rule)."""
        nodes = list(self.model.graph.node)
        known = set(self.env) | {i.name for i in self.model.graph.input} | {""}
        order: list[Any] = []
        pending = nodes
        while pending:
            ready = [n for n in pending if all(t in known for t in n.input)]
            if not ready:
                missing = sorted({t for n in pending for t in n.input if t not in known})
                raise FrontendError(
                    f"{self.origin}: tensors {missing[:5]} are read but never produced "
                    "(or the graph has a cycle)"
                )
            ready_ids = {id(n) for n in ready}
            for n in ready:
                known.update(n.output)
            order += ready
            pending = [n for n in pending if id(n) not in ready_ids]
        return order

    def _infer_onnx_shapes(self) -> None:
        try:
            inferred = self.onnx.shape_inference.infer_shapes(self.model, strict_mode=False)
        except Exception as e:  # custom domains or old files; the check is optional
            log.debug("%s: ONNX shape inference failed (%s); shapes are not cross-checked",
                      self.origin, e)
            return
        g = inferred.graph
        for info in (*g.value_info, *g.output):
            dims = info.type.tensor_type.shape.dim
            if info.type.tensor_type.HasField("shape"):
                self.inferred[info.name] = tuple(
                    d.dim_value if d.HasField("dim_value") else None for d in dims
                )

    def _count_readers(self, nodes: list[Any]) -> None:
        """How many nodes read each tensor, looking through ops that make no IR node."""
        for node in nodes:
            for t in node.input:
                if t:
                    self.consumers[t].append(node)
        readers: dict[str, int] = defaultdict(int)
        for node in nodes:
            view = node.op_type in VIEW_OPS and (node.domain or "") in STANDARD_DOMAINS
            for k, t in enumerate(node.input):
                if not t:
                    continue
                if view and k == 0:
                    for out in node.output[:1]:
                        self.root[out] = self.root.get(t, t)
                else:
                    readers[self.root.get(t, t)] += 1
        for out in self.model.graph.output:
            readers[self.root.get(out.name, out.name)] += 1
        self.builder.root_readers = dict(readers)

    # ------------------------------------------------------------- inputs
    def _input_shape(self, info: Any) -> tuple[int | None, tuple[int, ...]]:
        where = f"{self.origin}: input {info.name!r}"
        ttype = info.type.tensor_type
        if not info.type.HasField("tensor_type") or ttype.elem_type not in _FLOAT_TYPES:
            raise UnsupportedLayerError(f"{where}: nnfab needs a float tensor input")
        dims = list(ttype.shape.dim)
        if len(dims) < 2:
            raise UnsupportedLayerError(
                f"{where}: shape of rank {len(dims)}; nnfab needs (batch, features...)"
            )
        batch = dims[0].dim_value if dims[0].HasField("dim_value") else None
        rest = []
        for ax, d in enumerate(dims[1:], start=1):
            if not d.HasField("dim_value") or d.dim_value < 1:
                raise FrontendError(
                    f"{where}: axis {ax} has no fixed size ({d.dim_param or '?'}); nnfab needs "
                    "fixed sizes except the batch axis: export with a fixed input shape"
                )
            rest.append(int(d.dim_value))
        return batch, tuple(rest)

    def _input_perm(self, name: str, rank: int) -> tuple[int, ...]:
        """Channels-last IR layout for channels-first image inputs; the ONNX order otherwise."""
        if rank < 2:
            return identity(rank)
        to_nchw = [0, rank, *range(1, rank)]
        votes: set[str] = set()
        seen = {name}
        stack = [name]
        while stack:
            t = stack.pop()
            for node in self.consumers.get(t, []):
                if node.op_type == "Transpose" and node.input[0] == t:
                    perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
                    if perm == to_nchw:
                        votes.add("nhwc")
                    elif perm == [0, *range(2, rank + 1), 1] and feeds_channels_last(
                            self.consumers, node.output[0]):
                        votes.add("nchw")  # NCHW -> NHWC before QONNX channels-last ops
                elif (node.op_type in _SPATIAL and node.input[0] == t
                      and (node.domain or "") in STANDARD_DOMAINS):
                    votes.add("nchw")
                elif node.op_type in _LAYOUT_FREE:
                    for out in node.output:
                        if out and out not in seen:
                            seen.add(out)
                            stack.append(out)
        if "nchw" in votes:
            return channels_last(rank)
        return identity(rank)

    def _add_input(self, onnx_name: str, shape: tuple[int, ...]) -> None:
        perm = self._input_perm(onnx_name, len(shape))
        ir_shape = tuple(shape[p] for p in perm)
        name = self.builder.fresh(onnx_name)
        node = Node(name, "Input", [], {"shape": ir_shape}, source_class="Input")
        self.graph.add_node(node, ir_shape)
        self.env[onnx_name] = Value(name, layout_index(shape, perm))
        self.builder.ir_root[name] = onnx_name
        layout = "unchanged" if perm == identity(len(shape)) else "channels_last"
        meta = self.graph.metadata
        meta.setdefault("input_layouts", {})[name] = layout
        meta.setdefault("onnx_input_shapes", {})[name] = ["N", *shape]
        log.info("input %r: ONNX shape %s -> IR shape %s (%s)", onnx_name, ("N", *shape),
                 ir_shape, layout)

    # -------------------------------------------------------------- nodes
    def _lookup(self, tensor: str, where: str) -> Value | Const:
        if tensor in self.env:
            return self.env[tensor]
        if tensor in self.dropped:
            raise UnsupportedLayerError(
                f"{where} reads {tensor!r}, an output of {self.dropped[tensor]} that nnfab "
                "does not support (only the first output is computed)"
            )
        raise FrontendError(f"{where} reads tensor {tensor!r}, which nothing produces")

    def _convert(self, node: Any) -> None:
        op = node.op_type
        domain = node.domain or ""
        label = node.name or (node.output[0] if node.output else "?")
        where = f"node {label!r} ({op})"
        ins = [self._lookup(t, where) if t else None for t in node.input]
        attrs = {a.name: _attribute(self.onnx, a) for a in node.attribute}
        qonnx = domain in QONNX_DOMAINS
        if not qonnx and domain not in STANDARD_DOMAINS and domain not in DOMAIN_CONVERTERS:
            raise UnsupportedLayerError(
                f"{where}: domain {domain!r} is not supported; supported: the standard ONNX "
                f"domain and the QONNX domains "
                f"{', '.join((*QONNX_DOMAINS, *DOMAIN_CONVERTERS))}"
            )
        present = [i for i in ins if i is not None]
        if all(isinstance(i, Const) for i in present):
            outs: list[Output] = list(self._fold(node, where, attrs, ins, qonnx))
        else:
            table = DOMAIN_CONVERTERS.get(domain) or (QUANT_CONVERTERS if qonnx else CONVERTERS)
            converter = table.get(op)
            if converter is None and domain in DOMAIN_CONVERTERS:
                raise UnsupportedLayerError(
                    f"{where}: op type {op!r} of domain {domain!r} is not supported; "
                    f"supported there: {', '.join(sorted(table))}"
                )
            if converter is None:
                raise UnsupportedLayerError(
                    f"{where}: op type {op!r}{f' of domain {domain!r}' if domain else ''} is "
                    f"not supported; supported: {', '.join(SUPPORTED_OPS)} (Quant, IntQuant, "
                    "BipolarQuant, Trunc and MultiThreshold in the QONNX domain)"
                )
            source = node.name or f"{op}_{node.output[0]}"
            opset = self.opsets.get(domain, self.opset)
            call = NodeCall(self.builder, node, ins, opset, source, attrs)
            outs = self.scales.convert(call, converter)
        for k, out_name in enumerate(node.output):
            if not out_name:
                continue
            out = outs[k] if k < len(outs) else None
            if out is None:
                self.dropped[out_name] = where
                continue
            self.env[out_name] = out
            if isinstance(out, Value):
                self.builder.ir_root[out.ir] = self.root.get(out_name, out_name)
                self._check_shape(out_name, out, where)

    def _fold(self, node: Any, where: str, attrs: dict[str, Any],
              ins: list[Value | Const | None], qonnx: bool) -> list[Output]:
        ins = self.scales.real_consts(ins, where, node.op_type, self.opset, node)
        consts = [i for i in ins if isinstance(i, Const)]
        if qonnx:
            if len(consts) != len(ins):
                raise UnsupportedLayerError(f"{where}: an optional input is missing")
            return [fold_constant(where, node.op_type, attrs, [c.value for c in consts])]
        from onnx.reference import ReferenceEvaluator

        feeds = {t: i.value for t, i in zip(node.input, ins, strict=True) if isinstance(i, Const)}
        try:
            results = ReferenceEvaluator(node, opsets={"": self.opset}).run(None, feeds)
        except Exception as e:  # the reference evaluator raises many kinds
            raise UnsupportedLayerError(
                f"{where}: cannot fold this node of constants ({type(e).__name__}: {e})"
            ) from e
        keep = node.op_type in _TYPE_KEEPING and consts and consts[0].type is not None
        if node.op_type not in _TYPE_KEEPING and any(c.type is not None for c in consts):
            log.info("%s: folding quantized constants through %s drops their fixed-point "
                     "type; the configured precision applies", where, node.op_type)
        return self.scales.folded(
            ins, [Const(np.asarray(r), consts[0].type if keep else None) for r in results])

    def _check_shape(self, name: str, value: Value, where: str) -> None:
        dims = self.inferred.get(name)
        if dims is None or len(dims) != value.rank + 1 or any(d is None for d in dims[1:]):
            return
        if tuple(dims[1:]) != value.shape:
            raise FrontendError(
                f"{where}: nnfab computes shape {('N', *value.shape)} for tensor {name!r}, ONNX "
                f"shape inference gives {dims}; the ONNX frontend mapped this node wrongly"
            )

    # ------------------------------------------------------------ outputs
    def _set_outputs(self, names: list[str]) -> None:
        meta = self.graph.metadata
        meta["output_layouts"] = []
        meta["onnx_output_shapes"] = []
        for name in names:
            item = self.scales.output(name, self._lookup(name, f"graph output {name!r}"))
            if isinstance(item, Const):
                raise UnsupportedLayerError(
                    f"{self.origin}: graph output {name!r} is a constant (it does not depend "
                    "on the input)"
                )
            for perm in layout_candidates(item.rank):
                if self.builder.matches(item, perm):
                    ir = self.builder.require(item, perm, f"graph output {name!r}")
                    layout = "unchanged" if perm == identity(item.rank) else "channels_last"
                    break
            else:
                ir, layout = item.ir, "permuted"
                meta.setdefault("onnx_output_index", {})[ir] = item.index.ravel().tolist()
                log.warning(
                    "graph output %r (ONNX shape %s) comes out of the IR in another element "
                    "order: with index = graph.metadata['onnx_output_index'][%r], the ONNX "
                    "output is y.reshape(len(y), -1)[:, index]", name, ("N", *item.shape), ir,
                )
            meta["output_layouts"].append(layout)
            meta["onnx_output_shapes"].append(["N", *item.shape])
            self.graph.outputs.append(ir)

    def _prune(self) -> None:
        """Drop IR nodes that no output depends on (dead branches, unused reshapes)."""
        needed = set(self.graph.outputs) | set(self.graph.inputs)
        for node in reversed(self.graph.nodes):
            if node.name in needed:
                needed.update(node.inputs)
        dead = [n for n in self.graph.nodes if n.name not in needed]
        for n in dead:
            log.debug("dropping IR node %r: no output depends on it", n.name)
            self.graph.nodes.remove(n)
            del self.graph.tensors[n.name]
