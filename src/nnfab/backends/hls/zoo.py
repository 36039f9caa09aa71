"""HLS renderers of Embedding, Conv1D/2DTranspose and LayerNormalization (``nnfab_zoo.h``).

io_parallel only; every loop is unrolled (ReuseFactor does not apply). Weights are cast
with the layer's types as the emulator casts them; the 1/sqrt table of LayerNormalization
comes from ``nnfab.ir.zoo.rsqrt_table`` and 1/N from ``nnfab.ir.tables.reciprocal``.
io_stream and the Verilog backend reject these ops with a ``BackendError`` naming the layer.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from nnfab.backends.hls.cpp import ConstArray
from nnfab.backends.hls.layers import (
    ConfigField,
    LayerCode,
    RenderContext,
    _fused_activation,
    _precision,
    _result_typedef,
    renderer,
)
from nnfab.errors import BackendError, ConfigError, GraphError
from nnfab.ir import Node
from nnfab.ir.tables import reciprocal
from nnfab.ir.zoo import layernorm_exact_types, rsqrt_table, transpose_attrs

log = logging.getLogger(__name__)


def _ignored_reuse(node: Node) -> None:
    if node.reuse_factor != 1 or node.strategy != "Latency":
        log.warning("layer %r (%s): ReuseFactor %d / Strategy %s are ignored by the HLS "
                    "backend (every product is unrolled)", node.name, node.op,
                    node.reuse_factor, node.strategy)


@renderer("Embedding")
def render_embedding(ctx: RenderContext, node: Node) -> LayerCode:
    (src,) = node.inputs
    x_type = ctx.tensor_type(src)
    if not x_type.is_integer or x_type.integer > 63:
        raise BackendError(
            f"layer {node.name!r} (Embedding): the index type {x_type} must be an integer "
            "type of at most 63 integer bits (ap_int<W> / ap_uint<W>)"
        )
    w_type = _precision(node, "weight")
    table = np.asarray(node.weights["embeddings"], dtype=np.float64)
    vocab, dim = table.shape
    names = {k: ctx.ident(node, k) for k in ("weight_t", "config", "table")}
    code = LayerCode(node, includes=["nnfab_zoo.h"], config_name=names["config"])
    code.typedefs = [_result_typedef(ctx, node), (names["weight_t"], w_type, "weight")]
    code.config = [
        ConfigField("n_in", "unsigned", str(ctx.size(src))),
        ConfigField("n_vocab", "unsigned", str(vocab)),
        ConfigField("n_dim", "unsigned", str(dim)),
        ConfigField("weight_t", "type", names["weight_t"]),
    ]
    code.arrays = [ConstArray(names["table"], names["weight_t"], w_type,
                              w_type.quantize(table).ravel(),
                              comment=f"embeddings of {node.name!r}, ({vocab}, {dim}) row-major")]
    code.call = [
        f"nnfab::embedding<{ctx.type_name(src)}, {ctx.type_name(node.name)}, {names['config']}>"
        f"({ctx.array(src)}, {ctx.array(node.name)}, {names['table']});"
    ]
    return code


def render_transpose(ctx: RenderContext, node: Node) -> LayerCode:
    (src,) = node.inputs
    rank = 2 if node.op == "Conv2DTranspose" else 1
    try:
        strides, pads, _ = transpose_attrs(node, rank)
    except GraphError as e:
        raise BackendError(str(e)) from None
    _ignored_reuse(node)
    w_type, b_type, accum = (_precision(node, k) for k in ("weight", "bias", "accum"))
    kernel = np.asarray(node.weights["kernel"], dtype=np.float64)
    in_shape, out_shape = ctx.shape(src), ctx.shape(node.name)
    if rank == 1:
        in_hw, out_hw, k_hw = (1, in_shape[0]), (1, out_shape[0]), (1, kernel.shape[0])
        s_hw, p_tl = (1, strides[0]), (0, pads[0])
    else:
        in_hw, out_hw, k_hw = in_shape[:2], out_shape[:2], kernel.shape[:2]
        s_hw, p_tl = strides, (pads[0], pads[2])
    products = math.prod(out_shape) * math.prod(kernel.shape[:-1])
    if products > ctx.max_block:
        log.warning("layer %r (%s): %d products unrolled, more than max_unroll / max_partition "
                    "= %d / %d; the vendor tool may refuse to unroll them", node.name, node.op,
                    products, ctx.max_unroll, ctx.max_partition)
    names = {k: ctx.ident(node, k) for k in ("weight_t", "bias_t", "accum_t", "config", "w", "b")}
    code = LayerCode(node, includes=["nnfab_zoo.h"], config_name=names["config"])
    code.typedefs = [
        _result_typedef(ctx, node),
        (names["weight_t"], w_type, "weight"),
        (names["bias_t"], b_type, "bias"),
        (names["accum_t"], accum, "accum"),
    ]
    code.config = [
        ConfigField("in_height", "unsigned", str(in_hw[0])),
        ConfigField("in_width", "unsigned", str(in_hw[1])),
        ConfigField("n_chan", "unsigned", str(in_shape[-1])),
        ConfigField("out_height", "unsigned", str(out_hw[0])),
        ConfigField("out_width", "unsigned", str(out_hw[1])),
        ConfigField("n_filt", "unsigned", str(out_shape[-1])),
        ConfigField("stride_height", "unsigned", str(s_hw[0])),
        ConfigField("stride_width", "unsigned", str(s_hw[1])),
        ConfigField("pad_top", "unsigned", str(p_tl[0])),
        ConfigField("pad_left", "unsigned", str(p_tl[1])),
        ConfigField("filt_height", "unsigned", str(k_hw[0])),
        ConfigField("filt_width", "unsigned", str(k_hw[1])),
        ConfigField("relu", "bool", "true" if _fused_activation(node) == "relu" else "false"),
        ConfigField("accum_t", "type", names["accum_t"]),
        ConfigField("weight_t", "type", names["weight_t"]),
        ConfigField("bias_t", "type", names["bias_t"]),
    ]
    bias = np.asarray(node.weights["bias"], dtype=np.float64).ravel()
    code.arrays = [
        ConstArray(names["w"], names["weight_t"], w_type, w_type.quantize(kernel).ravel(),
                   comment=f"kernel of {node.name!r}, {tuple(kernel.shape)} row-major"),
        ConstArray(names["b"], names["bias_t"], b_type, b_type.quantize(bias),
                   comment=f"bias of {node.name!r}"),
    ]
    code.call = [
        f"nnfab::conv_transpose_2d<{ctx.type_name(src)}, {ctx.type_name(node.name)}, "
        f"{names['config']}>({ctx.array(src)}, {ctx.array(node.name)}, {names['w']}, "
        f"{names['b']});"
    ]
    return code


@renderer("LayerNormalization")
def render_layernorm(ctx: RenderContext, node: Node) -> LayerCode:
    (src,) = node.inputs
    _ignored_reuse(node)
    keys = ("scale", "mean", "var", "table", "norm", "weight", "bias")
    types = {k: _precision(node, k) for k in keys}
    n = ctx.shape(src)[-1]
    rows = ctx.size(src) // n
    exact = layernorm_exact_types(ctx.tensor_type(src), types["mean"], n)
    for k, t in exact.items():
        if 2 * t.width > 128 and k == "diff":
            raise BackendError(
                f"layer {node.name!r} (LayerNormalization): the centred values need {t.width} "
                "bits; their squares exceed the 128 bits of nnfab's C-simulation types. Use "
                "narrower input / mean types."
            )
    try:
        table = rsqrt_table(node.attrs, types["table"], types["var"], layer=node.name)
    except ConfigError as e:
        raise BackendError(str(e)) from None
    inv, _ = reciprocal(n, types["scale"])
    names = {k: ctx.ident(node, f"{k}_t") for k in (*keys, *exact)}
    config = ctx.ident(node, "config")
    code = LayerCode(node, includes=["nnfab_zoo.h"], config_name=config)
    code.typedefs = [_result_typedef(ctx, node), *((names[k], types[k], k) for k in keys),
                     *((names[k], t, f"{k} (exact)") for k, t in exact.items())]
    code.config = [
        ConfigField("n_rows", "unsigned", str(rows)),
        ConfigField("n_in", "unsigned", str(n)),
        ConfigField("table_size", "unsigned", str(table.size)),
        ConfigField("table_bits", "int", str(table.bits)),
        ConfigField("var_width", "int", str(types["var"].width)),
        ConfigField("var_frac", "int", str(types["var"].frac)),
        *(ConfigField(f"{k}_t", "type", names[k]) for k in (*keys, *exact)),
    ]
    idents = {k: ctx.ident(node, k) for k in ("inv", "gamma", "beta")}
    gamma = np.asarray(node.weights["gamma"], dtype=np.float64).ravel()
    beta = np.asarray(node.weights["beta"], dtype=np.float64).ravel()
    code.arrays = [
        ConstArray(idents["inv"], names["scale"], types["scale"], np.array([inv]),
                   comment=f"scale(1/{n}) of {node.name!r}"),
        ConstArray(idents["gamma"], names["weight"], types["weight"],
                   types["weight"].quantize(gamma), comment=f"gamma of {node.name!r}"),
        ConstArray(idents["beta"], names["bias"], types["bias"], types["bias"].quantize(beta),
                   comment=f"beta of {node.name!r}"),
        ConstArray(ctx.ident(node, "table"), names["table"], table.type, table.values,
                   comment=(f"1/sqrt table of {node.name!r}: {types['var'].width} octaves of "
                            f"{1 << table.bits} entries")),
    ]
    args = [ctx.array(src), ctx.array(node.name), *idents.values(), code.arrays[-1].name]
    code.call = [
        f"nnfab::layernorm<{ctx.type_name(src)}, {ctx.type_name(node.name)}, {config}>"
        f"({', '.join(args)});"
    ]
    return code


for _op in ("Conv1DTranspose", "Conv2DTranspose"):
    renderer(_op)(render_transpose)
