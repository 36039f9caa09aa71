"""Remove inference no-ops (Dropout) whose output type is their input type."""

from __future__ import annotations

from nnfab.ir import Graph
from nnfab.passes.base import Pass


class RemoveDropout(Pass):
    name = "remove_dropout"

    def apply(self, graph: Graph) -> bool:
        changed = False
        for node in [n for n in graph.nodes if n.op == "Dropout"]:
            if node.name in graph.outputs:
                continue  # keep the graph output name stable
            graph.remove_node(node.name)
            changed = True
        return changed
