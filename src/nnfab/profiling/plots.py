"""Profiling figures (matplotlib, Agg canvas, no pyplot state).

``numerical`` draws one row per layer (and weight array): box plots of ``log2 |value|``
over the nonzero values, float and quantized side by side, on top of a shaded band from
``log2(2**-F)`` to ``log2(max)`` of the row's fixed-point type. The box spans the 25th
to 75th percentile with the median marked, the whiskers the 5th and 95th, and the two
dots the smallest and largest magnitude. Values right of the band overflow; a band far
right of the values means wasted integer bits, values left of it are lost to rounding.

``compare`` draws the per-layer mean and max absolute error between the float model and
the emulator as bars on a log axis. The numbers come from ``nnfab.profiling.ranges``.
Artists carry ``gid``s (``range:<row>``, ``median:<stage>:<row>``, ``mean:<layer>``,
``max:<layer>``) so tests and reports can find them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from nnfab.errors import ConfigError
from nnfab.profiling.ranges import (
    LayerProfile,
    activation_profile,
    compare_errors,
    weight_profile,
)

log = logging.getLogger(__name__)

COLORS = {"float": "#1f77b4", "quantized": "#ff7f0e"}
RANGE_COLOR = "#2ca02c"
STAGE_OFFSET = {"float": 0.18, "quantized": -0.18}
"""Vertical offset of each stage's box within its row (rows are 1 apart, top down)."""
BOX_HEIGHT = 0.3


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _log2(v: float) -> float:
    return math.log2(v) if v > 0 else float("nan")


def box_stats(p: LayerProfile) -> dict[str, Any] | None:
    """The ``Axes.bxp`` statistics of a row in log2 units (None if every value is 0)."""
    if p.abs_max <= 0:
        return None
    pct = p.percentiles
    return {
        "whislo": _log2(pct[5]),
        "q1": _log2(pct[25]),
        "med": _log2(pct[50]),
        "q3": _log2(pct[75]),
        "whishi": _log2(pct[95]),
        "fliers": np.array([_log2(p.abs_min), _log2(p.abs_max)]),
        "label": p.label,
    }


def draw_profile(ax: Axes, rows: list[LayerProfile], title: str) -> list[str]:
    """Draw ``rows`` (several stages per label allowed) on ``ax``; returns the labels."""
    labels: list[str] = []
    for p in rows:
        if p.label not in labels:
            labels.append(p.label)
    y_of = {label: -float(i) for i, label in enumerate(labels)}
    shaded: set[str] = set()
    xs: list[float] = []
    for p in rows:
        y = y_of[p.label]
        if p.range is not None and p.label not in shaded:
            lo, hi = (math.log2(v) for v in p.range)
            ax.add_patch(Rectangle((lo, y - 0.45), hi - lo, 0.9, facecolor=RANGE_COLOR,
                                   alpha=0.2, edgecolor="none", gid=f"range:{p.label}"))
            shaded.add(p.label)
            xs += [lo, hi]
        stats = box_stats(p)
        if stats is None:
            continue
        color = COLORS.get(p.stage, "black")
        drawn = ax.bxp([stats], positions=[y + STAGE_OFFSET.get(p.stage, 0.0)],
                       orientation="horizontal",
                       widths=BOX_HEIGHT, manage_ticks=False, patch_artist=True,
                       boxprops={"facecolor": color, "alpha": 0.6, "edgecolor": color},
                       medianprops={"color": "black"}, whiskerprops={"color": color},
                       capprops={"color": color},
                       flierprops={"marker": "o", "markersize": 3,
                                   "markerfacecolor": color, "markeredgecolor": color})
        drawn["medians"][0].set_gid(f"median:{p.stage}:{p.label}")
        xs += [float(v) for v in stats["fliers"]]
        if p.overflow:
            ax.annotate(f"{p.overflow} out of range", (stats["fliers"][1],
                                                       y + STAGE_OFFSET.get(p.stage, 0.0)),
                        xytext=(4, -3), textcoords="offset points", color="red", fontsize=7)
    ax.set_yticks([y_of[label] for label in labels], labels)
    ax.set_ylim(-len(labels) + 0.5, 0.5)
    finite = [x for x in xs if math.isfinite(x)]
    if finite:
        ax.set_xlim(math.floor(min(finite)) - 1, math.ceil(max(finite)) + 2)
    ax.set_xlabel("log2 |value|  (nonzero values)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    stages = [s for s in COLORS if any(p.stage == s for p in rows)]
    handles = [Patch(facecolor=COLORS[s], alpha=0.6, label=s) for s in stages]
    handles.append(Patch(facecolor=RANGE_COLOR, alpha=0.2, label="type range [2^-F, max]"))
    ax.figure.legend(handles=handles, loc="outside lower center", ncols=len(handles),
                     fontsize=8)
    return labels


def _profile_figure(rows: list[LayerProfile], title: str) -> Figure:
    n = len({p.label for p in rows})
    fig = _figure(8.0, max(2.5, 0.5 * n + 1.4))
    draw_profile(fig.add_subplot(), rows, title)
    return fig


def numerical(
    model: Any = None,
    hls_model: Any = None,
    X: Any = None,
    *,
    layers: Iterable[str] | None = None,
) -> dict[str, Figure]:
    """Per-layer value distributions against the types' ranges.

    Returns ``{"weights": Figure}`` (float and quantized weights and biases of every
    weighted layer) and, when ``X`` is given, ``"activations"``: each layer's outputs
    after quantization (``hls_model.trace(X)``) and before it (the framework ``model``'s
    outputs, or the widened-type emulator when ``model`` is None; see
    ``nnfab.profiling.ranges``). ``layers`` restricts the rows to those IR layer names.
    """
    if hls_model is None:
        raise ConfigError("numerical(): hls_model is required (a converted nnfab model, e.g. "
                          "nnfab.convert_from_keras_model(model))")
    layers = list(layers) if layers is not None else None
    weights = weight_profile(hls_model, layers=layers)
    weights += weight_profile(hls_model, quantized=True, layers=layers)
    weights.sort(key=_order_key(hls_model))
    figs = {"weights": _profile_figure(weights, "Weights and biases")}
    if X is not None:
        acts = activation_profile(hls_model, X, model, quantized=False, layers=layers)
        acts += activation_profile(hls_model, X, quantized=True, layers=layers)
        acts.sort(key=_order_key(hls_model))
        figs["activations"] = _profile_figure(acts, f"Layer outputs ({_batch(X)} samples)")
    return figs


def _order_key(hls_model: Any) -> Callable[[LayerProfile], tuple[int, int]]:
    """Sort key putting rows in graph order, a layer's weights in their stored order."""
    order = {}
    for i, node in enumerate(hls_model.graph.nodes):
        order[(node.name, "activation")] = (i, 0)
        for j, wname in enumerate(node.weights):
            order[(node.name, wname)] = (i, j)
    return lambda p: order.get((p.layer, p.kind), (len(order), 0))


def _batch(X: Any) -> int:
    first = X[0] if isinstance(X, list | tuple) else X
    return int(np.shape(first)[0])


def compare(model: Any, hls_model: Any, X: Any) -> Figure:
    """Bar chart (log axis) of each layer's mean and max |float output - emulator output|.

    ``model`` is the float Keras model or PyTorch module (layers matched by name), or
    None for the widened-type emulator (``nnfab.profiling.ranges.compare_errors``).
    Layers with zero error get no bar and a ``0`` mark.
    """
    errors = compare_errors(model, hls_model, X)
    names = list(errors)
    fig = _figure(max(6.0, 0.7 * len(names) + 2.0), 4.5)
    ax = fig.add_subplot()
    positive = [v for pair in errors.values() for v in pair if v > 0]
    floor = min(positive) / 10 if positive else 1e-12
    x = np.arange(len(names))
    for offset, which, index in ((-0.2, "mean", 0), (0.2, "max", 1)):
        heights = [errors[n][index] for n in names]
        bars = ax.bar(x + offset, [h if h > 0 else np.nan for h in heights], width=0.4,
                      label=f"{which} |error|")
        for bar, name, h in zip(bars, names, heights, strict=True):
            bar.set_gid(f"{which}:{name}")
            if h <= 0:
                ax.text(bar.get_x() + bar.get_width() / 2, floor, "0", ha="center",
                        va="bottom", fontsize=7)
    ax.set_yscale("log")
    if positive:
        ax.set_ylim(floor / 2, max(positive) * 3)
    else:
        ax.set_ylim(1e-13, 1e-11)
    ax.set_xticks(x, names, rotation=45, ha="right")
    ref = "float model" if model is not None else "wide-type emulator"
    ax.set_ylabel(f"|{ref} - emulator|")
    ax.set_title(f"Emulator error per layer ({_batch(X)} samples)")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig
