"""Profiling figures: where each layer's values lie against its fixed-point type's range.

``numerical`` draws the weights' and activations' distributions per layer with the
representable range of each type shaded; ``compare`` draws the per-layer error between
the float model and the bit-exact emulator. The numbers behind them are in
``nnfab.profiling.ranges`` (see ``docs/profiling.md``).
"""

from typing import Any

from nnfab.profiling.ranges import (
    LayerProfile,
    activation_profile,
    compare_errors,
    float_outputs,
    match_layers,
    type_range,
    weight_profile,
    wide_graph,
)

__all__ = [
    "LayerProfile",
    "activation_profile",
    "compare",
    "compare_errors",
    "float_outputs",
    "match_layers",
    "numerical",
    "type_range",
    "weight_profile",
    "wide_graph",
]


def __getattr__(name: str) -> Any:
    """``numerical`` and ``compare`` load matplotlib on first use, not at import."""
    if name in ("numerical", "compare"):
        from nnfab.profiling import plots

        return getattr(plots, name)
    raise AttributeError(f"module 'nnfab.profiling' has no attribute {name!r}")
