"""Place and route on ECP5: Fmax and resources of small MLPs against adder-tree pipelining.

    python3 benchmarks/bench_pnr.py                       # the default designs
    python3 benchmarks/bench_pnr.py --aps none 1 2 --seeds 1 2 3
    python3 benchmarks/bench_pnr.py --reference           # + the 16-64-32-32-5 network

Each design is an ``RTLProject`` (lut style) placed and routed by
``RTLProject.place_and_route`` on an LFE5U-85F, speed grade 6, out of context with
registered ports, target 100 MHz. Designs: ``mlp_4_3_2`` (ap_fixed<4,2> everywhere,
random weights, seed 1) and ``mlp_8_8_4`` (ap_fixed<6,3>, seed 2); with
``--reference`` also the 16-64-32-32-5 network of ``bench_rtl.py`` (slow: a 16-16-5
network at ap_fixed<8,3> already takes ~50 s in Yosys and ~110 s in nextpnr per run).
The default run takes about 3 minutes on one core.
For each adders-per-stage setting (none: registers at layer boundaries only) the table
shows the latency in cycles, Fmax (the median over ``--seeds`` placer seeds, with the
spread), the Yosys cell counts LUT4 / CCU2C (carry pairs) / TRELLIS_FF, nextpnr's
TRELLIS_COMB slots after packing, and the wall time of Yosys and nextpnr for one seed.
The FF column includes the registers of the IO wrapper.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import nnfab
from nnfab.backends.rtl import RTLProject
from nnfab.ir import Graph, Node
from nnfab.tools.nextpnr import place_and_route

DEVICE = "LFE5U-85F"
CLOCK_MHZ = 100.0


def mlp_graph(sizes: list[int], seed: int, name: str) -> Graph:
    """Dense layers with relu between them, normal random weights and biases."""
    rng = np.random.default_rng(seed)
    g = Graph(name=name)
    g.add_node(Node("inp", "Input", [], attrs={"shape": (sizes[0],)}), (sizes[0],))
    prev = "inp"
    for k in range(len(sizes) - 1):
        weights = {"kernel": rng.normal(size=(sizes[k], sizes[k + 1])),
                   "bias": rng.normal(size=sizes[k + 1])}
        g.add_node(Node(f"fc{k}", "Dense", [prev], weights=weights), (sizes[k + 1],))
        prev = f"fc{k}"
        if k < len(sizes) - 2:
            g.add_node(Node(f"relu{k}", "Activation", [prev], attrs={"function": "relu"}),
                       (sizes[k + 1],))
            prev = f"relu{k}"
    g.outputs = [prev]
    return g


def designs(reference: bool) -> list[tuple[str, Any]]:
    """(name, converted model) pairs."""
    out = [
        ("mlp_4_3_2", nnfab.convert_graph(mlp_graph([4, 3, 2], 1, "mlp"),
                                          {"Model": {"Precision": "ap_fixed<4,2>"}})),
        ("mlp_8_8_4", nnfab.convert_graph(mlp_graph([8, 8, 4], 2, "mlp8"),
                                            {"Model": {"Precision": "ap_fixed<6,3>"}})),
    ]
    if reference:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_rtl import reference_model

        out.append(("ref_16_64_32_32_5", reference_model()))
    return out


def measure(name: str, model: Any, aps: int | None, seeds: list[int], work: Path) -> dict:
    prj = RTLProject(model, work / f"{name}_aps{aps}", adders_per_stage=aps)
    sources = prj.write()
    fmax: list[float] = []
    first = None
    for seed in seeds:
        start = time.perf_counter()
        r = place_and_route(sources, prj.top, prj.output_dir / f"pnr_s{seed}", device=DEVICE,
                            clock_mhz=CLOCK_MHZ, seed=seed)
        wall = time.perf_counter() - start
        fmax.append(r.fmax_mhz or 0.0)
        if first is None:
            first = (r, wall)
    assert first is not None
    r, wall = first
    return {"design": name, "aps": "none" if aps is None else str(aps), "latency": prj.latency,
            "fmax": statistics.median(fmax), "spread": max(fmax) - min(fmax),
            "lut4": r.lut4, "ccu2c": r.ccu2c, "ff": r.ff, "comb": r.comb,
            "yosys_s": r.yosys_seconds, "nextpnr_s": r.nextpnr_seconds, "wall_s": wall,
            "cp_levels": r.critical_path.logic_levels if r.critical_path else 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aps", nargs="+", default=["none", "1", "2"],
                    help="adders per stage settings ('none' or integers)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    ap.add_argument("--reference", action="store_true",
                    help="also the 16-64-32-32-5 network (slow)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the projects in this dir")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = [None if a.lower() == "none" else int(a) for a in args.aps]
    header = (f"{'design':<18}{'aps':>5}{'lat':>5}{'Fmax MHz':>10}{'+-':>7}{'LUT4':>7}"
              f"{'CCU2C':>7}{'FF':>7}{'COMB':>7}{'levels':>7}{'yosys s':>9}{'pnr s':>8}")
    print(f"ECP5 {DEVICE} speed 6, out of context, registered IO, --freq {CLOCK_MHZ:g}, "
          f"seeds {args.seeds} (Fmax: median, +-: max - min)")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="bench_pnr_") as tmp:
        work = args.keep or Path(tmp)
        for name, model in designs(args.reference):
            for aps in settings:
                row = measure(name, model, aps, args.seeds, work)
                print(f"{row['design']:<18}{row['aps']:>5}{row['latency']:>5}"
                      f"{row['fmax']:>10.1f}{row['spread']:>7.1f}{row['lut4']:>7}"
                      f"{row['ccu2c']:>7}{row['ff']:>7}{row['comb']:>7}{row['cp_levels']:>7}"
                      f"{row['yosys_s']:>9.1f}{row['nextpnr_s']:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
