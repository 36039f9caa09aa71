"""Keras ``MultiHeadAttention`` -> IR ``Dense``, ``Reshape``, ``Permute``, ``MatMul`` and
``Softmax`` nodes (attention over the sequence axis of ``(T, F)`` inputs).

For query ``X`` (T, F), value ``Y`` (S, F) and key ``K`` (default: the value), with
H heads of key size D and value size Dv, Keras computes

    q = X Wq + bq   (T, H, D),   k = K Wk + bk   (S, H, D),   v = Y Wv + bv   (S, H, Dv)
    scores = softmax_S( (q / sqrt(D)) . k )      per head: (H, T, S)
    out = concat_heads(scores . v) Wo + bo       (T, F_out)

nnfab folds ``1 / sqrt(D)`` into ``Wq`` and ``bq`` (one rounding of the weights instead
of a product per score), keeps the heads on the leading axis (``Permute``) so that each
product is a ``MatMul`` batched over heads, and names the nodes after the layer:
``<name>_query``, ``_key``, ``_value``, ``_scores``, ``_softmax``, ``_context`` and the
output projection ``<name>`` itself. Masks, ``use_gate``, ``sliding_window`` and
attention over other axes are rejected with the supported form.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from nnfab.errors import FrontendError, UnsupportedLayerError

if TYPE_CHECKING:
    from nnfab.frontends.keras_mapping import Converter, LayerCall
    from nnfab.ir.graph import Node

def _checked(call: LayerCall) -> tuple[int, int, int]:
    """(heads, key size, value size) after the configuration checks."""
    if len(call.inputs) not in (2, 3):
        raise UnsupportedLayerError(
            f"{call.where()}: {len(call.inputs)} input tensors; supported: query, value and "
            "optionally key (attention masks are not supported)")
    for shape in call.in_shapes:
        if len(shape) != 2:
            raise call.unsupported("input shape", shape, "(sequence, features) per sample")
    axes = call.get("attention_axes")
    if axes not in (None, [1], (1,), 1, [-2], (-2,)):
        raise call.unsupported("attention_axes", axes, "None or (1,): the sequence axis")
    for key in ("use_gate", "use_causal_mask"):
        if call.get(key, False):
            raise call.unsupported(key, True, "False")
    if call.get("sliding_window") is not None:
        raise call.unsupported("sliding_window", call.get("sliding_window"), "None")
    heads, key_dim = int(call.get("num_heads")), int(call.get("key_dim"))
    value_dim = call.get("value_dim")
    return heads, key_dim, int(value_dim) if value_dim else key_dim


def _weights(call: LayerCall, sub: str, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    kernel = call.weight(f"{sub}/kernel")
    assert kernel is not None
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.shape != shape:
        raise FrontendError(f"{call.where()}: {sub}/kernel has shape {kernel.shape}, expected "
                            f"{shape}")
    n_out = math.prod(shape[1:]) if sub != "attention_output" else shape[-1]
    if call.get("use_bias", True):
        bias = call.weight(f"{sub}/bias")
        assert bias is not None
        bias = np.asarray(bias, dtype=np.float64).reshape(-1)
    else:
        bias = np.zeros(n_out)
    return kernel, bias


def convert_multi_head_attention(call: LayerCall) -> list[Node]:
    from nnfab.ir.graph import Node

    heads, key_dim, value_dim = _checked(call)
    query_in, value_in = call.inputs[0], call.inputs[1]
    key_in = call.inputs[2] if len(call.inputs) == 3 else value_in
    (t, f), (s, fv) = call.in_shapes[0], call.in_shapes[1]
    fk = call.in_shapes[2][1] if len(call.in_shapes) == 3 else fv
    out_dim = call.get("output_shape")
    if isinstance(out_dim, list | tuple):
        if len(out_dim) != 1:
            raise call.unsupported("output_shape", out_dim, "None or one integer")
        out_dim = out_dim[0]
    out_dim = f if out_dim is None else int(out_dim)

    wq, bq = _weights(call, "query", (f, heads, key_dim))
    wk, bk = _weights(call, "key", (fk, heads, key_dim))
    wv, bv = _weights(call, "value", (fv, heads, value_dim))
    wo, bo = _weights(call, "attention_output", (heads, value_dim, out_dim))
    scale = 1.0 / math.sqrt(key_dim)
    name, cls = call.name, call.cls
    nodes: list[Node] = []

    def add(suffix: str, op: str, inputs: list[str], attrs: dict | None = None,
            **weights: np.ndarray) -> str:
        node_name = name if suffix == "" else call.unique_name(f"{name}_{suffix}")
        nodes.append(Node(node_name, op, inputs, attrs or {}, weights=dict(weights),
                          source_class=cls))
        return node_name

    def project(suffix: str, x: str, kernel: np.ndarray, bias: np.ndarray, rows: int,
                size: int, perm: tuple[int, int, int]) -> str:
        dense = add(suffix, "Dense", [x], kernel=kernel.reshape(kernel.shape[0], -1),
                    bias=bias)
        split = add(f"{suffix}_heads", "Reshape", [dense],
                    {"target_shape": (rows, heads, size)})
        return add(f"{suffix}_t", "Permute", [split], {"perm": perm})

    q = project("query", query_in, wq * scale, bq * scale, t, key_dim, (1, 0, 2))  # (H,T,D)
    k = project("key", key_in, wk, bk, s, key_dim, (1, 2, 0))  # (H, D, S)
    v = project("value", value_in, wv, bv, s, value_dim, (1, 0, 2))  # (H, S, Dv)
    scores = add("scores", "MatMul", [q, k])  # (H, T, S)
    weights = add("softmax", "Softmax", [scores], {"axis": -1})
    context = add("context", "MatMul", [weights, v])  # (H, T, Dv)
    per_step = add("context_t", "Permute", [context], {"perm": (1, 0, 2)})  # (T, H, Dv)
    joined = add("context_flat", "Reshape", [per_step], {"target_shape": (t, heads * value_dim)})
    add("", "Dense", [joined], kernel=wo.reshape(heads * value_dim, out_dim), bias=bo)
    return nodes


ATTENTION_CONVERTERS: dict[str, Converter] = {
    "MultiHeadAttention": convert_multi_head_attention,
}
"""Keras class name -> converter, merged into ``keras_mapping.CONVERTERS``."""
