"""HLS C simulation: compile time (first and cached), predict throughput, g++ memory.

    python benchmarks/bench_hls.py [--samples 100000] [--io-type io_parallel|io_stream]

For the reference models of bench_predict.py (16-64-32-32-5 MLP, 57-32-16-3-16-32-57
autoencoder, the small CNN), default types ap_fixed<16,6>: the first compile of the
generated C++ (empty cache), the second (cache hit: no compiler run), csim predict
samples/s next to the NumPy emulator's in the same process, and the peak resident memory
of the g++ processes (resource.getrusage(RUSAGE_CHILDREN) of a fresh, lean worker process
that runs only that model's first compile). Prints a table.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def rate(fn, n: int, repeats: int = 3) -> float:
    """Best samples/s over a few runs (after one warm-up)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def compile_worker(graph_path: str, cache: str) -> tuple[float, float]:
    """In a fresh, lean process (no keras): the first compile, and the peak resident memory
    of its child processes. A child's figure includes the memory of the process that forked
    it, hence the lean worker: keras would add hundreds of MiB to every child."""
    from nnfab.backends.hls import CSimLibrary
    from nnfab.ir import Graph
    from nnfab.model import NnfabModel

    hm = NnfabModel(Graph.load(graph_path), {})
    t0 = time.perf_counter()
    build = CSimLibrary(hm, cache_dir=cache).compile()
    seconds = time.perf_counter() - t0
    assert build.compiled
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def measure(name: str, samples: int, io_type: str, pool) -> dict:
    import keras
    import numpy as np
    from bench_predict import autoencoder, cnn, mlp

    import nnfab
    from nnfab.backends.hls import CSimLibrary

    keras.utils.set_random_seed(0)
    model = {"mlp": mlp, "autoencoder": autoencoder, "cnn": cnn}[name]()
    hm = nnfab.convert_from_keras_model(model, io_type=io_type)
    cache = tempfile.mkdtemp(prefix="nnfab_bench_")
    graph_path = str(Path(cache) / "graph.json")
    hm.graph.save(graph_path)
    first_s, peak_mib = pool.apply(compile_worker, (graph_path, cache))
    t0 = time.perf_counter()
    lib = CSimLibrary(hm, cache_dir=cache)
    second = lib.compile()
    cached_s = time.perf_counter() - t0
    assert not second.compiled, "the second compile ran the compiler"
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, size=(samples, *model.input_shape[1:]))
    same = bool(np.array_equal(lib.predict(x[:2000]), hm.predict(x[:2000])))
    csim_rate = rate(lambda: lib.predict(x), samples)
    emu_rate = rate(lambda: hm.predict(x), samples)
    return {"model": name, "params": model.count_params(), "samples": samples,
            "first": first_s, "cached": cached_s, "csim": csim_rate, "emulator": emu_rate,
            "gxx_mib": peak_mib, "bit_exact": same, "threads": lib.threads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--io-type", default="io_parallel", choices=["io_parallel", "io_stream"])
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    sys.path.insert(0, str(Path(__file__).parent))
    ctx = mp.get_context("spawn")
    rows = []
    for name, n in (("mlp", args.samples), ("autoencoder", args.samples),
                    ("cnn", args.samples // 10)):
        with ctx.Pool(1) as pool:  # a fresh worker per model: its children are this compile
            rows.append(measure(name, n, args.io_type, pool))
    table = Table(title=f"HLS C simulation ({args.io_type}, g++ -O3, "
                        f"{rows[0]['threads']} threads), same machine, one run")
    for col in ("model", "params", "compile first (s)", "compile cached (s)",
                "peak g++ (MiB)", "samples", "csim (samples/s)", "emulator (samples/s)",
                "csim / emulator", "bit-exact"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["model"], f"{r['params']:,}", f"{r['first']:.2f}", f"{r['cached']:.3f}",
                      f"{r['gxx_mib']:.0f}", f"{r['samples']:,}", f"{r['csim']:,.0f}",
                      f"{r['emulator']:,.0f}", f"{r['csim'] / r['emulator']:.2f}",
                      "yes" if r["bit_exact"] else "NO")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
