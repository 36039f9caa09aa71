"""Type defaults of the recurrent ops (SimpleRNN, LSTM, GRU), called by ``InferPrecision``.

- ``weight``, ``bias``, ``preact``, ``state``: the model default; ``recurrent_weight``:
  the layer's ``weight`` type.
- ``accum`` (``auto``): exact for inputs of the input type and states of ``state``.
- ``table`` / ``recurrent_table`` and their sizes and ranges: the Activation defaults
  of the function (``nnfab.ir.tables``).
"""

from __future__ import annotations

import logging

import numpy as np

from nnfab.ir import FixedType, Node
from nnfab.ir.recurrent import (
    accumulator_range,
    check_recurrent,
    uses_recurrent_activation,
)
from nnfab.ir.tables import TABLE_DEFAULTS, TABLE_TYPE_DEFAULTS

log = logging.getLogger(__name__)


def recurrent_defaults(node: Node, x_type: FixedType | None, default: FixedType) -> None:
    """Fill the open precision keys and table attributes of a recurrent node."""
    from nnfab.passes.infer_precision import type_for_range  # circular at import time

    assert x_type is not None
    attrs = check_recurrent(node)
    p = node.precision
    for key in ("weight", "bias", "preact", "state"):
        p.setdefault(key, default)
    p.setdefault("recurrent_weight", p["weight"])
    tables = [("table", "", attrs["activation"])]
    if uses_recurrent_activation(node.op):
        tables.append(("recurrent_table", "recurrent_", attrs["recurrent_activation"]))
    for key, prefix, fn in tables:
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
    if "accum" not in p:
        lo, hi, frac = accumulator_range(
            x_type, p["weight"].quantize(np.asarray(node.weights["kernel"], dtype=np.float64)),
            p["weight"], p["state"],
            p["recurrent_weight"].quantize(
                np.asarray(node.weights["recurrent_kernel"], dtype=np.float64)),
            p["recurrent_weight"],
            p["bias"].quantize(np.asarray(node.weights["bias"], dtype=np.float64)), p["bias"],
        )
        p["accum"] = type_for_range(lo, hi, frac)
        node.attrs["auto_accum"] = True
