"""Putting a network on a board: board table, AXI4-Stream wrappers (HLS and Verilog),
Vivado / Vitis / Coyote projects, drivers, simulated transports and the package.

Uses ``backends/hls`` and ``backends/rtl``, never the reverse. The bus format is
``docs/axi_stream.md``.
"""

from __future__ import annotations

from nnfab.accel.boards import BOARDS, Board, get_board, register_board
from nnfab.accel.interface import AccelSettings, describe

__all__ = ["BOARDS", "AccelSettings", "Board", "describe", "get_board", "register_board"]
