"""Graph passes and the standard pipelines."""

from __future__ import annotations

from typing import Any

from nnfab.ir import Graph
from nnfab.passes.apply_config import ApplyConfig
from nnfab.passes.base import Pass, run_passes
from nnfab.passes.check_reuse_factor import CheckReuseFactor, valid_reuse_factors
from nnfab.passes.fold_batchnorm import FoldBatchNorm
from nnfab.passes.fuse_activation import FuseActivation
from nnfab.passes.infer_precision import InferPrecision
from nnfab.passes.merge_permutes import MergePermutes
from nnfab.passes.remove_dropout import RemoveDropout


def optimize_float(graph: Graph) -> Graph:
    """Passes on the float graph, before any type is chosen."""
    return run_passes(graph, [RemoveDropout(), MergePermutes(), FoldBatchNorm()])


def assign_precision(graph: Graph, config: dict[str, Any]) -> Graph:
    """Apply the configuration, infer the remaining types, fuse what is lossless, check
    the reuse factors."""
    return run_passes(
        graph, [ApplyConfig(config), InferPrecision(), FuseActivation(), CheckReuseFactor()]
    )


__all__ = [
    "ApplyConfig",
    "CheckReuseFactor",
    "FoldBatchNorm",
    "FuseActivation",
    "InferPrecision",
    "MergePermutes",
    "Pass",
    "RemoveDropout",
    "assign_precision",
    "optimize_float",
    "run_passes",
    "valid_reuse_factors",
]
