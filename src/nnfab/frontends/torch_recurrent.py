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
    if getattr(module, "bidirectional", False):
        raise bad("bidirectional", True, "False")
    if getattr(module, "proj_size", 0):
        raise bad("proj_size", module.proj_size, "0")
    nonlinearity = getattr(module, "nonlinearity", "tanh")
    if type(module).__name__ == "RNN" and nonlinearity != "tanh":
        raise bad("nonlinearity", nonlinearity, "'tanh'")


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
    units = int(module.hidden_size)
    nodes: list[Node] = []
    for layer in range(int(module.num_layers)):
        w_ih = _array(getattr(module, f"weight_ih_l{layer}"))
        w_hh = _array(getattr(module, f"weight_hh_l{layer}"))
        gates = w_hh.shape[0] // units
        if module.bias:
            b_ih = _array(getattr(module, f"bias_ih_l{layer}"))
            b_hh = _array(getattr(module, f"bias_hh_l{layer}"))
        else:
            b_ih = b_hh = np.zeros(gates * units)
        kernel, rec = w_ih.T, w_hh.T
        attrs: dict[str, Any] = {
            "units": units,
            "return_sequences": not (last_only and layer == module.num_layers - 1),
            "activation": "tanh",
        }
        if op == "GRU":
            order = np.concatenate([np.arange(k * units, (k + 1) * units) for k in (1, 0, 2)])
            kernel, rec = kernel[:, order], rec[:, order]
            bias = np.stack([b_ih[order], b_hh[order]])
            attrs.update(recurrent_activation="sigmoid", reset_after=True)
        else:
            bias = b_ih + b_hh
            if op == "LSTM":
                attrs["recurrent_activation"] = "sigmoid"
        node_name = name if layer == module.num_layers - 1 else f"{name}_l{layer}"
        nodes.append(Node(
            name=node_name, op=op, inputs=[nodes[-1].name if nodes else source], attrs=attrs,
            weights={"kernel": np.ascontiguousarray(kernel),
                     "recurrent_kernel": np.ascontiguousarray(rec), "bias": bias},
            source_class=cls,
        ))
    return nodes
