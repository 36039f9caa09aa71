"""nnfab: compile trained neural networks into bit-exact FPGA firmware."""

from __future__ import annotations

from nnfab import accel
from nnfab.api import (
    config_from_keras_model,
    config_from_onnx_model,
    config_from_pytorch_model,
    convert_from_keras_model,
    convert_from_onnx_model,
    convert_from_pytorch_model,
    convert_graph,
)
from nnfab.config import load_config, save_config, set_model_setting
from nnfab.errors import (
    ConfigError,
    FrontendError,
    NnfabError,
    PrecisionError,
    UnsupportedLayerError,
)
from nnfab.ir import FixedType, Graph, fixed
from nnfab.model import NnfabModel
from nnfab.passes import valid_reuse_factors
from nnfab.tuning import TypeProposal, config_from_data

__version__ = "0.1.0"

# No NullHandler: until the application configures logging, Python's last-resort
# handler prints nnfab's warnings (overflow, shadowed settings, rescales) to stderr, so
# a plain script never loses them; info and debug stay quiet.


def __getattr__(name: str) -> object:
    """``nnfab.sweep`` (callable: ``nnfab.sweep(model, X, y, ...)``) loads pandas and
    Dask only when first used."""
    if name == "sweep":
        import importlib

        return importlib.import_module("nnfab.sweep")
    raise AttributeError(f"module 'nnfab' has no attribute {name!r}")

__all__ = [
    "ConfigError",
    "FixedType",
    "FrontendError",
    "Graph",
    "NnfabError",
    "NnfabModel",
    "PrecisionError",
    "TypeProposal",
    "UnsupportedLayerError",
    "__version__",
    "accel",
    "config_from_data",
    "config_from_keras_model",
    "config_from_onnx_model",
    "config_from_pytorch_model",
    "convert_from_keras_model",
    "convert_from_onnx_model",
    "convert_from_pytorch_model",
    "convert_graph",
    "fixed",
    "load_config",
    "save_config",
    "set_model_setting",
    "sweep",
    "valid_reuse_factors",
]
