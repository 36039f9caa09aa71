"""PyTorch ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` -> the IR ops of ``nnfab.ir.recurrent``.

``recurrent_nodes`` maps one module (``batch_first=True``, any ``num_layers``: one IR
node per layer, stacked) to IR nodes. PyTorch's formulas are Keras' with:

- ``weight_ih_l{k}`` (G*u, n_in) and ``weight_hh_l{k}`` (G*u, u) transposed into
  ``kernel`` / ``recurrent_kernel``;
- RNN and LSTM: the two biases summed (``b_ih + b_hh``, in float64) into ``bias``; the
  LSTM gate order ``i, f, g, o`` is Keras' ``i, f, c, o``;
- GRU: blocks ``r, z, n`` reordered to Keras' ``z, r, h``; PyTorch's candidate
  ``tanh(W_in x + b_in + r * (W_hn h + b_hn))`` is ``reset_after=True`` with the bias
  rows ``(b_ih, b_hh)``.

``nnfab.frontends.torch`` calls it when forward() reads an RNN module's outputs: the
sequence ``output`` (every step), ``output[:, -1]`` or ``h_n[-1]`` (the last step).

``bidirectional=True``: each layer is a forward node, a backward node (weights
``*_reverse``, ``go_backwards`` with ``reverse_sequence``: its sequence in input time
order) and a ``Concatenate`` on the feature axis, PyTorch's ``output`` per step. The
readings (``READINGS``): ``output[:, -1]`` is the forward final state next to the
backward state after its *first* step (the one reading ``x[T-1]``: a backward node
over ``Cropping1D`` of the last step); ``h_n[-2]`` / ``h_n[-1]`` the last layer's
forward / backward final states.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnfab.errors import UnsupportedLayerError
from nnfab.ir.graph import Node

TORCH_OPS = {"RNN": "SimpleRNN", "LSTM": "LSTM", "GRU": "GRU"}
"""``torch.nn`` class -> IR op."""


def _array(tensor: Any) -> np.ndarray:
    return np.array(tensor.detach().cpu().double().numpy(), dtype=np.float64)


def _check(module: Any, where: str) -> None:
    def bad(attr: str, value: Any, allowed: str) -> UnsupportedLayerError:
        return UnsupportedLayerError(
            f"{where}: {attr}={value!r} is not supported; allowed: {allowed}"
        )

    if not getattr(module, "batch_first", False):
        raise bad("batch_first", module.batch_first, "True (inputs (batch, steps, features))")
    if getattr(module, "proj_size", 0):
        raise bad("proj_size", module.proj_size, "0")
    nonlinearity = getattr(module, "nonlinearity", "tanh")
    if type(module).__name__ == "RNN" and nonlinearity != "tanh":
        raise bad("nonlinearity", nonlinearity, "'tanh'")


READINGS = ("sequence", "last_step", "h_forward", "h_backward")
"""What forward() reads: ``output``; ``output[:, -1]`` (``h_n[-1]`` of a unidirectional
module); a bidirectional module's ``h_n[-2]`` (last layer, forward) or ``h_n[-1]``."""


def _direction(module: Any, cls: str, op: str, layer: int, suffix: str, name: str,
               source: str, *, sequence: bool, backward: bool) -> Node:
    """One direction of one layer: weights ``*_l{layer}{suffix}`` in the IR layout."""
    units = int(module.hidden_size)
    w_ih = _array(getattr(module, f"weight_ih_l{layer}{suffix}"))
    w_hh = _array(getattr(module, f"weight_hh_l{layer}{suffix}"))
    gates = w_hh.shape[0] // units
    if module.bias:
        b_ih = _array(getattr(module, f"bias_ih_l{layer}{suffix}"))
        b_hh = _array(getattr(module, f"bias_hh_l{layer}{suffix}"))
    else:
        b_ih = b_hh = np.zeros(gates * units)
    kernel, rec = w_ih.T, w_hh.T
    attrs: dict[str, Any] = {"units": units, "return_sequences": sequence,
                             "activation": "tanh"}
    if backward:
        attrs["go_backwards"] = True
        if sequence:
            attrs["reverse_sequence"] = True  # PyTorch returns it in input time order
    if op == "GRU":
        order = np.concatenate([np.arange(k * units, (k + 1) * units) for k in (1, 0, 2)])
        kernel, rec = kernel[:, order], rec[:, order]
        bias = np.stack([b_ih[order], b_hh[order]])
        attrs.update(recurrent_activation="sigmoid", reset_after=True)
    else:
        bias = b_ih + b_hh
        if op == "LSTM":
            attrs["recurrent_activation"] = "sigmoid"
    return Node(
        name=name, op=op, inputs=[source], attrs=attrs,
        weights={"kernel": np.ascontiguousarray(kernel),
                 "recurrent_kernel": np.ascontiguousarray(rec), "bias": bias},
        source_class=cls,
    )


def _concat(name: str, inputs: list[str], axis: int, cls: str) -> Node:
    return Node(name=name, op="Concatenate", inputs=inputs, attrs={"axis": axis},
                source_class=cls)


def bidirectional_nodes(module: Any, name: str, source: str, reading: str, steps: int
                        ) -> list[Node]:
    """IR nodes of a ``bidirectional=True`` module for one of ``READINGS``.

    ``steps`` is the input's number of steps (for the backward step of ``last_step``).
    The node giving the reading is last: named ``name`` (``sequence``, ``last_step``),
    ``{name}_fwd`` / ``{name}_bwd`` (``h_forward`` / ``h_backward``). Lower layers are
    named ``{name}_l{k}`` (and ``_fwd`` / ``_bwd``) whatever the reading.
    """
    cls = type(module).__name__
    if reading not in READINGS:
        raise ValueError(f"reading {reading!r} is not one of {READINGS}")
    op = TORCH_OPS[cls]
    nodes: list[Node] = []
    x = source
    last = int(module.num_layers) - 1
    for layer in range(last):
        base = f"{name}_l{layer}"
        fwd = _direction(module, cls, op, layer, "", f"{base}_fwd", x, sequence=True,
                         backward=False)
        bwd = _direction(module, cls, op, layer, "_reverse", f"{base}_bwd", x, sequence=True,
                         backward=True)
        nodes += [fwd, bwd, _concat(base, [fwd.name, bwd.name], 1, cls)]
        x = base
    if reading == "h_forward":
        return [*nodes, _direction(module, cls, op, last, "", f"{name}_fwd", x,
                                   sequence=False, backward=False)]
    if reading == "h_backward":
        return [*nodes, _direction(module, cls, op, last, "_reverse", f"{name}_bwd", x,
                                   sequence=False, backward=True)]
    sequence = reading == "sequence"
    fwd = _direction(module, cls, op, last, "", f"{name}_fwd", x, sequence=sequence,
                     backward=False)
    if sequence:
        bwd = _direction(module, cls, op, last, "_reverse", f"{name}_bwd", x, sequence=True,
                         backward=True)
        return [*nodes, fwd, bwd, _concat(name, [fwd.name, bwd.name], 1, cls)]
    # output[:, -1]: the backward direction has read only x[T-1] there
    crop = Node(name=f"{name}_crop", op="Cropping1D", inputs=[x],
                attrs={"crops": (steps - 1, 0)}, source_class=cls)
    bwd = _direction(module, cls, op, last, "_reverse", f"{name}_bwd", crop.name,
                     sequence=False, backward=True)
    return [*nodes, fwd, crop, bwd, _concat(name, [fwd.name, bwd.name], 0, cls)]


def recurrent_nodes(module: Any, name: str, source: str, last_only: bool = False) -> list[Node]:
    """IR nodes (one per layer, the first reading ``source``) computing ``module``'s output.

    The last node outputs the whole sequence ``(steps, units)``, as PyTorch's ``output``;
    with ``last_only`` only its last step ``(units,)`` (``output[:, -1]``, i.e. ``h_n[-1]``).
    """
    cls = type(module).__name__
    if cls not in TORCH_OPS:
        raise UnsupportedLayerError(
            f"module {name!r} ({cls}) is not a recurrent module; supported: torch.nn."
            f"{{{', '.join(TORCH_OPS)}}}"
        )
    where = f"module {name!r} ({cls})"
    _check(module, where)
    op = TORCH_OPS[cls]
    if getattr(module, "bidirectional", False):
        raise UnsupportedLayerError(
            f"{where}: bidirectional=True: use bidirectional_nodes (the frontend does)")
    nodes: list[Node] = []
    last = int(module.num_layers) - 1
    for layer in range(last + 1):
        node_name = name if layer == last else f"{name}_l{layer}"
        nodes.append(_direction(
            module, cls, op, layer, "", node_name, nodes[-1].name if nodes else source,
            sequence=not (last_only and layer == last), backward=False))
    return nodes
