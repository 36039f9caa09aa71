"""Graph passes: small named rewrites, run as one readable pipeline.

Writing a pass: subclass ``Pass``, give it a ``name`` (an imperative phrase, e.g.
``"fold_batchnorm"``) and implement ``apply(graph) -> bool`` returning whether it
changed anything. A pass mutates the graph in place and must leave it valid
(``graph.validate()`` and ``infer_shapes`` are re-run after each pass by the
pipeline). A pass that needs the user's configuration takes it in ``__init__``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from nnfab.ir import Graph, infer_shapes

log = logging.getLogger(__name__)


class Pass:
    """One graph rewrite."""

    name: str = "pass"

    def apply(self, graph: Graph) -> bool:
        raise NotImplementedError


def run_passes(graph: Graph, passes: Sequence[Pass]) -> Graph:
    """Apply each pass once, in order, checking the graph after each."""
    for p in passes:
        changed = p.apply(graph)
        graph.toposort()
        graph.validate()
        infer_shapes(graph)
        log.debug("pass %s: %s", p.name, "changed" if changed else "no change")
    return graph
