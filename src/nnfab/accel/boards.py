"""The board table: which part, processing system, clock and bus width each board has.

The data lives in ``boards.yaml`` beside this module; ``register_board`` adds a board
from a dict or a YAML file without editing nnfab.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nnfab.errors import ConfigError

PS_KINDS = ("zynq7", "zynqmp", "none")
BOARD_KINDS = ("zynq", "alveo", "coyote")
BUS_WIDTHS = (32, 64, 128, 256, 512)
FAMILIES = ("xc7", "xcu", "xcup")
RESOURCES = ("lut", "ff", "dsp", "bram_18k", "uram")
_REQUIRED = ("part", "family", "ps", "kind", "clock_mhz", "bus_width", "capacity")
_OPTIONAL = ("vivado_board_part", "platform")


@dataclass(frozen=True)
class Board:
    """One board: its part and what the accelerator flow needs to know about it."""

    name: str
    part: str
    family: str
    ps: str
    kind: str
    clock_mhz: float
    bus_width: int
    capacity: dict[str, int] = field(default_factory=dict)
    vivado_board_part: str | None = None
    platform: str | None = None

    @property
    def clock_period(self) -> float:
        """The default fabric clock period in ns."""
        return 1000.0 / self.clock_mhz


def _board_from_dict(name: str, spec: Any, where: str) -> Board:
    if not isinstance(spec, dict):
        raise ConfigError(f"board {name!r} ({where}): expected a mapping of fields, got {spec!r}")
    missing = [k for k in _REQUIRED if k not in spec]
    unknown = sorted(set(spec) - set(_REQUIRED) - set(_OPTIONAL))
    if missing or unknown:
        raise ConfigError(
            f"board {name!r} ({where}): "
            + (f"missing {', '.join(missing)}; " if missing else "")
            + (f"unknown {', '.join(unknown)}; " if unknown else "")
            + f"fields are {', '.join(_REQUIRED + _OPTIONAL)}"
        )
    checks = (("family", FAMILIES), ("ps", PS_KINDS), ("kind", BOARD_KINDS))
    for key, allowed in checks:
        if spec[key] not in allowed:
            raise ConfigError(f"board {name!r} ({where}): {key} must be one of "
                              f"{', '.join(allowed)}, got {spec[key]!r}")
    if spec["bus_width"] not in BUS_WIDTHS:
        raise ConfigError(f"board {name!r} ({where}): bus_width must be one of "
                          f"{', '.join(map(str, BUS_WIDTHS))}, got {spec['bus_width']!r}")
    clock = spec["clock_mhz"]
    if isinstance(clock, bool) or not isinstance(clock, int | float) or clock <= 0:
        raise ConfigError(f"board {name!r} ({where}): clock_mhz must be a positive number, "
                          f"got {clock!r}")
    capacity = spec["capacity"]
    if not isinstance(capacity, dict) or set(capacity) - set(RESOURCES) or not all(
        isinstance(v, int) and v >= 0 for v in capacity.values()
    ):
        raise ConfigError(f"board {name!r} ({where}): capacity must map some of "
                          f"{', '.join(RESOURCES)} to counts, got {capacity!r}")
    return Board(name=name, part=str(spec["part"]), family=spec["family"], ps=spec["ps"],
                 kind=spec["kind"], clock_mhz=float(clock), bus_width=int(spec["bus_width"]),
                 capacity={k: int(v) for k, v in capacity.items()},
                 vivado_board_part=spec.get("vivado_board_part"),
                 platform=spec.get("platform"))


def _load_table(path: Path) -> dict[str, Board]:
    data = yaml.safe_load(path.read_text()) or {}
    return {name: _board_from_dict(name, spec, path.name) for name, spec in data.items()}


BOARDS: dict[str, Board] = _load_table(Path(__file__).with_name("boards.yaml"))


def get_board(name: str | Board) -> Board:
    """The board called ``name`` (case-insensitive); a clear error lists the known ones."""
    if isinstance(name, Board):
        return name
    board = BOARDS.get(str(name).lower())
    if board is None:
        raise ConfigError(f"unknown board {name!r}; known boards: {', '.join(BOARDS)} "
                          "(add one with nnfab.accel.register_board)")
    return board


def board_parts() -> dict[str, Board]:
    """Every known board by its part name (lower case); the first board of a part wins."""
    out: dict[str, Board] = {}
    for board in BOARDS.values():
        out.setdefault(board.part.lower(), board)
    return out


def register_board(spec: dict[str, Any] | str | Path, name: str | None = None) -> list[Board]:
    """Add boards: ``{name: {fields}}``, ``{fields}`` with ``name=``, or a YAML file of them."""
    if isinstance(spec, str | Path):
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"board file {path} does not exist")
        table = yaml.safe_load(path.read_text()) or {}
        where = str(path)
    else:
        table = {name: spec} if name is not None else spec
        where = "register_board"
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{where}: expected {{board name: {{fields}}}}, got {table!r}")
    added = [_board_from_dict(str(n).lower(), s, where) for n, s in table.items()]
    for board in added:
        BOARDS[board.name] = board
    return added
