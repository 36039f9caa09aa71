"""``ElementCast``: a cast whose fixed-point type may differ per element (HGQ's
``FixedPointQuantizer`` and per-element data quantizers).

Weights ``keep_negative`` (k, 0 or 1), ``bits`` (b) and ``integers`` (i, the integer
bits including the sign, as in ``ap_fixed<b, i>``) broadcast against one sample; attrs
``rounding`` / ``overflow`` are shared (``AP_TRN``, ... / ``AP_WRAP``, ``AP_SAT``,
``AP_SAT_ZERO``, ``AP_SAT_SYM``). Element ``e`` becomes ``ap_[u]fixed<b_e, i_e>(x_e)``,
0 where ``b_e == 0``; the layer's result type (default: ``union_type``, which holds
every element type exactly) then holds it.
"""

from __future__ import annotations

import numpy as np

from nnfab.errors import GraphError
from nnfab.ir.graph import Node
from nnfab.ir.types import FixedType, Overflow, Rounding, union_of

WEIGHTS = ("keep_negative", "bits", "integers")


def element_fields(node: Node, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """``(k, b, i)`` as int arrays of the sample ``shape`` (k and i are 0 where b is)."""
    try:
        k, b, i = (np.broadcast_to(np.asarray(node.weights[w]), shape).astype(np.int64)
                   for w in WEIGHTS)
    except KeyError as e:
        raise GraphError(f"layer {node.name!r} (ElementCast): weight {e.args[0]!r} is "
                         f"missing; it needs {', '.join(WEIGHTS)}") from None
    except ValueError:
        shapes = [np.shape(node.weights[w]) for w in WEIGHTS]
        raise GraphError(f"layer {node.name!r} (ElementCast): the shapes {shapes} of "
                         f"{', '.join(WEIGHTS)} do not broadcast to the input {shape}") from None
    if np.any((k != 0) & (k != 1)) or np.any(b < 0):
        raise GraphError(f"layer {node.name!r} (ElementCast): keep_negative must be 0 or 1 "
                         "and bits >= 0")
    zero = b == 0
    return np.where(zero, 0, k), b, np.where(zero, 0, i)


def modes(node: Node) -> tuple[Rounding, Overflow]:
    try:
        return Rounding(node.attrs["rounding"]), Overflow(node.attrs["overflow"])
    except ValueError as e:
        raise GraphError(f"layer {node.name!r} (ElementCast): {e}; allowed rounding "
                         f"{[r.value for r in Rounding]}, overflow "
                         f"{[o.value for o in Overflow]}") from None


def element_type(k: int, b: int, i: int, rounding: Rounding, overflow: Overflow
                 ) -> FixedType | None:
    """The type of one element, None for a zero-width one (its output is 0)."""
    if b == 0:
        return None
    return FixedType(int(b), int(i), bool(k), rounding, overflow)


def element_types(node: Node, shape: tuple[int, ...]) -> dict[tuple[int, int, int], np.ndarray]:
    """Each distinct ``(k, b, i)`` and the boolean mask of its elements."""
    k, b, i = element_fields(node, shape)
    keys = np.stack([k, b, i], axis=-1).reshape(-1, 3)
    out: dict[tuple[int, int, int], np.ndarray] = {}
    for key in {tuple(int(v) for v in row) for row in keys}:
        out[key] = ((k == key[0]) & (b == key[1]) & (i == key[2]))  # type: ignore[index]
    return out


def union_type(node: Node, shape: tuple[int, ...]) -> FixedType:
    """The narrowest type holding every element's type (signed if any element is)."""
    rounding, overflow = modes(node)
    types = [element_type(*key, rounding, overflow) for key in element_types(node, shape)]
    present = [t for t in types if t is not None]
    return union_of(present) if present else FixedType(1, 1, False)
