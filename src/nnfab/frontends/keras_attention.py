"""Keras ``MultiHeadAttention`` -> IR ``Dense``, ``Reshape``, ``Permute``, ``MatMul`` and
``Softmax`` nodes (``nnfab.frontends.attention``), attention over the sequence axis of
``(T, F)`` inputs.

The layer's ``query``, ``key``, ``value`` and ``attention_output`` sublayer weights are
already in the builder's (inputs, heads, size) layout. Masks, ``use_gate``,
``sliding_window`` and attention over other axes are rejected with the supported form.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from nnfab.errors import FrontendError, UnsupportedLayerError
from nnfab.frontends.attention import AttentionWeights, attention_nodes

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
    w = AttentionWeights(wq, bq.reshape(heads, key_dim), wk, bk.reshape(heads, key_dim), wv,
                         bv.reshape(heads, value_dim), wo, bo)
    return attention_nodes(call.name, call.unique_name, query_in, key_in, value_in, (t, s), w,
                           call.cls)


ATTENTION_CONVERTERS: dict[str, Converter] = {
    "MultiHeadAttention": convert_multi_head_attention,
}
"""Keras class name -> converter, merged into ``keras_mapping.CONVERTERS``."""
