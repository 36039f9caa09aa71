"""HLS renderers of SimpleRNN, LSTM and GRU (io_parallel and io_stream; nnfab_recurrent.h).

Weights are cast with the layer's types exactly as the emulator does; the tables come
from ``nnfab.ir.tables.activation_table`` with the layer's table attributes. The time
loop is sequential; every product of a step is unrolled. ReuseFactor and the Resource
strategy do not apply (a warning says so). In io_stream (``stream_call``) the input
arrives one time step per transaction and the layer emits one row per step
(return_sequences) or one at the end; the node attribute ``static`` (config key
``Static``, default true) keeps the state in static variables of the layer's kernel
instance, ``static: false`` declares it in the layer's process function and passes it
as an argument. The Verilog of these ops is ``nnfab.backends.rtl.recurrent``.
"""

from __future__ import annotations

import logging

import numpy as np

from nnfab.backends.hls.cpp import ConstArray
from nnfab.backends.hls.layers import (
    ConfigField,
    LayerCode,
    RenderContext,
    _attr,
    _precision,
    _result_typedef,
    _table_array,
    renderer,
)
from nnfab.errors import BackendError, GraphError
from nnfab.ir import Node
from nnfab.ir.recurrent import (
    GATES,
    check_recurrent,
    recurrent_table_attrs,
    uses_recurrent_activation,
)
from nnfab.ir.tables import activation_table

log = logging.getLogger(__name__)

FUNCTIONS = {"SimpleRNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru"}
HARD_MODES = {"hard_sigmoid": 1, "hard_tanh": 2}
"""``act_mode`` / ``ract_mode`` of the computed activations (0: the table)."""


def render_recurrent(ctx: RenderContext, node: Node) -> LayerCode:
    try:
        attrs = check_recurrent(node)
    except GraphError as e:
        raise BackendError(str(e)) from None
    (src,) = node.inputs
    steps, n_in = ctx.shape(src)
    units, gates = attrs["units"], GATES[node.op]
    if node.reuse_factor != 1 or node.strategy != "Latency":
        log.warning(
            "layer %r (%s): ReuseFactor %d / Strategy %s are ignored by the HLS recurrent "
            "layers (every product of a time step is unrolled)",
            node.name, node.op, node.reuse_factor, node.strategy,
        )
    products = gates * units * (n_in + units)
    if products > ctx.max_block:
        log.warning(
            "layer %r (%s): one time step unrolls %d products, more than max_unroll / "
            "max_partition = %d / %d; the vendor tool may refuse to unroll it",
            node.name, node.op, products, ctx.max_unroll, ctx.max_partition,
        )
    keys = ["weight", "recurrent_weight", "bias", "accum", "preact", "state", "state_read",
            "table"]
    if uses_recurrent_activation(node.op):
        keys.append("recurrent_table")
    types = {k: _precision(node, k) for k in keys if k != "state_read"}
    types["state_read"] = node.precision.get("state_read", types["state"])  # unset: no cast
    names = {k: ctx.ident(node, f"{k}_t") for k in keys}
    config = ctx.ident(node, "config")
    code = LayerCode(node, includes=["nnfab_recurrent.h"], config_name=config)
    code.typedefs = [_result_typedef(ctx, node), *((names[k], types[k], k) for k in keys)]
    fields = [
        ConfigField("n_steps", "unsigned", str(steps)),
        ConfigField("n_in", "unsigned", str(n_in)),
        ConfigField("n_units", "unsigned", str(units)),
        ConfigField("n_gates", "unsigned", str(gates)),
        ConfigField("return_sequences", "bool", "true" if attrs["return_sequences"] else "false"),
        ConfigField("go_backwards", "bool", "true" if attrs["go_backwards"] else "false"),
        ConfigField("reset_after", "bool", "true" if attrs["reset_after"] else "false"),
        ConfigField("reverse_sequence", "bool",
                    "true" if node.attrs.get("reverse_sequence", False) else "false"),
    ]
    arrays = []
    tables = [("table", "", False, attrs["activation"])]
    if uses_recurrent_activation(node.op):
        tables.append(("recurrent_table", "r", True, attrs["recurrent_activation"]))
    for key, prefix, recurrent, fn in tables:
        mode = HARD_MODES.get(fn, 0)
        fields.append(ConfigField(f"{prefix}act_mode", "int", str(mode)))
        if mode:  # computed, no table: a one-entry placeholder keeps the signature
            arrays.append(ConstArray(ctx.ident(node, key), names[key], types[key],
                                     np.zeros(1), comment=f"unused: {fn} is computed"))
            fields += [ConfigField(f"{prefix}table_size", "unsigned", "1"),
                       ConfigField(f"{prefix}table_base", "int", "0"),
                       ConfigField(f"{prefix}step_log2", "int", "0")]
            continue
        for a in ("table_size", "table_range"):
            _attr(node, ("recurrent_" if recurrent else "") + a)
        table = activation_table(fn, recurrent_table_attrs(node.attrs, recurrent), types[key],
                                 layer=node.name)
        arrays.append(_table_array(ctx, node, key, names[key], table))
        fields += [
            ConfigField(f"{prefix}table_size", "unsigned", str(table.size)),
            ConfigField(f"{prefix}table_base", "int", str(table.base)),
            ConfigField(f"{prefix}step_log2", "int", str(table.step_log2)),
        ]
    fields += [ConfigField(k + "_t", "type", names[k]) for k in keys]
    code.config = fields
    weights = []
    for key, wname, role in (("weight", "kernel", "w"), ("recurrent_weight", "recurrent_kernel",
                                                        "u"), ("bias", "bias", "b")):
        t = types[key]
        values = t.quantize(np.asarray(node.weights[wname], dtype=np.float64)).ravel()
        ident = ctx.ident(node, role)
        weights.append(ident)
        shape = tuple(np.shape(node.weights[wname]))
        code.arrays.append(ConstArray(ident, names[key], t, values,
                                      comment=f"{wname} of {node.name!r}, {shape} row-major"))
    code.arrays += arrays
    args = [ctx.array(src), ctx.array(node.name), *weights, *(a.name for a in arrays)]
    code.call = [
        f"nnfab::{FUNCTIONS[node.op]}<{ctx.type_name(src)}, {ctx.type_name(node.name)}, "
        f"{config}>({', '.join(args)});"
    ]
    return code


OPS = {"SimpleRNN": "simple_rnn_op", "LSTM": "lstm_op", "GRU": "gru_op"}


def stream_static(node: Node) -> bool:
    """The ``static`` switch of a recurrent node (attr ``static``, default true)."""
    value = node.attrs.get("static", True)
    if not isinstance(value, bool):
        raise BackendError(
            f"layer {node.name!r} ({node.op}): attr 'static' must be true or false, got {value!r}"
        )
    return value


def stream_call(ctx: RenderContext, node: Node, in_pack: str, out_pack: str, in_stream: str,
                out_stream: str) -> tuple[LayerCode, list[str]]:
    """The layer's code and the body of its io_stream process (nnfab::recurrent_stream)."""
    code = render_recurrent(ctx, node)
    w, u, b, table, *rest = (a.name for a in code.arrays)
    rtable = rest[0] if rest else table  # SimpleRNN has no recurrent table (ignored)
    config = code.config_name
    tail = f"{w}, {u}, {b}, {table}, {rtable});"
    op = f"nnfab::{OPS[node.op]}"
    if stream_static(node):
        body = [f"  nnfab::recurrent_stream<{op}, {in_pack}, {out_pack}, {config}>("
                f"{in_stream}, {out_stream}, {tail}"]
    else:
        state = f"{config}::state_t"
        units = f"{config}::n_units"
        body = [
            f"  {state} h[{units}], c[{units}];  // static: false, the state is an argument",
            "  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=h complete)",
            "  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=c complete)",
            f"  nnfab::recurrent_stream_state<{op}, {in_pack}, {out_pack}, {config}>("
            f"{in_stream}, {out_stream}, h, c, {tail}",
        ]
    return code, body


for _op in FUNCTIONS:
    renderer(_op)(render_recurrent)
