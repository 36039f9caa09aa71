"""Recurrent ops (SimpleRNN, LSTM, GRU): attributes, weight layout, shapes and types.

The arithmetic is defined in ``docs/semantics.md`` ("Recurrent layers"). Weights
follow Keras: ``kernel`` (n_in, G*units), ``recurrent_kernel`` (units, G*units) with
the G gate blocks in Keras order (LSTM ``i, f, c, o``; GRU ``z, r, h``), ``bias``
(G*units,), or (2, 3*units) for a GRU with ``reset_after`` (row 0 the input bias,
row 1 the recurrent bias). The input is ``(steps, n_in)``; the output ``(steps,
units)`` with ``return_sequences``, else ``(units,)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nnfab.errors import GraphError
from nnfab.ir.graph import Node
from nnfab.ir.types import FixedType

RECURRENT_OPS = ("SimpleRNN", "LSTM", "GRU")
GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
"""Number of gate blocks G of each op."""
TABLE_FUNCTIONS = ("sigmoid", "tanh")
"""Activations read from a lookup table (``nnfab.ir.tables``)."""
HARD_FUNCTIONS = ("hard_sigmoid", "hard_tanh")
"""Activations computed exactly, then cast to the table type: ``hard_sigmoid(x) =
clip(x/2 + 1/2, 0, 1)`` (QKeras' definition) and ``hard_tanh(x) = clip(x, -1, 1)``."""
RECURRENT_FUNCTIONS = TABLE_FUNCTIONS + HARD_FUNCTIONS
"""Values allowed for ``activation`` and ``recurrent_activation``."""

RECURRENT_PRECISION_KEYS = (
    "weight", "recurrent_weight", "bias", "accum", "preact", "state", "state_read", "table",
    "recurrent_table",
)
SIMPLE_RNN_PRECISION_KEYS = (
    "weight", "recurrent_weight", "bias", "accum", "preact", "state", "state_read", "table",
)

RECURRENT_WEIGHTS = ("kernel", "recurrent_kernel", "bias")

Shape = tuple[int, ...]


def uses_recurrent_activation(op: str) -> bool:
    """LSTM and GRU have a second (gate) activation; SimpleRNN has one."""
    return op in ("LSTM", "GRU")


def recurrent_attrs(node: Node) -> dict[str, Any]:
    """The attributes with their defaults: units, flags and activation names."""
    a = node.attrs
    return {
        "units": int(a.get("units", node.weights["recurrent_kernel"].shape[0])),
        "return_sequences": bool(a.get("return_sequences", False)),
        "go_backwards": bool(a.get("go_backwards", False)),
        "reset_after": bool(a.get("reset_after", node.op == "GRU")) and node.op == "GRU",
        "activation": str(a.get("activation", "tanh")),
        "recurrent_activation": str(a.get("recurrent_activation", "sigmoid")),
    }


def is_table_function(fn: str) -> bool:
    """Whether ``fn`` is read from a lookup table (else computed exactly, HARD_FUNCTIONS)."""
    return fn in TABLE_FUNCTIONS


def recurrent_table_attrs(attrs: Mapping[str, Any], recurrent: bool) -> dict[str, Any]:
    """The ``table_size`` / ``table_range`` of the activation (or recurrent activation) table."""
    prefix = "recurrent_" if recurrent else ""
    out = {}
    for key in ("table_size", "table_range"):
        if prefix + key in attrs:
            out[key] = attrs[prefix + key]
    return out


def check_recurrent(node: Node) -> dict[str, Any]:
    """Check the weights and attributes; returns ``recurrent_attrs(node)``."""
    where = f"layer {node.name!r} ({node.op})"
    for w in ("kernel", "recurrent_kernel", "bias"):
        if w not in node.weights:
            raise GraphError(f"{where} lacks weight {w!r}")
    attrs = recurrent_attrs(node)
    units, gates = attrs["units"], GATES[node.op]
    kernel = np.asarray(node.weights["kernel"])
    rec = np.asarray(node.weights["recurrent_kernel"])
    bias = np.asarray(node.weights["bias"])
    if units < 1 or rec.shape != (units, gates * units):
        raise GraphError(
            f"{where}: recurrent_kernel has shape {rec.shape}, expected (units, {gates}*units) "
            f"= ({units}, {gates * units})"
        )
    if kernel.ndim != 2 or kernel.shape[1] != gates * units:
        raise GraphError(
            f"{where}: kernel has shape {kernel.shape}, expected (n_in, {gates * units})"
        )
    want = (2, gates * units) if attrs["reset_after"] else (gates * units,)
    if bias.shape != want:
        raise GraphError(
            f"{where}: bias has shape {bias.shape}, expected {want}"
            + (" (input and recurrent bias rows, reset_after=True)" if attrs["reset_after"] else "")
        )
    names = [("activation", attrs["activation"])]
    if uses_recurrent_activation(node.op):
        names.append(("recurrent_activation", attrs["recurrent_activation"]))
    for key, fn in names:
        if fn not in RECURRENT_FUNCTIONS:
            raise GraphError(
                f"{where}: {key} {fn!r} is not supported; allowed: {', '.join(RECURRENT_FUNCTIONS)}"
            )
    return attrs


def shape_recurrent(node: Node, shapes: list[Shape]) -> Shape:
    """``(steps, n_in)`` -> ``(steps, units)`` with return_sequences, else ``(units,)``."""
    (shape,) = shapes
    attrs = check_recurrent(node)
    n_in = node.weights["kernel"].shape[0]
    if len(shape) != 2 or shape[1] != n_in or shape[0] < 1:
        raise GraphError(
            f"layer {node.name!r} ({node.op}): needs an input (steps, {n_in}) with a static "
            f"number of steps >= 1, got {shape}"
        )
    units = attrs["units"]
    return (shape[0], units) if attrs["return_sequences"] else (units,)


def accumulator_range(
    x_type: FixedType,
    kernel: np.ndarray,
    w_type: FixedType,
    state_type: FixedType,
    recurrent: np.ndarray,
    r_type: FixedType,
    bias: np.ndarray,
    b_type: FixedType,
) -> tuple[float, float, int]:
    """``(lo, hi, frac)`` of every ``sum x*W + sum h*U + b`` (for the exact accumulator).

    ``kernel``/``recurrent``/``bias`` are the quantized weights; every bias row counts
    (a GRU with reset_after sums each row separately, which the bound covers).
    """
    frac = max(x_type.frac + w_type.frac, state_type.frac + r_type.frac, b_type.frac)

    def part(w: np.ndarray, t: FixedType) -> tuple[np.ndarray, np.ndarray]:
        a, b = w * t.max, w * t.min
        return np.maximum(a, b).sum(axis=0), np.minimum(a, b).sum(axis=0)

    top_x, bot_x = part(kernel, x_type)
    top_h, bot_h = part(recurrent, state_type)
    b2 = bias.reshape(-1, kernel.shape[1])
    top = top_x + top_h + np.maximum(b2, 0).sum(axis=0)
    bottom = bot_x + bot_h + np.minimum(b2, 0).sum(axis=0)
    return min(float(bottom.min()), 0.0), max(float(top.max()), 0.0), frac
