"""qkeras-v3 (QKeras for Keras 3): live layers and ``.keras`` files -> the shared layer table.

The package ``qkeras-v3`` provides a ``qkeras`` module whose layers (``QDense``,
``QConv2D``, ``QActivation``, ...) are Keras 3 layers. A live one is recognised by its
class and its module (``qkeras.*``) and described as a model file would describe it,
so the QKeras converters of ``keras_mapping`` and the quantizer parsing of
``nnfab.frontends.qkeras`` apply unchanged: the numerics are those of QKeras 2 models.

Quantizers are read from the live quantizer objects (``kernel_quantizer_internal``,
``activation``, ...) as ``{"class_name", "config"}`` dicts. qkeras-v3 adds a few
parameters the QKeras table does not have (``post_training_scale``,
``elements_per_scale``, ...): they are accepted when unused (``None``) and refused
otherwise.

Note: HGQ2 installs a compatibility package also named ``qkeras``; it and qkeras-v3
cannot share one environment (the second install overwrites files of the first).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from nnfab.errors import FrontendError, UnsupportedLayerError
from nnfab.frontends.keras_layers import LayerDescription, layer_weights
from nnfab.frontends.keras_mapping import CONVERTERS, QKERAS_LAYERS, Converter
from nnfab.frontends.qkeras import QKERAS_FUNCTIONS, QUANTIZER_PARAMS

log = logging.getLogger(__name__)

QKERAS_MODULE_PREFIX = "qkeras."
QUANTIZER_FIELDS = (
    "kernel_quantizer", "bias_quantizer", "depthwise_quantizer",
    "gamma_quantizer", "beta_quantizer", "mean_quantizer", "variance_quantizer",
)
"""Layer config entries holding a weight quantizer (the live object is ``<field>_internal``)."""
INSTALL_HINT = "pip install --no-deps qkeras-v3==1.2.1 (see docs/frontends.md, QKeras)"


def is_qkeras3_layer(layer: Any) -> bool:
    """Whether ``layer`` is a layer of the ``qkeras`` package (qkeras-v3, Keras 3)."""
    return type(layer).__module__.startswith(QKERAS_MODULE_PREFIX)


def qkeras3_converter(layer: Any) -> Converter:
    """The shared-table converter of a qkeras-v3 layer's class."""
    cls = type(layer).__name__
    if cls in QKERAS_LAYERS:
        return CONVERTERS[cls]
    raise UnsupportedLayerError(
        f"layer {layer.name!r} of type {cls!r} ({type(layer).__module__}) is not supported; "
        f"supported qkeras layers: {', '.join(QKERAS_LAYERS)} (plus the plain Keras layers)"
    )


# ---------------------------------------------------------------- quantizers
def _plain(value: Any) -> Any:
    """A config value as plain Python: NumPy scalars and variables become numbers/lists."""
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray | np.generic):
        value = value.numpy()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.item() if value.ndim == 0 else value.tolist()
    return value


def _is_quantizer_object(value: Any) -> bool:
    return type(value).__module__.startswith(QKERAS_MODULE_PREFIX) and callable(
        getattr(value, "get_config", None)
    )


def _table_params(name: str, config: dict[str, Any], where: str) -> dict[str, Any]:
    """``config`` restricted to the QKeras table's parameters; unused extras are dropped."""
    table = QUANTIZER_PARAMS.get(name)
    if table is None:
        return config  # parse_quantizer names the quantizer unsupported
    known = {p for p, _ in table}
    params: dict[str, Any] = {}
    for key, value in config.items():
        value = _plain(value)
        if key in known:
            params[key] = value
        elif value is not None:
            raise UnsupportedLayerError(
                f"{where}: quantizer {name}: {key}={value!r} (a qkeras-v3 parameter) is not "
                "supported; nnfab reads quantizers that leave it at None"
            )
    return params


def quantizer_spec(value: Any, where: str) -> Any:
    """A quantizer as ``parse_quantizer`` reads it: None, its text, or a class/config dict.

    ``value`` is a live qkeras-v3 quantizer object, its serialized dict, or a string.
    A live object contributes the table parameters it holds as attributes too (its
    ``get_config`` leaves some out, e.g. quantized_relu's ``is_quantized_clip``).
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("class_name"), str):
        name = str(value["class_name"])
        config = dict(value.get("config") or {})
    elif _is_quantizer_object(value):
        name = type(value).__name__
        table = QUANTIZER_PARAMS.get(name, ())
        config = {p: getattr(value, p) for p, _ in table if hasattr(value, p)}
        config.update(value.get_config())
    else:
        return value  # parse_quantizer explains what it expected
    return {"class_name": name, "config": _table_params(name, config, where)}


def activation_spec(keras: Any, layer: Any, where: str) -> Any:
    """The layer's activation as the table reads it: a quantizer spec or a function name."""
    fn = getattr(layer, "activation", None)
    if fn is None:
        return "linear"
    if _is_quantizer_object(fn):
        return quantizer_spec(fn, where)
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str):
        raise UnsupportedLayerError(f"{where}: activation {fn!r} is not supported")
    if str(getattr(fn, "__module__", "")).startswith(QKERAS_MODULE_PREFIX):
        return name  # QKeras' own functions (hard_sigmoid, binary_tanh, ...): the table decides
    try:
        builtin = keras.activations.get(name)
    except (ValueError, TypeError):
        builtin = None
    if builtin is not fn:
        raise UnsupportedLayerError(
            f"{where}: activation={name!r} is not supported (neither a Keras built-in nor a "
            "QKeras function or quantizer)"
        )
    if name in QKERAS_FUNCTIONS:
        raise UnsupportedLayerError(
            f"{where}: Keras' own {name} inside a QKeras layer is not supported: in QKeras "
            f"layers nnfab reads {name!r} as QKeras' function of that name, which differs. "
            f"(qkeras-v3 saves QActivation({name!r}) by name and reloads it from a .keras "
            "file as Keras' function.) Use a quantizer, or keras.layers.Activation"
        )
    return name


def describe_qkeras3_layer(keras: Any, layer: Any) -> LayerDescription:
    """Class name, config (quantizers normalized) and float64 weights of a qkeras-v3 layer."""
    cls = type(layer).__name__
    where = f"layer {layer.name!r} ({cls})"
    mode = getattr(layer, "quantization_mode", None)
    if mode is not None:
        raise UnsupportedLayerError(
            f"{where}: quantization_mode={mode!r} is not supported; allowed: None"
        )
    try:
        config = dict(layer.get_config())
    except (NotImplementedError, TypeError, ValueError) as e:
        raise FrontendError(f"{where}: get_config() failed: {type(e).__name__}: {e}") from e
    for name in QUANTIZER_FIELDS:
        if name in config:
            live = getattr(layer, f"{name}_internal", None)
            config[name] = quantizer_spec(live if live is not None else config[name],
                                          f"{where} {name}")
    if "activation" in config:
        config["activation"] = activation_spec(keras, layer, f"{where} activation")
    return LayerDescription(cls, config, layer_weights(keras, layer))


# ---------------------------------------------------------------- .keras files
def import_qkeras3() -> Any:
    """Import qkeras-v3's ``qkeras`` (its layers register themselves with Keras)."""
    try:
        import qkeras
    except ImportError as e:
        raise FrontendError(f"reading qkeras layers needs qkeras-v3 ({e}): {INSTALL_HINT}") from e
    if not hasattr(qkeras, "QDense"):
        raise FrontendError(
            f"the 'qkeras' module found at {getattr(qkeras, '__file__', '?')!r} is not qkeras-v3 "
            "(HGQ2 installs a compatibility package of that name, which hides it): "
            f"{INSTALL_HINT}"
        )
    return qkeras


def qkeras3_custom_objects() -> dict[str, Any]:
    """qkeras-v3's layers and quantizers by class name, for ``keras.models.load_model``."""
    qkeras = import_qkeras3()
    objects: dict[str, Any] = {}
    try:  # QKeras' own table of its classes; without it the registered names still resolve
        from qkeras.utils import _add_supported_quantized_objects
    except ImportError:
        log.info("qkeras.utils._add_supported_quantized_objects not found; relying on "
                 "the classes qkeras registers with Keras")
    else:
        _add_supported_quantized_objects(objects)
    log.debug("qkeras-v3 %s: %d custom objects", getattr(qkeras, "__version__", "?"),
              len(objects))
    return objects
