"""FPGA parts and boards nnfab knows, with their resource counts."""

from __future__ import annotations

from dataclasses import dataclass

from nnfab.errors import ConfigError


@dataclass(frozen=True)
class Part:
    """An FPGA part and the resources it offers."""

    name: str
    family: str  # "xc7" (7-series), "xcu" (UltraScale), "xcup" (UltraScale+)
    lut: int
    ff: int
    dsp: int
    bram_18k: int
    uram: int = 0


PARTS: dict[str, Part] = {
    p.name: p
    for p in [
        Part("xc7z020clg400-1", "xc7", 53_200, 106_400, 220, 280),
        Part("xczu9eg-ffvb1156-2-e", "xcup", 274_080, 548_160, 2_520, 1_824),
        Part("xcu50-fsvh2104-2-e", "xcup", 872_000, 1_743_360, 5_952, 2_688, 640),
        Part("xcu200-fsgd2104-2-e", "xcup", 1_182_240, 2_364_480, 6_840, 4_320, 960),
        Part("xcu250-figd2104-2l-e", "xcup", 1_728_000, 3_456_000, 12_288, 5_376, 1_280),
        Part("xcu280-fsvh2892-2l-e", "xcup", 1_303_680, 2_607_360, 9_024, 4_032, 960),
        Part("xcvu9p-flgb2104-2l-e", "xcup", 1_182_240, 2_364_480, 6_840, 4_320, 960),
        Part("xcku115-flvb2104-2-e", "xcu", 663_360, 1_326_720, 5_520, 4_320),
    ]
}

DEFAULT_PART = "xcvu9p-flgb2104-2l-e"


def resolve_part(part: str | None = None, board: str | None = None) -> str:
    """The part to target: explicit part, else the board's (``nnfab.accel.boards``),
    else the default."""
    if board is not None:
        from nnfab.accel.boards import get_board

        board_part = get_board(board).part
        if part is not None and part.lower() != board_part.lower():
            raise ConfigError(f"board {board!r} carries part {board_part!r}, not {part!r}")
        return board_part
    return part or DEFAULT_PART


def part_info(part: str) -> Part | None:
    """Resources of a known part (this table, then the board table's capacities); None
    for parts nnfab knows nothing about. Part names compare case-insensitively."""
    key = part.lower()
    for name, info in PARTS.items():
        if name.lower() == key:
            return info
    from nnfab.accel.boards import board_parts

    board = board_parts().get(key)
    if board is None or not board.capacity:
        return None
    c = board.capacity
    return Part(board.part, board.family, c.get("lut", 0), c.get("ff", 0), c.get("dsp", 0),
                c.get("bram_18k", 0), c.get("uram", 0))
