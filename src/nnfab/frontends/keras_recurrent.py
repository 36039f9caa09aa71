"""Keras SimpleRNN, LSTM and GRU -> the IR ops of ``nnfab.ir.recurrent``.

Registered in ``keras_mapping.CONVERTERS`` (both the live Keras 3 frontend and the
JSON/h5 reader use it). Keras' weight layout is the IR's, so the weights pass
unchanged. Dropout settings are inference no-ops and ``unroll`` changes nothing;
``stateful``, ``return_state`` and ``time_major`` are rejected with the allowed values.
``TimeDistributed`` is converted around a Dense only; ``Bidirectional`` is not converted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from nnfab.ir.recurrent import GATES, RECURRENT_FUNCTIONS

if TYPE_CHECKING:
    from nnfab.frontends.keras_mapping import LayerCall
    from nnfab.ir.graph import Node


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
