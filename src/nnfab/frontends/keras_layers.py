"""Live Keras 3 layers -> the layer descriptions the shared table reads.

The Keras 3 frontend maps layers with ``keras_mapping``, the table the JSON reader
uses: each live layer is described as a model file would describe it, by its class
name, its ``get_config()`` dict and its weights by short name (``kernel``, ``bias``,
``gamma``, ...) as float64 arrays. Checks that need the live object are made here,
before the table sees the layer: Keras' own weight quantization, and an activation
that is a custom function (its config would only show the function's name).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nnfab.errors import FrontendError, UnsupportedLayerError
from nnfab.frontends.keras_mapping import ACTIVATION_FUNCTIONS, KERAS_LAYERS, JsonDict
from nnfab.frontends.keras_recurrent import wrapped_weight_name

NOT_LIVE: tuple[str, ...] = ("ActivityRegularization", "ThresholdedReLU",  # not in Keras 3
                             "FixedPointQuantizer")  # HGQ (Keras 2) proxy models
"""In the table for model files but not (yet) enabled for live models; enabling one also
changes docs/coverage.md (``python scripts/gen_coverage.py``)."""

CUSTOM_LAYERS: tuple[str, ...] = ("GarNet", "GarNetStack")
"""Layers that are not in ``keras.layers``: a model's own class of this name is taken
(its ``get_config()`` and named weights, as the published layer defines them)."""

LIVE_LAYERS: tuple[str, ...] = tuple(n for n in KERAS_LAYERS if n not in NOT_LIVE)
"""``keras.layers`` classes converted for live models (``InputLayer``: the model walk)."""

SUPPORTED_LAYERS: tuple[str, ...] = ("InputLayer", *LIVE_LAYERS)


@dataclass(frozen=True)
class LayerDescription:
    """A live layer as a model file describes it."""

    cls: str
    config: JsonDict
    weights: dict[str, np.ndarray]


def to_float64(keras: Any, value: Any) -> np.ndarray:
    """A Keras variable (or tensor) as a float64 NumPy array."""
    # Variable.numpy() avoids the NumPy 2 copy-keyword warning of convert_to_numpy on TF.
    array = value.numpy() if hasattr(value, "numpy") else keras.ops.convert_to_numpy(value)
    return np.array(array, dtype=np.float64)


def layer_weights(keras: Any, layer: Any) -> dict[str, np.ndarray]:
    """The layer's weights by short name (the last path component), as float64."""
    where = f"layer {layer.name!r} ({type(layer).__name__})"
    arrays: dict[str, np.ndarray] = {}
    for variable in layer.weights:
        path = str(getattr(variable, "path", None) or variable.name)
        short = wrapped_weight_name(path, str(layer.name))
        if short in arrays:
            raise FrontendError(f"{where}: two weights are named {short!r}")
        arrays[short] = to_float64(keras, variable)
    return arrays


def _check_builtin_activation(keras: Any, layer: Any, where: str) -> None:
    """Reject an activation that is not Keras' own function of that name."""
    fn = getattr(layer, "activation", None)
    name = getattr(fn, "__name__", None)
    known = None
    if isinstance(name, str):
        try:
            known = keras.activations.get(name)
        except (ValueError, TypeError):
            known = None
    if known is not fn:
        shown = name if isinstance(name, str) else repr(fn)
        raise UnsupportedLayerError(
            f"{where}: activation={shown!r} is not supported (not a Keras built-in function); "
            f"allowed: {', '.join(ACTIVATION_FUNCTIONS)}"
        )


def describe_layer(keras: Any, layer: Any) -> LayerDescription:
    """Class name, config and float64 weights of a live layer, after the live-only checks."""
    cls = type(layer).__name__
    where = f"layer {layer.name!r} ({cls})"
    mode = getattr(layer, "quantization_mode", None)
    if mode is not None:
        raise UnsupportedLayerError(
            f"{where}: quantization_mode={mode!r} is not supported; allowed: None (a float layer)"
        )
    try:
        config = dict(layer.get_config())
    except (NotImplementedError, TypeError, ValueError) as e:
        raise FrontendError(f"{where}: get_config() failed: {type(e).__name__}: {e}") from e
    if "activation" in config:
        _check_builtin_activation(keras, layer, where)
    return LayerDescription(cls, config, layer_weights(keras, layer))
