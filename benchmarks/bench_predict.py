"""Emulator throughput against the float framework, measured in the same process.

    python benchmarks/bench_predict.py [--samples 100000]

Prints a table: samples/s of Keras' own float inference and of nnfab's bit-exact
emulator (default types ap_fixed<16,6>), their ratio, the time to convert and
predict for the first time, and peak memory of the emulator on the MLP.
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
from rich.console import Console
from rich.table import Table

import nnfab


def mlp() -> keras.Model:
    inp = keras.Input((16,), name="input")
    x = keras.layers.Dense(64, activation="relu")(inp)
    x = keras.layers.Dense(32, activation="relu")(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    return keras.Model(inp, keras.layers.Dense(5, activation="softmax")(x), name="mlp")


def autoencoder() -> keras.Model:
    inp = keras.Input((57,), name="input")
    x = inp
    for n in (32, 16, 3, 16, 32):
        x = keras.layers.Dense(n, activation="relu")(x)
    return keras.Model(inp, keras.layers.Dense(57)(x), name="autoencoder")


def cnn() -> keras.Model:
    inp = keras.Input((32, 32, 3), name="input")
    x = keras.layers.Conv2D(8, 3, activation="relu")(inp)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x), name="cnn")


def rate(fn, n: int, repeats: int = 3) -> float:
    """Best samples/s over a few runs (after one warm-up)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def print_rows(rows: list[tuple[str, str]]) -> None:
    """A two-column table (measure, value), as the single-model benchmarks print it."""
    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}}  value")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=100_000)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    table = Table(title="predict throughput (samples/s), same process")
    for col in ("model", "params", "samples", "keras float", "nnfab emulator", "ratio emu/keras"):
        table.add_column(col, justify="right")
    for build, n in ((mlp, args.samples), (autoencoder, args.samples), (cnn, args.samples // 10)):
        model = build()
        shape = model.input_shape[1:]
        x = rng.normal(0, 1, size=(n, *shape)).astype(np.float32)
        hm = nnfab.convert_from_keras_model(model)
        hm.compile()
        keras_rate = rate(lambda m=model, x=x: m.predict(x, batch_size=8192, verbose=0), n)
        emu_rate = rate(lambda h=hm, x=x: h.predict(x), n)
        table.add_row(model.name, f"{model.count_params():,}", f"{n:,}", f"{keras_rate:,.0f}",
                      f"{emu_rate:,.0f}", f"{emu_rate / keras_rate:.2f}")
    console = Console()
    console.print(table)

    model = mlp()
    x = rng.normal(0, 1, size=(1000, 16))
    t0 = time.perf_counter()
    hm = nnfab.convert_from_keras_model(model)
    hm.predict(x)
    first = time.perf_counter() - t0
    x = rng.normal(0, 1, size=(100_000, 16))
    tracemalloc.start()
    hm.predict(x)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    extra = Table(title="MLP conversion and memory")
    extra.add_column("measure")
    extra.add_column("value", justify="right")
    extra.add_row("convert + first predict (1000 samples)", f"{first:.3f} s")
    extra.add_row("input array, 100k samples (float64)", f"{x.nbytes / 2**20:.1f} MiB")
    extra.add_row("peak memory of predict, 100k samples", f"{peak / 2**20:.1f} MiB")
    console.print(extra)


if __name__ == "__main__":
    main()
