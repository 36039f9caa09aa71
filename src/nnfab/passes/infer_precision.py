"""Fill every type the configuration left open, and warn about degenerate choices.

- weight / bias / result of weighted layers and activations: the model default.
- accum ``auto``: the exact type: no product is rounded and no sum can overflow,
  computed from the quantized weights and the input type's range.
- pass-through layers (Flatten, Reshape, Dropout, pooling) keep their input type.
- table / param / scale types and table sizes: the documented defaults.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from nnfab.errors import PrecisionError
from nnfab.ir import FixedType, Graph, Node, Overflow
from nnfab.ir.element_cast import union_type
from nnfab.ir.recurrent import RECURRENT_OPS
from nnfab.ir.tables import (
    TABLE_DEFAULTS,
    TABLE_TYPE_DEFAULTS,
    softmax_inv_range,
    softmax_sum_type,
)
from nnfab.passes.activation_precision import activation_defaults
from nnfab.passes.base import Pass
from nnfab.passes.recurrent_precision import recurrent_defaults
from nnfab.passes.vertex_precision import prepare_count_input
from nnfab.passes.zoo_precision import ZOO_OPS, prepare_embedding_input, zoo_defaults

log = logging.getLogger(__name__)

PASS_THROUGH = ("Flatten", "Reshape", "Dropout", "Pooling1D", "Pooling2D", "GlobalPooling1D",
                "GlobalPooling2D")
# values moved, none computed (nnfab.ir.rearrange)
PASS_THROUGH += ("ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D", "UpSampling1D",
                 "UpSampling2D", "Permute", "Slice")
PASS_THROUGH += ("VertexMask", "VertexMean")  # nnfab.ir.vertex
WEIGHTED = ("Dense", "Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D",
            "BatchNormalization")


def _sum_type(x_type: FixedType, shape: tuple[int, ...]) -> FixedType:
    """The default result of a ``sum`` global pooling: the input type with enough
    integer bits for the exact sum over the spatial axes (it never overflows)."""
    count = math.prod(shape[:-1])
    extra = math.ceil(math.log2(count)) if count > 1 else 0
    return FixedType(x_type.width + extra, x_type.integer + extra, x_type.signed)


def type_for_range(lo: float, hi: float, frac: int) -> FixedType:
    """The narrowest wrap/truncate type with ``frac`` fractional bits holding [lo, hi].

    ``lo`` and ``hi`` must be multiples of 2**-frac (they are sums of such values).
    """
    m_hi = math.ceil(hi * 2.0**frac)
    m_lo = math.floor(lo * 2.0**frac)
    if max(abs(m_hi), abs(m_lo)) > 2**50:  # float sums may be off by an ulp: one spare bit
        m_hi, m_lo = 2 * m_hi + 1, 2 * m_lo - 1
    if m_lo < 0:
        width = max(m_hi.bit_length(), (-m_lo - 1).bit_length()) + 1
        return FixedType(width, width - frac, True)
    width = max(1, m_hi.bit_length())
    return FixedType(width, width - frac, False)


def weight_matrix(node: Node, kernel: np.ndarray) -> np.ndarray:
    """The (n_in_per_output, n_out) matrix of weights summed into each output."""
    if node.op == "Dense":
        return kernel
    if node.op == "BatchNormalization":
        return kernel.reshape(1, -1)
    if node.op.startswith("Depthwise"):
        return kernel.reshape(-1, kernel.shape[-2] * kernel.shape[-1])
    return kernel.reshape(-1, kernel.shape[-1])


def exact_accumulator(
    x_type: FixedType, weights: np.ndarray, w_type: FixedType, bias: np.ndarray, b_type: FixedType
) -> FixedType:
    """Accumulator in which sum_i x_i*w_ij + b_j is exact for every x of ``x_type``."""
    frac = max(x_type.frac + w_type.frac, b_type.frac)
    top = np.maximum(weights * x_type.max, weights * x_type.min).sum(axis=0) + bias
    bottom = np.minimum(weights * x_type.max, weights * x_type.min).sum(axis=0) + bias
    hi = float(top.max()) if top.size else 0.0
    lo = float(bottom.min()) if bottom.size else 0.0
    return type_for_range(min(lo, 0.0), max(hi, 0.0), frac)


class InferPrecision(Pass):
    name = "infer_precision"

    def apply(self, graph: Graph) -> bool:
        default = FixedType.parse(graph.metadata.get("default_precision", "ap_fixed<16,6>"))
        for node in graph.nodes:
            out = graph.tensors[node.name]
            in_types = [graph.tensors[t].type for t in node.inputs]
            if node.op in WEIGHTED:
                node.precision.setdefault("weight", default)
                node.precision.setdefault("bias", default)
                self._check_weights(node)
                if "accum" not in node.precision:
                    node.precision["accum"] = self._auto_accum(node, in_types[0])
                    node.attrs["auto_accum"] = True
            if node.op in RECURRENT_OPS:
                recurrent_defaults(node, in_types[0], default)
            if node.op in ZOO_OPS:  # Embedding, Conv*Transpose, LayerNormalization
                zoo_defaults(graph, node, in_types[0], default)
            prepare_embedding_input(graph, node, default)
            prepare_count_input(graph, node)
            if out.type is None:
                same_inputs = node.op == "Concatenate" and len(set(in_types)) == 1
                if node.op == "ElementCast":  # holds every element's own type
                    out.type = union_type(node, out.shape)
                elif node.op.startswith("GlobalPooling") and node.attrs.get("mode") == "sum":
                    out.type = _sum_type(in_types[0], graph.tensors[node.inputs[0]].shape)
                elif node.op in PASS_THROUGH or same_inputs:
                    out.type = in_types[0]
                else:
                    out.type = default
            if node.op == "Activation":
                self._activation_defaults(node, in_types[0])
            elif node.op == "Softmax":
                self._softmax_defaults(graph, node, in_types[0])
            elif node.op in ("Pooling1D", "Pooling2D", "GlobalPooling1D", "GlobalPooling2D",
                             "Merge", "VertexMean"):
                node.precision.setdefault("scale", FixedType.parse(TABLE_TYPE_DEFAULTS["scale"]))
            accum = node.precision.get("accum")
            if accum is not None and accum.overflow is not Overflow.WRAP:
                raise PrecisionError(
                    f"layer {node.name!r}: accumulator type {accum} saturates; accumulators must "
                    "wrap (AP_WRAP) so sums do not depend on the order of additions. Use 'auto' "
                    "or a wrapping type, and saturate the result type instead."
                )
        return True

    # -------------------------------------------------------------- helpers
    @staticmethod
    def _auto_accum(node: Node, x_type: FixedType | None) -> FixedType:
        assert x_type is not None
        key = "scale" if node.op == "BatchNormalization" else "kernel"
        w_type, b_type = node.precision["weight"], node.precision["bias"]
        weights = weight_matrix(node, w_type.quantize(node.weights[key]))
        bias = b_type.quantize(node.weights["bias"]).reshape(-1)
        return exact_accumulator(x_type, weights, w_type, bias, b_type)

    @staticmethod
    def _check_weights(node: Node) -> None:
        for key, wname in (("weight", "scale" if node.op == "BatchNormalization" else "kernel"),
                           ("bias", "bias")):
            t = node.precision[key]
            values = node.weights[wname]
            _, n_over = t.quantize_and_count(values)
            if n_over:
                log.warning(
                    "layer %r: %d of %d %s values lie outside the range [%g, %g] of %s; they "
                    "will %s. Widen the %r precision.",
                    node.name, n_over, values.size, wname, t.min, t.max, t,
                    "wrap around" if t.overflow is Overflow.WRAP else "saturate", key,
                )
            nonzero = values[values != 0]
            if nonzero.size and not np.any(t.quantize(nonzero)):
                log.warning(
                    "layer %r: every %s value rounds to zero in %s (smallest step %g); %s. "
                    "Add fractional bits to the %r precision.", node.name, wname, t, t.lsb,
                    InferPrecision._zero_weight_effect(node, wname), key,
                )

    @staticmethod
    def _zero_weight_effect(node: Node, wname: str) -> str:
        """What follows for a layer when every value of its weight ``wname`` rounds to zero."""
        if wname == "bias":
            if node.op == "BatchNormalization":
                return "the offset is dropped: the layer only scales its input"
            return "the bias is dropped: the layer computes an unbiased weighted sum"
        what = "per-channel output" if node.op == "BatchNormalization" else "output"
        return (f"the layer ignores its input: every {what} is the constant given by its "
                "bias (zero if the bias rounds to zero too)")

    @staticmethod
    def _activation_defaults(node: Node, x_type: FixedType | None) -> None:
        fn = node.attrs["function"]
        activation_defaults(node, x_type)  # the functions of nnfab.ir.activation_rules
        if fn in ("leaky_relu", "hard_sigmoid"):
            node.precision.setdefault("param", FixedType.parse(TABLE_TYPE_DEFAULTS["param"]))
        if fn in ("sigmoid", "tanh"):
            node.precision.setdefault("table", FixedType.parse(TABLE_TYPE_DEFAULTS[fn]))
            for attr, value in TABLE_DEFAULTS[fn].items():
                node.attrs.setdefault(attr, value)
            assert x_type is not None
            size, half = node.attrs["table_size"], float(node.attrs["table_range"])
            step = 2 * half / size
            lo_idx = math.floor((x_type.min + half) / step)
            hi_idx = math.floor((x_type.max + half) / step)
            lo_idx, hi_idx = min(max(lo_idx, 0), size - 1), min(max(hi_idx, 0), size - 1)
            if lo_idx == hi_idx:
                log.warning(
                    "layer %r: every value of the input type %s (range [%g, %g]) falls into one "
                    "entry of the %s table over [%g, %g): the layer outputs a constant. Widen the "
                    "input type or change TableRange/TableSize.",
                    node.name, x_type, x_type.min, x_type.max, fn, -half, half,
                )

    @staticmethod
    def _softmax_defaults(graph: Graph, node: Node, x_type: FixedType | None) -> None:
        node.precision.setdefault("exp_table", FixedType.parse(TABLE_TYPE_DEFAULTS["exp_table"]))
        node.precision.setdefault("inv_table", FixedType.parse(TABLE_TYPE_DEFAULTS["inv_table"]))
        for attr, value in TABLE_DEFAULTS["softmax"].items():
            node.attrs.setdefault(attr, value)
        n = graph.tensors[node.name].shape[-1]
        node.attrs.setdefault("inv_range", softmax_inv_range(n))
        if "exp_sum" not in node.precision:
            node.precision["exp_sum"] = softmax_sum_type(n, node.precision["exp_table"])
        assert x_type is not None
        step = float(node.attrs["exp_range"]) / node.attrs["table_size"]
        spread = x_type.max - x_type.min
        if spread < step:
            log.warning(
                "layer %r: softmax input type %s spans only %g, less than one exp-table step "
                "(%g): every input gives the same output 1/%d. Use a wider input type.",
                node.name, x_type, spread, step, n,
            )
        elif x_type.lsb >= float(node.attrs["exp_range"]):
            log.warning(
                "layer %r: softmax input type %s has a step %g no smaller than the exp-table "
                "range %g: outputs are one-hot or uniform. Add fractional bits.",
                node.name, x_type, x_type.lsb, node.attrs["exp_range"],
            )
