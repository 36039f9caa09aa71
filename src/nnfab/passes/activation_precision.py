"""Precision defaults of the activations of ``nnfab.ir.activation_rules`` (called by
``InferPrecision``): ``param`` for prelu and selu, the table type, size and range of
softplus, softsign, elu, celu and selu, and warnings about degenerate choices."""

from __future__ import annotations

import logging

from nnfab.ir import FixedType, Node
from nnfab.ir import activation_rules as rules
from nnfab.ir.tables import TABLE_TYPE_DEFAULTS

log = logging.getLogger(__name__)

NEW_TABLE_FUNCTIONS = ("softplus", "softsign", "gaussian", "normal_cdf", "normal_cdf_tanh",
                       *rules.NEGATIVE_TABLE_FUNCTIONS)
PARAM_FUNCTIONS = ("prelu", "selu")


def activation_defaults(node: Node, x_type: FixedType | None) -> None:
    """Fill the defaults of a new activation function (nothing for the others)."""
    fn = node.attrs.get("function")
    if fn in PARAM_FUNCTIONS:
        node.precision.setdefault("param", FixedType.parse(TABLE_TYPE_DEFAULTS["param"]))
    if fn not in NEW_TABLE_FUNCTIONS:
        return
    if "table" not in node.precision:
        node.precision["table"] = rules.default_table_type(fn, node.attrs, node.name)
    for attr, value in rules.TABLE_DEFAULTS_EXTRA[fn].items():
        node.attrs.setdefault(attr, value)
    if x_type is None:
        return
    half = float(node.attrs["table_range"])
    if fn in rules.UNBOUNDED and x_type.max >= half:
        log.warning(
            "layer %r: the input type %s reaches %g, beyond the %s table's range [%g, %g): "
            "inputs at or above %g all give the last entry (about %g). Raise TableRange.",
            node.name, x_type, x_type.max, fn, -half, half, half, half,
        )
    if fn in rules.NEGATIVE_TABLE_FUNCTIONS and x_type.min >= 0:
        log.info("layer %r: %s of a non-negative input type %s is the identity%s", node.name,
                 fn, x_type, " times scale" if fn == "selu" else "")
