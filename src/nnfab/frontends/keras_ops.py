"""``keras.ops`` operations of functional models that are not layers: ``x[key]``, the
arithmetic operators and ``sum`` / ``mean`` / ``max`` over the spatial axes (global
pooling, ``reduce_nodes``).

- ``x + y``, ``x - y``, ``x * y`` of two tensors of one shape: a ``Merge``; with a
  Python number (``x * 2.0``, ``1 - x``, ``x / 4``): a ``BatchNormalization`` (``x *
  scale + bias``, the constants cast to their configured types).

Keras 3 records ``x[:, a:b:s, ..., k]`` on a symbolic tensor as a ``GetItem`` operation
whose call holds the key. Slices with positive steps and integers of the sample axes (the batch
axis whole, one ``...`` at most) become an IR ``Slice`` (Keras data is channels-last, as
the IR), plus a ``Reshape`` named after the operation when integers drop axes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnfab.errors import UnsupportedLayerError
from nnfab.frontends.keras_mapping import LayerCall
from nnfab.ir.graph import Node

ARITHMETIC = {"Add": "add", "Subtract": "subtract", "Multiply": "multiply",
              "Divide": "divide", "TrueDivide": "divide"}
"""``keras.ops`` operator classes -> the merge mode."""

REDUCTIONS = {"Sum": "sum", "Mean": "avg", "Max": "max"}
"""``keras.ops`` reductions (over the spatial axes: global pooling) -> the pooling mode."""

OPERATIONS = ("GetItem", *ARITHMETIC, *REDUCTIONS)
"""``keras.ops`` operation classes the live-model frontend converts."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        return None
    return float(value)


def operation_nodes(call: LayerCall, args: list[Any]) -> list[Node]:
    """One ``OPERATIONS`` call; ``call.inputs`` are the IR tensors of the tensor ``args``
    in order."""
    if call.cls == "GetItem":
        if len(call.inputs) != 1 or len(args) != 2:
            raise UnsupportedLayerError(f"{call.where()}: expected x[key] on one tensor")
        return getitem_nodes(call, args[1])
    if call.cls in REDUCTIONS:
        return reduce_nodes(call, REDUCTIONS[call.cls])
    mode = ARITHMETIC[call.cls]
    numbers = [_number(a) for a in args]
    if len(args) != 2:
        raise UnsupportedLayerError(f"{call.where()}: expected two operands, got {len(args)}")
    if numbers == [None, None]:
        if mode == "divide":
            raise call.unsupported("operands", "two tensors", "a tensor and a number (x / c)")
        if len(set(call.in_shapes)) != 1:
            raise call.unsupported("operand shapes", tuple(call.in_shapes),
                                   "equal shapes (no broadcasting)")
        return [call.node("Merge", {"mode": mode})]
    if None not in numbers:
        raise call.unsupported("operands", tuple(args), "at least one tensor")
    c = numbers[1] if numbers[0] is None else numbers[0]
    assert c is not None
    number_first = numbers[0] is not None
    if mode == "divide" and (number_first or c == 0):
        raise call.unsupported("operands", "a number divided by a tensor, or by 0",
                               "a tensor divided by a nonzero number")
    scale, bias = {
        "add": (1.0, c),
        "subtract": (-1.0, c) if number_first else (1.0, -c),
        "multiply": (c, 0.0),
        "divide": (1.0 / c, 0.0),
    }[mode]
    n = call.in_shapes[0][-1]
    return [call.node("BatchNormalization", scale=np.full(n, scale), bias=np.full(n, bias))]


def reduce_nodes(call: LayerCall, mode: str) -> list[Node]:
    """``keras.ops.sum / mean / max(x, axis, keepdims)`` over exactly the spatial axes of
    channels-last data (the steps of ``(batch, steps, features)``, or height and width):
    ``GlobalPooling1D/2D``, plus a ``Reshape`` named after the operation with
    ``keepdims``."""
    shape = call.in_shapes[0]
    rank = len(shape) - 1
    axis = call.config.get("axis")
    given = list(axis) if isinstance(axis, tuple | list) else [axis]
    spatial = list(range(1, rank + 1))
    if rank not in (1, 2) or any(not isinstance(a, int) or isinstance(a, bool) for a in given) \
            or sorted(a % (rank + 2) for a in given) != spatial:
        raise call.unsupported("axis", axis, f"exactly the spatial axes {tuple(spatial)} of "
                               "(batch, steps, features) or (batch, height, width, channels) "
                               "data (global pooling)")
    pool = call.node(f"GlobalPooling{rank}D", {"mode": mode})
    if not call.config.get("keepdims"):
        return [pool]
    pool.name = call.unique_name(f"{call.name}_pool")
    return [pool, Node(call.name, "Reshape", [pool.name],
                       attrs={"target_shape": (*(1,) * rank, shape[-1])}, source_class=call.cls)]


def _items(call: LayerCall, key: Any, rank: int) -> list[Any]:
    """The key as one entry per axis (batch first), ``...`` expanded."""
    items = list(key) if isinstance(key, tuple | list) else [key]
    if any(item is None for item in items):
        raise call.unsupported("index", key, "slices and integers (no None / newaxis)")
    ellipses = [k for k, item in enumerate(items) if item is Ellipsis]
    if len(ellipses) > 1:
        raise call.unsupported("index", key, "at most one '...'")
    if ellipses:
        k = ellipses[0]
        items = items[:k] + [slice(None)] * (rank - len(items) + 1) + items[k + 1:]
    if len(items) > rank:
        raise call.unsupported("index", key, f"at most {rank} entries (batch + {rank - 1} "
                               "sample axes)")
    return items + [slice(None)] * (rank - len(items))


def getitem_nodes(call: LayerCall, key: Any) -> list[Node]:
    """``x[key]`` on one input of sample shape ``call.in_shapes[0]``."""
    shape = call.in_shapes[0]
    batch, *items = _items(call, key, len(shape) + 1)
    if batch != slice(None):
        raise call.unsupported("index", key, "the batch axis kept whole (':' first)")
    begin, size, step, kept = [], [], [], []
    for axis, (item, n) in enumerate(zip(items, shape, strict=True)):
        if isinstance(item, slice):
            if item.step is not None and (isinstance(item.step, bool) or not isinstance(
                    item.step, int) or item.step < 1):
                raise call.unsupported("index", key, "slices with positive steps")
            lo, hi, s = item.indices(n)
            if hi <= lo:
                raise call.unsupported("index", key, f"non-empty ranges (axis of size {n})")
            begin.append(lo)
            size.append(-(-(hi - lo) // s))
            step.append(s)
            kept.append(axis)
        elif isinstance(item, int) and not isinstance(item, bool) and -n <= item < n:
            begin.append(item % n)
            size.append(1)
            step.append(1)
        else:
            raise call.unsupported("index", key, f"slices and integers in {-n}..{n - 1}")
    if not kept:
        raise UnsupportedLayerError(
            f"{call.where()}: the index {key!r} picks one element per sample; nnfab needs at "
            "least one sample axis left (use a slice, e.g. x[:, k:k + 1])")
    if tuple(size) == tuple(shape):
        return [call.node("Reshape", {"target_shape": tuple(shape)})]  # the whole tensor
    attrs: dict[str, Any] = {"begin": tuple(begin), "size": tuple(size)}
    if any(s != 1 for s in step):
        attrs["step"] = tuple(step)
    part = call.node("Slice", attrs)
    if len(kept) == len(shape):
        return [part]
    part.name = call.unique_name(f"{call.name}_slice")
    reshape = Node(call.name, "Reshape", [part.name],
                   attrs={"target_shape": tuple(size[a] for a in kept)}, source_class=call.cls)
    return [part, reshape]
