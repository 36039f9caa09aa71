"""Type defaults of the recurrent ops (SimpleRNN, LSTM, GRU), called by ``InferPrecision``.

- ``weight``, ``bias``, ``preact``, ``state``: the model default; ``recurrent_weight``:
  the layer's ``weight`` type; ``state_read`` stays unset (no cast where a step reads
  the state) unless configured.
- ``accum`` (``auto``): exact for inputs of the input type and states of ``state_read``
  (else ``state``).
- ``table`` / ``recurrent_table`` and their sizes and ranges: the Activation defaults
  of a table function (``nnfab.ir.tables``); a hard function (``hard_sigmoid``,
  ``hard_tanh``) gets the type that holds its exact value for inputs of ``preact``.
- The attr ``exact_internals`` (QKeras' recurrent layers, which compute in float with a
  ``state_quantizer`` on the states they read) with ``state_read`` set: ``preact`` and
  ``state`` default to types that hold every value exactly, so the only casts are the
  quantizers' (``state_read``, the weight types and the activations' table types).
"""

from __future__ import annotations

import logging

import numpy as np

from nnfab.ir import FixedType, Node
from nnfab.ir.recurrent import (
    accumulator_range,
    check_recurrent,
    is_table_function,
    uses_recurrent_activation,
)
from nnfab.ir.tables import TABLE_DEFAULTS, TABLE_TYPE_DEFAULTS
from nnfab.ir.types import union_of

log = logging.getLogger(__name__)

Range = tuple[float, float, int]  # lo, hi, fractional bits


def _range(t: FixedType) -> Range:
    return float(t.min), float(t.max), t.frac


def _mul(a: Range, b: Range) -> Range:
    corners = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]]
    return min(corners), max(corners), a[2] + b[2]


def _add(a: Range, b: Range) -> Range:
    return a[0] + b[0], a[1] + b[1], max(a[2], b[2])


def _union(*ranges: Range) -> Range:
    return (min(r[0] for r in ranges), max(r[1] for r in ranges), max(r[2] for r in ranges))


def _as_type(r: Range) -> FixedType:
    from nnfab.passes.infer_precision import type_for_range  # circular at import time

    return type_for_range(min(r[0], 0.0), max(r[1], 0.0), r[2])


def hard_function_type(fn: str, frac: int) -> FixedType:
    """The type holding ``fn(v)`` exactly for every ``v`` on the grid ``2**-frac``."""
    if fn == "hard_sigmoid":  # clip(v/2 + 1/2, 0, 1): one more fractional bit
        return _as_type((0.0, 1.0, frac + 1))
    return _as_type((-1.0, 1.0, max(frac, 0)))


def _exact_preact(node: Node, accum: FixedType, rtable: FixedType | None) -> FixedType:
    """``preact`` holding every pre-activation exactly: the accumulator's values, and for
    a GRU with reset_after ``ax + r * ah``."""
    if node.op == "GRU" and rtable is not None and check_recurrent(node)["reset_after"]:
        return _as_type(_union(_range(accum), _add(_range(accum),
                                                   _mul(_range(rtable), _range(accum)))))
    return accum


def _exact_state(node: Node, p: dict[str, FixedType]) -> FixedType:
    """``state`` holding every new state exactly, from the types the step reads."""
    table = _range(p["table"])
    if node.op == "SimpleRNN":
        return p["table"]
    read = _range(p["state_read"])
    gate = _range(p["recurrent_table"])
    if node.op == "LSTM":
        c = _add(_mul(gate, read), _mul(gate, table))
        return _as_type(_union(c, _mul(gate, table)))
    one_minus = (1.0 - gate[1], 1.0 - gate[0], gate[2])
    h = _add(_mul(gate, read), _mul(one_minus, table))
    return _as_type(_union(h, _mul(gate, read)))  # also q = r . h (reset_after false)


def recurrent_defaults(node: Node, x_type: FixedType | None, default: FixedType) -> None:
    """Fill the open precision keys and table attributes of a recurrent node."""
    from nnfab.passes.infer_precision import type_for_range  # circular at import time

    assert x_type is not None
    attrs = check_recurrent(node)
    p = node.precision
    exact = bool(node.attrs.get("exact_internals", False)) and "state_read" in p
    for key in ("weight", "bias") if exact else ("weight", "bias", "preact", "state"):
        p.setdefault(key, default)
    p.setdefault("recurrent_weight", p["weight"])
    tables = [("table", "", attrs["activation"])]
    if uses_recurrent_activation(node.op):
        tables.append(("recurrent_table", "recurrent_", attrs["recurrent_activation"]))
    for key, prefix, fn in tables:
        if not is_table_function(fn):
            continue
        p.setdefault(key, FixedType.parse(TABLE_TYPE_DEFAULTS[fn]))
        for attr, value in TABLE_DEFAULTS[fn].items():
            node.attrs.setdefault(prefix + attr, value)
    for key, wname in (("weight", "kernel"), ("recurrent_weight", "recurrent_kernel"),
                       ("bias", "bias")):
        _, n_over = p[key].quantize_and_count(node.weights[wname])
        if n_over:
            log.warning(
                "layer %r: %d of %d %s values lie outside the range [%g, %g] of %s; widen "
                "the %r precision.", node.name, n_over, node.weights[wname].size, wname,
                p[key].min, p[key].max, p[key], key,
            )
    h_type = p.get("state_read", p.get("state", default))
    if exact:
        # every gate sum of inputs and read states lies on this grid, whatever accum is
        grid = max(x_type.frac + p["weight"].frac, h_type.frac + p["recurrent_weight"].frac,
                   p["bias"].frac)
        for key, _, fn in tables:
            if key not in p:  # a hard function without a quantizer: its exact values
                p[key] = hard_function_type(fn, grid)
        if node.op == "GRU" and not attrs["reset_after"]:  # the candidate reads r . h
            q = _as_type(_mul(_range(p["recurrent_table"]), _range(h_type)))
            h_type = union_of([h_type, q])
    if "accum" not in p:
        lo, hi, frac = accumulator_range(
            x_type, p["weight"].quantize(np.asarray(node.weights["kernel"], dtype=np.float64)),
            p["weight"], h_type,
            p["recurrent_weight"].quantize(
                np.asarray(node.weights["recurrent_kernel"], dtype=np.float64)),
            p["recurrent_weight"],
            p["bias"].quantize(np.asarray(node.weights["bias"], dtype=np.float64)), p["bias"],
        )
        p["accum"] = type_for_range(lo, hi, frac)
        node.attrs["auto_accum"] = True
    if exact:
        p.setdefault("preact", _exact_preact(node, p["accum"], p.get("recurrent_table")))
        p.setdefault("state", _exact_state(node, p))
    for key, _, fn in tables:
        if key not in p:  # a hard function without a quantizer: exact for preact's grid
            p[key] = hard_function_type(fn, p["preact"].frac)
