"""Choosing the design: fixed-point types proposed from data (``config_from_data``)."""

from __future__ import annotations

from nnfab.tuning.from_data import TypeProposal, config_from_data, design_bits, float_graph

__all__ = ["TypeProposal", "config_from_data", "design_bits", "float_graph"]
