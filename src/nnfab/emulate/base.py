"""Kernel protocol, registry and overflow bookkeeping of the emulator.

A kernel is a class registered with ``@register("OpName")``. It is built once per
node (quantize weights, build tables: ``__init__``) and then called on whole
batches: ``kernel(inputs, counter) -> output``. Inputs and outputs are float64
arrays of real values with the batch as the first axis; every value a kernel
returns must already be a value of the node's result type (cast with
``counter.cast``), so overflow is counted where it happens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nnfab.errors import EmulationError
from nnfab.ir import FixedType, Graph, Node


@dataclass
class OverflowCounter:
    """Per-node counts of values that overflowed (wrapped, saturated, zeroed) at each cast."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    totals: dict[str, dict[str, int]] = field(default_factory=dict)
    node: str = ""

    def cast(
        self, key: str, type_: FixedType, values: np.ndarray, source: FixedType | None = None
    ) -> np.ndarray:
        """Quantize ``values`` to ``type_`` and record overflows under ``(node, key)``.

        ``source``: a type every value is known to belong to; when ``type_`` holds it,
        the cast is the identity and is skipped.
        """
        if source is not None and type_.holds(source):
            self.record(key, 0, int(values.size))
            return values
        out, overflowed = type_.quantize_and_count(values)
        self.record(key, overflowed, int(values.size))
        return out

    @classmethod
    def merged(cls, counters: list[OverflowCounter]) -> OverflowCounter:
        """One counter holding the sums of ``counters`` (e.g. of parallel batch chunks)."""
        out = cls()
        for c in counters:
            for node, keys in c.counts.items():
                for key, n in keys.items():
                    out.counts.setdefault(node, {})[key] = out.counts.get(node, {}).get(key, 0) + n
            for node, keys in c.totals.items():
                for key, n in keys.items():
                    out.totals.setdefault(node, {})[key] = out.totals.get(node, {}).get(key, 0) + n
        return out

    def record(self, key: str, overflowed: int, total: int) -> None:
        per_node = self.counts.setdefault(self.node, {})
        per_node[key] = per_node.get(key, 0) + overflowed
        totals = self.totals.setdefault(self.node, {})
        totals[key] = totals.get(key, 0) + total


class Kernel:
    """Base class: holds the node, its input/output types and shapes."""

    def __init__(self, node: Node, graph: Graph) -> None:
        self.node = node
        self.in_types: list[FixedType] = [_type_of(graph, t, node) for t in node.inputs]
        self.in_shapes = [graph.tensors[t].shape for t in node.inputs]
        self.out_type: FixedType = _type_of(graph, node.output, node)
        self.out_shape = graph.tensors[node.output].shape

    def precision(self, key: str) -> FixedType:
        try:
            return self.node.precision[key]
        except KeyError:
            raise EmulationError(
                f"layer {self.node.name!r} ({self.node.op}) has no {key!r} precision; "
                "run the precision passes (nnfab.passes) before emulating"
            ) from None

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        raise NotImplementedError


def _type_of(graph: Graph, tensor: str, node: Node) -> FixedType:
    t = graph.tensors[tensor].type
    if t is None:
        raise EmulationError(
            f"layer {node.name!r}: tensor {tensor!r} has no fixed-point type; "
            "run the precision passes (nnfab.passes) before emulating"
        )
    return t


KERNELS: dict[str, type[Kernel]] = {}


def register(op: str) -> Callable[[type[Kernel]], type[Kernel]]:
    """Class decorator: the kernel that executes IR op ``op``."""

    def wrap(cls: type[Kernel]) -> type[Kernel]:
        if op in KERNELS:
            raise RuntimeError(f"two kernels registered for op {op!r}")
        KERNELS[op] = cls
        return cls

    return wrap
