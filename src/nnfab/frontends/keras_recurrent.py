"""Keras SimpleRNN, LSTM and GRU -> the IR ops of ``nnfab.ir.recurrent``.

Registered in ``keras_mapping.CONVERTERS`` (both the live Keras 3 frontend and the
JSON/h5 reader use it). Keras' weight layout is the IR's, so the weights pass
unchanged. Dropout settings are inference no-ops and ``unroll`` changes nothing;
``stateful``, ``return_state`` and ``time_major`` are rejected with the allowed values.
``TimeDistributed`` is converted around a Dense only.

QKeras' ``QSimpleRNN`` / ``QLSTM`` / ``QGRU`` (``convert_q_recurrent``) quantize their
weights with their quantizers; their activations are quantizers or functions (see
``q_recurrent_function``) and their ``state_quantizer`` becomes the ``state_read`` type
(with ``exact_internals``: QKeras computes the rest in float, exactly for these widths).

``Bidirectional(SimpleRNN | LSTM | GRU)`` becomes the forward node, the backward node
(``go_backwards``; with ``return_sequences`` also ``reverse_sequence``, as Keras flips
the backward sequence back to input time order) and, by ``merge_mode``, a
``Concatenate`` on the last axis or a ``Merge`` (``sum`` -> add, ``ave`` -> average,
``mul`` -> multiply). Its weights arrive as ``forward/kernel``, ``backward/bias``, ...
(``wrapped_weight_name``, used by the weight readers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from nnfab.errors import FrontendError
from nnfab.frontends import qkeras as qk
from nnfab.ir.graph import Node
from nnfab.ir.recurrent import GATES, RECURRENT_FUNCTIONS, RECURRENT_OPS, TABLE_FUNCTIONS
from nnfab.ir.types import FixedType

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from nnfab.frontends.keras_mapping import LayerCall


def _function_name(spec: Any) -> Any:
    if isinstance(spec, dict):  # {"class_name": "function", "config": "tanh", ...}
        inner = spec.get("config")
        return inner if isinstance(inner, str) else spec.get("class_name")
    return spec


def _function(call: LayerCall, key: str, default: str,
              allowed: tuple[str, ...] = TABLE_FUNCTIONS) -> str:
    spec = call.get(key, default)
    name = _function_name(spec)
    if name not in allowed:
        raise call.unsupported(key, spec, ", ".join(repr(f) for f in allowed))
    return str(name)


def _check_flags(call: LayerCall) -> None:
    for key in ("stateful", "return_state", "time_major"):
        if call.get(key, False):
            raise call.unsupported(key, call.get(key), "False")
    shape = call.in_shapes[0]
    if len(shape) != 2 or not all(isinstance(s, int | np.integer) and s > 0 for s in shape):
        raise call.unsupported(
            "input shape", tuple(shape), "(steps, features) with a static number of steps"
        )


def _recurrent(op: str, allowed: tuple[str, ...] = TABLE_FUNCTIONS
               ) -> Callable[[LayerCall], list[Node]]:
    def convert(call: LayerCall) -> list[Node]:
        _check_flags(call)
        units = int(call.get("units"))
        kernel = call.weight("kernel")
        recurrent = call.weight("recurrent_kernel")
        assert kernel is not None and recurrent is not None
        attrs: dict[str, Any] = {
            "units": units,
            "return_sequences": bool(call.get("return_sequences", False)),
            "go_backwards": bool(call.get("go_backwards", False)),
            "activation": _function(call, "activation", "tanh", allowed),
        }
        if op != "SimpleRNN":
            attrs["recurrent_activation"] = _function(call, "recurrent_activation", "sigmoid",
                                                      allowed)
        shape: tuple[int, ...] = (GATES[op] * units,)
        if op == "GRU":
            attrs["reset_after"] = bool(call.get("reset_after", True))
            if attrs["reset_after"]:
                shape = (2, GATES[op] * units)
        if call.get("use_bias", True):
            bias = call.weight("bias")
            assert bias is not None
            bias = np.asarray(bias, dtype=np.float64).reshape(shape)
        else:
            bias = np.zeros(shape, dtype=np.float64)
        return [call.node(op, attrs, kernel=kernel, recurrent_kernel=recurrent, bias=bias)]

    return convert


TIME_DISTRIBUTED_LAYERS = ("Dense",)
"""Layers accepted inside ``TimeDistributed`` (they already act on the last axis)."""


def convert_time_distributed(call: LayerCall) -> list[Node]:
    """``TimeDistributed(Dense)``: the Dense itself (IR Dense maps the last axis)."""
    from nnfab.frontends.keras_mapping import CONVERTERS  # lazy: that module imports this one

    inner = call.get("layer")
    cls = inner.get("class_name") if isinstance(inner, dict) else None
    if cls not in TIME_DISTRIBUTED_LAYERS or not isinstance(inner.get("config"), dict):
        raise call.unsupported("layer", cls if cls else inner,
                               ", ".join(TIME_DISTRIBUTED_LAYERS) + " (wrapped layers)")
    return CONVERTERS[cls](replace(call, cls=cls, config=dict(inner["config"])))


# ------------------------------------------------------ QKeras recurrent layers
Q_DEFAULTS = {"activation": "quantized_tanh", "recurrent_activation": "hard_sigmoid"}
"""QKeras' defaults of QSimpleRNN / QLSTM / QGRU (its own hard_sigmoid)."""


def q_recurrent_function(call: LayerCall, key: str) -> tuple[str, FixedType | None]:
    """A QKeras recurrent layer's ``activation`` / ``recurrent_activation`` as an IR
    function and the table type that quantizes it (None: the exact value).

    - ``quantized_tanh(b)`` -> ``hard_tanh`` cast to ``fixed<b, 1, RND_CONV, SAT>``;
      ``quantized_sigmoid(b)`` -> ``hard_sigmoid`` cast to ``ufixed<b, 0, RND_CONV, SAT>``;
      ``quantized_bits`` with a range inside [-1, 1] -> ``hard_tanh`` and its type;
    - ``hard_sigmoid`` (QKeras': ``clip(x/2 + 1/2, 0, 1)``) -> ``hard_sigmoid``, exact;
    - ``tanh`` / ``sigmoid`` (the float functions) -> nnfab's tables (not bit-exact);
      ``use_real_tanh`` / ``use_real_sigmoid`` -> the table, then the quantizer's type.
    """
    spec = call.get(key, Q_DEFAULTS[key])
    name = _function_name(spec)
    where = call.where(key)
    if name == "hard_sigmoid":
        return "hard_sigmoid", None
    if name in TABLE_FUNCTIONS:
        log.warning("%s: %r is computed in float by QKeras; nnfab reads it from a table "
                    "(not bit-exact)", where, name)
        return str(name), None
    if not qk.is_quantizer(spec):
        raise call.unsupported(key, spec, "quantized_tanh, quantized_sigmoid, quantized_bits "
                               "(range within [-1, 1]), hard_sigmoid, tanh, sigmoid")
    q = qk.parse_quantizer(spec, where)
    assert q is not None
    mapping = qk.activation_mapping(q, where)
    fn = mapping.attrs.get("function")
    t = mapping.result
    if fn == "linear" and t.min >= -1 and t.max <= 1:  # clip(x, -1, 1), then the cast
        return "hard_tanh", t
    if fn == "hard_sigmoid" or fn in TABLE_FUNCTIONS:
        return str(fn), t
    raise call.unsupported(key, q.text, "quantized_tanh, quantized_sigmoid, or quantized_bits "
                           "whose range lies within [-1, 1] (a recurrent activation)")


def _q_recurrent(op: str) -> Callable[[LayerCall], list[Node]]:
    base = _recurrent(op, RECURRENT_FUNCTIONS)

    def convert(call: LayerCall) -> list[Node]:
        from nnfab.frontends.keras_mapping import _quantized_weight  # that module imports this

        keys = [("activation", "table")]
        if op != "SimpleRNN":
            keys.append(("recurrent_activation", "recurrent_table"))
        config = dict(call.config)
        types = {}
        for key, tkey in keys:
            config[key], types[tkey] = q_recurrent_function(call, key)
        if op == "GRU" and call.get("recurrent_quantizer") is None:
            raise call.unsupported(
                "recurrent_quantizer", None, "a quantizer: without one QKeras 0.9's QGRU "
                "multiplies the state by the input kernel instead of the recurrent kernel")
        (node,) = base(replace(call, config=config))
        for tkey, t in types.items():
            if t is not None:
                node.precision[tkey] = t
        _quantized_weight(call, node, "kernel", "weight", "kernel_quantizer", "kernel")
        _quantized_weight(call, node, "recurrent_kernel", "recurrent_weight",
                          "recurrent_quantizer", "kernel")
        _quantized_weight(call, node, "bias", "bias", "bias_quantizer", "bias")
        state = call.get("state_quantizer")
        if state is None:
            log.warning("%s: no state_quantizer, so QKeras carries the states in float; nnfab "
                        "casts them to the layer's 'state' type (not bit-exact)", call.where())
            return [node]
        q = qk.parse_quantizer(state, call.where("state_quantizer"))
        assert q is not None
        mapping = qk.activation_mapping(q, call.where("state_quantizer"))
        if mapping.attrs.get("function") != "linear":
            raise call.unsupported("state_quantizer", q.text, "quantized_bits (a cast)")
        node.precision["state_read"] = mapping.result
        node.attrs["state_quantizer"] = q.text
        node.attrs["exact_internals"] = True
        return [node]

    return convert


RECURRENT_CONVERTERS = {op: _recurrent(op) for op in ("SimpleRNN", "LSTM", "GRU")}
RECURRENT_CONVERTERS.update({f"Q{op}": _q_recurrent(op) for op in ("SimpleRNN", "LSTM", "GRU")})
RECURRENT_CONVERTERS["TimeDistributed"] = convert_time_distributed
"""Keras class name -> converter, merged into ``keras_mapping.CONVERTERS``."""

BIDIRECTIONAL_MERGES = {"concat": None, "sum": "add", "ave": "average", "mul": "multiply"}
"""Keras ``merge_mode`` -> IR Merge mode (``concat``: a Concatenate)."""
DIRECTIONS = ("forward", "backward")
ATTENTION_SUBLAYERS = ("query", "key", "value", "attention_output")
"""Scopes of a ``MultiHeadAttention``'s weights (``keras_attention``): kept in the name."""


def wrapped_weight_name(path: str, layer: str) -> str:
    """Short name of a weight at ``path`` of ``layer``: ``kernel``, or ``forward/kernel``.

    The direction prefix is added when a scope after the layer's own name is a
    ``Bidirectional`` half (``forward_lstm``, ``backward_lstm``); e.g.
    ``seq/bidirectional/forward_gru/gru_cell/kernel:0`` -> ``forward/kernel``.
    """
    parts = path.split("/")
    short = parts[-1].split(":", 1)[0]
    scopes = parts[:-1]
    if layer not in scopes:
        return short
    after = scopes[len(scopes) - 1 - scopes[::-1].index(layer) + 1:]
    if after and after[0] in ATTENTION_SUBLAYERS:  # MultiHeadAttention: query/kernel, ...
        return f"{after[0]}/{short}"
    for direction in DIRECTIONS:
        if any(scope.startswith(direction + "_") for scope in after):
            return f"{direction}/{short}"
    return short


def _inner(call: LayerCall, key: str) -> tuple[str, dict[str, Any]]:
    inner = call.get(key)
    cls = inner.get("class_name") if isinstance(inner, dict) else None
    wrapped = (*RECURRENT_OPS, *(f"Q{op}" for op in RECURRENT_OPS))
    if cls not in wrapped or not isinstance(inner.get("config"), dict):
        raise call.unsupported(key, cls if cls else inner,
                               ", ".join(wrapped) + " (wrapped recurrent layers)")
    return str(cls), dict(inner["config"])


def convert_bidirectional(call: LayerCall) -> list[Node]:
    """``Bidirectional``: forward node, backward node, Concatenate or Merge (``call.name``)."""
    mode = call.get("merge_mode", "concat")
    if mode not in BIDIRECTIONAL_MERGES:
        raise call.unsupported("merge_mode", mode, ", ".join(map(repr, BIDIRECTIONAL_MERGES)))
    cls, forward = _inner(call, "layer")
    if call.get("backward_layer") is not None:
        back_cls, backward = _inner(call, "backward_layer")
    else:  # Keras 2 files: the backward half is the forward one reading backwards
        back_cls = cls
        backward = {**forward, "go_backwards": not forward.get("go_backwards", False)}
    nodes: list[Node] = []
    for direction, inner_cls, config in (("forward", cls, forward),
                                         ("backward", back_cls, backward)):
        prefix = direction + "/"
        weights = {k[len(prefix):]: v for k, v in call.weights.items() if k.startswith(prefix)}
        if not weights:
            raise FrontendError(
                f"{call.where()}: no weights of its {direction} half found in {call.origin} "
                f"(weights: {', '.join(sorted(call.weights)) or 'none'}); the halves' weights "
                f"must be scoped '{direction}_*' as Keras names them (forward_lstm, ...)")
        half = replace(call, name=call.unique_name(f"{call.name}_{direction}"), cls=inner_cls,
                       config=config, weights=weights)
        (node,) = RECURRENT_CONVERTERS[inner_cls](half)
        node.source_class = call.cls
        if direction == "backward" and node.attrs["return_sequences"]:
            node.attrs["reverse_sequence"] = True  # Keras flips it back to input order
        nodes.append(node)
    seq = [bool(n.attrs["return_sequences"]) for n in nodes]
    if seq[0] != seq[1]:
        raise call.unsupported("return_sequences", tuple(seq), "the same for both halves")
    names = [n.name for n in nodes]
    merge = BIDIRECTIONAL_MERGES[mode]
    if merge is None:
        out = Node(name=call.name, op="Concatenate", inputs=names,
                   attrs={"axis": 1 if seq[0] else 0}, source_class=call.cls)
    else:
        out = Node(name=call.name, op="Merge", inputs=names, attrs={"mode": merge},
                   source_class=call.cls)
    return [*nodes, out]


RECURRENT_CONVERTERS["Bidirectional"] = convert_bidirectional
