"""Zero padding in front of a convolution, folded into the convolution's own padding.

A pixel stream cannot change the image size between windowed layers, but a convolution
over an explicitly zero-padded image is the same arithmetic as the convolution with
those pads (padding elements are 0 and add nothing to any sum). ``fold_zero_padding``
rewrites a copy of the graph so that the pixel-stream generator sees the padded
convolution only. A ZeroPadding is folded when it is read by exactly one
``Conv1D/2D`` / ``DepthwiseConv1D/2D`` of its rank, is not a graph output, and its
result type holds its input type (so it changes no value).
"""

from __future__ import annotations

import logging

from nnfab.ir import Graph

log = logging.getLogger(__name__)

PADDING_OPS = ("ZeroPadding1D", "ZeroPadding2D")


def foldable_paddings(graph: Graph) -> list[tuple[str, str]]:
    """``(padding layer, convolution)`` pairs that ``fold_zero_padding`` merges."""
    pairs = []
    for node in graph.nodes:
        if node.op not in PADDING_OPS or node.name in graph.outputs:
            continue
        consumers = graph.consumers(node.name)
        rank = node.op[-2]
        if len(consumers) != 1 or consumers[0].op not in (f"Conv{rank}D",
                                                          f"DepthwiseConv{rank}D"):
            continue
        t_in = graph.tensors[node.inputs[0]].type
        t_out = graph.tensors[node.name].type
        if t_in is None or t_out is None or not t_out.holds(t_in):
            continue
        pairs.append((node.name, consumers[0].name))
    return pairs


def fold_zero_padding(graph: Graph) -> Graph:
    """``graph`` itself when nothing folds, else a copy with the paddings folded."""
    pairs = foldable_paddings(graph)
    if not pairs:
        return graph
    out = graph.copy()
    for pad_name, conv_name in pairs:
        pads = tuple(int(p) for p in out.node(pad_name).attrs["pads"])
        conv = out.node(conv_name)
        own = tuple(int(p) for p in conv.attrs.get("pads", (0,) * len(pads)))
        conv.attrs["pads"] = tuple(a + b for a, b in zip(own, pads, strict=True))
        out.remove_node(pad_name)
        log.info("layer %r: zero padding %s folded into %r (pads now %s) for the pixel stream",
                 pad_name, pads, conv_name, conv.attrs["pads"])
    return out
