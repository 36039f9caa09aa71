"""The count input of ``VertexMask`` / ``VertexMean`` (``nnfab.ir.vertex``): an ``Input``
read only as a vertex count, whose type the configuration leaves open, gets the count type
``nnfab.ir.vertex.count_type(V)`` (an integer holding 0..V) instead of the model default."""

from __future__ import annotations

import logging

from nnfab.ir import Graph, Node
from nnfab.ir.vertex import COUNT_INPUT, VERTEX_OPS, count_type

log = logging.getLogger(__name__)


def prepare_count_input(graph: Graph, node: Node) -> None:
    """Type an untyped-by-config Input that is only ever read as a vertex count."""
    if node.op != "Input" or node.attrs.get("result_from_config"):
        return
    tensor = graph.tensors[node.name]
    if tensor.type is not None:
        return
    uses = [(n, i) for n in graph.nodes for i, t in enumerate(n.inputs) if t == node.name]
    if not uses or any(n.op not in VERTEX_OPS or i != COUNT_INPUT for n, i in uses):
        return
    vertices = max(int(graph.tensors[n.inputs[0]].shape[0]) for n, _ in uses)
    tensor.type = count_type(vertices)
    log.info("input %r (a vertex count) gets the count type %s", node.name, tensor.type)
