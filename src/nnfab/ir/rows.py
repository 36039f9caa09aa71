"""Weights that broadcast against a whole sample, seen one row (last axis) at a time:
what a backend that streams rows (pixels, time steps) needs of them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nnfab.ir.graph import Node


def row_weights(node: Node, shape: tuple[int, ...], keys: Sequence[str]
                ) -> dict[str, np.ndarray] | None:
    """The node's weights with each of ``keys`` (those it has) cut to one row of the last
    axis of ``shape``, when every row holds the same values; None when one differs."""
    out = dict(node.weights)
    for key in keys:
        if key not in node.weights:
            continue
        full = np.broadcast_to(np.asarray(node.weights[key]), shape).reshape(-1, shape[-1])
        if np.any(full != full[0]):
            return None
        out[key] = np.array(full[0])
    return out
