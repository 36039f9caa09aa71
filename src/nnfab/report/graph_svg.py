"""The model's graph as inline SVG: layered boxes (one per node) joined by arrows.

Layout (a small Sugiyama-style drawing):

- rank: the longest path from a graph input, then every node that is not a graph
  input moves as late as its consumers allow (a skip branch sits next to its merge);
- an edge that spans several ranks gets a waypoint in every rank it crosses, and
  waypoints take a thin slot there, so long edges pass between boxes, not through them;
- inside a rank, boxes and waypoints are ordered by the mean position of their inputs
  (one sweep), which keeps chains straight and few edges crossing;
- ranks are columns left to right, or rows top to bottom when that would be too wide.

Every user string is XML-escaped here, so the result can be embedded as is.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from html import escape
from typing import Any

from nnfab.errors import ConfigError
from nnfab.ir import Graph

BOX_HEIGHT = 44
RANK_GAP = 34  # between ranks (columns in LR, rows in TB)
SLOT_GAP = 18  # between neighbours inside a rank
WAYPOINT = 6  # slot a long edge takes in a rank it crosses
MARGIN = 16
CHAR_WIDTH = 6.6  # px per character of the 11 px detail font (approximate)
BOLD_CHAR_WIDTH = 7.6  # the same for the 12 px bold name
MIN_BOX_WIDTH = 96
MAX_LABEL_CHARS = 30
AUTO_LR_WIDTH = 1400
"""``direction='auto'`` draws left to right when that is at most this wide."""
DIRECTIONS = ("auto", "LR", "TB")

OP_COLORS = {
    "Input": "#e8f1fb",
    "Dense": "#fde9d2",
    "Conv1D": "#fde9d2",
    "Conv2D": "#fde9d2",
    "DepthwiseConv1D": "#fde9d2",
    "DepthwiseConv2D": "#fde9d2",
    "Activation": "#e3f4e1",
    "Softmax": "#e3f4e1",
    "BatchNormalization": "#f1e6f7",
}
DEFAULT_COLOR = "#eeeeee"


@dataclass
class _Item:
    """A box (a node) or a waypoint of a long edge, placed in one rank."""

    key: str
    rank: int
    width: float
    inputs: list[str] = field(default_factory=list)
    node: Any = None  # the graph Node for boxes, None for waypoints
    label: str = ""
    detail: str = ""
    tooltip: str = ""
    x: float = 0.0
    y: float = 0.0

    @property
    def is_box(self) -> bool:
        return self.node is not None

    def extent(self, direction: str) -> float:
        """Size along the rank (across the flow)."""
        if not self.is_box:
            return WAYPOINT
        return self.width if direction == "TB" else BOX_HEIGHT

    def depth(self, direction: str) -> float:
        """Size along the flow."""
        if not self.is_box:
            return 0.0
        return BOX_HEIGHT if direction == "TB" else self.width


def _short(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _attr(value: Any) -> str:
    return escape(str(value), quote=True)


def ranks(graph: Graph) -> dict[str, int]:
    """Rank of every node: longest path from an input, then as late as the consumers
    allow (graph inputs stay at rank 0)."""
    names = {n.name for n in graph.nodes}
    out: dict[str, int] = {}
    for node in graph.nodes:  # topological order
        out[node.name] = 1 + max((out[i] for i in node.inputs if i in names), default=-1)
    consumers: dict[str, list[str]] = {n.name: [] for n in graph.nodes}
    for node in graph.nodes:
        for i in node.inputs:
            if i in consumers:
                consumers[i].append(node.name)
    for node in reversed(graph.nodes):
        if node.inputs and consumers[node.name] and node.name not in graph.outputs:
            out[node.name] = max(out[node.name],
                                 min(out[c] for c in consumers[node.name]) - 1)
    return out


def _box(graph: Graph, node: Any, rank: int) -> _Item:
    tensor = graph.tensors.get(node.name)
    shape = "x".join(str(d) for d in tensor.shape) if tensor is not None else "?"
    label = _short(node.name)
    detail = _short(f"{node.op}  [{shape}]")
    tip = [f"{node.name} ({node.op})", f"output shape ({shape})"]
    if tensor is not None and tensor.type is not None:
        tip.append(f"result {tensor.type}")
    tip += [f"{k} {v}" for k, v in node.precision.items()]
    if node.inputs:
        tip.append("inputs: " + ", ".join(node.inputs))
    width = max(MIN_BOX_WIDTH, BOLD_CHAR_WIDTH * len(label) + 16,
                CHAR_WIDTH * len(detail) + 20)
    return _Item(node.name, rank, width, node=node, label=label, detail=detail,
                 tooltip="\n".join(tip))


def _layout_items(graph: Graph) -> tuple[dict[str, _Item], list[tuple[str, list[str]]]]:
    """Boxes and waypoints, and every edge as (destination, [source, waypoints...])."""
    rank_of = ranks(graph)
    items: dict[str, _Item] = {}
    for node in graph.nodes:
        items[node.name] = _box(graph, node, rank_of[node.name])
    edges: list[tuple[str, list[str]]] = []
    for k, node in enumerate(graph.nodes):
        for j, src in enumerate(node.inputs):
            if src not in items:
                continue
            chain = [src]
            for r in range(rank_of[src] + 1, rank_of[node.name]):
                key = f"\x00{k}.{j}.{r}"  # cannot clash with a node name from a file
                items[key] = _Item(key, r, 0.0, inputs=[chain[-1]])
                chain.append(key)
            items[node.name].inputs.append(chain[-1])
            edges.append((node.name, chain))
    return items, edges


def _rows(items: dict[str, _Item]) -> dict[int, list[_Item]]:
    rows: dict[int, list[_Item]] = {}
    for item in items.values():
        rows.setdefault(item.rank, []).append(item)
    return rows


def _order(rows: dict[int, list[_Item]]) -> None:
    """Sort every rank by the mean index of its items' inputs (stable for ties)."""
    index: dict[str, float] = {}
    for r in sorted(rows):
        row = rows[r]
        if r > 0:
            row.sort(key=lambda it: (sum(index.get(i, 0.0) for i in it.inputs) /
                                     len(it.inputs)) if it.inputs else 0.0)
        for k, item in enumerate(row):
            index[item.key] = k - (len(row) - 1) / 2


def _span(row: list[_Item], direction: str) -> float:
    return sum(it.extent(direction) for it in row) + SLOT_GAP * (len(row) - 1)


def _place(rows: dict[int, list[_Item]], direction: str) -> tuple[float, float]:
    """Set every item's top-left corner; returns the drawing's (width, height)."""
    across = max((_span(row, direction) for row in rows.values()), default=MIN_BOX_WIDTH)
    depths = {r: max(it.depth(direction) for it in row) for r, row in rows.items()}
    along = float(MARGIN)
    for r in sorted(rows):
        pos = MARGIN + (across - _span(rows[r], direction)) / 2
        for item in rows[r]:
            lead = along + (depths[r] - item.depth(direction)) / 2
            if direction == "TB":
                item.x, item.y = pos, lead
            else:
                item.x, item.y = lead, pos
            pos += item.extent(direction) + SLOT_GAP
        along += max(depths[r], WAYPOINT) + RANK_GAP
    length = along - RANK_GAP + MARGIN
    breadth = across + 2 * MARGIN
    return (breadth, length) if direction == "TB" else (length, breadth)


def _lr_width(rows: dict[int, list[_Item]]) -> float:
    return (sum(max(max(it.depth("LR") for it in row), WAYPOINT) for row in rows.values())
            + RANK_GAP * (len(rows) - 1) + 2 * MARGIN)


def _ports(item: _Item, direction: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """(entry, exit) points of an item along the flow."""
    if not item.is_box:
        c = (item.x + WAYPOINT / 2, item.y) if direction == "TB" else (
            item.x, item.y + WAYPOINT / 2)
        return c, c
    if direction == "TB":
        cx = item.x + item.width / 2
        return (cx, item.y), (cx, item.y + BOX_HEIGHT)
    cy = item.y + BOX_HEIGHT / 2
    return (item.x, cy), (item.x + item.width, cy)


def _edge_path(points: list[tuple[float, float]], direction: str) -> str:
    d = [f"M {points[0][0]:.1f} {points[0][1]:.1f}"]
    for (x1, y1), (x2, y2) in itertools.pairwise(points):
        if direction == "TB":
            m = (y1 + y2) / 2
            d.append(f"C {x1:.1f} {m:.1f}, {x2:.1f} {m:.1f}, {x2:.1f} {y2:.1f}")
        else:
            m = (x1 + x2) / 2
            d.append(f"C {m:.1f} {y1:.1f}, {m:.1f} {y2:.1f}, {x2:.1f} {y2:.1f}")
    return " ".join(d)


def graph_svg(graph: Graph, direction: str = "auto") -> str:
    """An ``<svg>`` element (no XML declaration, no namespace URL) drawing ``graph``.

    ``direction``: ``"LR"`` (ranks left to right), ``"TB"`` (top to bottom) or
    ``"auto"``: LR when the drawing is at most ``AUTO_LR_WIDTH`` px wide, else TB.
    """
    if direction not in DIRECTIONS:
        raise ConfigError(f"graph_svg: direction must be one of {', '.join(DIRECTIONS)}, "
                          f"got {direction!r}")
    items, edges = _layout_items(graph)
    rows = _rows(items)
    _order(rows)
    if direction == "auto":
        direction = "LR" if _lr_width(rows) <= AUTO_LR_WIDTH else "TB"
    width, height = _place(rows, direction)
    parts = [
        f'<svg class="nnfab-graph" data-direction="{direction}" role="img" '
        f'width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" aria-label="{_attr(graph.name)} graph">',
        '<defs><marker id="nnfab-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
        '<g class="edges">',
    ]
    for dst, chain in edges:
        points = [_ports(items[chain[0]], direction)[1]]
        points += [_ports(items[key], direction)[0] for key in chain[1:]]
        points.append(_ports(items[dst], direction)[0])
        parts.append(
            f'<path class="edge" data-from="{_attr(chain[0])}" data-to="{_attr(dst)}" '
            f'd="{_edge_path(points, direction)}" fill="none" stroke="#555" '
            'stroke-width="1.3" marker-end="url(#nnfab-arrow)"/>'
        )
    parts.append("</g>")
    outputs = set(graph.outputs)
    for node in graph.nodes:
        box = items[node.name]
        fill = OP_COLORS.get(node.op, DEFAULT_COLOR)
        stroke = "#b03030" if node.name in outputs else "#666"
        cx = box.x + box.width / 2
        parts.append(
            f'<g class="node" data-name="{_attr(node.name)}" data-op="{_attr(node.op)}">'
            f"<title>{escape(box.tooltip)}</title>"
            f'<rect class="node" x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" '
            f'height="{BOX_HEIGHT}" rx="6" fill="{fill}" stroke="{stroke}" stroke-width="1.2"/>'
            f'<text x="{cx:.1f}" y="{box.y + 18:.1f}" text-anchor="middle" '
            f'font-weight="bold">{escape(box.label)}</text>'
            f'<text x="{cx:.1f}" y="{box.y + 35:.1f}" text-anchor="middle" '
            f'class="detail">{escape(box.detail)}</text></g>'
        )
    parts.append("</svg>")
    return "\n".join(parts)
