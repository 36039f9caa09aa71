"""RTL backend benchmark: the issue's 16-64-32-32-5 reference network.

Weights and biases: integers in [-32, 31] scaled by 2**-5 (fixed<6,1>), numpy seed 0,
drawn layer by layer (weights, then biases); input fixed<8,4>; relu outputs
ufixed<6,3>; the last layer outputs its exact sum. Prints, per configuration:
generation time, latency (stages), Verilator build time and 100k-sample simulation
time (checked bit for bit against the emulator), Yosys LUT/FF/DSP, synthesis time and
peak memory of the synthesis process.

    python3 benchmarks/bench_rtl.py                 # lut + dsp, simulate and synthesize
    python3 benchmarks/bench_rtl.py --no-synth      # generation + Verilator only
    python3 benchmarks/bench_rtl.py --styles lut --reuse 1 4 16
    python3 benchmarks/bench_rtl.py --styles lut --no-sim --pipeline 0 5   # 5 ns target
    python3 benchmarks/bench_rtl.py --styles lut --pipeline 5 --pnr 200    # + ECP5 Fmax

``--pnr MHz`` also places and routes the same Verilog on the LFE5U-85F (Yosys
``synth_ecp5`` + nextpnr-ecp5, out of context; an hour or more for this network here)
and prints its Fmax beside LUT4 / CCU2C / FF.

The whole network generated for ECP5 needs about 94 % of the 85F's logic cells and does
not place. ``--pnr-layers MHz`` instead generates each layer alone for ECP5 at that
target (its input registered, as in the network, where every layer registers its
output) and places and routes it (nextpnr's router2: router1 needs hours on the larger
layers): the network's clock is bounded by its slowest layer::

    python3 benchmarks/bench_rtl.py --pnr-layers 150     # per-layer ECP5 Fmax table
    python3 benchmarks/bench_rtl.py --pnr-layers 150 --layers fc3
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

import nnfab

# the reference's ufixed<6,3> relu outputs wrap on purpose (an exact-sum benchmark)
os.environ.setdefault("NNFAB_WARN_OVERFLOW", "0")
from nnfab.backends.rtl import RTLProject
from nnfab.ir import Graph, Node

SIZES = (16, 64, 32, 32, 5)
PART = "xcvu9p-flgb2104-2l-e"


def reference_graph() -> Graph:
    rng = np.random.default_rng(0)
    g = Graph(name="reference")
    g.add_node(Node("inp", "Input", [], attrs={"shape": (SIZES[0],)}), (SIZES[0],))
    prev = "inp"
    for k, (n_in, n_out) in enumerate(itertools.pairwise(SIZES)):
        kernel = rng.integers(-32, 32, size=(n_in, n_out)) / 32.0
        bias = rng.integers(-32, 32, size=n_out) / 32.0
        g.add_node(Node(f"fc{k}", "Dense", [prev], weights={"kernel": kernel, "bias": bias}),
                   (n_out,))
        prev = f"fc{k}"
        if k < len(SIZES) - 2:
            g.add_node(Node(f"relu{k}", "Activation", [prev], attrs={"function": "relu"}),
                       (n_out,))
            prev = f"relu{k}"
    g.outputs = [prev]
    return g


def reference_model(reuse: int = 1) -> nnfab.NnfabModel:
    g = reference_graph()
    dense_cfg = {"Precision": {"weight": "ap_fixed<6,1>", "bias": "ap_fixed<6,1>",
                               "accum": "auto"}, "ReuseFactor": reuse}
    cfg: dict = {"Model": {"Precision": "ap_fixed<64,32>"},
                 "LayerName": {"inp": {"Precision": {"result": "ap_fixed<8,4>"}}}}
    for k in range(len(SIZES) - 1):
        cfg["LayerName"][f"fc{k}"] = dict(dense_cfg)
        if k < len(SIZES) - 2:
            cfg["LayerName"][f"relu{k}"] = {"Precision": {"result": "ap_ufixed<6,3>"}}
    model = nnfab.convert_graph(g, cfg)
    last = f"fc{len(SIZES) - 2}"
    model.graph.tensors[last].type = model.graph.node(last).precision["accum"]  # exact sum
    return model


def run(style: str, reuse: int, work: Path, simulate: bool, synth: bool,
        pipeline: float | None = None, pnr_mhz: float | None = None) -> dict:
    row: dict = {"style": style, "R": reuse, "clock_ns": pipeline or "-"}
    model = reference_model(reuse)
    t0 = time.perf_counter()
    pipe = {"clock_period": pipeline, "family": "xcup"} if pipeline else None
    prj = RTLProject(model, work / f"{style}_r{reuse}_p{pipeline}", style=style, pipeline=pipe)
    prj.write()
    row["generate_s"] = time.perf_counter() - t0
    row["latency"], row["ii"] = prj.latency, prj.ii
    if simulate:
        x = np.random.default_rng(1).normal(size=(100_000, SIZES[0])) * 4
        sim = prj.simulate(x)
        row["bit_exact"] = bool(np.array_equal(sim.outputs, model.predict(x)))
        row["verilator_build_s"], row["sim_100k_s"] = sim.build_seconds, sim.sim_seconds
        row["measured_latency"] = sim.latency
    if synth:
        rep = prj.synthesize(PART)
        row.update(lut=rep.lut, ff=rep.ff, dsp=rep.dsp, synth_s=rep.seconds,
                   peak_mib=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    if pnr_mhz:
        pnr = prj.place_and_route(clock_mhz=pnr_mhz)
        row.update(ecp5_fmax=pnr.fmax_mhz or 0.0, lut4=pnr.lut4, ccu2c=pnr.ccu2c, ecp5_ff=pnr.ff)
    return row


def layer_graph(model: nnfab.NnfabModel, name: str) -> Graph:
    """``Input -> name``: one typed layer of ``model`` alone (same types and weights)."""
    src = model.graph.node(name)
    (inp,) = src.inputs
    g = Graph(name=f"reference_{name}")
    shape = model.graph.tensors[inp].shape
    g.add_node(Node("inp", "Input", [], attrs={"shape": shape}), shape)
    g.add_node(Node(name, src.op, ["inp"], attrs=dict(src.attrs), weights=dict(src.weights),
                    precision=dict(src.precision)), model.graph.tensors[name].shape)
    g.tensors["inp"].type = model.graph.tensors[inp].type
    g.tensors[name].type = model.graph.tensors[name].type
    g.outputs = [name]
    return g


def pnr_layers(mhz: float, work: Path, only: list[str] | None = None) -> None:
    """Each layer (or those in ``only``) alone for ECP5 at ``mhz``, placed and routed."""
    model = reference_model()
    layers = [n.name for n in model.graph.nodes if n.op == "Dense" and (
        not only or n.name in only)]
    print("layer | in x out | latency | LUT4 | CCU2C | FF | Fmax MHz | target | synth+pnr s")
    slowest = None
    for name in layers:
        g = layer_graph(model, name)
        t0 = time.perf_counter()
        prj = RTLProject(g, work / f"layer_{name}", style="lut",
                         pipeline={"clock_period": 1000.0 / mhz, "family": "ecp5"})
        rep = prj.place_and_route(clock_mhz=mhz, router="router2")
        fmax = rep.fmax_mhz or 0.0
        slowest = fmax if slowest is None else min(slowest, fmax)
        shape = f"{g.tensors['inp'].shape[0]} x {g.tensors[name].shape[0]}"
        print(f"{name} | {shape} | {prj.latency} | {rep.lut4} | {rep.ccu2c} | {rep.ff} | "
              f"{fmax:.1f} | {mhz:g} | {time.perf_counter() - t0:.0f}", flush=True)
    print(f"slowest layer: {slowest:.1f} MHz ({100 * (slowest or 0) / mhz:.0f} % of the target; "
          f"LFE5U-85F speed 6, out of context; projects in {work})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--styles", nargs="+", default=["lut", "dsp"], choices=["lut", "dsp"])
    ap.add_argument("--reuse", nargs="+", type=int, default=[1])
    ap.add_argument("--no-sim", action="store_true")
    ap.add_argument("--no-synth", action="store_true")
    ap.add_argument("--work", type=Path, default=None, help="Project directory root.")
    ap.add_argument("--pnr", type=float, default=None, metavar="MHZ",
                    help="Also place and route on the LFE5U-85F at this target (slow).")
    ap.add_argument("--pipeline", nargs="+", type=float, default=[0.0],
                    help="Clock targets in ns (UltraScale+ delay model; 0: registers at "
                         "layer boundaries only), e.g. --pipeline 0 5")
    ap.add_argument("--pnr-layers", type=float, default=None, metavar="MHZ",
                    help="Only place and route each layer alone on the LFE5U-85F at this "
                         "target (the whole network does not fit there).")
    ap.add_argument("--layers", nargs="+", default=None, metavar="NAME",
                    help="With --pnr-layers: only these layers (fc0 .. fc3).")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = args.work or Path(tempfile.mkdtemp(prefix="nnfab_bench_rtl_"))
    if args.pnr_layers:
        pnr_layers(args.pnr_layers, work, args.layers)
        return
    cols = ["style", "R", "clock_ns", "generate_s", "latency", "ii", "measured_latency",
            "bit_exact", "verilator_build_s", "sim_100k_s", "lut", "ff", "dsp", "synth_s",
            "peak_mib", "ecp5_fmax", "lut4", "ccu2c", "ecp5_ff"]
    print(" | ".join(cols))
    for style in args.styles:
        for reuse, clock in itertools.product(args.reuse, args.pipeline):
            row = run(style, reuse, work, not args.no_sim, not args.no_synth, clock or None,
                      args.pnr)
            cells = []
            for c in cols:
                v = row.get(c, "-")
                cells.append(f"{v:.2f}" if isinstance(v, float) else str(v))
            print(" | ".join(cells), flush=True)
    print(f"(Yosys synth_xilinx -flatten for {PART}; projects in {work}; peak_mib is the "
          "largest RSS of any Yosys child process so far)")


if __name__ == "__main__":
    main()
