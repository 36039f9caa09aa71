"""Design-space sweep of the jet tagger on a Dask LocalCluster: scaling and worker memory.

    python benchmarks/bench_sweep.py [--samples 10000] [--workers 1,2] [--strategy Latency]

11 precisions (ap_fixed<6..16, 6>) x 4 reuse factors (1, 2, 4, 8) per strategy, each point
emulated on the samples and estimated (no synthesis), without the cache. For each cluster
size: the cluster start-up, the sweep's wall time (graph and data scattered, every point
evaluated; the best of ``--repeat`` runs), its speed-up over the first size, the median
time of one point inside a worker and the peak resident memory of each worker process
(``VmHWM``, read in the worker after the sweeps), printed as a table.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from rich.console import Console
from rich.table import Table

import nnfab
from nnfab.demo.data import make_jet_like_data
from nnfab.sweep import model_to_graph, parse_int_list, parse_strategies, sweep

JET = os.path.join(os.path.dirname(nnfab.__file__), "data", "jet_tagger.keras")


def worker_memory() -> dict[str, float]:
    """Runs in a worker: its current and peak resident memory, MiB.

    The peak is the kernel's high-water mark of this process's address space (``VmHWM``);
    ``ru_maxrss`` would be wrong here: it survives the fork + exec that starts a worker, so
    it reports the parent's peak (TensorFlow loaded on the client) instead.
    """
    import psutil

    rss = psutil.Process().memory_info().rss / 2**20
    peak = rss
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024  # kB
    except OSError:  # not Linux: the current value
        pass
    return {"rss": rss, "peak": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--workers", default="1,2", help="cluster sizes, e.g. 1,2,4")
    ap.add_argument("--strategy", default="Latency", help="Latency, Resource or both")
    ap.add_argument("--repeat", type=int, default=3, help="sweeps per cluster size (best kept)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)

    x, y = make_jet_like_data(args.samples, seed=1)
    graph = model_to_graph(JET)
    strategies = parse_strategies(args.strategy)
    sizes = parse_int_list(args.workers, "--workers")
    rows = []
    for n in sizes:
        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
        client.wait_for_workers(n)
        startup = time.perf_counter() - t0
        walls = []
        for _ in range(max(1, args.repeat)):
            t0 = time.perf_counter()
            result = sweep(graph, x, y, precision=range(6, 17), reuse=(1, 2, 4, 8),
                           strategy=strategies, scheduler=client, progress=False)
            walls.append(time.perf_counter() - t0)
        wall = min(walls)
        memory = client.run(worker_memory)
        client.close()
        cluster.close()
        t = result.table
        rows.append({"workers": n, "points": len(t), "failed": int(t["error"].notna().sum()),
                     "startup": startup, "wall": wall, "walls": walls,
                     "point": float(t["seconds"].median()),
                     "peak": [m["peak"] for m in memory.values()],
                     "rss": [m["rss"] for m in memory.values()],
                     "best": float(t["accuracy"].max())})
    base = rows[0]["wall"]
    table = Table(title=f"nnfab sweep: jet tagger, {args.samples} samples, "
                        f"{len(strategies)} strateg{'y' if len(strategies) == 1 else 'ies'} "
                        f"x 11 precisions x 4 reuse factors, emulator + estimate; {os.cpu_count()} "
                        f"CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    for col in ("workers", "points", "failed", "cluster start s", "sweep wall s",
                "all walls s", "speed-up", "points/s", "median s/point", "peak RSS/worker MiB",
                "RSS after MiB",
                "best accuracy"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["workers"]), str(r["points"]), str(r["failed"]),
                      f"{r['startup']:.2f}", f"{r['wall']:.2f}",
                      " ".join(f"{w:.1f}" for w in r["walls"]), f"{base / r['wall']:.2f}x",
                      f"{r['points'] / r['wall']:.1f}", f"{r['point']:.3f}",
                      ", ".join(f"{p:.0f}" for p in r["peak"]),
                      ", ".join(f"{p:.0f}" for p in r["rss"]), f"{r['best']:.4f}")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
