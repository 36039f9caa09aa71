"""Multi-head attention as IR nodes, shared by the Keras and PyTorch frontends.

For query ``X`` (T, F), key ``K`` (S, Fk) and value ``Y`` (S, Fv), H heads of key size D
and value size Dv, with kernels ``wq`` (F, H, D), ``wk`` (Fk, H, D), ``wv`` (Fv, H, Dv),
``wo`` (H, Dv, F_out) and their biases:

    q = X wq + bq   (T, H, D),   k = K wk + bk   (S, H, D),   v = Y wv + bv   (S, H, Dv)
    scores = softmax_S( (q / sqrt(D)) . k )      per head: (H, T, S)
    out = concat_heads(scores . v) wo + bo       (T, F_out)

``1 / sqrt(D)`` is folded into ``wq`` and ``bq`` (one rounding of the weights instead of
a product per score); the heads sit on the leading axis (``Permute``) so that each
product is a ``MatMul`` batched over heads. Node names: ``<name>_query``, ``_key``,
``_value``, ``_scores``, ``_softmax``, ``_context`` and the output projection
``<name>`` itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nnfab.ir.graph import Node


@dataclass
class AttentionWeights:
    """Kernels in the (inputs, heads, size) layout above, biases (heads, size) / (F_out,)."""

    wq: np.ndarray
    bq: np.ndarray
    wk: np.ndarray
    bk: np.ndarray
    wv: np.ndarray
    bv: np.ndarray
    wo: np.ndarray
    bo: np.ndarray

    @property
    def heads(self) -> int:
        return int(self.wq.shape[1])


def attention_nodes(name: str, unique: Callable[[str], str], query: str, key: str, value: str,
                    steps: tuple[int, int], w: AttentionWeights, source_class: str
                    ) -> list[Node]:
    """The IR nodes of one attention call; the last is the output projection ``name``.

    ``steps``: (T, S), the query's and the key/value's sequence lengths; ``unique``
    makes a fresh node name from a base.
    """
    t, s = steps
    heads, key_dim = w.wq.shape[1], w.wq.shape[2]
    value_dim, out_dim = w.wv.shape[2], w.wo.shape[2]
    scale = 1.0 / math.sqrt(key_dim)
    nodes: list[Node] = []

    def add(suffix: str, op: str, inputs: list[str], attrs: dict | None = None,
            **weights: np.ndarray) -> str:
        node_name = name if suffix == "" else unique(f"{name}_{suffix}")
        nodes.append(Node(node_name, op, inputs, attrs or {}, weights=dict(weights),
                          source_class=source_class))
        return node_name

    def project(suffix: str, x: str, kernel: np.ndarray, bias: np.ndarray, rows: int,
                size: int, perm: tuple[int, int, int]) -> str:
        dense = add(suffix, "Dense", [x], kernel=kernel.reshape(kernel.shape[0], -1),
                    bias=np.asarray(bias, dtype=np.float64).reshape(-1))
        split = add(f"{suffix}_heads", "Reshape", [dense],
                    {"target_shape": (rows, heads, size)})
        return add(f"{suffix}_t", "Permute", [split], {"perm": perm})

    q = project("query", query, w.wq * scale, w.bq * scale, t, key_dim, (1, 0, 2))  # (H,T,D)
    k = project("key", key, w.wk, w.bk, s, key_dim, (1, 2, 0))  # (H, D, S)
    v = project("value", value, w.wv, w.bv, s, value_dim, (1, 0, 2))  # (H, S, Dv)
    scores = add("scores", "MatMul", [q, k])  # (H, T, S)
    weights = add("softmax", "Softmax", [scores], {"axis": -1})
    context = add("context", "MatMul", [weights, v])  # (H, T, Dv)
    per_step = add("context_t", "Permute", [context], {"perm": (1, 0, 2)})  # (T, H, Dv)
    joined = add("context_flat", "Reshape", [per_step], {"target_shape": (t, heads * value_dim)})
    add("", "Dense", [joined], kernel=w.wo.reshape(heads * value_dim, out_dim),
        bias=np.asarray(w.bo, dtype=np.float64).reshape(-1))
    return nodes
