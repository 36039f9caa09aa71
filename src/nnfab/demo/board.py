"""The board demo: the shipped jet tagger as a complete board project and package, run on
a simulated board through the very driver and validate.py that go on the board."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnfab.api import config_from_keras_model, convert_from_keras_model
from nnfab.demo.data import make_jet_like_data
from nnfab.demo.run import Step, demo_model_path

log = logging.getLogger(__name__)

RTL_TEST_SAMPLES = 1000
"""Test vectors of the Verilog route's package (its simulated board runs Verilator)."""


@dataclass
class BoardDemo:
    """What the board demo wrote and measured."""

    board: str
    part: str
    route: str
    interface: str
    bus_width: int
    engine: str
    n_samples: int
    bit_exact: bool
    validate_code: int
    validate_output: str
    build: dict[str, Any]
    package: Path
    fit: Any
    transfers: int
    board_seconds: float
    root: Path
    timings: dict[str, float] = field(default_factory=dict)


def _fit_reuse(hm: Any, config: dict[str, Any], convert: Any, board: Any, say: Any) -> Any:
    """The smallest power-of-two ReuseFactor whose HLS DSP estimate fits the board (80%)."""
    budget = 0.8 * board.capacity.get("dsp", 0)
    reuse = 1
    while budget and hm.estimate().totals()["dsp"] > budget and reuse < 1024:
        reuse *= 2
        config["Model"]["ReuseFactor"] = reuse
        for layer in config.get("LayerName", {}).values():
            if "ReuseFactor" in layer:
                layer["ReuseFactor"] = reuse
        hm = convert(config)
    if reuse > 1:
        say(f"ReuseFactor {reuse} on every layer: {int(hm.estimate().totals()['dsp'])} DSPs "
            f"(HLS estimate) of the {board.name}'s {board.capacity['dsp']}")
    return hm


def run_board_demo(output_dir: str | Path = "nnfab_demo_board", board: str = "pynq-z2", *,
                   n_samples: int = 2000, route: str | None = None,
                   precision: str = "ap_fixed<16,6>", step: Step | None = None) -> BoardDemo:
    """Write the board project, build what can be built here, package, simulate the board.

    ``route="hls"`` (default on Zynq boards: float32 on the bus, the HLS IP, simulated by
    its g++ C simulation) or ``"rtl"`` (fixed-point lanes, nnfab's Verilog, simulated by
    Verilator).
    """
    from nnfab.accel.boards import get_board
    from nnfab.accel.interface import ACCEL_BACKENDS
    from nnfab.accel.simulate import simulate
    from nnfab.frontends.keras import load_keras_model

    say = step or (lambda message: log.info("%s", message))
    timings: dict[str, float] = {}
    b = get_board(board)
    backend = next(name for name, kind in ACCEL_BACKENDS.items() if kind == b.kind)
    interface = "fixed" if route == "rtl" else None
    out = Path(output_dir)

    say("loading the jet tagger (Keras)")
    t0 = time.perf_counter()
    keras_model = load_keras_model(demo_model_path())
    x, _ = make_jet_like_data(n_samples, seed=3)
    config = config_from_keras_model(keras_model, granularity="name",
                                     default_precision=precision)
    def convert(cfg: dict[str, Any]) -> Any:
        return convert_from_keras_model(keras_model, hls_config=cfg, output_dir=out,
                                        backend=backend, board=b.name, route=route,
                                        interface=interface)

    hm = convert(config)
    if hm.accel.route == "hls":
        hm = _fit_reuse(hm, config, convert, b, say)
    timings["convert"] = time.perf_counter() - t0

    say(f"writing the {b.name} board project ({hm.accel.route} route)")
    t0 = time.perf_counter()
    if hm.accel.route == "rtl" and len(x) > RTL_TEST_SAMPLES:
        x = x[:RTL_TEST_SAMPLES]  # Verilator runs the whole LUT network every cycle
    hm.write(tb_input=x)  # the package's test vectors: these inputs
    build = hm.build(bitfile=True)  # without Vivado: says what to run, and where
    timings["write_project"] = time.perf_counter() - t0
    fit = hm.fit()

    say("packaging the files for the board")
    package = hm.package(require_bitfile=build.get("status") == "built")

    say("building the simulated board (driver + DMA + firmware model)")
    t0 = time.perf_counter()
    sim = simulate(hm)
    timings["simulated_board_build"] = time.perf_counter() - t0
    say(f"running validate.py on the simulated board ({sim.engine})")
    t0 = time.perf_counter()
    code, text = sim.run_validate()
    timings["validate"] = time.perf_counter() - t0
    y_board = sim.predict(x[:257], max_batch=100)  # three chunks, the last one partial
    from nnfab.accel.project import expected_outputs

    exact = code == 0 and bool(np.array_equal(y_board, expected_outputs(hm, x[:257])))
    return BoardDemo(
        board=b.name, part=b.part, route=hm.accel.route, interface=hm.accel.interface,
        bus_width=hm.accel.bus_width, engine=sim.engine, n_samples=len(x), bit_exact=exact,
        validate_code=code, validate_output=text, build=build, package=package, fit=fit,
        transfers=sim.stats.transfers, board_seconds=timings["validate"], root=out,
        timings=timings,
    )
