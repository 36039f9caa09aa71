"""Fuse activations into the layer before them when that cannot change any output.

- A ``linear`` activation whose result type equals its input type is an identity:
  removed.
- A ``relu`` after a Dense/Conv whose result type holds every accumulator value
  exactly (so its cast is lossless) becomes the layer's ``activation`` attribute:
  ``y = relu_result(max(acc, 0))``, exactly what the two layers computed.
Runs after precision inference, since both rules depend on types.
"""

from __future__ import annotations

import logging

from nnfab.ir import Graph
from nnfab.passes.base import Pass

log = logging.getLogger(__name__)

FUSE_INTO = ("Dense", "Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D")


class FuseActivation(Pass):
    name = "fuse_activation"

    def apply(self, graph: Graph) -> bool:
        changed = False
        for act in [n for n in graph.nodes if n.op == "Activation"]:
            fn = act.attrs["function"]
            src = graph.node(act.inputs[0])
            in_type = graph.tensors[src.name].type
            out_type = graph.tensors[act.name].type
            if act.name in graph.outputs and fn == "linear":
                continue
            if fn == "linear" and in_type == out_type:
                graph.remove_node(act.name)
                log.info("removed identity activation %r", act.name)
                changed = True
                continue
            fusable = (
                fn == "relu"
                and "max_value" not in act.attrs
                and src.op in FUSE_INTO
                and src.attrs.get("activation", "linear") == "linear"
                and len(graph.consumers(src.name)) == 1
                and src.name not in graph.outputs
                and in_type is not None
                and in_type.holds(src.precision["accum"])
            )
            if not fusable:
                continue
            # The producer takes over the activation's output name, type and consumers.
            src.attrs["activation"] = "relu"
            src.attrs["fused_activation"] = act.name
            graph.tensors[src.name].type = out_type
            graph.remove_node(act.name)
            log.info("fused relu %r into %r", act.name, src.name)
            changed = True
        return changed
