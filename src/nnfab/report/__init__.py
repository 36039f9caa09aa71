"""A self-contained HTML report of a converted model (``write_report``): graph, per-layer
types and estimates, resources, accuracy, bit-exactness and profiling figures."""

from __future__ import annotations

from nnfab.report.graph_svg import graph_svg
from nnfab.report.html import REPORT_NAME, render_report, wide_copy, write_report

__all__ = ["REPORT_NAME", "graph_svg", "render_report", "wide_copy", "write_report"]
