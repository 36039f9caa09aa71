"""Design-space sweeps: precision x reuse factor x strategy, on Dask distributed.

``sweep(model, X, y, precision=range(6, 17), reuse=(1, 2, 4, 8), ...)`` evaluates every
point (emulator accuracy, HLS estimate, optionally Yosys synthesis) on a Dask cluster,
caches finished points by content hash and returns a ``SweepResult``: ``.table``,
``.pareto()``, ``.save(path)``, ``.plot(path)``. See docs/sweep.md.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from nnfab.sweep.evaluate import COLUMNS, evaluate_point
from nnfab.sweep.pareto import DEFAULT_OBJECTIVES, pareto_front, pareto_mask
from nnfab.sweep.run import SweepResult, model_to_graph, sweep
from nnfab.sweep.space import SweepPoint, make_points, parse_int_list, parse_strategies

__all__ = [
    "COLUMNS",
    "DEFAULT_OBJECTIVES",
    "SweepPoint",
    "SweepResult",
    "evaluate_point",
    "make_points",
    "model_to_graph",
    "pareto_front",
    "pareto_mask",
    "parse_int_list",
    "parse_strategies",
    "sweep",
]


class _CallableModule(types.ModuleType):
    """Lets ``nnfab.sweep(model, X, y, ...)`` call ``nnfab.sweep.sweep``."""

    def __call__(self, *args: Any, **kwargs: Any) -> SweepResult:
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
