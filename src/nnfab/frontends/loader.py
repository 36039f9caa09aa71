"""Pick the frontend for a model file (or a live model object)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nnfab.errors import FrontendError
from nnfab.frontends.torch import MODEL_SUFFIXES as TORCH_SUFFIXES
from nnfab.ir import Graph

SUPPORTED_FILES = (
    ".keras (Keras 3), .h5/.hdf5 (whole Keras/QKeras model), .json + weights .h5 (Keras 2), "
    ".onnx (ONNX / QONNX), .pt/.pth (whole pickled PyTorch module, needs input_shape)"
)


def graph_from_file(
    path: str | Path, weights: str | Path | None = None, input_shape: Any = None
) -> Graph:
    """Read a model file into a float IR graph.

    ``input_shape`` (one sample without the batch axis, channels first as in PyTorch,
    e.g. ``(3, 32, 32)``; a list of shapes for several inputs) is required for PyTorch
    ``.pt``/``.pth`` files and refused for the others, whose files record their shapes.
    """
    path = Path(path)
    if not path.exists():
        raise FrontendError(f"model file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix in TORCH_SUFFIXES:
        if weights is not None:
            raise FrontendError(
                f"{path}: a PyTorch file holds its weights; a separate weights file is only "
                "used with a Keras 2 .json model"
            )
        if input_shape is None:
            raise FrontendError(
                f"{path}: a PyTorch model does not record its input shape; give one sample's "
                "shape without the batch axis, channels first as in PyTorch: input_shape="
                "(3, 32, 32) in Python, --input-shape 3,32,32 on the command line"
            )
        from nnfab.frontends.torch import torch_to_graph

        return torch_to_graph(path, input_shape)
    if input_shape is not None:
        raise FrontendError(
            f"{path}: input_shape is only used with PyTorch .pt/.pth files (the other model "
            "formats record their input shapes)"
        )
    if suffix == ".json":
        if weights is None:
            raise FrontendError(
                f"{path}: a Keras architecture JSON needs its weights file (.h5); pass "
                "(json, h5) to convert_from_keras_model or --weights on the command line"
            )
        from nnfab.frontends.keras_json import graph_from_keras_json

        return graph_from_keras_json(path, weights)
    if weights is not None:
        raise FrontendError(f"{path}: a separate weights file is only used with a .json model")
    if suffix in (".h5", ".hdf5"):
        if _saved_by_keras3(path):
            from nnfab.frontends.keras import keras_to_graph

            return keras_to_graph(path)
        from nnfab.frontends.keras_json import graph_from_keras_h5

        return graph_from_keras_h5(path)
    if suffix == ".keras":
        from nnfab.frontends.keras import keras_to_graph

        return keras_to_graph(path)
    if suffix == ".onnx":
        from nnfab.frontends.onnx import onnx_to_graph

        return onnx_to_graph(path)
    raise FrontendError(f"{path}: unknown model file type {suffix!r}; supported: {SUPPORTED_FILES}")


def _saved_by_keras3(path: Path) -> bool:
    """Whole-model .h5 files record the Keras version that wrote them."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            version = f.attrs.get("keras_version", b"")
    except OSError as e:
        raise FrontendError(f"{path}: not an HDF5 file ({e})") from e
    if isinstance(version, bytes):
        version = version.decode()
    return str(version).startswith("3.")


def graph_from_keras_source(model: Any) -> Graph:
    """A Keras model object, a model path, or a (json, weights) pair -> float IR graph."""
    if isinstance(model, tuple):
        if len(model) != 2:
            raise FrontendError("a Keras 2 model pair must be (architecture.json, weights.h5)")
        return graph_from_file(model[0], model[1])
    if isinstance(model, str | Path):
        return graph_from_file(model)
    from nnfab.frontends.keras import keras_to_graph

    return keras_to_graph(model)
