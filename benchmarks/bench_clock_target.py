"""``pipeline=<clock period>`` on ECP5: does the delay model place enough registers?

    python3 benchmarks/bench_clock_target.py [--targets 100 150 200] [--seeds 1 2]

1. Calibration: designs pipelined at 1, 2 and 3 adder levels per stage, placed and
   routed (nextpnr-ecp5, LFE5U-85F speed grade 6, out of context, ports registered);
   the achieved period against the levels, fitted to ``overhead + levels * per_level``
   (least squares) beside the figures ``PIPELINE_TIMING["ecp5"]`` uses.
2. Check: each design generated with ``pipeline={"clock_period": 1000 / target,
   "family": "ecp5"}`` and placed and routed at that target: achieved Fmax against the
   target (goal: at least 90 % in every row), with the stages it took.
Designs: small MLPs (4-3-2 at ap_fixed<4,2>, 8-8-4 at ap_fixed<6,3>, 16-16-5 at
ap_fixed<8,3>), the small pixel-stream CNN of the tests (conv 3x3, pools, dense) and two
pixel-stream CNNs with wider 3x3 convolutions around an UpSampling2D (``cnn_up``) and a
Permute (``cnn_perm``), ``ap_fixed<10,4>``, zero padding (a mask in front of each
kernel).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "backends" / "rtl"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_pnr import mlp_graph  # noqa: E402
from test_rtl_stream import CNN_CONFIG, small_cnn  # noqa: E402

import nnfab  # noqa: E402
from nnfab.backends.rtl import RTLProject  # noqa: E402
from nnfab.backends.rtl.project import PIPELINE_TIMING  # noqa: E402
from nnfab.ir import Graph, Node  # noqa: E402
from nnfab.ir.ops import OPS  # noqa: E402

DEVICE = "LFE5U-85F"

STREAM_CONFIG = {
    "Model": {"Precision": "ap_fixed<10,4,AP_RND,AP_SAT>"},
    "LayerName": {"inp": {"Precision": {"result": "ap_fixed<8,3,AP_RND_CONV,AP_SAT>"}}},
}


def conv_net(name: str, shape: tuple[int, int, int], middle: tuple[str, str, dict[str, Any]],
             seed: int) -> Graph:
    """Conv 3x3 'same' (8 filters) -> relu -> ``middle`` -> Conv 3x3 'same' (4 filters),
    random weights scaled by the fan-in."""
    rng = np.random.default_rng(seed)
    g = Graph(name=name)
    g.add_node(Node("inp", "Input", [], attrs={"shape": shape}), shape)
    last = "inp"

    def add(node_name: str, op: str, attrs: dict[str, Any], filters: int = 0) -> None:
        nonlocal last
        shapes = [g.tensors[last].shape]
        weights = {}
        if filters:
            fan_in = 9 * shapes[0][-1]
            weights = {"kernel": rng.normal(size=(3, 3, shapes[0][-1], filters))
                       / math.sqrt(fan_in), "bias": rng.normal(size=filters) * 0.3}
        node = Node(node_name, op, [last], attrs=attrs, weights=weights)
        g.add_node(node, OPS[op].infer_shape(node, shapes))
        last = node_name

    add("c1", "Conv2D", {"pads": (1, 1, 1, 1)}, 8)
    add("r1", "Activation", {"function": "relu"})
    add(*middle)
    add("c2", "Conv2D", {"pads": (1, 1, 1, 1)}, 4)
    g.outputs = [last]
    return g


def designs(big: bool) -> list[tuple[str, Any]]:
    out = [
        ("mlp_4_3_2", nnfab.convert_graph(mlp_graph([4, 3, 2], 1, "mlp_4_3_2"),
                                          {"Model": {"Precision": "ap_fixed<4,2>"}})),
        ("mlp_8_8_4", nnfab.convert_graph(mlp_graph([8, 8, 4], 2, "mlp_8_8_4"),
                                          {"Model": {"Precision": "ap_fixed<6,3>"}})),
        ("cnn_10x10x2", nnfab.convert_graph(small_cnn(), CNN_CONFIG)),
        ("cnn_up", nnfab.convert_graph(
            conv_net("cnn_up", (6, 6, 3), ("up", "UpSampling2D", {"size": (2, 2)}), 1),
            STREAM_CONFIG)),
        ("cnn_perm", nnfab.convert_graph(
            conv_net("cnn_perm", (6, 5, 3), ("perm", "Permute", {"perm": (1, 0, 2)}), 2),
            STREAM_CONFIG)),
    ]
    if big:
        out.append(("mlp_16_16_5", nnfab.convert_graph(mlp_graph([16, 16, 5], 3, "mlp_16_16_5"),
                                                       {"Model": {"Precision": "ap_fixed<8,3>"}})))
    return out


def fmax(rtl: RTLProject, mhz: float, seeds: list[int], work: Path) -> float:
    from nnfab.tools.nextpnr import place_and_route

    values = []
    for seed in seeds:
        r = place_and_route(rtl.write(), rtl.top, work / f"pnr_{seed}", device=DEVICE,
                            clock_mhz=mhz, seed=seed)
        values.append(r.fmax_mhz)
    return statistics.median(values)


def table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=float, nargs="+", default=[100.0, 150.0, 200.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--big", action="store_true", help="also the 16-16-5 MLP (minutes)")
    ap.add_argument("--no-calibration", action="store_true")
    ap.add_argument("--designs", nargs="+", help="only these designs (by name)")
    ap.add_argument("--close", action="store_true",
                    help="3. rows under 90 %% again through RTLProject.close_timing")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_clock_") as tmp:
        work = Path(tmp)
        cases = [(n, m) for n, m in designs(args.big) if not args.designs or n in args.designs]
        if not args.no_calibration:
            points, rows = [], []
            for name, model in cases:
                for aps in (1, 2, 3):
                    rtl = RTLProject(model, work / f"{name}_a{aps}", adders_per_stage=aps)
                    f = fmax(rtl, 100.0, args.seeds, work / f"{name}_a{aps}")
                    points.append((aps, 1000.0 / f))
                    rows.append([name, aps, rtl.latency, f"{f:.1f}", f"{1000.0 / f:.2f}"])
            x = np.array([p[0] for p in points], dtype=float)
            y = np.array([p[1] for p in points])
            slope, intercept = np.polyfit(x, y, 1)
            table("1. calibration: achieved period against adder levels per stage",
                  ["design", "levels", "latency", "Fmax MHz", "period ns"], rows)
            per, over = PIPELINE_TIMING["ecp5"]
            print(f"fit: period = {intercept:.2f} ns + {slope:.2f} ns * levels "
                  f"(model in use: {over:.2f} + {per:.2f} * levels)")
        rows, missed = [], []
        for name, model in cases:
            for target in args.targets:
                rtl = RTLProject(model, work / f"{name}_t{int(target)}",
                                 pipeline={"clock_period": 1000.0 / target, "family": "ecp5"})
                levels = rtl.design.options.adders_per_stage
                f = fmax(rtl, target, args.seeds, work / f"{name}_t{int(target)}")
                rows.append([name, f"{target:.0f}", levels, rtl.latency, f"{f:.1f}",
                             f"{f / target:.2f}", "yes" if f >= 0.9 * target else "NO"])
                print("  ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
                if f < 0.9 * target:
                    missed.append((name, target, rtl))
        table("2. clock target -> achieved Fmax (goal: >= 90 % of the target)",
              ["design", "target MHz", "levels", "latency", "Fmax MHz", "ratio", ">=90%"],
              rows)
        if args.close and missed:
            rows = []
            for name, target, rtl in missed:
                closure = rtl.close_timing(target)
                runs = " -> ".join(f"{r.adders_per_stage}: {r.fmax_mhz:.1f}"
                                   for r in closure.runs)
                rows.append([name, f"{target:.0f}", runs, rtl.latency,
                             "yes" if closure.met else "NO"])
            table("3. rows under 90 %, closed by place and route (levels: Fmax MHz per run)",
                  ["design", "target MHz", "runs", "latency", "met"], rows)


if __name__ == "__main__":
    main()
