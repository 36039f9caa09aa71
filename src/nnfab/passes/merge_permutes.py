"""Merge chains of ``Permute`` nodes (frontends emit one per transpose they cannot fold:
attention heads are transposed in and out) into one, and drop identity permutations."""

from __future__ import annotations

import logging

from nnfab.ir import Graph
from nnfab.passes.base import Pass

log = logging.getLogger(__name__)


class MergePermutes(Pass):
    name = "merge_permutes"

    def apply(self, graph: Graph) -> bool:
        changed = False
        for node in [n for n in graph.nodes if n.op == "Permute"]:
            if node not in graph.nodes:
                continue
            source = graph.node(node.inputs[0]) if node.inputs[0] in graph.tensors else None
            if (source is not None and source.op == "Permute"
                    and source.name not in graph.outputs
                    and len(graph.consumers(source.name)) == 1):
                inner, outer = tuple(source.attrs["perm"]), tuple(node.attrs["perm"])
                node.attrs["perm"] = tuple(int(inner[j]) for j in outer)
                graph.remove_node(source.name)
                log.info("merged permutation %r into %r", source.name, node.name)
                changed = True
            if (tuple(node.attrs["perm"]) == tuple(range(len(node.attrs["perm"])))
                    and node.name not in graph.outputs):
                graph.remove_node(node.name)
                log.info("removed identity permutation %r", node.name)
                changed = True
        return changed
