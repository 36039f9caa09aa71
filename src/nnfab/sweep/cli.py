"""``nnfab sweep``: the design-space sweep from the command line (a click command)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from nnfab.errors import ConfigError, NnfabError

log = logging.getLogger(__name__)

FRONT_COLUMNS = ("type", "reuse", "strategy", "accuracy", "LUT", "FF", "DSP", "BRAM_18K",
                 "latency", "ii")


def _option_error(option: str, e: ConfigError) -> click.BadParameter:
    text = str(e)
    prefix = option + ":"
    if text.startswith(prefix):
        text = text[len(prefix):].strip()
    return click.BadParameter(text, param_hint=f"'{option}'")


def _ints(option: str, minimum: int = 1) -> Callable[..., Any]:
    """A click callback parsing an integer list / range for ``option``."""

    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        del ctx, param
        if value is None:
            return None
        from nnfab.sweep.space import parse_int_list

        try:
            return parse_int_list(value, option, minimum=minimum)
        except ConfigError as e:
            raise _option_error(option, e) from None

    return parse


def _strategies(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    del ctx, param
    from nnfab.sweep.space import parse_strategies

    try:
        return parse_strategies(value, "--strategy")
    except ConfigError as e:
        raise _option_error("--strategy", e) from None


def _data(ctx: click.Context, param: click.Parameter, value: str) -> tuple[np.ndarray, Any]:
    del ctx, param
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 2 or not all(parts):
        raise click.BadParameter(f"{value!r}: give the inputs and the labels as two .npy "
                                 "files, X.npy,y.npy", param_hint="'--data'")
    arrays = []
    for part in parts:
        path = Path(part)
        if path.suffix.lower() != ".npy":
            raise click.BadParameter(f"{part!r} is not a .npy file (write arrays with "
                                     "numpy.save)", param_hint="'--data'")
        try:
            arrays.append(np.load(path, allow_pickle=False))
        except (OSError, ValueError) as e:
            raise click.BadParameter(f"cannot read {part!r}: {e}", param_hint="'--data'") from e
    return arrays[0], arrays[1]


def _print_front(front: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Pareto front ({len(front)} points)")
    cols = [c for c in FRONT_COLUMNS if c in front and front[c].notna().any()]
    for col in cols:
        table.add_column(col, justify="left" if col in ("type", "strategy") else "right")
    for _, row in front.iterrows():
        cells = []
        for col in cols:
            v = row[col]
            if col == "accuracy":
                cells.append(f"{v:.4f}")
            elif isinstance(v, float):
                cells.append(f"{v:.0f}" if v == v else "-")
            else:
                cells.append(str(v))
        table.add_row(*cells)
    Console(width=None if sys.stdout.isatty() else 120).print(table)


@click.command("sweep")
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("--data", "data", required=True, callback=_data,
              help="Inputs and class labels (or one-hot) as X.npy,y.npy.")
@click.option("--precision", default="6..16", show_default=True, callback=_ints("--precision"),
              help="Total widths W of ap_fixed<W,I>: '6..16', '8,10,12', '6..16:2'.")
@click.option("--integer-bits", default=None, callback=_ints("--integer-bits", minimum=-64),
              help="Integer bits I (one or several: another axis); default: those of the "
                   "base config's precision (6 for ap_fixed<16,6>).")
@click.option("--reuse", default="1,2,4,8", show_default=True, callback=_ints("--reuse"),
              help="Reuse factors: '1,2,4,8' or '1..8'.")
@click.option("--strategy", default="Latency,Resource", show_default=True,
              callback=_strategies, help="Strategies: Latency, Resource (comma-separated).")
@click.option("-c", "--config", "config_path", type=click.Path(exists=True, path_type=Path),
              default=None, help="Base configuration (YAML) the points are applied to.")
@click.option("--input-shape", default=None,
              help="PyTorch models: one sample's shape, channels first, e.g. 3,32,32.")
@click.option("--part", default=None, help="FPGA part (estimate and synthesis).")
@click.option("--scheduler", default=None,
              help="Dask scheduler address (tcp://host:8786); default: a local cluster.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes of the local cluster (default: the CPU count).")
@click.option("--synth", is_flag=True, help="Also synthesize each point with Yosys (LUT/FF).")
@click.option("--objectives", default="accuracy:max,LUT:min,latency:min", show_default=True,
              help="Pareto objectives 'column:max|min', comma-separated (LUT falls back to "
                   "DSP without --synth).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Cache of finished points (default: OUT/cache).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("-o", "--output-dir", type=click.Path(path_type=Path), default=Path("sweep_out"),
              show_default=True, help="Writes table.csv, pareto.csv and sweep.png here.")
def sweep(model: Path, data: tuple[np.ndarray, Any], precision: list[int],
          integer_bits: list[int] | None, reuse: list[int], strategy: list[str],
          config_path: Path | None, input_shape: str | None, part: str | None,
          scheduler: str | None, workers: int | None, synth: bool, objectives: str,
          cache_dir: Path | None, no_progress: bool, output_dir: Path) -> None:
    """Sweep precision x reuse factor x strategy of MODEL; write the table, front and plot."""
    from nnfab.config import load_config
    from nnfab.sweep.pareto import parse_objectives
    from nnfab.sweep.run import sweep as run_sweep

    try:
        parse_objectives(objectives)
    except ConfigError as e:
        raise _option_error("--objectives", e) from None
    if scheduler is not None and not scheduler.startswith(("tcp://", "tls://", "inproc://",
                                                           "ucx://", "ws://", "wss://")):
        raise click.BadParameter(f"{scheduler!r} is not a scheduler address; write "
                                 "tcp://host:8786", param_hint="'--scheduler'")
    kwargs: dict[str, Any] = {}
    if config_path is not None:
        kwargs["hls_config"] = load_config(config_path)
    if part is not None:
        kwargs["part"] = part
    if input_shape is not None:
        try:
            kwargs["input_shape"] = tuple(int(p) for p in input_shape.strip("()[] ").split(","))
        except ValueError:
            raise click.BadParameter(f"{input_shape!r} is not a shape such as 3,32,32",
                                     param_hint="'--input-shape'") from None
    output_dir.mkdir(parents=True, exist_ok=True)
    x, y = data
    try:
        result = run_sweep(str(model), x, y, precision=precision, integer_bits=integer_bits,
                           reuse=reuse, strategy=strategy, synth=synth, scheduler=scheduler,
                           n_workers=workers, cache_dir=cache_dir or output_dir / "cache",
                           progress=not no_progress, **kwargs)
        result.save(output_dir / "table.csv")
        front = result.pareto(objectives)
        front.to_csv(output_dir / "pareto.csv", index=False)
        result.plot(output_dir / "sweep.png", objectives)
    except NnfabError as e:
        raise click.ClickException(str(e)) from e
    s = result.stats
    click.echo(f"{s['points']} points: {s['evaluated']} evaluated, {s['cached']} from the "
               f"cache, {s['failed']} failed ({s['seconds']:.1f} s)")
    _print_front(front)
    click.echo(f"wrote {output_dir / 'table.csv'}, {output_dir / 'pareto.csv'}, "
               f"{output_dir / 'sweep.png'}")
