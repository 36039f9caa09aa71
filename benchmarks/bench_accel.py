"""What the board path costs: the Verilog AXI4-Stream wrapper's resources and rate, and
the simulated board's throughput.

    python3 benchmarks/bench_accel.py [--quick]

Tables:
1. Yosys synth_xilinx of the wrapper + network on xc7z020 (pynq-z2) and xcu250 at 32-
   and 64-bit buses: LUT / FF / BRAM of the whole, of the network alone (the baseline,
   same process) and what the wrapper adds (their clock: table 4).
2. Verilator, cycles per sample with no stalls and with random TVALID gaps / TREADY
   stalls, against the network's own initiation interval (the bound).
3. The simulated board (unchanged driver + simulated DMA) with the emulator, the g++ C
   simulation and Verilator behind the DMA, samples/s against the emulator called
   directly.
4. Fmax of the wrapper with a pipelined network on ECP5 (nextpnr), against the network.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "backends" / "rtl"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rtl_helpers import convert, mlp_graph, sample_inputs

from nnfab.accel.axis_rtl import AxisRtlWrapper


def _table(title: str, header: list[str], rows: list[list[object]]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))


def resources(work: Path, quick: bool) -> None:
    model = convert(mlp_graph([16, 12, 5], seed=1), {"Model": {"Precision": "ap_fixed<8,3>"}})
    rtl = model.to_rtl(work / "net")
    rows = []
    parts = ["xc7z020clg400-1"] if quick else ["xc7z020clg400-1", "xcu250-figd2104-2l-e"]
    for part in parts:
        net = rtl.synthesize(part)
        for bus in (32, 64):
            w = AxisRtlWrapper(rtl, bus, work / f"axis_{part}_{bus}")
            t = w.synthesize(part)
            rows.append([part, bus, net.lut, t.lut, t.lut - net.lut, net.ff, t.ff, t.ff - net.ff,
                         t.bram_18k, f"{t.lut / max(net.lut, 1):.2f}"])
    _table("1. wrapper resources (Yosys synth_xilinx; network 16-12-5, ap_fixed<8,3>)",
           ["part", "bus", "net LUT", "total LUT", "+LUT", "net FF", "total FF", "+FF",
            "BRAM18", "LUT ratio"], rows)


def rates(work: Path, quick: bool) -> None:
    rows = []
    cases = [("16-12-5 RF1", [16, 12, 5], 1, 64), ("16-12-5 RF1", [16, 12, 5], 1, 256),
             ("16-12-5 RF4", [16, 12, 5], 4, 64)]
    n = 300 if quick else 2000
    for name, sizes, reuse, bus in cases:
        model = convert(mlp_graph(sizes, seed=1),
                        {"Model": {"Precision": "ap_fixed<8,3>", "ReuseFactor": reuse}})
        rtl = model.to_rtl(work / f"r_{reuse}")
        w = AxisRtlWrapper(rtl, bus, work / f"ra_{reuse}_{bus}")
        x = sample_inputs(rtl.design.in_type, sizes[0], n, seed=2)
        want = np.asarray(model.predict(x))
        beats_per_sample = sizes[0] * 8 / bus
        bound = max(rtl.ii, beats_per_sample)
        for gap, stall in ((0.0, 0.0), (0.2, 0.5)):
            r = w.simulate(x, in_gap=gap, out_stall=stall, seed=1)
            assert np.array_equal(r.outputs, want)
            per = (r.run.cycles - rtl.latency) / n
            rows.append([name, bus, gap, stall, f"{per:.3f}", f"{bound:.3f}",
                         f"{per / bound:.2f}"])
    _table("2. cycles per sample through the wrapper (Verilator), against the bound "
           "max(network II, input beats per sample)",
           ["design", "bus", "in_gap", "out_stall", "cycles/sample", "bound", "ratio"], rows)


def board(work: Path, quick: bool) -> None:
    from nnfab.accel.project import expected_outputs
    from nnfab.accel.simulate import simulate
    from nnfab.api import convert_graph
    from nnfab.config import config_from_graph

    n = 500 if quick else 5000
    rows = []
    for route, engine in (("hls", "emulator"), ("hls", "csim"), ("rtl", "verilator")):
        graph = mlp_graph([16, 12, 5], seed=1)
        config = config_from_graph(graph, default_precision="ap_fixed<8,3>")
        hm = convert_graph(graph, config, output_dir=work / f"b_{route}_{engine}",
                           backend="VivadoAccelerator", board="pynq-z2", route=route,
                           interface="fixed")
        x = np.random.default_rng(0).uniform(-4, 4, size=(n, 16))
        hm.write(x[:64])
        t0 = time.perf_counter()
        want = np.asarray(hm.predict(x))
        direct = time.perf_counter() - t0
        sim = simulate(hm, engine=engine)
        sim.predict(x[:8])  # builds the transport (Verilator / g++) outside the timing
        t0 = time.perf_counter()
        y = sim.predict(x)
        seconds = time.perf_counter() - t0
        assert np.array_equal(y, expected_outputs(hm, x)) and np.array_equal(y, want)
        rows.append([route, engine, n, f"{n / seconds:,.0f}", f"{n / direct:,.0f}",
                     f"{direct / seconds:.3f}"])
    _table("3. simulated board throughput (driver + simulated DMA), against the emulator "
           "called directly", ["route", "engine", "samples", "board samples/s",
                               "emulator samples/s", "ratio"], rows)


def fmax(work: Path) -> None:
    """4. Fmax of wrapper + network on ECP5 (nextpnr), against the network alone."""
    from nnfab.tools.nextpnr import place_and_route

    model = convert(mlp_graph([16, 12, 5], seed=1), {"Model": {"Precision": "ap_fixed<8,3>"}})
    rtl = model.to_rtl(work / "pnr_net", adders_per_stage=1)
    net = place_and_route(rtl.write(), rtl.top, work / "pnr_net" / "pnr", clock_mhz=200)
    rows = [["network alone", "-", f"{net.fmax_mhz:.1f}", net.lut4, net.ff, "1.00"]]
    for bus in (32, 64):
        w = AxisRtlWrapper(rtl, bus, work / f"pnr_axis{bus}")
        r = place_and_route(w.write(), w.module, work / f"pnr_axis{bus}" / "pnr",
                            clock_mhz=200)
        rows.append(["wrapper + network", bus, f"{r.fmax_mhz:.1f}", r.lut4, r.ff,
                     f"{r.fmax_mhz / net.fmax_mhz:.2f}"])
    _table("4. Fmax on ECP5 LFE5U-85F (nextpnr, out of context, 200 MHz target; network "
           "16-12-5 pipelined one adder level per stage)",
           ["design", "bus", "Fmax MHz", "LUT4", "FF", "Fmax ratio"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer parts and samples")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_accel_") as tmp:
        work = Path(tmp)
        rates(work, args.quick)
        board(work, args.quick)
        resources(work, args.quick)
        fmax(work)


if __name__ == "__main__":
    main()
