"""The IR: a ``Graph`` of ``Node``s connected by named ``Tensor``s.

Pure data: shapes exclude the batch dimension and are channels-last
(``(length, channels)`` for 1-D, ``(height, width, channels)`` for 2-D data).
Each node produces exactly one output tensor, named after the node. The types a
node uses internally (weights, bias, accumulator, tables) live in
``Node.precision``; the type of its output lives on the output ``Tensor``.
"""

from __future__ import annotations

import base64
import copy
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnfab.errors import GraphError
from nnfab.ir.types import FixedType

IR_FORMAT_VERSION = 1


@dataclass
class Tensor:
    """A value flowing between nodes: shape without batch, and its fixed-point type."""

    name: str
    shape: tuple[int, ...]
    type: FixedType | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class Node:
    """One layer.

    ``op`` is the IR operation (see ``nnfab.ir.ops.OPS``); ``source_class`` is the
    class name the user sees in the framework (``Dense``, ``QDense``, ``Linear``),
    used for ``LayerType`` configuration.
    """

    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    precision: dict[str, FixedType] = field(default_factory=dict)
    reuse_factor: int = 1
    strategy: str = "Latency"
    source_class: str = ""

    @property
    def output(self) -> str:
        """Name of the tensor this node produces (the node's own name)."""
        return self.name


@dataclass
class Graph:
    """A directed acyclic graph of nodes, kept in topological order."""

    name: str = "model"
    nodes: list[Node] = field(default_factory=list)
    tensors: dict[str, Tensor] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    io_type: str = "io_parallel"
    metadata: dict[str, Any] = field(default_factory=dict)

    # ---------------------------------------------------------------- access
    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise GraphError(f"no layer named {name!r}; layers: {[n.name for n in self.nodes]}")

    def has_node(self, name: str) -> bool:
        return any(n.name == name for n in self.nodes)

    def producer(self, tensor: str) -> Node:
        return self.node(tensor)

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes if tensor in n.inputs]

    def output_tensor(self, node: Node | str) -> Tensor:
        name = node.output if isinstance(node, Node) else node
        return self.tensors[name]

    def input_tensors(self, node: Node) -> list[Tensor]:
        return [self.tensors[t] for t in node.inputs]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    # -------------------------------------------------------------- building
    def add_node(self, node: Node, shape: tuple[int, ...], type_: FixedType | None = None) -> Node:
        """Append a node and its output tensor (inputs must already exist)."""
        if node.name in self.tensors:
            raise GraphError(f"duplicate layer name {node.name!r}")
        for t in node.inputs:
            if t not in self.tensors:
                raise GraphError(f"layer {node.name!r} reads unknown tensor {t!r}")
        # Row-major weights: frontends hand over transposed views (Linear, Gemm), which
        # make every later pass and kernel slower.
        node.weights = {k: np.ascontiguousarray(v) for k, v in node.weights.items()}
        self.nodes.append(node)
        self.tensors[node.name] = Tensor(node.name, tuple(int(s) for s in shape), type_)
        if node.op == "Input":
            self.inputs.append(node.name)
        return node

    def remove_node(self, name: str) -> None:
        """Remove a single-input node, rewiring its consumers to its input."""
        node = self.node(name)
        if len(node.inputs) != 1:
            raise GraphError(f"cannot bypass layer {name!r}: it has {len(node.inputs)} inputs")
        source = node.inputs[0]
        for consumer in self.consumers(name):
            consumer.inputs = [source if t == name else t for t in consumer.inputs]
        self.outputs = [source if t == name else t for t in self.outputs]
        self.nodes.remove(node)
        del self.tensors[name]

    def toposort(self) -> None:
        """Order nodes so every node comes after the producers of its inputs.

        Stable: an already sorted graph keeps its order. Iterative, so graph depth
        is not limited by Python's recursion limit.
        """
        by_name: dict[str, Node] = {}
        for n in self.nodes:
            if n.name in by_name:
                raise GraphError(f"duplicate layer name {n.name!r}")
            by_name[n.name] = n
        order: list[Node] = []
        done: set[str] = set()
        for root in self.nodes:
            if root.name in done:
                continue
            # depth-first walk; the stack holds (node, index of its next input to visit)
            stack: list[tuple[Node, int]] = [(root, 0)]
            on_path = {root.name}
            while stack:
                n, i = stack[-1]
                if i == len(n.inputs):
                    stack.pop()
                    on_path.discard(n.name)
                    done.add(n.name)
                    order.append(n)
                    continue
                stack[-1] = (n, i + 1)
                t = n.inputs[i]
                if t in done:
                    continue
                if t not in by_name:
                    raise GraphError(f"layer {n.name!r} reads tensor {t!r} that no layer produces")
                if t in on_path:
                    names = [m.name for m, _ in stack]
                    cycle = [*names[names.index(t) :], t]
                    raise GraphError(f"cycle through layers {' -> '.join(cycle)}")
                stack.append((by_name[t], 0))
                on_path.add(t)
        self.nodes = order

    def validate(self) -> None:
        """Check structure: unique names, known tensors, topological order, outputs exist."""
        seen: set[str] = set()
        names = {n.name for n in self.nodes}
        for n in self.nodes:
            if n.name in seen:
                raise GraphError(f"duplicate layer name {n.name!r}")
            for t in n.inputs:
                if t not in names:
                    raise GraphError(f"layer {n.name!r} reads {t!r}, which no layer produces")
                if t not in seen:
                    raise GraphError(
                        f"layer {n.name!r} reads {t!r} before it is produced (not topological)"
                    )
            if n.name not in self.tensors:
                raise GraphError(f"layer {n.name!r} has no output tensor")
            if n.op == "Input" and n.inputs:
                raise GraphError(f"input layer {n.name!r} must not have inputs")
            if n.reuse_factor < 1:
                raise GraphError(
                    f"layer {n.name!r}: reuse factor must be >= 1, got {n.reuse_factor!r}"
                )
            seen.add(n.name)
        if not self.outputs:
            raise GraphError("graph has no outputs")
        for t in self.outputs:
            if t not in seen:
                raise GraphError(f"graph output {t!r} is not produced by any layer")
        for t in self.inputs:
            if t not in seen or self.node(t).op != "Input":
                raise GraphError(f"graph input {t!r} is not an Input layer")

    def copy(self) -> Graph:
        """A deep copy (weights, attrs and metadata included)."""
        return copy.deepcopy(self)

    def tail(self, start: str) -> Graph:
        """The part of the network after layer ``start``, as a graph of its own.

        Its input is an ``Input`` layer named ``start`` with ``start``'s output shape and
        type; every layer that depends on ``start`` follows, unchanged. Raises when a
        later layer also reads something computed before ``start`` (a skip connection).
        """
        anchor = self.node(start)
        after: list[Node] = []
        keep = {start}
        for node in self.nodes[self.nodes.index(anchor) + 1 :]:
            if any(t in keep for t in node.inputs):
                if not all(t in keep for t in node.inputs):
                    raise GraphError(
                        f"cannot cut the network after {start!r}: layer {node.name!r} also "
                        f"reads {[t for t in node.inputs if t not in keep]}"
                    )
                after.append(node)
                keep.add(node.name)
        outputs = [t for t in self.outputs if t in keep and t != start]
        if not outputs:
            raise GraphError(f"no graph output depends on layer {start!r}")
        source = self.tensors[start]
        part = Graph(name=f"{self.name}_from_{start}", io_type=self.io_type,
                     metadata=copy.deepcopy(self.metadata))
        part.add_node(Node(start, "Input", [], attrs={"shape": source.shape},
                           source_class="InputLayer"), source.shape, source.type)
        for node in after:
            part.add_node(copy.deepcopy(node), self.tensors[node.name].shape,
                          self.tensors[node.name].type)
        part.outputs = outputs
        part.validate()
        return part

    # ---------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "nnfab-ir",
            "version": IR_FORMAT_VERSION,
            "name": self.name,
            "io_type": self.io_type,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "metadata": self.metadata,
            "tensors": [
                {"name": t.name, "shape": list(t.shape), "type": str(t.type) if t.type else None}
                for t in self.tensors.values()
            ],
            "nodes": [
                {
                    "name": n.name,
                    "op": n.op,
                    "inputs": list(n.inputs),
                    "attrs": n.attrs,
                    "weights": {k: _encode_array(v) for k, v in n.weights.items()},
                    "precision": {k: str(v) for k, v in n.precision.items()},
                    "reuse_factor": n.reuse_factor,
                    "strategy": n.strategy,
                    "source_class": n.source_class,
                }
                for n in self.nodes
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Graph:
        """Rebuild a graph from ``to_dict`` output (attribute lists become tuples)."""
        if not isinstance(data, dict) or data.get("format") != "nnfab-ir":
            raise GraphError("not an nnfab IR document (missing format: nnfab-ir)")
        if data.get("version") != IR_FORMAT_VERSION:
            raise GraphError(
                f"IR version {data.get('version')!r} is not supported (this nnfab reads "
                f"{IR_FORMAT_VERSION})"
            )
        try:
            return cls._from_dict(data)
        except (KeyError, TypeError, ValueError) as e:
            what = f"missing field {e}" if isinstance(e, KeyError) else str(e)
            raise GraphError(f"malformed nnfab IR document: {what}") from e

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Graph:
        g = cls(
            name=data["name"],
            io_type=data.get("io_type", "io_parallel"),
            inputs=list(data["inputs"]),
            outputs=list(data["outputs"]),
            metadata=dict(data.get("metadata", {})),
        )
        for t in data["tensors"]:
            g.tensors[t["name"]] = Tensor(
                t["name"], tuple(t["shape"]), FixedType.parse(t["type"]) if t["type"] else None
            )
        for n in data["nodes"]:
            g.nodes.append(
                Node(
                    name=n["name"],
                    op=n["op"],
                    inputs=list(n["inputs"]),
                    attrs=_tuplify(n["attrs"]),
                    weights={k: _decode_array(v) for k, v in n["weights"].items()},
                    precision={k: FixedType.parse(v) for k, v in n["precision"].items()},
                    reuse_factor=int(n["reuse_factor"]),
                    strategy=n["strategy"],
                    source_class=n.get("source_class", ""),
                )
            )
        return g

    def save(self, path: str | Path) -> None:
        """Write the graph as JSON (weights embedded as base64 .npy)."""
        for n in self.nodes:
            for key, value in n.attrs.items():
                try:
                    json.dumps(value, default=_json_default)
                except (TypeError, ValueError) as e:
                    raise GraphError(
                        f"layer {n.name!r}: attribute {key!r} = {value!r} cannot be saved: {e}"
                    ) from e
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, default=_json_default))

    @classmethod
    def load(cls, path: str | Path) -> Graph:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise GraphError(f"cannot read IR file {str(path)!r}: {e}") from e
        return cls.from_dict(data)


def _encode_array(a: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _decode_array(text: str) -> np.ndarray:
    return np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, tuple):
        return list(obj)
    if isinstance(obj, FixedType):
        return str(obj)
    raise TypeError(
        f"cannot serialize {type(obj).__name__} in IR attributes (allowed: numbers, strings, "
        "booleans, None, tuples, dicts, fixed-point types)"
    )


def _tuplify(value: Any) -> Any:
    """JSON turns tuples into lists; attributes are tuples by convention (at any depth)."""
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuplify(v) for k, v in value.items()}
    return value
