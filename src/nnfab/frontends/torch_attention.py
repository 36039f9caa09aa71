"""PyTorch ``nn.MultiheadAttention`` -> the shared attention nodes
(``nnfab.frontends.attention``).

Taken: ``batch_first=True`` modules called as ``mha(q, k, v)`` (positional or by name),
whose attention output ``[0]`` is used; ``need_weights`` / ``average_attn_weights`` only
shape the unused second output. The packed ``in_proj_weight`` (or the separate
``q/k/v_proj_weight`` when ``kdim`` / ``vdim`` differ) rows are head-major (head h owns
rows ``h*D .. (h+1)*D - 1``), as the builder's (inputs, heads, size) layout reads them.
Refused by name: masks (``key_padding_mask``, ``attn_mask``, ``is_causal``),
``add_bias_kv``, ``add_zero_attn``, ``batch_first=False`` and reading the attention
weights ``[1]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnfab.errors import UnsupportedLayerError
from nnfab.frontends.attention import AttentionWeights

MODULE = "MultiheadAttention"
CALL_PARAMS = ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask",
               "average_attn_weights", "is_causal")


def call_arguments(where: str, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by name, after the checks (tensors stay fx nodes)."""
    if len(args) > len(CALL_PARAMS):
        raise UnsupportedLayerError(f"{where}: called with {len(args)} arguments")
    bound = dict(zip(CALL_PARAMS, args, strict=False))
    for key, value in kwargs.items():
        if key not in CALL_PARAMS:
            raise UnsupportedLayerError(f"{where}: unknown argument {key!r}")
        bound[key] = value
    for key in ("query", "key", "value"):
        if key not in bound:
            raise UnsupportedLayerError(f"{where}: needs query, key and value")
    for key in ("key_padding_mask", "attn_mask"):
        if bound.get(key) is not None:
            raise UnsupportedLayerError(f"{where}: {key} is not supported; allowed: None "
                                        "(no masks)")
    if bound.get("is_causal", False):
        raise UnsupportedLayerError(f"{where}: is_causal=True is not supported; allowed: False")
    return bound


def attention_weights(where: str, module: Any, to_float64: Any) -> AttentionWeights:
    """The module's projections in the shared builder's layout."""
    if not getattr(module, "batch_first", False):
        raise UnsupportedLayerError(
            f"{where}: batch_first=False is not supported; allowed: batch_first=True (the "
            "batch axis first, as nnfab needs every tensor)")
    if module.bias_k is not None or module.add_zero_attn:
        raise UnsupportedLayerError(f"{where}: add_bias_kv / add_zero_attn are not supported")
    e, heads = int(module.embed_dim), int(module.num_heads)
    d = e // heads
    if module.in_proj_weight is not None:
        w_in = to_float64(module.in_proj_weight)
        wq, wk, wv = w_in[:e], w_in[e:2 * e], w_in[2 * e:]
    else:
        wq, wk, wv = (to_float64(getattr(module, f"{p}_proj_weight")) for p in "qkv")
    if module.in_proj_bias is not None:
        b_in = to_float64(module.in_proj_bias)
        bq, bk, bv = b_in[:e], b_in[e:2 * e], b_in[2 * e:]
    else:
        bq = bk = bv = np.zeros(e)
    out = module.out_proj
    wo = to_float64(out.weight)  # (E_out, E)
    bo = to_float64(out.bias) if out.bias is not None else np.zeros(wo.shape[0])

    def split(w: np.ndarray) -> np.ndarray:  # (E, inputs) rows head-major -> (inputs, H, D)
        return np.ascontiguousarray(w.T.reshape(w.shape[1], heads, d))

    return AttentionWeights(split(wq), bq.reshape(heads, d), split(wk), bk.reshape(heads, d),
                            split(wv), bv.reshape(heads, d),
                            np.ascontiguousarray(wo.T.reshape(heads, d, wo.shape[0])), bo)
