"""The ``nnfab`` command line. The only module that configures logging or prints."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from nnfab.errors import NnfabError

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


def _load_any_model(path: Path, weights: Path | None):
    from nnfab.frontends.loader import graph_from_file

    return graph_from_file(path, weights)


@cli.command()
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("-w", "--weights", type=click.Path(exists=True, path_type=Path), default=None,
              help="Weights .h5 for a Keras 2 architecture JSON.")
@click.option("-o", "--output-dir", type=click.Path(path_type=Path), default=Path("nnfab_prj"),
              show_default=True)
@click.option("-c", "--config", "config_path", type=click.Path(exists=True, path_type=Path),
              default=None, help="YAML configuration (Model / LayerType / LayerName).")
@click.option("--backend", type=click.Choice(["Vitis", "Vivado"]), default="Vitis",
              show_default=True)
@click.option("--part", default=None, help="FPGA part (default xcvu9p-flgb2104-2l-e).")
@click.option("--board", default=None, help="Board name, e.g. pynq-z2 (sets the part).")
@click.option("--io-type", type=click.Choice(["io_parallel", "io_stream"]), default=None)
def convert(model: Path, weights: Path | None, output_dir: Path, config_path: Path | None,
            backend: str, part: str | None, board: str | None, io_type: str | None) -> None:
    """Convert MODEL (.keras, .h5, Keras 2 .json + --weights) into DIR."""
    from nnfab.api import convert_graph
    from nnfab.config import load_config
    from nnfab.passes import optimize_float

    with console.status(f"reading {model}"):
        graph = optimize_float(_load_any_model(model, weights))
    config = load_config(config_path) if config_path else None
    with console.status("assigning precision"):
        hm = convert_graph(graph, config, output_dir=output_dir, backend=backend, part=part,
                           board=board, io_type=io_type)
    with console.status("writing the HLS project"):
        root = hm.write()
    console.print(f"converted {len(hm.graph)} layers -> {root} (HLS project, nnfab_model.json)")
    _print_layers(hm.summary(), overflow=False)


@cli.command()
@click.argument("project", type=click.Path(exists=True, path_type=Path))
@click.option("-i", "--input", "input_path", type=click.Path(exists=True, path_type=Path),
              required=True, help="Inputs as .npy (batch first) or .csv/.dat (one sample a row).")
@click.option("-o", "--output", "output_path", type=click.Path(path_type=Path), default=None,
              help="Where to write predictions (.npy or .csv); default: print a summary.")
def predict(project: Path, input_path: Path, output_path: Path | None) -> None:
    """Run the bit-exact emulator of a converted PROJECT directory on inputs."""
    from nnfab.ir import Graph
    from nnfab.model import NnfabModel

    ir_file = project / "nnfab_model.json" if project.is_dir() else project
    hm = NnfabModel(Graph.load(ir_file), {})
    x = _read_array(input_path)
    t0 = time.perf_counter()
    y = hm.predict(x)
    dt = time.perf_counter() - t0
    outputs = y if isinstance(y, list) else [y]
    console.print(f"{x.shape[0]} samples in {dt:.3f} s ({x.shape[0] / max(dt, 1e-9):,.0f}/s)")
    if output_path:
        if output_path.suffix == ".npy":
            np.save(output_path, outputs[0])
        else:
            np.savetxt(output_path, outputs[0].reshape(len(outputs[0]), -1), delimiter=",")
        console.print(f"wrote {output_path}")
    else:
        console.print(outputs[0][:5])


def _read_array(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path)
    try:
        return np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2)
    except ValueError as e:
        raise click.BadParameter(f"{path}: not a numeric table ({e})") from e


@cli.command()
@click.option("-o", "--output-dir", type=click.Path(path_type=Path), default=Path("nnfab_demo"),
              show_default=True)
@click.option("-n", "--samples", type=click.IntRange(100, 10_000_000), default=20_000,
              show_default=True)
@click.option("--precision", default="ap_fixed<16,6>", show_default=True)
def demo(output_dir: Path, samples: int, precision: str) -> None:
    """Convert the shipped jet tagger, emulate it bit-exactly, compare with float Keras."""
    from nnfab.demo.run import run_demo

    with console.status("starting") as status:
        result = run_demo(output_dir, samples, precision, step=lambda m: status.update(m))
    console.print(f"[bold]nnfab demo[/bold]: 16-64-32-32-5 jet tagger, {result.n_samples} samples")
    summary = Table(show_header=False)
    summary.add_row("float accuracy (Keras)", f"{result.float_accuracy:.4f}")
    summary.add_row(f"fixed-point accuracy ({precision})", f"{result.fixed_accuracy:.4f}")
    summary.add_row("same class as float", f"{result.argmax_agreement:.4f}")
    summary.add_row("max |float - fixed| (softmax)", f"{result.max_abs_diff:.4g}")
    summary.add_row("distinct softmax outputs (class 0)", str(result.softmax_distinct_outputs))
    summary.add_row("HLS C simulation == emulator (bit for bit)",
                    "yes" if result.csim_bit_exact else "[red]NO[/red]")
    for key, value in result.timings.items():
        summary.add_row(f"time: {key}", f"{value:.3f} s")
    console.print(summary)
    _print_layers(result.layers, overflow=True)
    for f in result.files:
        console.print(f"wrote {f}")


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
