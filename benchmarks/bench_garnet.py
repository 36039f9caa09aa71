"""What a GarNet calorimeter-cluster layer costs in nnfab: emulator throughput against
Keras, the C simulation build, and the Verilog's size and clock.

    python3 benchmarks/bench_garnet.py [--quick] [--synth] [--pnr MHZ]

The model: 32 vertices x 4 features with the vertex count as a second input, a
simplified GarNet (4 aggregators, 8 propagated features, 8 filters, relu, mean over the
real vertices), Dense(1); the Keras layer of ``tests/frontends/garnet_reference.py``
with random weights; nnfab's default types (ap_fixed<16,6>, the 1024-entry exp(-d^2)
table). The samples' vertex counts are uniform in 1..32, padding vertices zero.

Prints one table: samples/s of the bit-exact emulator (hm.predict) against Keras'
model.predict (the baseline, same process, same batch), the C simulation build time in
an empty cache and its agreement with the emulator (must be exact); ``--synth`` adds the
Yosys LUT/FF/DSP of the Verilog (``--style dsp``, the default: the 2 x V x A x P = 2,048
products of activations become DSPs; ``lut`` builds each from gated adders, which
Yosys did not finish within 30 minutes) at the default 5 ns target (xcvu9p,
synth_xilinx), and ``--pnr MHZ`` the same network generated for ECP5 at that target,
placed and routed (LUT4 / CCU2C / FF and Fmax on the LFE5U-85F).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "frontends"))
from bench_predict import print_rows, rate

VERTICES, FEATURES, AGGREGATORS, PROPAGATE, FILTERS = 32, 4, 4, 8, 8


def build_model():
    import keras
    from garnet_reference import GarNet

    keras.utils.set_random_seed(0)
    x = keras.Input((VERTICES, FEATURES), name="hits")
    n = keras.Input((1,), name="n_hits", dtype="int32")
    y = GarNet(AGGREGATORS, FILTERS, PROPAGATE, simplified=True, collapse="mean",
               mean_by_nvert=True, output_activation="relu", name="garnet")([x, n])
    return keras.Model([x, n], keras.layers.Dense(1, name="head")(y), name="garnet_net")


def samples(count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    n = rng.integers(1, VERTICES + 1, size=(count, 1))
    x = rng.normal(size=(count, VERTICES, FEATURES)).astype(np.float32)
    return x * (np.arange(VERTICES)[None, :, None] < n[:, :, None]), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2k samples instead of 20k")
    ap.add_argument("--synth", action="store_true", help="also synthesize the Verilog")
    ap.add_argument("--style", choices=["dsp", "lut"], default="dsp",
                    help="Verilog style of --synth / --pnr")
    ap.add_argument("--pnr", type=float, default=None, metavar="MHZ",
                    help="also place and route for ECP5 at this target (slow)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import nnfab
    from nnfab.backends.hls import CSimLibrary

    count = 2_000 if args.quick else 20_000
    model = build_model()
    x, n = samples(count)
    hm = nnfab.convert_from_keras_model(model)
    keras_rate = rate(lambda: model.predict([x, n.astype(np.int32)], batch_size=4096,
                                            verbose=0), count)
    emu_rate = rate(lambda: hm.predict([x, n]), count)
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        got = CSimLibrary(hm, cache_dir=Path(cache)).predict([x[:500], n[:500]])
        build_s = time.perf_counter() - t0
    exact = bool(np.array_equal(got, hm.predict([x[:500], n[:500]])))
    rows = [("samples", f"{count:,}"), ("keras float samples/s", f"{keras_rate:,.0f}"),
            ("nnfab emulator samples/s", f"{emu_rate:,.0f}"),
            ("ratio emulator / keras", f"{emu_rate / keras_rate:.2f}"),
            ("C simulation build + 500 samples (s)", f"{build_s:.1f}"),
            ("C simulation == emulator", str(exact))]
    with tempfile.TemporaryDirectory() as work:
        if args.synth:
            rtl = hm.to_rtl(Path(work) / "rtl", style=args.style)
            rep = rtl.synthesize("xcvu9p-flgb2104-2l-e")
            rows += [(f"Verilog ({args.style}, 5 ns) LUT / FF / DSP",
                      f"{rep.lut:,} / {rep.ff:,} / {rep.dsp:,}"),
                     ("Verilog latency (cycles)", str(rtl.latency)),
                     ("Yosys seconds", f"{rep.seconds:.0f}")]
        if args.pnr:
            rtl = hm.to_rtl(Path(work) / "ecp5", style=args.style,
                            pipeline={"clock_period": 1000 / args.pnr, "family": "ecp5"})
            pnr = rtl.place_and_route(clock_mhz=args.pnr)
            rows += [(f"ECP5 at {args.pnr:g} MHz: LUT4 / CCU2C / FF",
                      f"{pnr.lut4:,} / {pnr.ccu2c:,} / {pnr.ff:,}"),
                     ("ECP5 Fmax (MHz)", f"{pnr.fmax_mhz or 0:.1f}"),
                     ("ECP5 latency (cycles)", str(rtl.latency))]
    print_rows(rows)


if __name__ == "__main__":
    main()
