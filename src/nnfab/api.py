"""The public calls, named as hls4ml names them so existing scripts port easily."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, TypedDict, Unpack

from nnfab.config import DEFAULT_PRECISION, IO_TYPES, config_from_graph
from nnfab.devices import resolve_part
from nnfab.errors import ConfigError
from nnfab.ir import Graph
from nnfab.model import NnfabModel
from nnfab.passes import assign_precision, optimize_float

log = logging.getLogger(__name__)


class ConvertOptions(TypedDict, total=False):
    """Keyword options every ``convert_from_*`` call accepts (see ``convert_graph``)."""

    output_dir: str | Path
    project_name: str
    backend: str
    part: str | None
    board: str | None
    io_type: str | None
    clock_period: float | None
    interface: str | None
    bus_width: int | None
    route: str | None


def _keras_graph(model: Any) -> Graph:
    from nnfab.frontends.loader import graph_from_keras_source

    return optimize_float(graph_from_keras_source(model))


def config_from_keras_model(
    model: Any,
    granularity: str = "model",
    default_precision: str = DEFAULT_PRECISION,
    default_reuse_factor: int = 1,
    backend: str | None = None,
) -> dict[str, Any]:
    """Starting configuration for a Keras model (object or file path).

    ``granularity``: ``"model"`` (one entry), ``"type"`` (one per layer class) or
    ``"name"`` (one per layer, listing every precision key of that layer).
    """
    del backend  # accepted for hls4ml compatibility; the config does not depend on it
    return config_from_graph(
        _keras_graph(model), granularity, default_precision, default_reuse_factor
    )


def convert_graph(
    graph: Graph,
    hls_config: dict[str, Any] | None = None,
    *,
    output_dir: str | Path = "nnfab_prj",
    project_name: str = "myproject",
    backend: str = "Vitis",
    part: str | None = None,
    board: str | None = None,
    io_type: str | None = None,
    clock_period: float | None = None,
    interface: str | None = None,
    bus_width: int | None = None,
    route: str | None = None,
) -> NnfabModel:
    """Type a float IR graph with a configuration and wrap it in an ``NnfabModel``.

    ``backend``: ``Vitis`` / ``Vivado`` (an HLS project), or an accelerator backend that
    also writes a board project: ``VivadoAccelerator`` (Zynq boards: pynq-z2, zcu102, ...),
    ``VitisAccelerator`` (Alveo cards), ``CoyoteAccelerator`` (u55c); these need ``board``
    and take ``interface`` (``"float"``: float32 on the bus, converted in fabric, or
    ``"fixed"``: the fixed-point mantissas), ``bus_width`` (bits; default the board's DMA
    width) and ``route`` (``"hls"``: the HLS IP, or ``"rtl"``: nnfab's Verilog). The
    clock period defaults to the board's clock, else 5 ns.
    """
    from nnfab.accel.interface import ACCEL_BACKENDS, AccelSettings

    accel = None
    if backend in ACCEL_BACKENDS:
        accel = AccelSettings.make(backend, board, interface=interface, bus_width=bus_width,
                                   route=route)
        if clock_period is None:
            clock_period = accel.board.clock_period
    elif interface is not None or bus_width is not None or route is not None:
        raise ConfigError(f"interface, bus_width and route are accelerator settings; use "
                          f"backend='VivadoAccelerator' (or {', '.join(ACCEL_BACKENDS)}), "
                          f"not {backend!r}")
    if board is not None and accel is None:
        from nnfab.accel.boards import get_board

        if clock_period is None:
            clock_period = get_board(board).clock_period
    config = dict(hls_config) if hls_config else config_from_graph(graph)
    if io_type is not None:
        if io_type not in IO_TYPES:
            raise ConfigError(f"io_type must be one of {', '.join(IO_TYPES)}, got {io_type!r}")
        model_cfg = dict(config.get("Model", {}))
        model_cfg["IOType"] = io_type
        config["Model"] = model_cfg
    graph = assign_precision(graph, config)
    return NnfabModel(
        graph,
        config,
        output_dir=output_dir,
        project_name=project_name,
        backend=backend,
        part=resolve_part(part, board),
        board=board,
        clock_period=5.0 if clock_period is None else clock_period,
        accel=accel,
    )


def convert_from_keras_model(
    model: Any,
    hls_config: dict[str, Any] | None = None,
    **options: Unpack[ConvertOptions],
) -> NnfabModel:
    """Convert a Keras model (object, ``.keras``/``.h5`` path) into an ``NnfabModel``.

    ``options``: ``output_dir``, ``project_name``, ``backend`` (Vitis/Vivado, or
    VivadoAccelerator/VitisAccelerator/CoyoteAccelerator with a ``board``), ``part``,
    ``board``, ``io_type``, ``clock_period`` (ns), ``interface``, ``bus_width``, ``route``,
    as in ``convert_graph``.
    """
    return convert_graph(
        _keras_graph(model),
        hls_config,
        **options,
    )


def _pytorch_graph(model: Any, input_shape: Any) -> Graph:
    from nnfab.frontends.torch import torch_to_graph

    return optimize_float(torch_to_graph(model, input_shape))


def config_from_pytorch_model(
    model: Any,
    input_shape: Any,
    granularity: str = "model",
    default_precision: str = DEFAULT_PRECISION,
    default_reuse_factor: int = 1,
    backend: str | None = None,
) -> dict[str, Any]:
    """Starting configuration for a PyTorch model (``nn.Module`` or ``.pt``/``.pth`` path).

    ``input_shape`` excludes the batch, channels first as in PyTorch (``(3, 32, 32)``);
    a list of shapes for several inputs. ``granularity`` as for Keras.
    """
    del backend  # accepted for hls4ml compatibility; the config does not depend on it
    return config_from_graph(
        _pytorch_graph(model, input_shape), granularity, default_precision, default_reuse_factor
    )


def convert_from_pytorch_model(
    model: Any,
    input_shape: Any,
    hls_config: dict[str, Any] | None = None,
    **options: Unpack[ConvertOptions],
) -> NnfabModel:
    """Convert a PyTorch model (``nn.Module`` or whole-module ``.pt``/``.pth`` file).

    The IR is channels-last: for a model whose input feeds a convolution, pooling or
    batch normalization, ``predict`` takes ``(N, H, W, C)`` / ``(N, L, C)`` arrays
    (``nnfab.frontends.torch.nchw_to_nhwc`` converts) and feature-map outputs come
    back channels-last; ``graph.metadata['input_layouts']`` says which inputs.
    """
    return convert_graph(
        _pytorch_graph(model, input_shape),
        hls_config,
        **options,
    )


def _onnx_graph(model: Any, scale_options: Any = None) -> Graph:
    from nnfab.frontends.onnx import onnx_to_graph

    return optimize_float(onnx_to_graph(model, scale_options))


def config_from_onnx_model(
    model: Any,
    granularity: str = "model",
    default_precision: str = DEFAULT_PRECISION,
    default_reuse_factor: int = 1,
    backend: str | None = None,
    scale_options: Any = None,
) -> dict[str, Any]:
    """Starting configuration for an ONNX / QONNX model (ModelProto or ``.onnx`` path).

    Types that QONNX Quant nodes fix (weights, biases, quantized activations) appear in
    the ``"name"`` granularity as they are; ``granularity`` as in ``config_from_keras_model``;
    ``scale_options`` as in ``convert_from_onnx_model``.
    """
    del backend  # accepted for hls4ml compatibility; the config does not depend on it
    return config_from_graph(
        _onnx_graph(model, scale_options), granularity, default_precision,
        default_reuse_factor
    )


def convert_from_onnx_model(
    model: Any,
    hls_config: dict[str, Any] | None = None,
    *,
    scale_options: Any = None,
    **options: Unpack[ConvertOptions],
) -> NnfabModel:
    """Convert an ONNX / QONNX model (ModelProto, qonnx ModelWrapper, ``.onnx`` path).

    Image inputs are channels-last in nnfab: a model whose ONNX input is ``(N, C, H, W)``
    takes ``(N, H, W, C)`` arrays in ``predict``. ``scale_options``
    (``nnfab.frontends.onnx_scales.ScaleOptions``: ``multiplier_bits``, ``bias_frac_bits``,
    ``output_rescale``) tunes how real (non power-of-two) QONNX scales are applied.
    """
    return convert_graph(
        _onnx_graph(model, scale_options),
        hls_config,
        **options,
    )
