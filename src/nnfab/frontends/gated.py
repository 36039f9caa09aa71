"""``x * gate(x)`` activations (silu / swish, hardswish / hard_silu, gelu) as IR nodes, one rule
for every frontend: the gate an ``Activation`` node ``<name>_gate`` with its own result
type, then ``name`` = a ``Merge`` multiply of the input and the gate."""

from __future__ import annotations

from typing import Any

from nnfab.ir.graph import Node

SILU_GATE: dict[str, Any] = {"function": "sigmoid"}
HARD_SWISH_GATE: dict[str, Any] = {"function": "hard_sigmoid", "slope": 1 / 6, "offset": 0.5}
GELU_GATE: dict[str, Any] = {"function": "normal_cdf"}
GELU_TANH_GATE: dict[str, Any] = {"function": "normal_cdf_tanh"}
"""Gate attrs: silu's sigmoid (a table); hardswish's clip(x / 6 + 1/2, 0, 1); gelu's
normal CDF (a table), exact (erf) or in its tanh approximation."""


def gelu_gate(approximate: bool) -> dict[str, Any]:
    """The gate of gelu, exact or in the tanh approximation."""
    return dict(GELU_TANH_GATE if approximate else GELU_GATE)


def gated_nodes(name: str, source: str, gate: dict[str, Any], source_class: str) -> list[Node]:
    """The gate ``<name>_gate`` reading ``source``, then ``name = source * gate``."""
    gate_node = Node(name=f"{name}_gate", op="Activation", inputs=[source], attrs=dict(gate),
                     source_class=source_class)
    return [gate_node, Node(name=name, op="Merge", inputs=[source, gate_node.name],
                            attrs={"mode": "multiply"}, source_class=source_class)]
