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

BOARDS: dict[str, str] = {
    "pynq-z2": "xc7z020clg400-1",
    "zcu102": "xczu9eg-ffvb1156-2-e",
    "alveo-u50": "xcu50-fsvh2104-2-e",
    "alveo-u200": "xcu200-fsgd2104-2-e",
    "alveo-u250": "xcu250-figd2104-2l-e",
    "alveo-u280": "xcu280-fsvh2892-2l-e",
}

DEFAULT_PART = "xcvu9p-flgb2104-2l-e"


def resolve_part(part: str | None = None, board: str | None = None) -> str:
    """The part to target: explicit part, else the board's, else the default."""
    if board is not None:
        key = board.lower()
        if key not in BOARDS:
            raise ConfigError(f"unknown board {board!r}; known boards: {', '.join(BOARDS)}")
        board_part = BOARDS[key]
        if part is not None and part != board_part:
            raise ConfigError(f"board {board!r} carries part {board_part!r}, not {part!r}")
        return board_part
    return part or DEFAULT_PART


def part_info(part: str) -> Part | None:
    """Resources of a known part (None for parts nnfab has no table entry for)."""
    return PARTS.get(part)
