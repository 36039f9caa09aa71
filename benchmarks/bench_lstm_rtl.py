"""What the LSTM of bench_lstm.py costs as Verilog: Yosys resources, latency, II, Verilator.

    python3 benchmarks/bench_lstm_rtl.py [--styles lut dsp] [--pipeline none clock]
                                         [--samples 20000] [--no-synth]

The model: LSTM(16) over 20 steps x 6 features, then Dense(5), Keras float weights,
default nnfab types (ap_fixed<16,6>, exact accumulators, 1024-entry tables), through
``to_rtl()`` (``nnfab.backends.rtl.recurrent``: one time step per S cycles). One row per
style and pipelining (``none``: registers at layer boundaries only, S = 1; ``clock``: the
model's 5 ns clock target): Yosys ``synth_xilinx`` LUT/FF/DSP for xcvu9p, latency and II
in cycles, the Verilator build time (cold, own cache) and simulated samples/s, and
whether the simulation equals ``predict`` bit for bit.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

STEPS, FEATURES, UNITS, CLASSES = 20, 6, 16, 5
PART = "xcvu9p-flgb2104-2l-e"
log = logging.getLogger("bench_lstm_rtl")


def _table(header: list[str], rows: list[list[object]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True))
              for row in rows]
    return "\n".join(lines)


def _model() -> Any:
    import keras

    import nnfab

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((STEPS, FEATURES)), keras.layers.LSTM(UNITS),
                              keras.layers.Dense(CLASSES)])
    hm = nnfab.convert_from_keras_model(model, hls_config={"Model": {"Precision":
                                                                     "ap_fixed<16,6>"}})
    hm.warn_overflow = False
    return hm


def run(hm: Any, style: str, pipeline: str, work: Path, samples: int, synth: bool
        ) -> list[object]:
    """One table row."""
    out = work / f"{style}_{pipeline}"
    t0 = time.perf_counter()
    prj = hm.to_rtl(out, style=style, pipeline=None if pipeline == "none" else "clock")
    prj.write()
    generate_s = time.perf_counter() - t0
    os.environ["NNFAB_CACHE_DIR"] = str(work / "cache")  # cold Verilator builds
    x = np.random.default_rng(1).normal(0, 1.5, (samples, STEPS, FEATURES))
    sim = prj.simulate(x)
    exact = bool(np.array_equal(sim.outputs, hm.predict(x)))
    rate = samples / sim.sim_seconds if sim.sim_seconds > 0 else float("nan")
    lut = ff = dsp = synth_s = "-"
    if synth:
        rep = prj.synthesize(PART)
        lut, ff, dsp, synth_s = rep.lut, rep.ff, rep.dsp, f"{rep.seconds:.0f}"
    layer = next(m for m in prj.design.layers if m.op == "LSTM")
    return [style, pipeline, layer.stats["cycles_per_step"], prj.latency, prj.ii, exact,
            f"{generate_s:.1f}", f"{sim.build_seconds:.1f}", f"{rate:,.0f}", lut, ff, dsp,
            synth_s]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--styles", nargs="+", default=["lut", "dsp"], choices=["lut", "dsp"])
    parser.add_argument("--pipeline", nargs="+", default=["none", "clock"],
                        choices=["none", "clock"])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--no-synth", action="store_true")
    parser.add_argument("--work", type=Path, default=None, help="project directory root")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_lstm_rtl_"))
    hm = _model()
    header = ["style", "pipeline", "S", "latency", "II", "bit_exact", "generate_s",
              "verilator_build_s", "samples/s", "LUT", "FF", "DSP", "synth_s"]
    rows = []
    for style in args.styles:
        for pipeline in args.pipeline:
            rows.append(run(hm, style, pipeline, work, args.samples, not args.no_synth))
            log.info("%s", _table(header, rows[-1:]))
    log.info("\nLSTM(%d) over %d x %d -> Dense(%d), ap_fixed<16,6>, Yosys synth_xilinx for %s "
             "(latency / II in clock cycles; S: cycles per time step; samples/s of the "
             "Verilator simulation, %d samples back to back); projects in %s\n%s", UNITS,
             STEPS, FEATURES, CLASSES, PART, args.samples, work, _table(header, rows))


if __name__ == "__main__":
    main()
