"""Check reuse factors: Strategy Resource needs one that folds the layer evenly.

A layer multiplies ``n_in`` inputs into ``n_out`` outputs (Dense: the kernel's shape;
Conv1D/Conv2D: ``n_in`` = channels x kernel area, ``n_out`` = filters; depthwise
convolutions: ``n_in`` = kernel area, ``n_out`` = channels x depth multiplier), i.e.
``n_in * n_out`` products. With Strategy Resource, ``ReuseFactor`` R runs those
products on ``n_in * n_out / R`` multipliers in R steps; the even foldings are

    R in divisors(n_in)  or  R = n_in * d with d in divisors(n_out)

(e.g. n_in = 9, n_out = 32: 1, 3, 9, 18, 36, 72, 144, 288). An invalid R logs a
warning naming the layer, the valid values and the nearest one (ties go to the
smaller), which is used instead; with ``Model.ReuseFactorPolicy: strict`` it is a
``ConfigError``. Strategy Latency accepts any R (it becomes the initiation interval).
"""

from __future__ import annotations

import logging

import numpy as np

from nnfab.errors import ConfigError
from nnfab.ir import Graph, Node
from nnfab.passes.base import Pass

log = logging.getLogger(__name__)

REUSE_OPS = ("Dense", "Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D")
"""Ops with a reuse factor (the ones that multiply by a weight matrix)."""


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return sorted({*small, *(n // d for d in small)})


def reuse_factor_shape(layer: Node) -> tuple[int, int]:
    """``(n_in, n_out)`` of a layer's product matrix (see the module docstring)."""
    if layer.op not in REUSE_OPS:
        raise ConfigError(
            f"layer {layer.name!r} ({layer.op}) has no reuse factor; reuse factors apply to "
            f"{', '.join(REUSE_OPS)}"
        )
    kernel = layer.weights.get("kernel")
    if kernel is None:
        raise ConfigError(f"layer {layer.name!r} ({layer.op}) has no 'kernel' weight")
    shape = np.shape(kernel)
    if layer.op == "Dense":
        return int(shape[0]), int(shape[1])
    if layer.op.startswith("Depthwise"):  # kernel (*taps, C, M)
        return int(np.prod(shape[:-2])), int(shape[-2] * shape[-1])
    return int(np.prod(shape[:-1])), int(shape[-1])  # kernel (*taps, C, F)


def reuse_factors_for(n_in: int, n_out: int) -> list[int]:
    """Valid Resource reuse factors of an ``n_in`` x ``n_out`` product matrix, ascending."""
    if n_in < 1 or n_out < 1:
        raise ConfigError(f"n_in and n_out must be >= 1, got {n_in!r} and {n_out!r}")
    return sorted({*_divisors(n_in), *(n_in * d for d in _divisors(n_out))})


def valid_reuse_factors(layer: Node) -> list[int]:
    """The reuse factors Strategy Resource accepts for ``layer`` (an IR node), ascending."""
    return reuse_factors_for(*reuse_factor_shape(layer))


def nearest_reuse_factor(requested: int, valid: list[int]) -> int:
    """The valid value closest to ``requested``; ties go to the smaller one."""
    return min(valid, key=lambda v: (abs(v - requested), v))


class CheckReuseFactor(Pass):
    """Replace invalid Resource reuse factors by the nearest valid one (or raise if strict)."""

    name = "check_reuse_factor"

    def apply(self, graph: Graph) -> bool:
        policy = graph.metadata.get("reuse_factor_policy", "warn")
        changed = False
        for node in graph.nodes:
            if node.op not in REUSE_OPS or node.strategy != "Resource":
                continue
            valid = valid_reuse_factors(node)
            requested = node.reuse_factor
            if requested in valid:
                continue
            listed = ", ".join(map(str, valid))
            if policy == "strict":
                raise ConfigError(
                    f"layer {node.name!r}: ReuseFactor {requested!r} is not valid for Strategy "
                    f"Resource; valid values: {listed} (Model.ReuseFactorPolicy is 'strict')"
                )
            chosen = nearest_reuse_factor(requested, valid)
            log.warning(
                "layer %r: ReuseFactor %d is not valid for Strategy Resource; valid values: %s; "
                "using %d", node.name, requested, listed, chosen,
            )
            node.reuse_factor = chosen
            changed = True
        return changed
