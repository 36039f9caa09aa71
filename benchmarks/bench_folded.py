"""Folded Verilog (ReuseFactor > 1): resources on xc7z020 (Yosys) beside ECP5 Fmax (nextpnr).

    python3 benchmarks/bench_folded.py                 # autoencoder at R = 64, both styles
    python3 benchmarks/bench_folded.py --jet           # + the jet tagger at R = 4 and 16
    python3 benchmarks/bench_folded.py --pipeline none 10 --styles dsp

Designs:
- ``autoencoder``: the PYNQ-Z2 flow's 57-32-16-3-16-32-57 MLP (relu between the layers,
  random normal weights, seed 5), ``ap_fixed<16,6>``, Strategy Resource, ReuseFactor 64
  on every layer, part ``xc7z020clg400-1``;
- ``jet_tagger``: the shipped 16-64-32-32-5 model (``src/nnfab/data/jet_tagger.keras``),
  ``ap_fixed<16,6>``, ReuseFactor 4 and 16 (``--jet``; needs Keras).

For each ``--pipeline`` setting the Verilog is generated with
``pipeline={"clock_period": ns, "family": "ecp5"}`` (``none``: registers at layer
boundaries only, the datapath of a phase in one cycle; ``part``: the default of
``to_rtl()``, the model's clock on the part's family, here 5 ns on xc7). The table shows
latency and II (cycles), Yosys ``synth_xilinx -family xc7 -flatten`` LUT / FF / DSP /
BRAM18 and its longest path (cells), and ECP5 (LFE5U-85F, speed 6, out of context,
registered ports, target 100 MHz) Fmax with LUT4 / FF / MULT18X18D. ``dsp`` style for
ECP5 instantiates MULT18X18D cells (their own registers used), which ``synth_xilinx``
does not know: those rows have no xc7 figures (0). ``--sim`` also checks the Verilog
against the emulator on 2,000 samples (Verilator).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pnr import mlp_graph

import nnfab
from nnfab.backends.rtl import ecp5

PART = "xc7z020clg400-1"
DEVICE = "LFE5U-85F"
CLOCK_MHZ = 100.0
AUTOENCODER = [57, 32, 16, 3, 16, 32, 57]


def autoencoder() -> nnfab.NnfabModel:
    cfg = {"Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 64, "Strategy": "Resource"}}
    return nnfab.convert_graph(mlp_graph(AUTOENCODER, 5, "autoencoder"), cfg, part=PART)


def jet_tagger(reuse: int) -> nnfab.NnfabModel:
    import keras

    root = Path(__file__).resolve().parents[1]
    model = keras.models.load_model(root / "src" / "nnfab" / "data" / "jet_tagger.keras")
    cfg = nnfab.config_from_keras_model(model, granularity="model")
    cfg["Model"].update({"Precision": "ap_fixed<16,6>", "ReuseFactor": reuse,
                         "Strategy": "Resource"})
    return nnfab.convert_from_keras_model(model, hls_config=cfg, part=PART,
                                          output_dir=tempfile.mkdtemp(prefix="bench_folded_"))


def pipeline_option(setting: str) -> Any:
    if setting == "none":
        return None
    if setting == "part":
        return "clock"
    return {"clock_period": float(setting), "family": "ecp5"}


def measure(name: str, model: nnfab.NnfabModel, style: str, setting: str, work: Path,
            sim: bool, pnr: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    prj = model.to_rtl(work / f"{name}_{style}_{setting}", style=style,
                       pipeline=pipeline_option(setting))
    prj.write()
    row: dict[str, Any] = {"design": name, "style": style, "pipeline": setting,
                           "latency": prj.latency, "ii": prj.ii,
                           "gen_s": time.perf_counter() - t0}
    if sim:
        n_in = model.graph.tensors[model.graph.inputs[0]].shape[0]
        x = np.random.default_rng(2).normal(size=(2000, n_in)) * 2
        row["exact"] = bool(np.array_equal(prj.simulate(x).outputs, model.predict(x)))
    if ecp5.CELL_MODELS_FILE in prj.design.files:  # ECP5 DSP cells: no synth_xilinx
        row.update(lut=0, ff=0, dsp=0, bram=0, path=0, yosys_s=0.0)
    else:
        syn = prj.synthesize(PART)
        row.update(lut=syn.lut, ff=syn.ff, dsp=syn.dsp, bram=syn.bram_18k,
                   path=syn.longest_path, yosys_s=syn.seconds)
    if pnr:
        r = prj.place_and_route(DEVICE, CLOCK_MHZ)
        row.update(fmax=r.fmax_mhz or 0.0, lut4=r.lut4, ecp5_ff=r.ff, ecp5_dsp=r.dsp,
                   pnr_s=r.result.yosys_seconds + r.result.nextpnr_seconds)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--styles", nargs="+", default=["dsp", "lut"])
    ap.add_argument("--pipeline", nargs="+", default=["none", "10"],
                    help="'none', 'part' or a clock period in ns (ECP5 delay model)")
    ap.add_argument("--jet", action="store_true", help="also the jet tagger at R = 4, 16")
    ap.add_argument("--designs", nargs="+", default=None,
                    choices=["autoencoder_r64", "jet_r4", "jet_r16"],
                    help="only these designs (default: the autoencoder, with --jet all)")
    ap.add_argument("--sim", action="store_true", help="check Verilator == emulator")
    ap.add_argument("--no-pnr", action="store_true", help="Yosys only (no nextpnr)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the projects in this dir")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    designs: list[tuple[str, Any]] = [("autoencoder_r64", autoencoder)]
    if args.jet or args.designs:
        designs += [("jet_r4", lambda: jet_tagger(4)), ("jet_r16", lambda: jet_tagger(16))]
    if args.designs:
        designs = [d for d in designs if d[0] in args.designs]
    print(f"Yosys synth_xilinx xc7 ({PART}); ECP5 {DEVICE} speed 6 out of context at "
          f"{CLOCK_MHZ:g} MHz")
    header = (f"{'design':<17}{'style':>6}{'pipe':>6}{'lat':>5}{'II':>4}{'LUT':>8}{'FF':>8}"
              f"{'DSP':>5}{'BRAM':>5}{'path':>6}{'Fmax':>7}{'LUT4':>7}{'FF5':>7}{'exact':>6}"
              f"{'gen s':>7}{'yosys s':>8}{'pnr s':>7}")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="bench_folded_") as tmp:
        work = args.keep or Path(tmp)
        for name, make in designs:
            model = make()
            for style in args.styles:
                for setting in args.pipeline:
                    r = measure(name, model, style, setting, work, args.sim, not args.no_pnr)
                    print(f"{r['design']:<17}{r['style']:>6}{r['pipeline']:>6}{r['latency']:>5}"
                          f"{r['ii']:>4}{r['lut']:>8}{r['ff']:>8}{r['dsp']:>5}{r['bram']:>5}"
                          f"{r['path'] or 0:>6}{r.get('fmax', 0.0):>7.1f}{r.get('lut4', 0):>7}"
                          f"{r.get('ecp5_ff', 0):>7}{r.get('ecp5_dsp', 0):>5}"
                          f"{r.get('exact', '-')!s:>6}"
                          f"{r['gen_s']:>7.1f}{r['yosys_s']:>8.1f}{r.get('pnr_s', 0.0):>7.1f}",
                          flush=True)


if __name__ == "__main__":
    main()
