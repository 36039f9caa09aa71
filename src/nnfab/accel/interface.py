"""What an accelerator build is: board, bus interface, route, and the lane description
(``docs/axi_stream.md``) that wrappers, drivers and transports share.

``AccelSettings`` travels on the model (``hm.accel``); ``describe`` turns it and the
model's input/output types into the JSON document written as ``accel/accel.json``
and copied to the board beside the bitfile as ``nnfab_nn.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnfab.accel.boards import BUS_WIDTHS, Board, get_board
from nnfab.accel.drivers.nnfab_driver import lane_width
from nnfab.errors import ConfigError
from nnfab.ir import FixedType, Graph, sanitize
from nnfab.ir.types import union_of

INTERFACES = ("float", "fixed")
ROUTES = ("hls", "rtl")
ACCEL_BACKENDS = {"VivadoAccelerator": "zynq", "VitisAccelerator": "alveo",
                  "CoyoteAccelerator": "coyote"}
FORMAT = "nnfab-accel-1"
BITFILE_STEM = "nnfab_nn"
"""Build outputs are ``deploy/nnfab_nn.bit`` + ``.hwh`` (Zynq) or ``nnfab_nn.xclbin``."""


@dataclass(frozen=True)
class AccelSettings:
    """How the network is put on a board."""

    board: Board
    interface: str = "float"
    bus_width: int = 64
    route: str = "hls"

    @classmethod
    def make(cls, backend: str, board: str | Board | None, *, interface: str | None = None,
             bus_width: int | None = None, route: str | None = None) -> AccelSettings:
        """Validated settings; defaults from the board (bus width) and the backend."""
        if board is None:
            raise ConfigError(f"backend {backend!r} needs a board (board='pynq-z2', ...)")
        b = get_board(board)
        want = ACCEL_BACKENDS.get(backend)
        if want is not None and b.kind != want:
            fitting = ", ".join(n for n, x in _boards_of_kind(want))
            raise ConfigError(f"backend {backend!r} targets {want} boards ({fitting}); "
                              f"board {b.name!r} is a {b.kind} board")
        route = route or ("rtl" if b.kind == "coyote" else "hls")
        if route not in ROUTES:
            raise ConfigError(f"route must be one of {', '.join(ROUTES)}, got {route!r}")
        interface = interface or ("fixed" if route == "rtl" else "float")
        if interface not in INTERFACES:
            raise ConfigError(f"interface must be one of {', '.join(INTERFACES)}, "
                              f"got {interface!r}")
        if route == "rtl" and interface == "float":
            raise ConfigError("route='rtl' (the Verilog) takes interface='fixed' only: "
                              "float conversion in fabric is done by the HLS wrapper")
        bus_width = bus_width or b.bus_width
        if bus_width not in BUS_WIDTHS:
            raise ConfigError(f"bus_width must be one of {', '.join(map(str, BUS_WIDTHS))}, "
                              f"got {bus_width!r}")
        return cls(b, interface, int(bus_width), route)


def _boards_of_kind(kind: str) -> list[tuple[str, Board]]:
    from nnfab.accel.boards import BOARDS

    return [(n, b) for n, b in BOARDS.items() if b.kind == kind]


def port_description(t: FixedType, shape: tuple[int, ...], interface: str) -> dict[str, Any]:
    """One direction of the bus: shape, fixed type and lane width."""
    lane = 32 if interface == "float" else lane_width(t.width)
    n = 1
    for d in shape:
        n *= d
    return {"shape": list(shape), "elements": n, "type": str(t), "width": t.width,
            "frac": t.frac, "signed": t.signed, "rounding": t.rounding.value,
            "overflow": t.overflow.value, "lane": lane}


def describe(graph: Graph, settings: AccelSettings, project_name: str) -> dict[str, Any]:
    """The accelerator's interface document (``accel/accel.json``, ``nnfab_nn.json``)."""
    if len(graph.outputs) != 1:
        raise ConfigError(f"the accelerator wrappers take one output; model {graph.name!r} "
                          f"has {len(graph.outputs)}")
    tin = graph.tensors[graph.inputs[0]]
    tout = graph.tensors[graph.outputs[0]]
    in_type, in_shape = tin.type, tuple(tin.shape)
    if len(graph.inputs) > 1:  # one bus: input after input, in their union type
        tensors = [graph.tensors[name] for name in graph.inputs]
        in_type = union_of([t.type for t in tensors])
        in_shape = (sum(t.size for t in tensors),)
    doc = {
        "format": FORMAT,
        "board": settings.board.name,
        "part": settings.board.part,
        "kind": settings.board.kind,
        "interface": settings.interface,
        "bus_width": settings.bus_width,
        "route": settings.route,
        "clock_mhz": settings.board.clock_mhz,
        "project": sanitize(project_name),
        "input": port_description(in_type, in_shape, settings.interface),
        "output": port_description(tout.type, tuple(tout.shape), settings.interface),
        "bitfile": BITFILE_STEM,
    }
    if len(graph.inputs) > 1:
        doc["inputs"] = [{"name": name, **port_description(graph.tensors[name].type,
                                                           tuple(graph.tensors[name].shape),
                                                           settings.interface)}
                         for name in graph.inputs]
    for side in ("input", "output"):
        lane = doc[side]["lane"]
        if lane > settings.bus_width:
            raise ConfigError(f"the {side} lanes are {lane} bits wide, wider than the "
                              f"{settings.bus_width}-bit bus; choose a wider bus_width")
    return doc


def write_description(doc: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path
