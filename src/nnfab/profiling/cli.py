"""``nnfab profile``: write the profiling figures of a model as PNG and SVG files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from nnfab.errors import ConfigError, NnfabError

log = logging.getLogger(__name__)

FORMATS = ("png", "svg")
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_for_profile(model_path: Path, config_path: Path | None) -> tuple[Any, Any]:
    """``(hls_model, float framework model or None)`` for a model file or project dir.

    A project directory (with ``nnfab_model.json``) or an IR ``.json`` file is loaded
    with its types; a model file is converted with the default configuration (or
    ``config_path``). Keras files written by Keras 3 are also loaded with Keras for the
    float reference; other formats use the widened-type emulator.
    """
    from nnfab.cli import _load_any_model
    from nnfab.ir import Graph
    from nnfab.model import NnfabModel

    if model_path.is_dir():
        ir_file = model_path / "nnfab_model.json"
        if not ir_file.is_file():
            raise ConfigError(f"{model_path}: a project directory must hold nnfab_model.json "
                              "(written by nnfab convert); or give a model file (.keras, "
                              ".h5, .onnx)")
        if config_path is not None:
            raise ConfigError("--config applies to model files, not to a converted project "
                              f"({model_path} already has its types)")
        return NnfabModel(Graph.load(ir_file), {}, output_dir=model_path), None
    if model_path.suffix.lower() == ".json" and _is_ir_file(model_path):
        return NnfabModel(Graph.load(model_path), {}, output_dir=model_path.parent), None
    from nnfab.api import convert_graph
    from nnfab.config import load_config
    from nnfab.passes import optimize_float

    graph = optimize_float(_load_any_model(model_path, None))
    config = load_config(config_path) if config_path else None
    hm = convert_graph(graph, config, output_dir=model_path.parent)
    return hm, _float_keras_model(model_path)


def _is_ir_file(path: Path) -> bool:
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "nodes" in data and "tensors" in data


def _float_keras_model(path: Path) -> Any:
    """The Keras model in a Keras 3 file (None otherwise, or if Keras cannot load it)."""
    if path.suffix.lower() not in KERAS_SUFFIXES:
        return None
    try:
        from nnfab.frontends.loader import _saved_by_keras3

        if path.suffix.lower() != ".keras" and not _saved_by_keras3(path):
            return None
        import keras

        return keras.models.load_model(path, compile=False)
    except Exception as e:  # any failure: fall back to the wide-type emulator
        log.warning("could not load %s with Keras (%s); float reference: the wide-type "
                    "emulator", path, e)
        return None


def write_figures(figures: dict[str, Any], out_dir: Path, dpi: int = 120) -> list[Path]:
    """Save each figure as ``<out_dir>/<name>.png`` and ``.svg``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        for fmt in FORMATS:
            path = out_dir / f"{name}.{fmt}"
            fig.savefig(path, format=fmt, dpi=dpi)
            log.info("wrote %s", path)
            paths.append(path)
    return paths


@click.command("profile")
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("-d", "--data", "data_path", type=click.Path(exists=True, path_type=Path),
              default=None, help="Inputs (.npy batch first, or .csv/.dat one sample a row) "
              "for the activation and error figures; without it only weights are drawn.")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("nnfab_profile"), show_default=True)
@click.option("-c", "--config", "config_path", type=click.Path(exists=True, path_type=Path),
              default=None, help="YAML configuration for a model file (default types else).")
@click.option("--layer", "layers", multiple=True,
              help="Only this layer (IR name, repeatable).")
def profile(model: Path, data_path: Path | None, output_dir: Path, config_path: Path | None,
            layers: tuple[str, ...]) -> None:
    """Profile MODEL (.keras, .h5, .onnx, or a converted project directory): per-layer
    weight and activation ranges against their fixed-point types, and the per-layer
    float-vs-emulator error, as PNG and SVG files in OUTPUT_DIR."""
    from nnfab.cli import _read_array
    from nnfab.profiling.plots import compare, numerical

    try:
        hm, float_model = load_for_profile(model, config_path)
        x = _read_array(data_path) if data_path is not None else None
        figures = numerical(float_model, hm, x, layers=list(layers) or None)
        if x is not None:
            figures["compare"] = compare(float_model, hm, x)
        paths = write_figures(figures, output_dir)
    except NnfabError as e:
        raise click.ClickException(str(e)) from e
    reference = "the Keras model" if float_model is not None else "the wide-type emulator"
    click.echo(f"profiled {len(hm.graph)} layers of {model}"
               + (f" on {len(x)} samples (float reference: {reference})" if x is not None
                  else ""))
    for path in paths:
        click.echo(f"wrote {path}")
