"""Fit before build: the network's (and the wrapper's) resources against the board's part.

Without synthesis the figures are the HLS estimate (DSP, BRAM_18K; analytic, see
``nnfab.backends.hls.estimate``). With ``synth=True`` and the Verilog route, Yosys
(``synth_xilinx`` for the part's family) counts LUT, FF, DSP and BRAM of the network
alone and of wrapper + network; the wrapper's cost is the difference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

RESOURCES = ("lut", "ff", "dsp", "bram_18k")


@dataclass
class FitRow:
    resource: str
    network: int | None
    wrapper: int | None
    capacity: int | None

    @property
    def total(self) -> int | None:
        if self.network is None:
            return None
        return self.network + (self.wrapper or 0)

    @property
    def percent(self) -> float | None:
        if self.total is None or not self.capacity:
            return None
        return 100.0 * self.total / self.capacity

    @property
    def overflow(self) -> int:
        """How much the total exceeds the capacity (0 when it fits or is unknown)."""
        if self.total is None or self.capacity is None:
            return 0
        return max(0, self.total - self.capacity)


@dataclass
class FitReport:
    board: str
    part: str
    source: str
    rows: list[FitRow] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return all(r.overflow == 0 for r in self.rows)

    def warnings(self) -> list[str]:
        return [f"{r.resource.upper()}: {r.total:,} needed ({self.source}), the {self.board}'s "
                f"{self.part} has {r.capacity:,}: over by {r.overflow:,} "
                f"({r.percent:.0f}%)" for r in self.rows if r.overflow]

    def as_dict(self) -> dict[str, Any]:
        return {"board": self.board, "part": self.part, "source": self.source, "fits": self.fits,
                "rows": [{"resource": r.resource, "network": r.network, "wrapper": r.wrapper,
                          "total": r.total, "capacity": r.capacity, "percent": r.percent}
                         for r in self.rows]}

    def table(self) -> str:
        def f(v: Any) -> str:
            return "-" if v is None else (f"{v:.1f}%" if isinstance(v, float) else f"{v:,}")

        lines = [f"fit on {self.board} ({self.part}), {self.source}",
                 f"{'resource':<10}{'network':>10}{'wrapper':>10}{'total':>10}{'capacity':>11}"
                 f"{'used':>8}"]
        for r in self.rows:
            lines.append(f"{r.resource.upper():<10}{f(r.network):>10}{f(r.wrapper):>10}"
                         f"{f(r.total):>10}{f(r.capacity):>11}{f(r.percent):>8}")
        return "\n".join(lines)


def check_fit(model: Any, *, synth: bool = False, warn: bool = True,
              timeout: float | None = None) -> FitReport:
    """Compare the model's resources with its board; log a warning per overflow."""
    board = model.accel.board
    capacity = board.capacity
    if synth and model.accel.route == "rtl":
        from nnfab.accel.axis_rtl import wrapper_cost

        rtl = model.to_rtl()
        cost = wrapper_cost(rtl, model.accel.bus_width, board.part)
        network = cost["network"]
        wrapper = cost["wrapper"]
        rows = [FitRow(k, network.get(k), wrapper.get(k), capacity.get(k)) for k in RESOURCES]
        source = "Yosys synth_xilinx"
    else:
        totals = model.estimate().totals()
        rows = [FitRow("dsp", int(totals["dsp"]), None, capacity.get("dsp")),
                FitRow("bram_18k", int(totals["bram_18k"]), None, capacity.get("bram_18k"))]
        source = "HLS estimate"
    report = FitReport(board.name, board.part, source, rows)
    if warn:
        for text in report.warnings():
            log.warning("the network does not fit: %s", text)
    return report
