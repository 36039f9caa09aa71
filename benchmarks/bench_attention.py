"""What a small jet transformer costs in nnfab: emulator throughput against Keras, the
C simulation build, and the Verilog's size.

    python3 benchmarks/bench_attention.py [--quick] [--synth]

The model: 16 particles x 8 features, MultiHeadAttention (2 heads, key_dim 8) with a
residual Add, GlobalAveragePooling1D, Dense(5); Keras float weights, default nnfab types
(ap_fixed<16,6>, exact accumulators, 1024-entry softmax tables).

Prints one table: samples/s of the bit-exact emulator (hm.predict) against Keras' own
model.predict (the baseline, same process, same batch), the C simulation (g++) build
time in an empty cache and its agreement with the emulator (must be exact), and with
``--synth`` the Yosys LUT/FF/DSP of the ``dsp``-style Verilog (xcvu9p, synth_xilinx).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from bench_predict import print_rows, rate

PARTICLES, FEATURES, HEADS, KEY_DIM, CLASSES = 16, 8, 2, 8, 5


def build_model():
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((PARTICLES, FEATURES), name="particles")
    att = keras.layers.MultiHeadAttention(HEADS, KEY_DIM, name="mha")(inp, inp)
    x = keras.layers.Add(name="residual")([inp, att])
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(inp, keras.layers.Dense(CLASSES, name="head")(x), name="transformer")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2k samples instead of 20k")
    ap.add_argument("--synth", action="store_true", help="also synthesize the Verilog")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import nnfab
    from nnfab.backends.hls import CSimLibrary

    n = 2_000 if args.quick else 20_000
    model = build_model()
    x = np.random.default_rng(1).normal(size=(n, PARTICLES, FEATURES)).astype(np.float32)
    hm = nnfab.convert_from_keras_model(model)
    keras_rate = rate(lambda: model.predict(x, batch_size=4096, verbose=0), n)
    emu_rate = rate(lambda: hm.predict(x), n)
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        csim = CSimLibrary(hm, cache_dir=Path(cache))
        got = csim.predict(x[:500])
        build_s = time.perf_counter() - t0
    exact = bool(np.array_equal(got, hm.predict(x[:500])))
    rows = [("samples", f"{n:,}"), ("keras float samples/s", f"{keras_rate:,.0f}"),
            ("nnfab emulator samples/s", f"{emu_rate:,.0f}"),
            ("ratio emulator / keras", f"{emu_rate / keras_rate:.2f}"),
            ("C simulation build + 500 samples (s)", f"{build_s:.1f}"),
            ("C simulation == emulator", str(exact))]
    if args.synth:
        with tempfile.TemporaryDirectory() as work:
            rtl = hm.to_rtl(Path(work) / "rtl", style="dsp", pipeline=None)
            rep = rtl.synthesize("xcvu9p-flgb2104-2l-e")
            rows += [("Verilog (dsp) LUT / FF / DSP", f"{rep.lut:,} / {rep.ff:,} / {rep.dsp:,}"),
                     ("Verilog latency (cycles)", str(rtl.latency)),
                     ("Yosys seconds", f"{rep.seconds:.0f}")]
    print_rows(rows)


if __name__ == "__main__":
    main()
