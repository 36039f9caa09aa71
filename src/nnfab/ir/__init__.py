"""nnfab's intermediate representation: pure data, imports nothing else of nnfab."""

from nnfab.ir.graph import Graph, Node, Tensor
from nnfab.ir.names import Namespace, sanitize
from nnfab.ir.ops import OPS, infer_shapes
from nnfab.ir.types import FixedType, Overflow, Rounding, fixed

__all__ = [
    "OPS",
    "FixedType",
    "Graph",
    "Namespace",
    "Node",
    "Overflow",
    "Rounding",
    "Tensor",
    "fixed",
    "infer_shapes",
    "sanitize",
]

# ops defined beside the catalogue register themselves into ``OPS`` on import
from nnfab.ir import threshold as _threshold  # noqa: F401
