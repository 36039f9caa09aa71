"""Pareto fronts of a sweep table: the points no other point beats on every objective.

An objective is ``"column:max"`` or ``"column:min"`` (``"column"`` alone: min). Point a
dominates b when a is at least as good on every objective and strictly better on one;
identical points do not dominate each other (both stay on the front). Rows with an error
or a missing value in an objective are never on the front.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from nnfab.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_OBJECTIVES = ("accuracy:max", "LUT:min", "latency:min")
SENSES = ("min", "max")
FALLBACKS = {"LUT": "DSP", "FF": "DSP"}
"""Objective columns that only synthesis fills, and the estimate column used without it."""


def parse_objectives(objectives: str | Iterable[str],
                     columns: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """``("accuracy:max", "LUT:min")`` or ``"accuracy:max,LUT:min"`` -> [(column, sense)].

    With ``columns`` (a table's), names are matched case-insensitively and checked.
    """
    items = objectives.split(",") if isinstance(objectives, str) else list(objectives)
    out: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(f"objectives: {item!r} is not 'column:max' or 'column:min'")
        name, _, sense = item.strip().partition(":")
        sense = (sense or "min").strip().lower()
        name = name.strip()
        if sense not in SENSES:
            raise ConfigError(f"objectives: {item!r}: direction must be one of "
                              f"{', '.join(SENSES)}, got {sense!r}")
        if columns is not None:
            by_lower = {str(c).lower(): str(c) for c in columns}
            if name.lower() not in by_lower:
                raise ConfigError(f"objectives: no column {name!r} in the table; columns: "
                                  f"{', '.join(map(str, columns))}")
            name = by_lower[name.lower()]
        out.append((name, sense))
    if not out:
        raise ConfigError("objectives: give at least one 'column:max' or 'column:min'")
    return out


def resolve_objectives(table: pd.DataFrame,
                       objectives: str | Iterable[str] = DEFAULT_OBJECTIVES
                       ) -> list[tuple[str, str]]:
    """Objectives checked against ``table``; a synthesis-only column (LUT, FF) without any
    value (a sweep without ``synth=True``) is replaced by the estimate's ``DSP``, with a
    warning."""
    parsed = parse_objectives(objectives)
    out: list[tuple[str, str]] = []
    for name, sense in parsed:
        fallback = FALLBACKS.get(name)
        if fallback and (name not in table or table[name].isna().all()) and fallback in table:
            log.warning("objective %s: no synthesis results in the table (sweep with "
                        "synth=True for LUT/FF); using the estimated %s instead", name, fallback)
            name = fallback
        out.append((name, sense))
    names = [f"{n}:{s}" for n, s in out]
    return parse_objectives(names, list(table.columns))


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``values`` (n, k), every column to be MINIMIZED.

    Rows are visited in lexicographic order: a row can only be dominated by one before
    it, and if any row dominates it so does a member of the front found so far.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be (n, k), got shape {values.shape}")
    n = values.shape[0]
    keep = np.zeros(n, dtype=bool)
    order = np.lexsort(values.T[::-1]) if n else np.array([], dtype=np.int64)
    front: list[int] = []
    for i in order:
        v = values[i]
        if front:
            f = values[front]
            if np.any(np.all(f <= v, axis=1) & np.any(f < v, axis=1)):
                continue
        front.append(int(i))
        keep[i] = True
    return keep


def pareto_front(table: pd.DataFrame,
                 objectives: str | Iterable[str] = DEFAULT_OBJECTIVES) -> pd.DataFrame:
    """The non-dominated rows of ``table`` (original index kept), sorted by the objectives."""
    import pandas as pd

    resolved = resolve_objectives(table, objectives)
    ok = table["error"].isna() if "error" in table else pd.Series(True, index=table.index)
    cols = [name for name, _ in resolved]
    numeric = table[cols].apply(pd.to_numeric, errors="coerce")
    ok &= numeric.notna().all(axis=1)
    candidates = numeric[ok]
    signs = np.array([-1.0 if sense == "max" else 1.0 for _, sense in resolved])
    mask = pareto_mask(candidates.to_numpy(dtype=np.float64) * signs)
    front = table.loc[candidates.index[mask]]
    return front.sort_values(cols, ascending=[s == "min" for _, s in resolved], kind="stable")
