"""What an LSTM costs in nnfab: emulator throughput against Keras, and the C++ build.

    python3 benchmarks/bench_lstm.py [--quick]

The model: LSTM(16) over 20 steps x 6 features, then Dense(5), Keras float weights,
default nnfab types (ap_fixed<16,6>, exact accumulators, 1024-entry tables).

Tables:
1. samples/s of the bit-exact emulator (hm.predict) against Keras' own float
   model.predict (the baseline, same process, same batch) and against the compiled
   g++ C simulation, with the agreement of emulator and C simulation (must be exact);
   also the emulator on the same layer as QKeras' QLSTM computes it (hard_tanh cast to
   ap_fixed<8,1>, QKeras' hard_sigmoid, a state_read cast to ap_fixed<8,3>, exact
   internals), the form nnfab converts QLSTM into.
2. Time to generate the HLS C++ and to compile the C simulation with g++ (a cold build in
   an empty cache).
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


def _table(title: str, header: list[str], rows: list[list[object]]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))


def _best(fn: Any, repeats: int) -> float:
    """Best wall time of ``repeats`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _qkeras_style(graph: Any) -> Any:
    """The model with its LSTM as nnfab converts a QLSTM (hard functions, state_read)."""
    import nnfab
    from nnfab.ir import FixedType

    for node in graph.nodes:
        if node.op == "LSTM":
            node.attrs.update(activation="hard_tanh", recurrent_activation="hard_sigmoid",
                              exact_internals=True)
            node.precision["table"] = FixedType.parse("ap_fixed<8,1,AP_RND_CONV,AP_SAT>")
            node.precision["state_read"] = FixedType.parse("ap_fixed<8,3,AP_RND_CONV,AP_SAT>")
    return nnfab.convert_graph(graph, {"Model": {"Precision": "ap_fixed<16,6>"}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches, one repeat")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import keras

    import nnfab
    from nnfab.backends.hls import CSimLibrary, render_project
    from nnfab.frontends.keras import keras_to_graph as keras_graph

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((STEPS, FEATURES)), keras.layers.LSTM(UNITS),
                              keras.layers.Dense(CLASSES)])
    hm = nnfab.convert_from_keras_model(model, hls_config={"Model": {"Precision":
                                                                     "ap_fixed<16,6>"}})
    hm.warn_overflow = False
    repeats = 1 if args.quick else 3
    batches = [100, 1000] if args.quick else [100, 1000, 10000]
    rng = np.random.default_rng(0)
    work = Path(tempfile.mkdtemp(prefix="bench_lstm_"))

    t0 = time.perf_counter()
    render_project(hm.graph)
    generate = time.perf_counter() - t0
    lib = CSimLibrary(hm, cache_dir=work / "cache")
    t0 = time.perf_counter()
    lib.compile()
    compile_s = time.perf_counter() - t0

    hard = _qkeras_style(keras_graph(model))
    hard.warn_overflow = False
    rows = []
    for n in batches:
        x = rng.normal(0, 1, (n, STEPS, FEATURES))
        xf = x.astype("float32")
        emu = _best(lambda x=x: hm.predict(x), repeats)
        ker = _best(lambda xf=xf, n=n: model.predict(xf, verbose=0, batch_size=n), repeats)
        csim = _best(lambda x=x: lib.predict(x), repeats)
        same = bool(np.array_equal(lib.predict(x), hm.predict(x)))
        err = float(np.abs(hm.predict(x) - model.predict(xf, verbose=0)).max())
        q = _best(lambda x=x: hard.predict(x), repeats)
        rows.append([n, f"{n / emu:,.0f}", f"{n / ker:,.0f}", f"{ker / emu:.2f}",
                     f"{n / csim:,.0f}", same, f"{err:.3g}", f"{n / q:,.0f}"])
    _table(f"1. samples/s, LSTM({UNITS}) over {STEPS}x{FEATURES} + Dense({CLASSES}), "
           "ap_fixed<16,6>",
           ["batch", "emulator", "keras float", "emu/keras", "g++ csim", "csim==emu",
            "max|emu-keras|", "emu QLSTM-style"], rows)
    _table("2. HLS C++ build", ["step", "seconds"],
           [["generate C++ (render_project)", f"{generate:.3f}"],
            ["g++ C simulation, cold compile", f"{compile_s:.2f}"]])


if __name__ == "__main__":
    main()
