"""Type defaults of Embedding, Conv1D/2DTranspose and LayerNormalization (``InferPrecision``).

- Embedding: ``weight`` (the table entries) the model default. An ``Input`` read only by
  Embedding layers, whose type the configuration leaves open, gets the index type
  ``ap_int<B + 2, B + 2, AP_TRN, AP_SAT>`` with ``B = bit_length(V - 1)``: every index
  ``0..V-1`` fits, and a saturated far-out value stays out of range (a zero row).
- Conv transposes: as Conv (``weight``, ``bias`` the default; ``accum`` exact, bounded by
  the whole kernel).
- LayerNormalization (rule in ``docs/semantics.md``): ``weight`` (gamma), ``bias`` (beta)
  the default; ``scale`` (1/N) ``ap_ufixed<18,1,AP_RND_CONV,AP_SAT>``; ``mean`` the input
  type with 6 more fractional bits (signed, ``AP_RND_CONV``, ``AP_SAT``); ``var``
  unsigned, integer bits for ``span**2 / 4`` of the input range, ``max(2 F_x + 4, 8)``
  fractional bits;
  ``norm`` ``ap_fixed<18, I>`` with ``I = 2 + ceil(log2(sqrt(N)))``; ``table`` from
  ``nnfab.ir.zoo.rsqrt_table_type`` (24 bits); ``table_bits`` ``LAYERNORM_TABLE_BITS``.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from nnfab.errors import PrecisionError
from nnfab.ir import FixedType, Graph, Node, Overflow, Rounding
from nnfab.ir.tables import TABLE_TYPE_DEFAULTS
from nnfab.ir.zoo import (
    LAYERNORM_EPSILON,
    LAYERNORM_TABLE_BITS,
    TRANSPOSE_OPS,
    ZOO_OPS,
    rsqrt_table_type,
)

log = logging.getLogger(__name__)

__all__ = ["ZOO_OPS", "index_type", "prepare_embedding_input", "zoo_defaults"]


def index_type(vocabulary: int) -> FixedType:
    """The default type of an index input for a table of ``vocabulary`` rows."""
    bits = max(1, (int(vocabulary) - 1).bit_length()) + 2
    return FixedType(bits, bits, True, Rounding.TRN, Overflow.SAT)


def prepare_embedding_input(graph: Graph, node: Node, default: FixedType) -> None:
    """Give an untyped-by-config Input read only by Embeddings the index type.

    Called before the Input's tensor is typed; the widest vocabulary among its readers wins.
    """
    if node.op != "Input" or node.attrs.get("result_from_config"):
        return
    readers = [n for n in graph.nodes if node.name in n.inputs]
    if not readers or any(n.op != "Embedding" for n in readers):
        return
    tensor = graph.tensors[node.name]
    if tensor.type is None:
        vocab = max(int(np.shape(n.weights["embeddings"])[0]) for n in readers)
        tensor.type = index_type(vocab)
        log.info("input %r (read by Embedding only) gets the index type %s", node.name,
                 tensor.type)


def zoo_defaults(graph: Graph, node: Node, x_type: FixedType | None,
                 default: FixedType) -> None:
    """Fill the open precision keys and attributes of a zoo node (not its result type)."""
    from nnfab.passes.infer_precision import (  # circular at import time
        exact_accumulator,
        weight_matrix,
    )

    assert x_type is not None
    p = node.precision
    if node.op == "Embedding":
        if not x_type.is_integer:
            raise PrecisionError(
                f"layer {node.name!r} (Embedding): the input type {x_type} has fractional bits; "
                "indices need an integer type (ap_int<W> / ap_uint<W>, or ap_fixed<W,I> with "
                "I >= W). Set the input layer's result precision."
            )
        p.setdefault("weight", default)
        vocab = int(np.shape(node.weights["embeddings"])[0])
        if x_type.min < 0 or x_type.max > vocab - 1:
            log.info("layer %r: the index type %s holds values outside 0..%d; those give a "
                     "row of zeros (counted under 'index')", node.name, x_type, vocab - 1)
        _warn_weights(node, "weight", "embeddings")
        return
    if node.op in TRANSPOSE_OPS:
        p.setdefault("weight", default)
        p.setdefault("bias", default)
        _warn_weights(node, "weight", "kernel")
        _warn_weights(node, "bias", "bias")
        if "accum" not in p:
            w_type, b_type = p["weight"], p["bias"]
            weights = weight_matrix(node, w_type.quantize(np.asarray(node.weights["kernel"],
                                                                      dtype=np.float64)))
            bias = b_type.quantize(np.asarray(node.weights["bias"], dtype=np.float64)).ravel()
            p["accum"] = exact_accumulator(x_type, weights, w_type, bias, b_type)
            node.attrs["auto_accum"] = True
        return
    # LayerNormalization
    n = int(graph.tensors[node.name].shape[-1])
    node.attrs.setdefault("table_bits", LAYERNORM_TABLE_BITS)
    node.attrs.setdefault("epsilon", LAYERNORM_EPSILON)
    p.setdefault("weight", default)
    p.setdefault("bias", default)
    p.setdefault("scale", FixedType.parse(TABLE_TYPE_DEFAULTS["scale"]))
    mean_int = x_type.integer + (0 if x_type.signed else 1)
    mean_frac = x_type.frac + 6
    p.setdefault("mean", FixedType(mean_int + mean_frac, mean_int, True, Rounding.RND_CONV,
                                   Overflow.SAT))
    span = x_type.max - x_type.min
    var_int = max(1, math.ceil(math.log2(max(span * span / 4, 1.0))) + 1)
    var_frac = max(2 * x_type.frac + 4, 8)  # small variances keep ~4 significant bits
    p.setdefault("var", FixedType(var_int + var_frac, var_int, False, Rounding.RND_CONV,
                                  Overflow.SAT))
    norm_int = 2 + math.ceil(math.log2(math.sqrt(max(n, 1))))
    p.setdefault("norm", FixedType(18, norm_int, True, Rounding.RND_CONV, Overflow.SAT))
    p.setdefault("table", rsqrt_table_type(node.attrs, p["var"]))
    _warn_weights(node, "weight", "gamma")
    _warn_weights(node, "bias", "beta")


def _warn_weights(node: Node, key: str, wname: str) -> None:
    t = node.precision[key]
    _, n_over = t.quantize_and_count(np.asarray(node.weights[wname], dtype=np.float64))
    if n_over:
        log.warning(
            "layer %r: %d of %d %s values lie outside the range [%g, %g] of %s; they will %s. "
            "Widen the %r precision.", node.name, n_over, np.size(node.weights[wname]), wname,
            t.min, t.max, t, "wrap around" if t.overflow is Overflow.WRAP else "saturate", key,
        )
