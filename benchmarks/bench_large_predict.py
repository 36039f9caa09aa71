"""Streaming prediction from a file against in-memory prediction, in the same process.

    python benchmarks/bench_large_predict.py [--events 10000000] [--baseline 1000000]

Writes ``--events`` events of the shipped jet tagger's input (16 float32 features,
nnfab.demo.data.make_jet_like_data, written in pieces) to a temporary .npy file, runs
``hm.predict_file`` on it with the outputs going to another .npy file, then
``hm.predict`` on an in-memory slice of ``--baseline`` events. Prints events/s and the
peak resident memory (psutil, sampled every 5 ms) of each (after an untimed warm-up;
the in-memory time is the better of two runs), and checks that the streamed
outputs of the slice equal the in-memory ones bit for bit.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from importlib.resources import files
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import psutil
from rich.console import Console
from rich.table import Table

import nnfab
from nnfab.demo.data import N_FEATURES, make_jet_like_data

MiB = 2**20


class PeakRSS:
    """Samples this process's resident size in a thread: peak RSS, and peak of RSS minus
    file-backed shared pages (anonymous memory, what the process really holds)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.proc = psutil.Process()
        self.interval = interval
        self.start = self.peak = self.peak_anon = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        m = self.proc.memory_info()
        self.peak = max(self.peak, m.rss)
        self.peak_anon = max(self.peak_anon, m.rss - m.shared)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakRSS:
        self.start = self.proc.memory_info().rss
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def write_events(path: Path, n: int, piece: int = 500_000) -> None:
    x = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, N_FEATURES))
    for i, start in enumerate(range(0, n, piece)):
        count = min(piece, n - start)
        x[start : start + count] = make_jet_like_data(count, seed=i)[0]
    x.flush()
    del x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--baseline", type=int, default=1_000_000,
                        help="events of the in-memory baseline (a slice of the file)")
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary files go")
    args = parser.parse_args()
    console = Console(width=130)
    baseline = min(args.baseline, args.events)
    hm = nnfab.convert_from_keras_model(str(files("nnfab") / "data" / "jet_tagger.keras"))
    hm.compile()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="nnfab_bench_") as tmp:
        src, dst = Path(tmp) / "events.npy", Path(tmp) / "outputs.npy"
        t0 = time.perf_counter()
        write_events(src, args.events)
        console.print(f"wrote {args.events:,} events ({src.stat().st_size / MiB:,.0f} MiB) in "
                      f"{time.perf_counter() - t0:.1f} s")
        # warm-up (first-touch of the heap, caches): 200k events, not timed
        hm.predict(np.array(np.load(src, mmap_mode="r")[: min(200_000, args.events)]))
        rows = []
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            hm.predict_file(src, output=dst, chunk_size=args.chunk_size, progress=True)
            dt = time.perf_counter() - t0
        rows.append(("predict_file (.npy -> .npy)", args.events, dt, mem))
        x = np.array(np.load(src, mmap_mode="r")[:baseline])
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            y = hm.predict(x)
            dt = time.perf_counter() - t0
        t0 = time.perf_counter()
        hm.predict(x)  # the better of two runs, as the streamed run is a long one
        rows.append(("predict (in memory)", baseline, min(dt, time.perf_counter() - t0), mem))
        streamed = np.load(dst, mmap_mode="r")[:baseline]
        same = bool(np.array_equal(np.asarray(streamed).view(np.uint64), y.view(np.uint64)))
        del streamed
    table = Table(title=f"jet tagger 16-64-32-32-5, {os.cpu_count()} cores")
    for col in ("run", "events", "s", "events/s", "peak RSS MiB", "RSS growth MiB",
                "peak anon MiB"):
        table.add_column(col, justify="right")
    for name, n, dt, mem in rows:
        table.add_row(name, f"{n:,}", f"{dt:.2f}", f"{n / dt:,.0f}", f"{mem.peak / MiB:,.0f}",
                      f"{(mem.peak - mem.start) / MiB:,.0f}", f"{mem.peak_anon / MiB:,.0f}")
    console.print(table)
    console.print(f"streamed outputs of the first {baseline:,} events equal the in-memory "
                  f"ones bit for bit: {same}")
    console.print(f"in-memory input of {baseline:,} events: {x.nbytes / MiB:,.0f} MiB float32 "
                  f"({x.nbytes * 2 / MiB:,.0f} MiB as the emulator's float64)")


if __name__ == "__main__":
    main()
