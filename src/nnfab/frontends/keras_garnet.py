"""GarNet and GarNetStack (distance-weighted graph layers over a padded vertex axis)
-> IR ``Dense``, ``Activation(gaussian)``, ``VertexMask``, ``MatMul``, pooling and shape
nodes.

The layer reads ``x`` (V, F) and the vertex count ``n`` (1,) (``input_format='xn'``);
vertices ``v >= n`` are padding. One GarNet block, with A aggregators (``S``), P
propagated features (``FLR``) and K filters (``Fout``)::

    w = mask(exp(-(x S + b_S)**2))                     (V, A) edge weights
    f = x FLR + b_FLR                                  (V, P)
    agg[a] = mean_v w[v, a] * f[v]                     (A, P); mean over all V, or over
                                                       the n real vertices (mean_by_nvert)
    u[v] = concat_a w[v, a] * agg[a]                   (V, A*P)
    out = mask(act(u Fout + b_Fout))                   (V, K)

and ``collapse`` ``mean`` / ``sum`` / ``max`` reduces ``out`` over the vertex axis
(``mean``: over all V, or the n real vertices with ``mean_by_nvert``). Only the
simplified layer (``simplified=True``, the form FPGA implementations use) is taken.
GarNetStack runs
its blocks in a chain (weights ``FLR0_kernel``, ``S0_kernel``, ...) and collapses the
last. ``quantize_transforms`` applies the layer's ternary quantizer (alpha 1, threshold
0.5) to the FLR kernel and bias and the Fout kernel.

Each product is exact and each step a cast to its node's type, so every step's type is
configurable by node name: ``<layer>_S``, ``_edge`` (the exp(-d**2) table), ``_edge_mask``,
``_FLR``, ``_products`` (w * f), ``_mean``, ``_updated`` (w * agg),
``_Fout`` and the layer itself (the masked output, or the collapse); a stack's blocks
carry ``_b<i>`` after the layer name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nnfab.errors import FrontendError, UnsupportedLayerError
from nnfab.frontends import qkeras as qk
from nnfab.ir.graph import Node

if TYPE_CHECKING:
    from nnfab.frontends.keras_mapping import Converter, LayerCall

log = logging.getLogger(__name__)

COLLAPSE_MODES = (None, "mean", "sum", "max")
TERNARY_TRANSFORM = {"class_name": "ternary", "config": {"alpha": 1.0, "threshold": 0.5}}
"""The quantizer of ``quantize_transforms=True`` (QKeras ``ternary(alpha=1., threshold=0.5)``)."""


@dataclass
class _Block:
    """One GarNet block's weights: FLR (F, P), S (F, A), Fout (in, K) and biases."""

    flr: np.ndarray
    flr_bias: np.ndarray
    s: np.ndarray
    s_bias: np.ndarray
    fout: np.ndarray
    fout_bias: np.ndarray


class _Nodes:
    """Collects the nodes of one layer; names are ``unique(<prefix>_<role>)``."""

    def __init__(self, call: LayerCall) -> None:
        self.call = call
        self.nodes: list[Node] = []

    def add(self, name: str, op: str, inputs: list[str], attrs: dict[str, Any] | None = None,
            final: bool = False, **weights: np.ndarray) -> str:
        node_name = self.call.name if final else self.call.unique_name(name)
        self.nodes.append(Node(name=node_name, op=op, inputs=inputs, attrs=attrs or {},
                               weights=dict(weights), source_class=self.call.cls))
        return node_name

    def reshape(self, name: str, source: str, shape: tuple[int, ...]) -> str:
        return self.add(name, "Reshape", [source], {"target_shape": tuple(shape)})


def _weight(call: LayerCall, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    value = call.weights.get(name)
    if value is None:
        have = ", ".join(sorted(call.weights)) or "none"
        raise FrontendError(
            f"{call.where()}: weight {name!r} is missing (the layer names its weights "
            f"FLR_kernel, FLR_bias, S_kernel, S_bias, Fout_kernel, Fout_bias; a stack "
            f"numbers them, FLR0_kernel, ...); found: {have}")
    value = np.asarray(value, dtype=np.float64)
    if shape is not None and value.shape != shape:
        raise FrontendError(f"{call.where()}: weight {name!r} has shape {value.shape}, "
                            f"expected {shape}")
    return value


def _ternary(call: LayerCall, values: np.ndarray, what: str) -> np.ndarray:
    where = call.where(f"{what} (quantize_transforms)")
    q = qk.parse_quantizer(TERNARY_TRANSFORM, where)
    assert q is not None
    return qk.quantize_weights(q, values, where)


def _check(call: LayerCall) -> tuple[int, int]:
    fmt = call.get("input_format", "xn")
    if fmt != "xn":
        raise call.unsupported("input_format", fmt, "'xn' (features and the vertex count)")
    if len(call.inputs) != 2:
        raise UnsupportedLayerError(f"{call.where()}: {len(call.inputs)} input tensors; "
                                    "input_format 'xn' takes [features (V, F), count (1,)]")
    data, count = call.in_shapes
    if len(data) != 2 or tuple(count) != (1,):
        raise UnsupportedLayerError(
            f"{call.where()}: inputs of shapes {data} and {count}; supported: features "
            "(vertices, features) and the vertex count (1,)")
    if call.get("collapse") not in COLLAPSE_MODES:
        raise call.unsupported("collapse", call.get("collapse"), "None, 'mean', 'sum', 'max'")
    if not call.get("simplified", False):
        raise call.unsupported(
            "simplified", call.get("simplified", False),
            "True (the full GarNet's output transform is built for F + A*P + A inputs but "
            "called with F + 2*A*(P + A), so such a layer cannot run in Keras either)")
    for key in ("total_bits", "int_bits"):
        if call.get(key) is not None:
            raise call.unsupported(key, call.get(key), "absent: the GarNet of the hls4ml "
                                   "contrib package (ternary quantize_transforms)")
    return int(data[0]), int(data[1])


def _blocks(call: LayerCall, features: int, stack: bool) -> list[_Block]:
    def sizes(key: str) -> list[int]:
        value = call.get(key)
        values = value if isinstance(value, list | tuple) else [value]
        if stack != isinstance(value, list | tuple) or not values:
            raise call.unsupported(key, value, "a list of integers (GarNetStack)" if stack
                                   else "an integer")
        return [int(v) for v in values]

    aggs, filters, props = sizes("n_aggregators"), sizes("n_filters"), sizes("n_propagate")
    if not len(aggs) == len(filters) == len(props):
        raise FrontendError(f"{call.where()}: n_aggregators, n_filters and n_propagate have "
                            f"{len(aggs)}, {len(filters)} and {len(props)} entries")
    quantized = bool(call.get("quantize_transforms", False))
    out: list[_Block] = []
    f_in = features
    for i, (a, k, p) in enumerate(zip(aggs, filters, props, strict=True)):
        tag = str(i) if stack else ""
        fout_in = a * p
        flr = _weight(call, f"FLR{tag}_kernel", (f_in, p))
        flr_bias = _weight(call, f"FLR{tag}_bias", (p,))
        fout = _weight(call, f"Fout{tag}_kernel", (fout_in, k))
        if quantized:
            flr = _ternary(call, flr, f"FLR{tag}_kernel")
            flr_bias = _ternary(call, flr_bias, f"FLR{tag}_bias")
            fout = _ternary(call, fout, f"Fout{tag}_kernel")
        out.append(_Block(flr, flr_bias, _weight(call, f"S{tag}_kernel", (f_in, a)),
                          _weight(call, f"S{tag}_bias", (a,)), fout,
                          _weight(call, f"Fout{tag}_bias", (k,))))
        f_in = k
    return out


def _block(b: _Nodes, prefix: str, x: str, n: str, vertices: int, w: _Block,
           last: bool) -> str:
    """The nodes of one block; returns the masked output tensor (V, K)."""
    call = b.call
    mean_by_nvert = bool(call.get("mean_by_nvert", False))
    a, p = w.s.shape[1], w.flr.shape[1]
    dist = b.add(f"{prefix}_S", "Dense", [x], kernel=w.s, bias=w.s_bias)
    edge = b.add(f"{prefix}_edge", "Activation", [dist], {"function": "gaussian"})
    edge = b.add(f"{prefix}_edge_mask", "VertexMask", [edge, n])
    feat = b.add(f"{prefix}_FLR", "Dense", [x], kernel=w.flr, bias=w.flr_bias)
    j = p
    # vertices -> aggregators: the products w[v, a] * f[v, j], reduced over v
    col = b.reshape(f"{prefix}_edge_col", edge, (vertices, a, 1))
    row = b.reshape(f"{prefix}_features_row", feat, (vertices, 1, j))
    prod = b.add(f"{prefix}_products", "MatMul", [col, row])
    prod = b.reshape(f"{prefix}_products_flat", prod, (vertices, a * j))
    if mean_by_nvert:
        mean = b.add(f"{prefix}_mean", "VertexMean", [prod, n])
    else:
        mean = b.add(f"{prefix}_mean", "GlobalPooling1D", [prod], {"mode": "avg"})
    agg = b.reshape(f"{prefix}_mean_rows", mean, (a, j))
    # aggregators -> vertices: u[v, a*J + j] = w[v, a] * agg[a, j]
    by_agg = b.add(f"{prefix}_edge_t", "Permute", [edge], {"perm": (1, 0)})
    by_agg = b.reshape(f"{prefix}_edge_t_col", by_agg, (a, vertices, 1))
    agg_row = b.reshape(f"{prefix}_aggregated_row", agg, (a, 1, j))
    upd = b.add(f"{prefix}_updated", "MatMul", [by_agg, agg_row])
    upd = b.add(f"{prefix}_updated_t", "Permute", [upd], {"perm": (1, 0, 2)})
    upd = b.reshape(f"{prefix}_updated_flat", upd, (vertices, a * j))
    out = b.add(f"{prefix}_Fout", "Dense", [upd], kernel=w.fout, bias=w.fout_bias)
    act = _activation(call)
    if act is not None:
        out = b.add(f"{prefix}_{act['function']}", "Activation", [out], act)
    final = last and call.get("collapse") is None
    return b.add(f"{prefix}_out", "VertexMask", [out, n], final=final)


def _activation(call: LayerCall) -> dict[str, Any] | None:
    from nnfab.frontends.keras_mapping import plan_activation

    plan = plan_activation(call, call.get("output_activation"), quantized_layer=False)
    if plan.identity:
        return None
    if plan.op != "Activation":
        raise call.unsupported("output_activation", call.get("output_activation"),
                               "an element-wise activation (linear, relu, tanh, sigmoid, ...)")
    return dict(plan.attrs)


def _collapse(b: _Nodes, out: str, n: str, vertices: int, filters: int) -> None:
    call = b.call
    mode = call.get("collapse")
    if mode == "max":
        b.add(call.name, "GlobalPooling1D", [out], {"mode": "max"}, final=True)
    elif mode == "mean" and call.get("mean_by_nvert", False):
        b.add(call.name, "VertexMean", [out, n], final=True)
    elif mode == "mean":
        b.add(call.name, "GlobalPooling1D", [out], {"mode": "avg"}, final=True)
    else:  # sum: a Dense of ones over the vertex axis (exact)
        t = b.add(f"{call.name}_t", "Permute", [out], {"perm": (1, 0)})
        s = b.add(f"{call.name}_sum", "Dense", [t], kernel=np.ones((vertices, 1)),
                  bias=np.zeros(1))
        b.add(call.name, "Reshape", [s], {"target_shape": (filters,)}, final=True)


def _convert(call: LayerCall, stack: bool) -> list[Node]:
    vertices, features = _check(call)
    blocks = _blocks(call, features, stack)
    x, n = call.inputs
    b = _Nodes(call)
    for i, w in enumerate(blocks):
        prefix = f"{call.name}_b{i}" if stack else call.name
        x = _block(b, prefix, x, n, vertices, w, last=i == len(blocks) - 1)
        features = w.fout.shape[1]
    if call.get("collapse") is not None:
        _collapse(b, x, n, vertices, features)
    log.info("%s: %d GarNet block(s) over %d vertices -> %d IR nodes", call.where(),
             len(blocks), vertices, len(b.nodes))
    return b.nodes


def convert_garnet(call: LayerCall) -> list[Node]:
    return _convert(call, stack=False)


def convert_garnet_stack(call: LayerCall) -> list[Node]:
    return _convert(call, stack=True)


GARNET_CONVERTERS: dict[str, Converter] = {
    "GarNet": convert_garnet,
    "GarNetStack": convert_garnet_stack,
}
"""Keras class name -> converter, merged into ``keras_mapping.CONVERTERS``."""
