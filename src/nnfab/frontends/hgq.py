"""HGQ2 (``hgq2``, High Granularity Quantization) Keras 3 models -> ``nnfab.ir.Graph``.

HGQ layers carry fixed-point quantizers whose keep-negative / integer / fractional bits
``(k, i, f)`` may differ per element. In inference mode a quantizer computes, element by
element, the ``ap_fixed<k+i+f, k+i>`` cast with its rounding (``TRN``, ``RND``,
``RND_CONV``, ...; the stochastic ``S_*`` modes round plainly at inference) and
overflow (``WRAP``, ``SAT``, ``SAT_SYM``) mode; an element of zero width outputs 0.
Everything between two quantizers (sums, products, biases) is exact.

The mapping:

- weights (``kq``, ``bq``): the values HGQ multiplies with (``layer.qkernel``,
  ``layer.qbias``), exactly; their type is the union of the per-element types (the
  widest integer part, the finest step, signed if any element is): exact, per-element
  hardware could use fewer bits for some elements.
- data quantizers (a layer's input quantizer ``iq``, its output quantizer ``oq``, a
  standalone ``Quantizer`` layer) become a linear ``Activation`` whose **result type**
  is the cast when every element has the same ``(k, i, f)``; with per-element widths an
  ``ElementCast`` casts each element to its own type (zero width: 0). Bit-exact both ways.
- layer outputs (``Dense``, ``Conv``, ``BatchNormalization`` as ``x * qscale +
  qoffset``, ``Add``/``Subtract``/``Multiply``/``Maximum``/``Minimum``, relu) get exact
  types (max pooling keeps its input's), as HGQ computes them (in float32, exact while a
  sum needs at most 24 significant bits).

HGQ reuses QKeras' class names (``QDense``, ``QConv2D``, ``QBatchNormalization``), so its
converters live in ``HGQ_CONVERTERS`` here and are picked by the layer's module
(``hgq.*``), not in ``keras_mapping.CONVERTERS``. Entry point: ``hgq_to_graph``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnfab.errors import FrontendError, GraphError, UnsupportedLayerError
from nnfab.frontends import keras_mapping as km
from nnfab.frontends.keras import _ModelWalker, import_keras, load_keras_model
from nnfab.frontends.keras_layers import to_float64
from nnfab.frontends.keras_mapping import LayerCall
from nnfab.ir.graph import Graph, Node
from nnfab.ir.types import FixedType, Overflow, Rounding
from nnfab.passes.infer_precision import exact_accumulator, type_for_range, weight_matrix

log = logging.getLogger(__name__)

ROUNDING: dict[str, Rounding] = {
    "TRN": Rounding.TRN, "RND": Rounding.RND, "RND_CONV": Rounding.RND_CONV,
    "TRN_ZERO": Rounding.TRN_ZERO, "RND_ZERO": Rounding.RND_ZERO,
    "RND_MIN_INF": Rounding.RND_MIN_INF, "RND_INF": Rounding.RND_INF,
}
"""HGQ rounding modes (without the stochastic ``S_`` prefix) -> ``ap_fixed`` modes."""
OVERFLOW: dict[str, Overflow] = {
    "WRAP": Overflow.WRAP, "SAT": Overflow.SAT, "SAT_SYM": Overflow.SAT_SYM,
}
"""HGQ overflow modes -> ``ap_fixed`` modes (``WRAP_SM`` has none)."""

EXACT_ATTR = "hgq_exact"
"""Node attribute: the node's output type is computed exactly from its input types."""


@dataclass(frozen=True)
class HgqQuantizer:
    """An HGQ fixed-point quantizer read from a live layer: per-element ``k, i, f``."""

    k: np.ndarray
    i: np.ndarray  # integer bits without the sign, already raised to >= -f as HGQ does
    f: np.ndarray
    rounding: Rounding
    overflow: Overflow
    where: str
    zero: np.ndarray | None = None
    """Elements of zero width (``k + i + f <= 0`` before ``i`` is raised: HGQ outputs 0
    there, e.g. ``k, i, f = 1, 2, -3``)."""

    @property
    def width(self) -> np.ndarray:
        width = self.k + self.i + self.f
        return width if self.zero is None else np.where(self.zero, 0, width)

    @property
    def uniform(self) -> bool:
        """Every element has the same ``(k, i, f)`` (zero-width elements included)."""
        return all(np.all(a == a.ravel()[0]) for a in (self.k, self.i, self.f))

    @property
    def any_zero_width(self) -> bool:
        return bool(np.any(self.width <= 0))

    def union_type(self) -> FixedType | None:
        """The narrowest type holding every element's type (``None``: all zero width)."""
        live = self.width > 0
        if not np.any(live):
            return None
        signed = bool(np.any(self.k[live] > 0))
        integer = int(self.i[live].max())
        frac = int(self.f[live].max())
        return FixedType(int(signed) + integer + frac, int(signed) + integer, signed,
                         self.rounding, self.overflow)


def is_hgq_layer(layer: Any) -> bool:
    """True for a layer class defined in the ``hgq`` package."""
    return type(layer).__module__.split(".", 1)[0] == "hgq"


def read_quantizer(quantizer: Any, where: str) -> HgqQuantizer | None:
    """The fixed-point parameters of an HGQ ``Quantizer`` layer (``None``: a pass-through)."""
    inner = getattr(quantizer, "quantizer", None)
    name = type(inner).__name__
    if getattr(inner, "__dummy__", False):
        return None
    if not hasattr(inner, "kif") or "FixedPoint" not in name:
        raise UnsupportedLayerError(
            f"{where}: quantizer {name} is not supported; allowed: HGQ fixed-point quantizers "
            "(q_type 'kif' or 'kbi')"
        )
    for attr in ("scaler", "affine"):
        if getattr(quantizer, attr, None) is not None:
            raise UnsupportedLayerError(
                f"{where}: quantizer {attr}={getattr(quantizer, attr)!r} is not supported; "
                f"allowed: None (plain fixed point)"
            )
    round_mode = str(inner.round_mode).upper().removeprefix("S_")  # stochastic: training only
    overflow_mode = str(inner.overflow_mode).upper()
    if round_mode not in ROUNDING:
        raise UnsupportedLayerError(
            f"{where}: round_mode={inner.round_mode!r} is not supported; allowed: "
            f"{', '.join(ROUNDING)} (and their S_ forms)"
        )
    if overflow_mode not in OVERFLOW:
        raise UnsupportedLayerError(
            f"{where}: overflow_mode={inner.overflow_mode!r} is not supported; allowed: "
            f"{', '.join(OVERFLOW)}"
        )
    k, i, f = (np.asarray(np.array(t), dtype=np.float64) for t in inner.kif)
    k, i, f = np.broadcast_arrays(k, i, f)
    if not all(np.all(a == np.round(a)) for a in (k, i, f)):
        raise FrontendError(f"{where}: quantizer bit counts are not integers")
    zero = (k + i + f) <= 0
    i = np.maximum(i, -f)
    return HgqQuantizer(k.copy(), i.copy(), f.copy(), ROUNDING[round_mode],
                        OVERFLOW[overflow_mode], where, zero.copy())


def _holding(t: FixedType | None, values: np.ndarray) -> FixedType:
    """``t`` (TRN, WRAP), widened if needed so that it holds every value exactly."""
    exact = km.qk.exact_type(values)
    if t is None:
        return exact
    t = t.replace(rounding=Rounding.TRN, overflow=Overflow.WRAP)
    if t.holds(exact):
        return t
    signed = t.signed or exact.signed
    frac = max(t.frac, exact.frac)
    top = max(t.integer - int(t.signed), exact.integer - int(exact.signed))
    return FixedType(int(signed) + top + frac, int(signed) + top, signed)


def _weight(layer: Any, attr: str, qattr: str, where: str) -> tuple[np.ndarray, FixedType]:
    """HGQ's quantized weight ``attr`` of ``layer`` and a type holding it exactly."""
    keras = import_keras()
    values = to_float64(keras, getattr(layer, attr)) + 0.0
    q = read_quantizer(getattr(layer, qattr), f"{where} {qattr}")
    return values, _holding(q.union_type() if q else None, values)


def data_cast(q: HgqQuantizer | None, name: str, source: str, cls: str) -> Node | None:
    """The quantizer's cast (``None``: no-op): a linear ``Activation`` whose result type is
    the cast when every element has one type, else an ``ElementCast`` with each element's
    own type (``nnfab.ir.element_cast``), bit-exact either way."""
    if q is None:
        return None
    t = q.union_type()
    if t is None:
        raise UnsupportedLayerError(
            f"{q.where}: every element has zero bits (the output is constant 0); allowed: a "
            "quantizer with at least one bit"
        )
    if not q.uniform or q.any_zero_width:
        log.info("%s: per-element bit widths (k %s..%s, i %s..%s, f %s..%s): an ElementCast",
                 q.where, int(q.k.min()), int(q.k.max()), int(q.i.min()), int(q.i.max()),
                 int(q.f.min()), int(q.f.max()))
        width = np.maximum(q.width, 0)
        fields = {"keep_negative": np.where(width > 0, q.k, 0), "bits": width,
                  "integers": np.where(width > 0, q.k + q.i, 0)}
        for key, values in fields.items():
            values = np.asarray(values, dtype=np.float64)
            while values.ndim > 1 and values.shape[0] == 1:  # HGQ's batch axis
                values = values[0]
            fields[key] = values
        return Node(name=name, op="ElementCast", inputs=[source],
                    attrs={"rounding": q.rounding.value, "overflow": q.overflow.value},
                    weights=fields, source_class=cls)
    node = Node(name=name, op="Activation", inputs=[source], attrs={"function": "linear"},
                source_class=cls)
    node.attrs["_result_type"] = t
    node.attrs["quantizer"] = f"hgq {t}"
    return node


# ------------------------------------------------------------ converters
HgqConverter = Callable[[LayerCall, Any], list[Node]]


def _iq(call: LayerCall, layer: Any) -> list[Node]:
    """The layer's input quantizer as a cast node reading the layer's input, if enabled."""
    if not getattr(layer, "enable_iq", False):
        return []
    q = read_quantizer(layer.iq, call.where("iq"))
    node = data_cast(q, call.unique_name(f"{call.name}_iq"), call.inputs[0], "Quantizer")
    return [node] if node else []


def _oq(call: LayerCall, layer: Any, last: str) -> list[Node]:
    if not getattr(layer, "enable_oq", False):
        return []
    q = read_quantizer(layer.oq, call.where("oq"))
    node = data_cast(q, call.unique_name(f"{call.name}_oq"), last, "Quantizer")
    return [node] if node else []


def _weighted(call: LayerCall, layer: Any, build: Callable[[LayerCall], Node]) -> list[Node]:
    """iq cast -> the weighted node (quantized weights, exact output) -> activation -> oq."""
    pre = _iq(call, layer)
    kernel, w_type = _weight(layer, "qkernel", "kq", call.where())
    weights = {"kernel": kernel}
    b_type = None
    if getattr(layer, "bias", None) is not None:
        weights["bias"], b_type = _weight(layer, "qbias", "bq", call.where())
    inner = LayerCall(call.name, call.cls, call.config, [pre[-1].name] if pre else call.inputs,
                      call.in_shapes, weights, call.keras_major, call.unique_name, call.origin)
    node = build(inner)
    node.precision["weight"] = w_type
    node.precision["bias"] = b_type or FixedType(1, 1, False)
    node.attrs[EXACT_ATTR] = True
    nodes = km.with_activation(inner, node)
    for extra in nodes[1:]:
        _mark_activation(extra, call)
    return pre + nodes + _oq(call, layer, nodes[-1].name)


def _mark_activation(node: Node, call: LayerCall) -> None:
    fn = node.attrs.get("function")
    if node.op == "Activation" and fn in ("relu", "linear") and "max_value" not in node.attrs:
        node.attrs[EXACT_ATTR] = True
    else:
        log.warning("%s: activation %r is computed in float by HGQ; nnfab uses its own "
                    "approximation and the configured types (not bit-exact)", call.where(), fn)


def convert_q_dense(call: LayerCall, layer: Any) -> list[Node]:
    def build(inner: LayerCall) -> Node:
        kernel = inner.weights["kernel"]
        bias = inner.weights.get("bias", np.zeros(kernel.shape[-1]))
        return inner.node("Dense", kernel=kernel, bias=bias.reshape(-1))

    return _weighted(call, layer, build)


def _q_conv(rank: int) -> HgqConverter:
    def convert(call: LayerCall, layer: Any) -> list[Node]:
        return _weighted(
            call, layer, lambda inner: km._conv_node(inner, rank, False, inner.weights["kernel"])
        )

    return convert


def convert_q_batchnorm(call: LayerCall, layer: Any) -> list[Node]:
    """``x * kq(scale) + bq(offset)``: HGQ's inference batch normalization, exact."""
    km._check_last_axis(call, "axis", -1)
    keras = import_keras()
    pre = _iq(call, layer)
    qscale, qoffset = layer.qscaler_and_qoffset
    scale = to_float64(keras, qscale).reshape(-1) + 0.0
    offset = to_float64(keras, qoffset).reshape(-1) + 0.0
    n = call.in_shapes[0][-1]
    scale, offset = np.broadcast_to(scale, (n,)).copy(), np.broadcast_to(offset, (n,)).copy()
    kq = read_quantizer(layer.kq, call.where("kq"))
    bq = read_quantizer(layer.bq, call.where("bq"))
    node = Node(name=call.name, op="BatchNormalization",
                inputs=[pre[-1].name] if pre else list(call.inputs),
                weights={"scale": scale, "bias": offset}, source_class=call.cls)
    node.precision["weight"] = _holding(kq.union_type() if kq else None, scale)
    node.precision["bias"] = _holding(bq.union_type() if bq else None, offset)
    node.attrs[EXACT_ATTR] = True
    return [*pre, node, *_oq(call, layer, node.name)]


def _q_merge(mode: str) -> HgqConverter:
    def convert(call: LayerCall, layer: Any) -> list[Node]:
        if len(set(call.in_shapes)) != 1:
            raise call.unsupported("input shapes", call.in_shapes, "equal shapes (no broadcasting)")
        sources = list(call.inputs)
        pre: list[Node] = []
        if getattr(layer, "enable_iq", False):
            for n, (q_layer, src) in enumerate(zip(layer.iq, call.inputs, strict=True)):
                q = read_quantizer(q_layer, call.where(f"iq[{n}]"))
                cast = data_cast(q, call.unique_name(f"{call.name}_iq{n}"), src, "Quantizer")
                if cast is not None:
                    pre.append(cast)
                    sources[n] = cast.name
        node = Node(name=call.name, op="Merge", inputs=sources, attrs={"mode": mode},
                    source_class=call.cls)
        node.attrs[EXACT_ATTR] = True
        return [*pre, node, *_oq(call, layer, node.name)]

    return convert


def _q_max_pool(rank: int, global_pool: bool) -> HgqConverter:
    """iq cast -> max pooling (its output keeps the cast's type: exact)."""
    plain = km._global_pool(rank, "max") if global_pool else km._pool(rank, "max")

    def convert(call: LayerCall, layer: Any) -> list[Node]:
        pre = _iq(call, layer)
        inner = LayerCall(call.name, call.cls, call.config,
                          [pre[-1].name] if pre else call.inputs, call.in_shapes, {},
                          call.keras_major, call.unique_name, call.origin)
        return [*pre, *plain(inner), *_oq(call, layer, call.name)]

    return convert


def convert_quantizer(call: LayerCall, layer: Any) -> list[Node]:
    """A standalone ``hgq.quantizer.Quantizer`` layer (e.g. the model's input quantizer)."""
    node = data_cast(read_quantizer(layer, call.where()), call.name, call.inputs[0], call.cls)
    if node is None:
        return [Node(name=call.name, op="Dropout", inputs=list(call.inputs),
                     source_class=call.cls)]
    return [node]


HGQ_CONVERTERS: dict[str, HgqConverter] = {
    "QDense": convert_q_dense,
    "QConv1D": _q_conv(1),
    "QConv2D": _q_conv(2),
    "QBatchNormalization": convert_q_batchnorm,
    "QAdd": _q_merge("add"),
    "QSubtract": _q_merge("subtract"),
    "QMultiply": _q_merge("multiply"),
    "QMaximum": _q_merge("maximum"),
    "QMinimum": _q_merge("minimum"),
    "QMaxPooling1D": _q_max_pool(1, global_pool=False),
    "QMaxPooling2D": _q_max_pool(2, global_pool=False),
    "QGlobalMaxPooling1D": _q_max_pool(1, global_pool=True),
    "QGlobalMaxPooling2D": _q_max_pool(2, global_pool=True),
    "Quantizer": convert_quantizer,
}
"""HGQ class name -> converter (live layer and its ``LayerCall``)."""


# ------------------------------------------------------------- exact types
def _exact_output(graph: Graph, node: Node) -> FixedType | None:
    """The type holding ``node``'s output exactly, from its input types."""
    in_types = [graph.tensors[t].type for t in node.inputs]
    if any(t is None for t in in_types):
        return None
    x = [t.replace(rounding=Rounding.TRN, overflow=Overflow.WRAP) for t in in_types if t]
    if node.op in ("Dense", "Conv1D", "Conv2D", "BatchNormalization"):
        key = "scale" if node.op == "BatchNormalization" else "kernel"
        w_type, b_type = node.precision["weight"], node.precision["bias"]
        weights = weight_matrix(node, node.weights[key])
        return exact_accumulator(x[0], weights, w_type, node.weights["bias"].reshape(-1), b_type)
    if node.op == "Activation":
        return x[0]
    if node.op == "Merge":
        mode = node.attrs["mode"]
        if mode == "multiply":
            lo, hi, frac = 1.0, 1.0, 0
            for t in x:
                ends = [lo * t.min, lo * t.max, hi * t.min, hi * t.max]
                lo, hi, frac = min(ends), max(ends), frac + t.frac
            return type_for_range(min(lo, 0.0), max(hi, 0.0), frac)
        frac = max(t.frac for t in x)
        if mode in ("maximum", "minimum"):
            pick = max if mode == "maximum" else min
            lo, hi = pick(t.min for t in x), pick(t.max for t in x)
            return type_for_range(min(lo, 0.0), max(hi, 0.0), frac)
        if mode == "subtract":
            lo, hi = x[0].min - x[1].max, x[0].max - x[1].min
        else:
            lo, hi = sum(t.min for t in x), sum(t.max for t in x)
        return type_for_range(min(lo, 0.0), max(hi, 0.0), frac)
    return None


def type_inputs(graph: Graph) -> None:
    """A graph input read only by HGQ casts of one type gets that type (the same cast)."""
    for name in graph.inputs:
        tensor = graph.tensors[name]
        readers = graph.consumers(name)
        casts = {graph.tensors[n.name].type for n in readers if n.source_class == "Quantizer"}
        if tensor.type is None and readers and len(casts) == 1 and len(readers) == sum(
                n.source_class == "Quantizer" for n in readers):
            tensor.type = casts.pop()


def _union(types: list[FixedType | None]) -> FixedType | None:
    """The narrowest type holding every value of every type (``None`` if one is unknown)."""
    if not types or any(t is None for t in types):
        return None
    known = [t for t in types if t is not None]
    frac = max(t.frac for t in known)
    return type_for_range(min(min(t.min for t in known), 0.0),
                          max(max(t.max for t in known), 0.0), frac)


def set_exact_types(graph: Graph) -> None:
    """Give every node marked ``hgq_exact`` the exact type of its output (in graph order)."""
    type_inputs(graph)
    for node in graph.nodes:
        if not node.attrs.pop(EXACT_ATTR, False):
            if node.op == "Concatenate":  # a Keras Concatenate of typed tensors: their union
                graph.tensors[node.name].type = graph.tensors[node.name].type or _union(
                    [graph.tensors[t].type for t in node.inputs])
            continue
        tensor = graph.tensors[node.name]
        if tensor.type is not None:
            continue
        t = _exact_output(graph, node)
        if t is None:
            log.warning("layer %r (%s): its input has no fixed type (no HGQ quantizer before "
                        "it); its output gets the configured type", node.name, node.source_class)
        tensor.type = t


# ------------------------------------------------------------------ walker
class _HgqWalker(_ModelWalker):
    """The Keras 3 walker, with HGQ layers mapped by ``HGQ_CONVERTERS``."""

    def _convert(self, layer: Any, node_index: int, knode: Any) -> None:
        if not is_hgq_layer(layer):
            super()._convert(layer, node_index, knode)
            return
        cls = type(layer).__name__
        where = f"layer {layer.name!r} ({cls})"
        converter = HGQ_CONVERTERS.get(cls)
        if converter is None:
            raise UnsupportedLayerError(
                f"{where}: HGQ layer {cls} ({type(layer).__module__}) is not supported; "
                f"supported HGQ layers: {', '.join(HGQ_CONVERTERS)}"
            )
        if self.call_of_layer.setdefault(id(layer), node_index) != node_index:
            raise UnsupportedLayerError(f"{where} is called more than once; shared layers are "
                                        "not supported (use a separate layer per call)")
        out_shape = self._keras_shape(layer, knode.output_tensors[0])
        inputs = [self._ir_tensor(t) for t in knode.input_tensors]
        try:
            config = dict(layer.get_config())
        except (NotImplementedError, TypeError, ValueError) as e:
            raise FrontendError(f"{where}: get_config() failed: {type(e).__name__}: {e}") from e
        call = LayerCall(
            name=str(layer.name), cls=cls, config=config, inputs=inputs,
            in_shapes=[self.graph.tensors[t].shape for t in inputs], weights={},
            keras_major=self.keras_major, unique_name=self._unique_name, origin=self.origin,
        )
        nodes = converter(call, layer)
        for node in nodes:
            result = node.attrs.pop("_result_type", None)
            try:
                self.graph.add_node(node, out_shape, result)
            except GraphError as e:
                raise FrontendError(f"{where}: {e}") from e
        self.tensor_of[(id(layer), node_index, 0)] = nodes[-1].name
        self.expected[nodes[-1].name] = (str(layer.name), out_shape)


def hgq_to_graph(model_or_path: Any) -> Graph:
    """Translate an HGQ2 Keras 3 model (or its ``.keras`` file) to the IR, with exact types.

    Plain Keras layers in the model are mapped as ``nnfab.frontends.keras`` maps them.
    """
    if isinstance(model_or_path, str | os.PathLike):
        try:
            import hgq  # noqa: F401  (registers HGQ's classes for loading)
        except ImportError as e:
            raise FrontendError(f"loading an HGQ model needs hgq2 ({e}); pip install hgq2") from e
        model = load_keras_model(model_or_path)
    else:
        model = model_or_path
    keras = import_keras()
    if not isinstance(model, keras.Model):
        raise FrontendError(f"expected a keras.Model or a model file, got {type(model).__name__}")
    graph = _HgqWalker(keras, model).run()
    set_exact_types(graph)
    graph.metadata["source"] = "hgq"
    return graph
