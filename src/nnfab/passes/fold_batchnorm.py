"""Fold a BatchNormalization into the Dense / Conv that feeds it (float weights)."""

from __future__ import annotations

import logging

import numpy as np

from nnfab.ir import Graph
from nnfab.passes.base import Pass

log = logging.getLogger(__name__)

FOLDABLE = ("Dense", "Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D")


class FoldBatchNorm(Pass):
    """``BN(W x + b) = (W*s) x + (b*s + t)`` per output channel.

    Runs before precision is assigned; folds only when the producer feeds nothing
    but the batch normalization and neither node has user-set types yet.
    """

    name = "fold_batchnorm"

    def apply(self, graph: Graph) -> bool:
        changed = False
        for bn in [n for n in graph.nodes if n.op == "BatchNormalization"]:
            producer = graph.node(bn.inputs[0])
            if producer.op not in FOLDABLE or len(graph.consumers(producer.name)) != 1:
                continue
            if producer.name in graph.outputs:
                continue
            if producer.precision or bn.precision or graph.tensors[producer.name].type:
                continue  # quantized (e.g. QKeras) weights: folding would re-round them
            if producer.attrs.get("activation", "linear") != "linear":
                continue
            scale = bn.weights["scale"].astype(np.float64)
            shift = bn.weights["bias"].astype(np.float64)
            kernel = producer.weights["kernel"].astype(np.float64)
            if producer.op.startswith("Depthwise"):
                c, m = kernel.shape[-2], kernel.shape[-1]
                kernel = kernel * scale.reshape(c, m)
            else:
                kernel = kernel * scale
            producer.weights["kernel"] = kernel
            producer.weights["bias"] = producer.weights["bias"] * scale + shift
            producer.attrs["folded_batchnorm"] = bn.name
            # The folded layer now produces what the BN produced: it takes the BN's place.
            for consumer in graph.consumers(bn.name):
                consumer.inputs = [producer.name if t == bn.name else t for t in consumer.inputs]
            graph.outputs = [producer.name if t == bn.name else t for t in graph.outputs]
            graph.nodes.remove(bn)
            del graph.tensors[bn.name]
            log.info("folded batch normalization %r into %r", bn.name, producer.name)
            changed = True
        return changed
