"""Keras SimpleRNN, LSTM and GRU -> the IR ops of ``nnfab.ir.recurrent``.

Registered in ``keras_mapping.CONVERTERS`` (both the live Keras 3 frontend and the
JSON/h5 reader use it). Keras' weight layout is the IR's, so the weights pass
unchanged. Dropout settings are inference no-ops and ``unroll`` changes nothing;
``stateful``, ``return_state`` and ``time_major`` are rejected with the allowed values.
``TimeDistributed`` is converted around a Dense only.

``Bidirectional(SimpleRNN | LSTM | GRU)`` becomes the forward node, the backward node
(``go_backwards``; with ``return_sequences`` also ``reverse_sequence``, as Keras flips
the backward sequence back to input time order) and, by ``merge_mode``, a
``Concatenate`` on the last axis or a ``Merge`` (``sum`` -> add, ``ave`` -> average,
``mul`` -> multiply). Its weights arrive as ``forward/kernel``, ``backward/bias``, ...
(``wrapped_weight_name``, used by the weight readers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from nnfab.errors import FrontendError
from nnfab.ir.graph import Node
from nnfab.ir.recurrent import GATES, RECURRENT_FUNCTIONS, RECURRENT_OPS

if TYPE_CHECKING:
    from nnfab.frontends.keras_mapping import LayerCall


def _function(call: LayerCall, key: str, default: str) -> str:
    spec = call.get(key, default)
    name = spec
    if isinstance(spec, dict):  # {"class_name": "function", "config": "tanh", ...}
        inner = spec.get("config")
        name = inner if isinstance(inner, str) else spec.get("class_name")
    if name not in RECURRENT_FUNCTIONS:
        raise call.unsupported(key, spec, ", ".join(repr(f) for f in RECURRENT_FUNCTIONS))
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


def _recurrent(op: str) -> Callable[[LayerCall], list[Node]]:
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
            "activation": _function(call, "activation", "tanh"),
        }
        if op != "SimpleRNN":
            attrs["recurrent_activation"] = _function(call, "recurrent_activation", "sigmoid")
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
    from dataclasses import replace

    from nnfab.frontends.keras_mapping import CONVERTERS  # lazy: that module imports this one

    inner = call.get("layer")
    cls = inner.get("class_name") if isinstance(inner, dict) else None
    if cls not in TIME_DISTRIBUTED_LAYERS or not isinstance(inner.get("config"), dict):
        raise call.unsupported("layer", cls if cls else inner,
                               ", ".join(TIME_DISTRIBUTED_LAYERS) + " (wrapped layers)")
    return CONVERTERS[cls](replace(call, cls=cls, config=dict(inner["config"])))


RECURRENT_CONVERTERS = {op: _recurrent(op) for op in ("SimpleRNN", "LSTM", "GRU")}
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
    if cls not in RECURRENT_OPS or not isinstance(inner.get("config"), dict):
        raise call.unsupported(key, cls if cls else inner,
                               ", ".join(RECURRENT_OPS) + " (wrapped recurrent layers)")
    return str(cls), dict(inner["config"])


def convert_bidirectional(call: LayerCall) -> list[Node]:
    """``Bidirectional``: forward node, backward node, Concatenate or Merge (``call.name``)."""
    from dataclasses import replace

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
